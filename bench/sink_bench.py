"""Sink benchmark, one command: ``.venv/bin/python bench/sink_bench.py [--mb 64]``.

Starts a private local stack (Kafka + SeaweedFS) under a temp dir, then in one run:

  (1) the sink: matched streams already on a topic -> batches -> PCAP objects + manifests on
      S3 (Object Lock retention, HEAD-before-PUT, checksums, chained manifests, commits).
      Timed from the first message consumed to the last batch committed.
  (2) the peer: the very same PCAP object bytes uploaded by a plain loop of ``put_object``
      calls (no lock, no manifest, no HEAD, no Kafka), one after another.

Both rates are MB/s of PCAP bytes stored; the ratio (1)/(2) is the sink's overhead over a bare
upload of the same bytes. The goal is the sink within 1.3x of the plain upload's time.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import os
import platform
import random
import sys
import tempfile
import time
from pathlib import Path

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
    encode_matched,
)

PARTITIONS = 3
FRAME = 1514
PACKETS_PER_STREAM = 40
BATCH_BYTES = 16 * 1024 * 1024


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
    stack: LocalStack, topic: str, prefix: str, count: int, spill: Path
) -> tuple[float, SinkService]:
    settings = stack.settings.model_copy(update={"matched_topic": topic})
    sink_settings = load_sink_settings(
        SINK_GROUP=f"bench-{prefix}",
        SINK_PREFIX=prefix,
        SINK_MAX_BATCH_BYTES=str(BATCH_BYTES),
        SINK_MAX_BATCH_AGE_S="2",
        SINK_SPILL_DIR=str(spill),
        SINK_STATS_INTERVAL_S="3600",
    )
    services: list[SinkService] = []
    stop = asyncio.Event()
    task = asyncio.create_task(run_sink(settings, sink_settings, stop, services.append))
    while not services or services[0].stats.messages == 0:
        await asyncio.sleep(0.001)
    began = time.perf_counter()
    cpu_began = time.process_time()
    service = services[0]
    consumed_at = None
    while service.stats.messages < count or service.stats.pending_batches or _open(service):
        if task.done():
            await task
        if consumed_at is None and service.stats.messages >= count:
            consumed_at = time.perf_counter() - began
        await asyncio.sleep(0.005)
    elapsed = time.perf_counter() - began
    done_at = consumed_at or elapsed
    cpu = time.process_time() - cpu_began
    print(
        f"    all messages consumed after {done_at:.2f}s, stored after {elapsed:.2f}s; "
        f"sink process CPU {cpu:.2f}s"
    )
    stop.set()
    await task
    return elapsed, service


def _open(service: SinkService) -> bool:
    return any(state.batcher.open_messages for state in service._parts.values())


def store_path(store: MinioStore, messages: list[MatchedStream], prefix: str) -> tuple[float, int]:
    """(1b): the sink's own code from decoded messages to stored objects, without Kafka:
    batches -> PCAP + manifest -> locked, conditional, checksummed PUTs. One thread."""
    options = PlanOptions(default_prefix=prefix)
    writer = BatchWriter(store)
    limit = BATCH_BYTES
    batches: list[list[Consumed]] = [[]]
    size = 0
    for offset, message in enumerate(messages):
        item = Consumed(0, offset, 1_800_000_000_000, len(encode_matched(message)), message)
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


def plain_upload(store: MinioStore, objects: list[tuple[str, bytes]], prefix: str) -> float:
    client = store.client
    began = time.perf_counter()
    for key, data in objects:
        client.put_object(store.bucket, f"{prefix}/{key}", io.BytesIO(data), len(data))
    return time.perf_counter() - began


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--mb", type=int, default=64, help="MB of packet bytes to record")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="sink-bench-") as tmp:
        stack = LocalStack.isolated(Path(tmp) / "stack")
        print("starting a private stack ...", flush=True)
        await stack.up()
        try:
            messages = generate(args.mb)
            packet_bytes = sum(len(p.data) for m in messages for p in m.record.packets)
            tag = f"{int(time.time())}"
            topic = f"bench-matched-{tag}"
            print(f"producing {len(messages)} matched streams ({packet_bytes / 1e6:.1f} MB) ...")
            await produce(stack, topic, messages)

            print("(1) sink ...", flush=True)
            sink_s, service = await run_sink_timed(
                stack, topic, f"bench-{tag}", len(messages), Path(tmp) / "spill"
            )
            store = MinioStore(make_store_client(stack.settings), stack.settings.s3_bucket)
            keys = sorted(store.list_keys(f"bench-{tag}/"))
            pcaps = [(k, store.get(k)) for k in keys if not k.endswith(MANIFEST_SUFFIX)]
            manifest_bytes = sum(len(store.get(k)) for k in keys if k.endswith(MANIFEST_SUFFIX))
            pcap_bytes = sum(len(d) for _, d in pcaps)

            print("(1b) sink store path without Kafka ...", flush=True)
            path_s, path_bytes = store_path(store, messages, f"path-{tag}")
            print("(2) plain put_object loop ...", flush=True)
            plain_s = plain_upload(store, pcaps, f"plain-{tag}")
        finally:
            await stack.down()

    stats = service.stats
    print()
    print(
        f"machine: {os.cpu_count()} CPUs, {platform.python_implementation()} "
        f"{platform.python_version()}, load average {os.getloadavg()[0]:.1f}"
    )
    print(
        f"input: {len(messages)} streams, {packet_bytes / 1e6:.1f} MB of packets; "
        f"stored {len(pcaps)} PCAP objects ({pcap_bytes / 1e6:.1f} MB) "
        f"+ {len(keys) - len(pcaps)} manifests ({manifest_bytes / 1e6:.2f} MB)"
    )
    print()
    print("| path | seconds | MB/s (PCAP bytes) |")
    print("|---|---:|---:|")
    print(
        f"| (1) sink: Kafka -> batch -> PCAP + manifest, locked, committed | {sink_s:.2f} "
        f"| {pcap_bytes / 1e6 / sink_s:.1f} |"
    )
    print(
        f"| (1b) sink store path only: messages -> PCAP + manifest, locked (no Kafka) "
        f"| {path_s:.2f} | {path_bytes / 1e6 / path_s:.1f} |"
    )
    print(
        f"| (2) plain `put_object` loop, same bytes | {plain_s:.2f} "
        f"| {pcap_bytes / 1e6 / plain_s:.1f} |"
    )
    print()
    plain_rate = pcap_bytes / plain_s
    print(f"(1) vs (2), time for the same bytes: {sink_s / plain_s:.2f}x (goal <= 1.3x)")
    print(f"(1b) vs (2), time for the same bytes: {path_s / (path_bytes / plain_rate):.2f}x")
    print(
        f"sink stats: batches={stats.batches} objects={stats.objects} retries={stats.retries} "
        f"upload avg={stats.upload_seconds_total / max(stats.uploads, 1):.3f}s "
        f"max={stats.upload_seconds_max:.3f}s"
    )


if __name__ == "__main__":
    asyncio.run(main())
