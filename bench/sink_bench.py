"""Sink benchmark, one command: ``.venv/bin/python bench/sink_bench.py [--mb 64]``.

Starts a private local stack (Kafka + SeaweedFS) under a temp dir, then in one run:

  (1) the sink: matched streams already on a topic -> batches -> PCAP objects + manifests on
      S3 (Object Lock retention, conditional PUTs, checksums, chained manifests, commits).
      Timed from the first fetch that returns messages to the last batch committed.
  (0) decoding alone: ``decode_matched_packets`` of every message, one thread (the decoding
      (1) does), and ``decode_matched`` (the full models, what the sink decoded before).
  (1b) the sink's store path alone: the same messages, decoded, batched, planned and written
      by ``BatchWriter``, one thread, no Kafka.
  (2) the peer: the very same PCAP object bytes uploaded by a plain loop of ``put_object``
      calls (no lock, no manifest, no HEAD, no Kafka), one after another.

Both rates are MB/s of PCAP bytes stored; the ratio (1)/(2) is the sink's overhead over a bare
upload of the same bytes. The goal is the sink within 1.3x of the plain upload's time.

Beside wall time, each run reports the CPU seconds spent on (1) and on (2) by every party on this
machine: the sink's process, the broker and the S3 server for (1); the client and the S3 server
for (2) (from /proc, so Linux only). The S3 server's share is the same work in both; what (1)
adds is the broker and the sink's own CPU. On a machine whose CPUs other jobs also use, wall time
follows those totals, so they say how much of a ratio is the sink's and how much the load's.
The summary gives the median and range of each ratio over the runs.

Before (1) the S3 server is warmed up with a few throwaway PUTs, so the sink does not pay for the
server's first volume allocations that the plain loop, which always runs later, never sees; then
(1) runs once untimed, so the first timed run does not pay for the broker's first fetches and
commits either (its JIT: 0.6-0.9 s more broker CPU in a stack's first sink run than in later ones).
``--repeat N`` runs (1), (0), (1b) and (2) N times on the same stack and topic (a new consumer
group and prefix each time), so the rows of one invocation share the machine's conditions;
``--in-flight 2,1`` runs each repeat once per ``SINK_BATCHES_IN_FLIGHT`` value, alternating.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import io
import os
import platform
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sinks.batch import ClosedBatch, Consumed
from sinks.cli import run_sink
from sinks.config import load_sink_settings
from sinks.keys import MANIFEST_SUFFIX
from sinks.plan import PlanOptions, plan_batch
from sinks.s3 import MinioStore, make_store_client
from sinks.service import SinkService
from sinks.writer import BatchWriter
from stack import LocalStack
from stack.topics import TopicSpec, ensure_topics
from streamtap.kafka import make_producer
from streamtap.schema import (
    Endpoint,
    MatchedStream,
    Node,
    RawPacket,
    RuleSettings,
    StreamRecord,
    decode_matched,
    decode_matched_packets,
    encode_matched,
)

PARTITIONS = 3
FRAME = 1514
PACKETS_PER_STREAM = 40
BATCH_BYTES = 16 * 1024 * 1024
WARMUP_OBJECTS = 8
WARMUP_BYTES = 4 * 1024 * 1024
GOAL = 1.3


def process_tree_cpu(pid: int | None) -> float:
    """CPU seconds (user + system) of ``pid`` and its descendants so far; 0 where /proc lacks it."""
    if pid is None:
        return 0.0
    tick = os.sysconf("SC_CLK_TCK")
    total = 0.0
    todo = [pid]
    while todo:
        current = todo.pop()
        try:
            fields = Path(f"/proc/{current}/stat").read_text().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / tick
            for task in Path(f"/proc/{current}/task").iterdir():
                todo += [int(c) for c in (task / "children").read_text().split()]
        except (OSError, IndexError, ValueError):
            continue
    return total


def server_cpu(stack: LocalStack) -> dict[str, float]:
    """CPU seconds so far of the stack's broker and S3 server (each with its children)."""
    return {
        "broker": process_tree_cpu(stack.kafka.process.pid()),
        "s3": process_tree_cpu(stack.s3.process.pid()),
    }


def _spent(before: dict[str, float], after: dict[str, float]) -> dict[str, float]:
    return {name: after[name] - before[name] for name in before}


def generate(total_mb: int, seed: int = 7) -> list[MatchedStream]:
    """Streams of full-size frames with random payload (so compression cannot cheat)."""
    rng = random.Random(seed)
    messages = []
    ts = 1_795_773_600_000_000_000
    n = 0
    target = total_mb * 1_000_000
    size = 0
    while size < target:
        packets = []
        for _ in range(PACKETS_PER_STREAM):
            ts += rng.randrange(1_000, 50_000)
            data = rng.randbytes(FRAME)
            packets.append(RawPacket(ts_ns=ts, linktype=1, wirelen=FRAME, data=data))
            size += FRAME
        record = StreamRecord(
            stream_id=f"bench-{n}",
            segment=0,
            closed=True,
            node=Node(name=f"node-{n % 4}"),
            layer4="tcp",
            src=Endpoint(ip=f"10.0.{n % 250}.1", port=40000 + n % 20000),
            dst=Endpoint(ip="10.9.0.1", port=80),
            first_ts_ns=packets[0].ts_ns,
            last_ts_ns=packets[-1].ts_ns,
            entries=(
                {
                    "index": 0,
                    "protocol": {"name": "http"},
                    "request": {"method": "GET", "path": f"/item/{n}"},
                    "response": {"status": 200},
                },
            ),
            packets=tuple(packets),
        )
        messages.append(
            MatchedStream(
                record=record,
                rules={"bench": RuleSettings(retention_days=1, lock_mode="GOVERNANCE")},
                matched_entries={"bench": (0,)},
            )
        )
        n += 1
    return messages


async def produce(stack: LocalStack, topic: str, messages: list[MatchedStream]) -> None:
    settings = stack.settings.model_copy(update={"matched_topic": topic})
    await ensure_topics(settings, [TopicSpec(topic, PARTITIONS)])
    producer = make_producer(settings)
    await producer.start()
    try:
        for message in messages:
            await producer.send(topic, encode_matched(message), key=message.key)
        await producer.flush()
    finally:
        await producer.stop()


async def run_sink_timed(
    stack: LocalStack, topic: str, prefix: str, count: int, spill: Path, in_flight: int = 0
) -> tuple[float, SinkService, dict[str, float]]:
    """Time (1) from the first fetch that returns messages to the last batch committed.

    The clock starts when ``getmany`` first hands the sink records, before any of them is
    decoded, so the decoding of the first fetch is inside the measured time; group join and
    the broker's first fetch are outside it (the plain loop has no such step either).
    """
    settings = stack.settings.model_copy(update={"matched_topic": topic})
    sink_settings = load_sink_settings(
        SINK_GROUP=f"bench-{prefix}",
        SINK_PREFIX=prefix,
        SINK_MAX_BATCH_BYTES=str(BATCH_BYTES),
        SINK_MAX_BATCH_AGE_S="2",
        SINK_SPILL_DIR=str(spill),
        SINK_STATS_INTERVAL_S="3600",
        **({"SINK_BATCHES_IN_FLIGHT": str(in_flight)} if in_flight else {}),
    )
    services: list[SinkService] = []
    first_fetch: list[tuple[float, float]] = []
    servers_began: list[dict[str, float]] = []
    pauses = _GcPauses()

    def started(service: SinkService) -> None:
        services.append(service)
        getmany = service.consumer.getmany

        async def timed_getmany(*args: Any, **kwargs: Any) -> Any:
            records = await getmany(*args, **kwargs)
            if records and not first_fetch:
                first_fetch.append((time.perf_counter(), time.process_time()))
                servers_began.append(server_cpu(stack))
                pauses.reset()  # the window starts here; start-up collections are not in it
            return records

        service.consumer.getmany = timed_getmany

    stop = asyncio.Event()
    gc.callbacks.append(pauses)
    task = asyncio.create_task(run_sink(settings, sink_settings, stop, started))
    while not first_fetch:
        if task.done():
            await task
        await asyncio.sleep(0.001)
    began, cpu_began = first_fetch[0]
    service = services[0]
    consumed_at = None
    while service.stats.messages < count or service.stats.pending_batches or _open(service):
        if task.done():
            await task
        if consumed_at is None and service.stats.messages >= count:
            consumed_at = time.perf_counter() - began
        await asyncio.sleep(0.002)
    elapsed = time.perf_counter() - began
    done_at = consumed_at or elapsed
    cpu = time.process_time() - cpu_began
    servers = _spent(servers_began[0], server_cpu(stack))
    gc.callbacks.remove(pauses)
    print(
        f"    all messages consumed after {done_at:.2f}s, stored after {elapsed:.2f}s "
        f"(tail {elapsed - done_at:.2f}s); sink process CPU {cpu:.2f}s"
    )
    stop.set()
    await task
    parts = {
        "consumed_s": done_at,
        "tail_s": elapsed - done_at,
        "cpu_s": cpu,
        "broker_cpu_s": servers["broker"],
        "s3_cpu_s": servers["s3"],
        "gc_s": pauses.seconds,
        "gc_full": pauses.full,
    }
    return elapsed, service, parts


class _GcPauses:
    """Time the process spends in the garbage collector (each pass holds the GIL: no thread of
    the sink runs meanwhile), and how many passes were full ones."""

    def __init__(self) -> None:
        self.seconds = 0.0
        self.full = 0
        self._began = 0.0

    def reset(self) -> None:
        self.seconds = 0.0
        self.full = 0

    def __call__(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._began = time.perf_counter()
            return
        self.seconds += time.perf_counter() - self._began
        self.full += info["generation"] == 2


def _open(service: SinkService) -> bool:
    return any(state.batcher.open_messages for state in service._parts.values())


def store_path(store: MinioStore, values: list[bytes], prefix: str) -> tuple[float, int]:
    """(1b): the sink's own code from decoded messages to stored objects, without Kafka:
    batches -> PCAP + manifest -> locked, conditional, checksummed PUTs. One thread."""
    options = PlanOptions(default_prefix=prefix)
    writer = BatchWriter(store)
    limit = BATCH_BYTES
    batches: list[list[Consumed]] = [[]]
    size = 0
    for offset, value in enumerate(values):
        item = Consumed(0, offset, 1_800_000_000_000, len(value), decode_matched_packets(value))
        batches[-1].append(item)
        size += item.size
        if size >= limit:
            batches.append([])
            size = 0
    stored = 0
    began = time.perf_counter()
    for items in batches:
        if items:
            for obj in plan_batch(ClosedBatch(0, tuple(items), "size"), options):
                writer.write(obj)
                stored += obj.size
    return time.perf_counter() - began, stored


def decode_only(values: list[bytes], decode: Any = decode_matched_packets) -> float:
    """(0): ``decode`` of every message value, one thread, nothing else: the part of (1) that
    is the record encoding's, not the sink's, and that no overlap can hide."""
    began = time.perf_counter()
    for value in values:
        decode(value)
    return time.perf_counter() - began


def warm_up(store: MinioStore, prefix: str) -> None:
    """A few plain PUTs, so the S3 server has allocated its volumes before anything is timed."""
    data = random.Random(1).randbytes(WARMUP_BYTES)
    for n in range(WARMUP_OBJECTS):
        store.client.put_object(store.bucket, f"{prefix}/{n}", io.BytesIO(data), len(data))


def plain_upload(store: MinioStore, objects: list[tuple[str, bytes]], prefix: str) -> float:
    client = store.client
    began = time.perf_counter()
    for key, data in objects:
        client.put_object(store.bucket, f"{prefix}/{key}", io.BytesIO(data), len(data))
    return time.perf_counter() - began


async def one_run(
    stack: LocalStack,
    store: MinioStore,
    topic: str,
    values: list[bytes],
    tmp: Path,
    in_flight: int,
) -> dict[str, Any]:
    """(1), (1b) and (2) once, under fresh prefixes and a fresh consumer group."""
    tag = f"{time.time_ns()}"
    print("(1) sink ...", flush=True)
    load = os.getloadavg()[0]
    sink_s, service, parts = await run_sink_timed(
        stack, topic, f"bench-{tag}", len(values), tmp / f"spill-{tag}", in_flight
    )
    keys = sorted(store.list_keys(f"bench-{tag}/"))
    pcaps = [(k, store.get(k)) for k in keys if not k.endswith(MANIFEST_SUFFIX)]
    manifest_bytes = sum(len(store.get(k)) for k in keys if k.endswith(MANIFEST_SUFFIX))
    print("(0) decoding alone ...", flush=True)
    decode_s = decode_only(values)
    models_s = decode_only(values, decode_matched)
    print("(1b) sink store path without Kafka ...", flush=True)
    path_s, path_bytes = store_path(store, values, f"path-{tag}")
    print("(2) plain put_object loop ...", flush=True)
    servers_before, client_before = server_cpu(stack), time.process_time()
    plain_s = plain_upload(store, pcaps, f"plain-{tag}")
    plain_client_s = time.process_time() - client_before
    plain_s3_s = _spent(servers_before, server_cpu(stack))["s3"]
    return {
        "sink_s": sink_s,
        "decode_s": decode_s,
        "models_s": models_s,
        "path_s": path_s,
        "path_bytes": path_bytes,
        "plain_s": plain_s,
        "plain_client_cpu_s": plain_client_s,
        "plain_s3_cpu_s": plain_s3_s,
        "pcaps": len(pcaps),
        "pcap_bytes": sum(len(d) for _, d in pcaps),
        "manifests": len(keys) - len(pcaps),
        "manifest_bytes": manifest_bytes,
        "load": max(load, os.getloadavg()[0]),
        "stats": service.stats,
        "in_flight": service.settings.batches_in_flight,
        **parts,
    }


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--mb", type=int, default=64, help="MB of packet bytes to record")
    parser.add_argument("--repeat", type=int, default=1, help="runs on the same stack")
    parser.add_argument(
        "--in-flight",
        default="0",
        help="comma-separated SINK_BATCHES_IN_FLIGHT values to run (1) with, alternating in "
        "each repeat (0: the setting's default)",
    )
    args = parser.parse_args()

    runs: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="sink-bench-") as tmp:
        stack = LocalStack.isolated(Path(tmp) / "stack")
        print("starting a private stack ...", flush=True)
        await stack.up()
        try:
            messages = generate(args.mb)
            packet_bytes = sum(len(p.data) for m in messages for p in m.record.packets)
            topic = f"bench-matched-{int(time.time())}"
            print(f"producing {len(messages)} matched streams ({packet_bytes / 1e6:.1f} MB) ...")
            await produce(stack, topic, messages)
            # Only the encoded values are kept: the generated models (a pydantic model per
            # packet) would sit in this process's heap while the sink runs in it, and every
            # full collection of the sink's would walk them (0.1 s at 64 MB, 0.3-0.9 s at
            # 192 MB, with the GIL held). A sink process holds no such thing.
            values = [encode_matched(m) for m in messages]
            streams = len(messages)
            del messages
            gc.collect()
            store = MinioStore(make_store_client(stack.settings), stack.settings.s3_bucket)
            warm_up(store, f"warmup-{int(time.time())}")
            print("(1) once, untimed, to warm the broker up ...", flush=True)
            await run_sink_timed(
                stack,
                topic,
                f"warmup-sink-{int(time.time())}",
                len(values),
                Path(tmp) / "spill-w",
            )
            variants = [int(v) for v in args.in_flight.split(",")]
            for n in range(args.repeat):
                # Alternate the order, so no variant always runs first after a quiet spell.
                for in_flight in variants if n % 2 == 0 else variants[::-1]:
                    runs.append(await one_run(stack, store, topic, values, Path(tmp), in_flight))
        finally:
            await stack.down()

    print()
    print(
        f"machine: {os.cpu_count()} CPUs, {platform.python_implementation()} "
        f"{platform.python_version()}"
    )
    first = runs[0]
    print(
        f"input: {streams} streams, {packet_bytes / 1e6:.1f} MB of packets; "
        f"stored {first['pcaps']} PCAP objects ({first['pcap_bytes'] / 1e6:.1f} MB) "
        f"+ {first['manifests']} manifests ({first['manifest_bytes'] / 1e6:.2f} MB) per run"
    )
    print()
    print(
        "| run | load avg | (1) sink, s | (1) MB/s | (1b) store path, s | (1b) MB/s "
        "| (2) plain put loop, s | (2) MB/s | (1)/(2) | (1b)/(2) |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for n, run in enumerate(runs, 1):
        mb = run["pcap_bytes"] / 1e6
        path_mb = run["path_bytes"] / 1e6
        plain_rate = run["pcap_bytes"] / run["plain_s"]
        print(
            f"| {args.mb} MB, #{n}, in flight {run['in_flight']} | {run['load']:.1f} "
            f"| {run['sink_s']:.2f} "
            f"| {mb / run['sink_s']:.1f} | {run['path_s']:.2f} | {path_mb / run['path_s']:.1f} "
            f"| {run['plain_s']:.2f} | {mb / run['plain_s']:.1f} "
            f"| {run['sink_s'] / run['plain_s']:.2f}x "
            f"| {run['path_s'] / (run['path_bytes'] / plain_rate):.2f}x |"
        )
    print()
    print("where (1)'s time goes: all messages consumed (fetched + decoded) at, then the tail;")
    print("sink process CPU over (1), and the part of (1) spent in the garbage collector;")
    print("(0) decoding alone, one thread: decode_matched_packets")
    print("(the sink's) and decode_matched (full models)")
    print()
    print(
        "| run | consumed at, s | tail, s | sink CPU, s | in GC, s (full passes) "
        "| (0) decode alone, s | (0) decode_matched, s |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|")
    for n, run in enumerate(runs, 1):
        print(
            f"| {args.mb} MB, #{n}, in flight {run['in_flight']} | {run['consumed_s']:.2f} "
            f"| {run['tail_s']:.2f} | {run['cpu_s']:.2f} | {run['gc_s']:.2f} ({run['gc_full']}) "
            f"| {run['decode_s']:.2f} | {run['models_s']:.2f} |"
        )
    print()
    print("CPU seconds spent on each, by every party on this machine (same windows as the")
    print("wall times): (1) sink process + broker + S3 server; (2) client + S3 server")
    print()
    print(
        "| run | (1) sink process | (1) broker | (1) S3 server | (1) total "
        "| (2) client | (2) S3 server | (2) total | CPU (1)/(2) |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for n, run in enumerate(runs, 1):
        print(
            f"| {args.mb} MB, #{n}, in flight {run['in_flight']} | {run['cpu_s']:.2f} "
            f"| {run['broker_cpu_s']:.2f} | {run['s3_cpu_s']:.2f} | {_sink_cpu(run):.2f} "
            f"| {run['plain_client_cpu_s']:.2f} | {run['plain_s3_cpu_s']:.2f} "
            f"| {_plain_cpu(run):.2f} | {_sink_cpu(run) / _plain_cpu(run):.2f}x |"
        )
    print()
    for n, run in enumerate(runs, 1):
        stats = run["stats"]
        print(
            f"run {n} (in flight {run['in_flight']}) sink stats: batches={stats.batches} "
            f"objects={stats.objects} "
            f"retries={stats.retries} "
            f"upload avg={stats.upload_seconds_total / max(stats.uploads, 1):.3f}s "
            f"max={stats.upload_seconds_max:.3f}s spilled={stats.spilled_bytes_total} "
            f"pauses={stats.pauses}"
        )
    print()
    print(f"goal: (1)/(2) <= {GOAL}x")
    for in_flight in sorted({run["in_flight"] for run in runs}):
        mine = [run for run in runs if run["in_flight"] == in_flight]
        wall = [run["sink_s"] / run["plain_s"] for run in mine]
        cpu = [_sink_cpu(run) / _plain_cpu(run) for run in mine]
        loads = [run["load"] for run in mine]
        print(
            f"in flight {in_flight}, {len(mine)} runs, load {min(loads):.1f}-{max(loads):.1f}: "
            f"(1)/(2) {_spread(wall)}, within {GOAL}x in {sum(r <= GOAL for r in wall)} "
            f"of {len(wall)}; CPU (1)/(2) {_spread(cpu)}"
        )


def _sink_cpu(run: dict[str, Any]) -> float:
    return float(run["cpu_s"] + run["broker_cpu_s"] + run["s3_cpu_s"])


def _plain_cpu(run: dict[str, Any]) -> float:
    return float(run["plain_client_cpu_s"] + run["plain_s3_cpu_s"])


def _spread(values: list[float]) -> str:
    """Median and range, the way docs/benchmarks.md quotes ratios."""
    return f"median {statistics.median(values):.2f}x, range {min(values):.2f}x-{max(values):.2f}x"


if __name__ == "__main__":
    asyncio.run(main())
