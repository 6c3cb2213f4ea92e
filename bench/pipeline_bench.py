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

* **pipeline**: a ``streamtap pipeline`` worker process (Faust, batched agent, stream-memory
  table, delivery awaited before the batch is acked); the rate is read from its ``/stats/``
  counters between the first record and the last, so start-up and group join are not counted;
* **plain loop**: aiokafka ``getmany`` -> ``view_record`` -> the same ``decide`` ->
  ``Publish.encode`` (the record's bytes spliced in) -> send, await every delivery, commit; no
  Faust, no table, no re-reads. The same per-record functions the worker uses, so the ratio is
  the cost of the worker's machinery; it is the floor for this work in Python.
* **plain, models**: the same loop with ``decode_record`` and ``encode_matched`` (pydantic
  models, packets decoded and re-encoded), what both sides did before ``view_record``.
* **before** (with ``--before-tree DIR``, e.g. ``git archive <commit> | tar -x -C DIR``): a
  worker running DIR's code (``PYTHONPATH``) in the same run, for a before/after comparison.

records/s counts input records; MB/s counts input bytes (record JSON as published). The machine's
load average is printed with each row: other jobs move absolute rates, so compare within a run.
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
    settings: Any, rules: dict[str, str], out_topic: str, total: int, models: bool = False
) -> float:
    """Seconds from the first record consumed to the last output acknowledged and committed.

    ``models``: decode to pydantic models and re-encode them (the pre-``view_record`` path)."""
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
    )
    await consumer.start()
    await producer.start()
    try:
        done = 0
        started: float | None = None
        while done < total:
            batch = await consumer.getmany(timeout_ms=1000, max_records=500)
            if started is None and batch:
                started = time.perf_counter()
            futures = []
            for messages in batch.values():
                for m in messages:
                    if models:
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
            await asyncio.gather(*futures)
            await consumer.commit()
        assert started is not None
        return time.perf_counter() - started
    finally:
        await producer.stop()
        await consumer.stop()


async def pipeline_worker(
    settings: Any,
    rules: dict[str, str],
    out_topic: str,
    total: int,
    home: Path,
    tree: Path | None = None,
) -> float:
    """Seconds between the worker's first and last record, read from its /stats/ counters."""
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
        first: tuple[float, int] | None = None
        while True:
            worker.alive()
            stats = await asyncio.to_thread(worker.stats)
            now = time.perf_counter()
            if stats is not None:
                if first is None and stats["records"] > 0:
                    first = (now, stats["records"])
                if stats["records"] >= total:
                    assert first is not None
                    # rate over the records seen after the first sample, scaled back to `total`
                    return (now - first[0]) * total / max(1, total - first[1])
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
            before = " | before rec/s | after/before" if args.before_tree else ""
            print(
                "| rules | pipeline rec/s | pipeline MB/s | plain loop rec/s | plain MB/s "
                f"| cost ratio | plain, models rec/s{before} | load avg |"
            )
            print(
                "|---:|---:|---:|---:|---:|---:|---:|" + ("---:|---:|" if before else "") + "---:|"
            )
            for count in (int(c) for c in args.rules.split(",")):
                rules = rules_for(count)
                tag = uuid.uuid4().hex[:6]
                n = len(records)
                plain_s = await plain_loop(settings, rules, f"bench-plain-{tag}", n)
                models_s = await plain_loop(settings, rules, f"bench-models-{tag}", n, True)
                pipe_s = await pipeline_worker(settings, rules, f"bench-pipe-{tag}", n, home)
                cells = ""
                if args.before_tree:
                    before_s = await pipeline_worker(
                        settings, rules, f"bench-before-{tag}", n, home, args.before_tree
                    )
                    cells = f" {n / before_s:,.0f} | {before_s / pipe_s:.2f}x |"
                print(
                    f"| {count} | {n / pipe_s:,.0f} | {raw_bytes / pipe_s / 1e6:.1f} | "
                    f"{n / plain_s:,.0f} | {raw_bytes / plain_s / 1e6:.1f} | "
                    f"{pipe_s / plain_s:.2f}x | {n / models_s:,.0f} |{cells} "
                    f"{os.getloadavg()[0]:.1f} |",
                    flush=True,
                )
        finally:
            if local is not None:
                await local.down()


if __name__ == "__main__":
    asyncio.run(main())
