"""Pipeline throughput: one ``streamtap pipeline`` worker vs a plain aiokafka loop, same run.

    .venv/bin/python bench/pipeline_bench.py [--records 60000] [--bootstrap HOST:PORT]
        [--before-tree DIR]

Without ``--bootstrap`` a private local stack is started under a temp dir and stopped at the end.
The input is real sensor output: corpus captures run through the producers engine, repeated with
different node names (so stream ids differ) until there are ``--records`` records, published once
to a topic of their own. Every measured consumer reads that same topic from the beginning under a
fresh consumer group and writes to an output topic of its own.

For 1, 10 and 50 rules (one ``http or dns`` rule, so the output volume is the same, plus rules that
rarely match: they cost evaluation, not output):

* **pipeline**: a ``streamtap pipeline`` worker process (Faust worker and table; each fetch of
  ``streams`` handed to the processor whole, delivery awaited before the batch is acked); the
  rate is read from its ``/stats/`` counters between the first record and the last, so start-up
  and group join are not counted;
* **plain loop**: aiokafka ``getmany`` -> ``view_record`` -> the same ``decide`` ->
  ``Publish.encode`` (the record's bytes spliced in) -> send, await every delivery, commit; no
  Faust, no table, no re-reads. The same per-record functions the worker uses and the worker's
  producer settings (acks=all, idempotent, linger 5 ms, 1 MB batches), so the ratio is the cost
  of the worker's machinery; it is the floor for this work in Python.
* **plain, models**: the same loop with ``decode_record`` and ``encode_matched`` (pydantic
  models, packets decoded and re-encoded), what both sides did before ``view_record``.
* **pass-through**: the same loop sending the consumed bytes on unparsed (the Kafka client's own
  cost, in CPU only).
* **before** (with ``--before-tree DIR``, e.g. ``git archive <commit> | tar -x -C DIR``): a
  worker running DIR's code (``PYTHONPATH``) in the same run, for a before/after comparison.

records/s counts input records; MB/s counts input bytes (record JSON as published). The machine's
load average is printed with each row: other jobs move absolute rates, so compare within a run.
CPU time per record (from ``/proc``: the worker process, the plain loop's own process, the broker)
does not depend on the load, and is the figure to compare across runs.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import platform
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from pipeline.matcher import decide  # noqa: E402
from pipeline.rules import RuleSpec, build_ruleset  # noqa: E402
from pipeline.testing import (  # noqa: E402
    WorkerProcess,
    corpus_records,
    create_topics,
    isolated_settings,
    produce,
)
from streamtap.schema import (  # noqa: E402
    decode_record,
    encode_matched,
    encode_record,
    view_record,
)

CAPTURES = [
    "mixed-http-dns-204-304.pcap",
    "mixed-wikipedia-http-dns.pcap",
    "http11-keepalive-gzip-5req.pcap",
    "dns-mixed-types-nxdomain.pcap",
    "http11-browse-keepalive-304.pcap",
    "tcp-reassembly-gaps-retrans.pcap",
]

TEMPLATES = [
    'http and request.path == "/never/{i}"',
    'dns and request.questions[*].name == "host{i}.invalid"',
    "http and response.status == {s}",
    "tcp and dst.port == {p}",
    'http and request.headers["x-bench-{i}"] == "1"',
    'dns and response.code == "Refused" and src.port == {p}',
    "udp and dst.port == {p}",
    'http and request.method == "PATCH" and request.path.startsWith("/api/{i}")',
]


@dataclass(frozen=True)
class Measure:
    """One side's run over ``total`` records: wall seconds, and CPU seconds of the side's own
    process and of the broker over the same interval (CPU does not depend on what else the
    machine runs, so it is the figure to compare when the load average is high)."""

    seconds: float
    cpu_s: float
    broker_cpu_s: float | None


def cpu_seconds(pid: int | None) -> float | None:
    """User + system CPU time of a process (from /proc), None when unknown."""
    if pid is None:
        return None
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _delta(after: float | None, before: float | None) -> float | None:
    return None if after is None or before is None else after - before


def rules_for(count: int) -> dict[str, str]:
    rules = {"main": "http or dns"}
    for i in range(count - 1):
        template = TEMPLATES[i % len(TEMPLATES)]
        rules[f"r{i}"] = template.format(i=i, s=600 + i, p=60000 + i)
    return rules


def build_input(n: int) -> list[Any]:
    corpus = ROOT / "tests" / "data" / "corpus"
    records: list[Any] = []
    copy = 0
    while len(records) < n:
        for name in CAPTURES:
            records += corpus_records(corpus / name, node=f"bench{copy}", max_record_bytes=16384)
        copy += 1
    return records[:n]


async def plain_loop(
    settings: Any,
    rules: dict[str, str],
    out_topic: str,
    total: int,
    broker_pid: int | None,
    mode: str = "view",
    overlap: bool = False,
) -> Measure:
    """From the first record consumed to the last output acknowledged and committed.

    ``mode``: ``view`` (what the worker does), ``models`` (decode to pydantic models and
    re-encode them, the pre-``view_record`` path) or ``bytes`` (send the consumed bytes on, no
    parsing: the Kafka client's own cost). ``overlap``: decide the next batch while the last
    one's outputs are acknowledged, as the worker does (at most two in flight; each batch's
    offsets committed once its own outputs are acknowledged)."""
    ruleset = build_ruleset({n: RuleSpec(kfl=q) for n, q in rules.items()})
    consumer = AIOKafkaConsumer(
        settings.streams_topic,
        bootstrap_servers=settings.kafka_bootstrap,
        group_id=f"plain-{uuid.uuid4().hex[:8]}",
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        max_partition_fetch_bytes=settings.max_message_bytes,
        fetch_max_bytes=50 * 1024 * 1024,
    )
    producer = AIOKafkaProducer(
        bootstrap_servers=settings.kafka_bootstrap,
        enable_idempotence=True,
        acks="all",
        linger_ms=5,
        max_request_size=settings.max_message_bytes + 64 * 1024,
        max_batch_size=1024 * 1024,  # as the worker's producer (pipeline/app.py); aiokafka's
        # default (16 kB) fits ~3 records per batch and triples the produce requests
    )
    await consumer.start()
    await producer.start()
    try:
        done = 0
        started: float | None = None
        cpu0, broker0 = 0.0, None
        previous: asyncio.Future[Any] | None = None
        while done < total:
            batch = await consumer.getmany(timeout_ms=1000, max_records=500)
            if started is None and batch:
                started = time.perf_counter()
                cpu0, broker0 = time.process_time(), cpu_seconds(broker_pid)
            futures = []
            for messages in batch.values():
                for m in messages:
                    if mode == "bytes":
                        value = m.value
                    elif mode == "models":
                        record = decode_record(m.value)
                        decision = decide(
                            record, ruleset, None, partition=m.partition, offset=m.offset,
                            max_pending=0,
                        )  # fmt: skip
                        value = (
                            None if decision.message is None else encode_matched(decision.message)
                        )
                    else:
                        view = view_record(m.value)
                        decision = decide(
                            view, ruleset, None, partition=m.partition, offset=m.offset,
                            max_pending=0,
                        )  # fmt: skip
                        value = None if decision.publish is None else decision.publish.encode(view)
                    if value is not None:
                        futures.append(await producer.send(out_topic, value, key=m.key))
                    done += 1
            if not overlap:
                await asyncio.gather(*futures)
                await consumer.commit()
                continue
            offsets = {tp: messages[-1].offset + 1 for tp, messages in batch.items() if messages}
            if previous is not None:
                await previous
            previous = asyncio.ensure_future(_acked_then_commit(consumer, futures, offsets))
        if previous is not None:
            await previous
        assert started is not None
        return Measure(
            time.perf_counter() - started,
            time.process_time() - cpu0,
            _delta(cpu_seconds(broker_pid), broker0),
        )
    finally:
        await producer.stop()
        await consumer.stop()


async def _acked_then_commit(
    consumer: AIOKafkaConsumer, futures: list[Any], offsets: dict[Any, int]
) -> None:
    await asyncio.gather(*futures)
    if offsets:
        await consumer.commit(offsets)


async def pipeline_worker(
    settings: Any,
    rules: dict[str, str],
    out_topic: str,
    total: int,
    home: Path,
    broker_pid: int | None,
    tree: Path | None = None,
) -> Measure:
    """Between the worker's first and last record, read from its /stats/ counters, scaled to
    ``total`` records (start-up and the group join are not counted)."""
    rules_file = home / f"rules-{len(rules)}.yaml"
    rules_file.write_text("rules:\n" + "".join(f"  {n}: '{q}'\n" for n, q in rules.items()))
    worker_settings = settings.model_copy(update={"matched_topic": out_topic})
    worker = WorkerProcess(
        worker_settings,
        home,
        app_id=f"bench-{uuid.uuid4().hex[:8]}",
        rules_file=rules_file,
        extra_args=("--log-level", "WARNING"),
        extra_env={"PYTHONPATH": str(tree)} if tree is not None else None,
    ).start()
    try:
        pid = worker.proc.pid
        first: tuple[float, int, float | None, float | None] | None = None
        while True:
            worker.alive()
            stats = await asyncio.to_thread(worker.stats)
            now = time.perf_counter()
            if stats is not None:
                if first is None and stats["records"] > 0:
                    first = (now, stats["records"], cpu_seconds(pid), cpu_seconds(broker_pid))
                if stats["records"] >= total:
                    assert first is not None
                    # rates over the records seen after the first sample, scaled to `total`
                    scale = total / max(1, total - first[1])
                    broker = _delta(cpu_seconds(broker_pid), first[3])
                    return Measure(
                        (now - first[0]) * scale,
                        (_delta(cpu_seconds(pid), first[2]) or 0.0) * scale,
                        None if broker is None else broker * scale,
                    )
            await asyncio.sleep(0.05)
    finally:
        worker.stop()


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--records", type=int, default=60_000)
    parser.add_argument("--bootstrap", default=None)
    parser.add_argument("--rules", default="1,10,50")
    parser.add_argument("--partitions", type=int, default=6)
    parser.add_argument(
        "--before-tree", type=Path, default=None, help="also run a worker from this checkout"
    )
    args = parser.parse_args()

    with contextlib.ExitStack() as stack_cm:
        home = Path(stack_cm.enter_context(tempfile.TemporaryDirectory(prefix="plbench-")))
        local = None
        if args.bootstrap:
            from streamtap.settings import load_settings

            base = load_settings(kafka_bootstrap=args.bootstrap)
        else:
            from stack import LocalStack

            local = LocalStack.isolated(home / "stack")
            await local.up()
            base = local.settings
        try:
            settings = isolated_settings(base, uuid.uuid4().hex[:8], partitions=args.partitions)
            await create_topics(settings)
            records = build_input(args.records)
            raw_bytes = sum(len(encode_record(r)) for r in records)
            await produce(settings, records)
            print(
                f"input: {len(records)} records, {raw_bytes / 1e6:.1f} MB "
                f"({raw_bytes / len(records):.0f} B/record), {args.partitions} partitions; "
                f"{os.cpu_count()} CPUs, Python {platform.python_version()}, "
                f"load avg {os.getloadavg()[0]:.1f}"
            )
            broker_pid = local.kafka.process.pid() if local is not None else None
            before = " before rec/s | before CPU us/rec |" if args.before_tree else ""
            print(
                "| rules | pipeline rec/s | pipeline MB/s | plain loop rec/s | plain MB/s "
                "| cost ratio (time) | plain, overlapped rec/s | time ratio to it "
                "| CPU us/rec: pipeline / plain / plain, models / pass-through / overlapped "
                f"| broker CPU us/rec (pipeline run) |{before} load avg |"
            )
            print("|" + "---:|" * (13 if before else 11))
            n = len(records)

            def us(m: Measure) -> str:
                return f"{m.cpu_s / n * 1e6:.0f}"

            for count in (int(c) for c in args.rules.split(",")):
                rules = rules_for(count)
                tag = uuid.uuid4().hex[:6]
                plain = await plain_loop(settings, rules, f"bench-plain-{tag}", n, broker_pid)
                models = await plain_loop(
                    settings, rules, f"bench-models-{tag}", n, broker_pid, mode="models"
                )
                passthrough = await plain_loop(
                    settings, rules, f"bench-bytes-{tag}", n, broker_pid, mode="bytes"
                )
                overlapped = await plain_loop(
                    settings, rules, f"bench-overlap-{tag}", n, broker_pid, overlap=True
                )
                pipe = await pipeline_worker(
                    settings, rules, f"bench-pipe-{tag}", n, home, broker_pid
                )
                cells = ""
                if args.before_tree:
                    old = await pipeline_worker(
                        settings, rules, f"bench-before-{tag}", n, home, broker_pid,
                        args.before_tree,
                    )  # fmt: skip
                    cells = f" {n / old.seconds:,.0f} | {us(old)} |"
                broker = "-" if pipe.broker_cpu_s is None else f"{pipe.broker_cpu_s / n * 1e6:.0f}"
                print(
                    f"| {count} | {n / pipe.seconds:,.0f} | {raw_bytes / pipe.seconds / 1e6:.1f} | "
                    f"{n / plain.seconds:,.0f} | {raw_bytes / plain.seconds / 1e6:.1f} | "
                    f"{pipe.seconds / plain.seconds:.2f}x | "
                    f"{n / overlapped.seconds:,.0f} | {pipe.seconds / overlapped.seconds:.2f}x | "
                    f"{us(pipe)} / {us(plain)} / {us(models)} / {us(passthrough)} / "
                    f"{us(overlapped)} | "
                    f"{broker} |{cells} "
                    f"{os.getloadavg()[0]:.1f} |",
                    flush=True,
                )
        finally:
            if local is not None:
                await local.down()


if __name__ == "__main__":
    asyncio.run(main())
