"""The pipeline end to end on the real stack: corpus capture -> sensor engine -> ``streams`` ->
``streamtap pipeline`` workers -> ``matched-streams``, checked against tshark's ground truth."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import uuid
from collections import defaultdict
from pathlib import Path
from typing import Any

import pytest

from pipeline.kfl import compile_many
from pipeline.testing import (
    WorkerProcess,
    committed_offsets,
    corpus_records,
    end_offsets,
    produce,
    read_topic,
    settings_env,
    wait_until_processed,
)
from streamtap.schema import decode_matched

pytestmark = pytest.mark.e2e

DATA = Path(__file__).parent / "data"
CORPUS = Path(__file__).parents[2] / "data" / "corpus"
MIXED = "mixed-http-dns-204-304.pcap"
TRUTH = json.loads((DATA / "ground_truth.json").read_text())["files"][MIXED]


def pair(a: tuple[str, int], b: tuple[str, int]) -> frozenset[tuple[str, int]]:
    return frozenset({(a[0], int(a[1])), (b[0], int(b[1]))})


def truth_pairs(kind: str, keep: Any = lambda t: True) -> set[frozenset[tuple[str, int]]]:
    return {pair((t["src"], t["sport"]), (t["dst"], t["dport"])) for t in TRUTH[kind] if keep(t)}


async def matched(settings: Any) -> list[Any]:
    return [
        (m, decode_matched(m.value)) for m in await read_topic(settings, settings.matched_topic)
    ]


def start(workers: list[WorkerProcess], settings: Any, tmp: Path, **kw: Any) -> WorkerProcess:
    worker = WorkerProcess(settings, tmp, **kw).start()
    workers.append(worker)
    return worker


async def test_recording_kfl_records_exactly_the_http_and_dns_streams(
    settings: Any, workers: list[WorkerProcess], tmp_path: Path
) -> None:
    app_id = f"p-{uuid.uuid4().hex[:8]}"
    start(workers, settings, tmp_path, app_id=app_id, recording_kfl="http or dns")
    records = corpus_records(CORPUS / MIXED)
    await produce(settings, records)
    await wait_until_processed(settings, app_id, check=workers[0].alive)

    out = await matched(settings)
    got = {
        pair((m.record.src.ip, m.record.src.port), (m.record.dst.ip, m.record.dst.port))
        for _, m in out
    }
    expected = truth_pairs("http_transactions") | truth_pairs("dns_messages")
    assert got == expected
    assert all(set(m.rules) == {"recording"} for _, m in out)
    # every segment of every matched stream, each exactly once (no restart: no duplicates)
    keys = [(m.record.stream_id, m.record.segment) for _, m in out]
    assert len(keys) == len(set(keys))
    wanted = {
        (r.stream_id, r.segment)
        for r in records
        if pair((r.src.ip, r.src.port), (r.dst.ip, r.dst.port)) in expected
    }
    assert set(keys) == wanted
    assert all(raw.key == m.record.stream_id.encode() for raw, m in out)


async def test_two_rule_file_tags_each_stream_with_the_rules_it_matched(
    settings: Any, workers: list[WorkerProcess], tmp_path: Path
) -> None:
    rules = tmp_path / "rules.yaml"
    rules.write_text(
        "rules:\n"
        "  web:\n"
        "    kfl: http\n"
        "    retention_days: 7\n"
        "  nxdomain:\n"
        "    kfl: dns and response.rcode == 3\n"
        "    lock_mode: GOVERNANCE\n"
        "    prefix: nx/\n"
    )
    app_id = f"p-{uuid.uuid4().hex[:8]}"
    start(workers, settings, tmp_path, app_id=app_id, rules_file=rules)
    await produce(settings, corpus_records(CORPUS / MIXED))
    await wait_until_processed(settings, app_id, check=workers[0].alive)

    expected: dict[frozenset[tuple[str, int]], set[str]] = defaultdict(set)
    for p in truth_pairs("http_transactions"):
        expected[p].add("web")
    for p in truth_pairs("dns_messages", lambda t: t["response"] and t["rcode"] == 3):
        expected[p].add("nxdomain")

    got: dict[frozenset[tuple[str, int]], set[str]] = defaultdict(set)
    for _, m in await matched(settings):
        got[pair((m.record.src.ip, m.record.src.port), (m.record.dst.ip, m.record.dst.port))] |= (
            set(m.rules)
        )
        if "web" in m.rules:
            assert m.rules["web"].retention_days == 7
        if "nxdomain" in m.rules:
            assert (m.rules["nxdomain"].lock_mode, m.rules["nxdomain"].prefix) == (
                "GOVERNANCE",
                "nx/",
            )
            assert all(
                m.record.entries[i]["response"]["rcode"] == 3 for i in m.matched_entries["nxdomain"]
            )
    assert dict(got) == dict(expected)


async def feed(
    settings: Any,
    first: list[Any],
    second: list[Any],
    a_published: asyncio.Event,
    killed: asyncio.Event,
) -> None:
    """Produce ``first`` 10 records at a time, every 0.2 s until ``a_published`` and every
    0.02 s after; then, once ``killed``, ``second`` the same way."""
    from aiokafka import AIOKafkaProducer

    from streamtap.schema import encode_record

    producer = AIOKafkaProducer(
        bootstrap_servers=settings.kafka_bootstrap,
        enable_idempotence=True,
        max_request_size=settings.max_message_bytes,
    )
    await producer.start()
    try:
        for part, gate in ((first, None), (second, killed)):
            if gate is not None:
                await gate.wait()
            for i in range(0, len(part), 10):
                for record in part[i : i + 10]:
                    await producer.send(settings.streams_topic, encode_record(record), record.key)
                await producer.flush()
                await asyncio.sleep(0.02 if a_published.is_set() else 0.2)
    finally:
        await producer.stop()


async def test_sigkill_mid_run_loses_no_matched_stream(
    settings: Any, workers: list[WorkerProcess], tmp_path: Path
) -> None:
    """Two workers share the partitions; one is SIGKILLed while records flow and restarted.
    Every expected segment is in ``matched-streams``; a duplicate is byte-identical."""
    records: list[Any] = []
    for copy in range(40):  # distinct node names give distinct stream ids
        records += corpus_records(CORPUS / MIXED, node=f"node{copy}", max_record_bytes=4096)
        records += corpus_records(
            CORPUS / "http11-keepalive-gzip-5req.pcap", node=f"node{copy}", max_record_bytes=4096
        )
    query = compile_many({"web": "http and response.status == 200", "names": "dns"})
    by_stream: dict[str, set[str]] = defaultdict(set)
    for r in records:
        for e in r.entries:
            by_stream[r.stream_id] |= set(query(e))
    expected = {
        (r.stream_id, r.segment): by_stream[r.stream_id] for r in records if by_stream[r.stream_id]
    }
    assert any(
        r.segment > 0 and not any(query(e) for e in r.entries)
        for r in records
        if r.stream_id in by_stream
    ), "the run should include unmatched segments of matched streams"

    rules = tmp_path / "rules.yaml"
    rules.write_text("rules:\n  web: 'http and response.status == 200'\n  names: dns\n")
    app_id = f"p-{uuid.uuid4().hex[:8]}"
    first, second = records[: len(records) * 3 // 4], records[len(records) * 3 // 4 :]
    args = ("--batch-size", "50")
    a = start(workers, settings, tmp_path, app_id=app_id, rules_file=rules, extra_args=args)
    b = start(workers, settings, tmp_path, app_id=app_id, rules_file=rules, extra_args=args)
    # Records flow while the workers join and when ``a`` dies: they are produced slowly until
    # ``a`` has published (so the worker that joins first cannot finish them all alone), then
    # faster; ``second`` only while ``a`` is down.
    a_published, killed = asyncio.Event(), asyncio.Event()
    feeder = asyncio.create_task(feed(settings, first, second, a_published, killed))
    await a.wait_stats(lambda s: s["published"] > 0, timeout_s=120)
    a_published.set()
    a.kill()
    ends = await end_offsets(settings, settings.streams_topic)
    done = await committed_offsets(settings, app_id, settings.streams_topic)
    assert any(done.get(p, 0) < end for p, end in ends.items()), "killed after the run ended"
    killed.set()
    await feeder  # records keep flowing while the worker is down
    restarted = start(
        workers,
        settings,
        tmp_path,
        app_id=app_id,
        rules_file=rules,
        extra_args=(*args, "--log-level", "DEBUG"),
    )
    # Both: every partition's output acknowledged by a worker, and the group's commits at the
    # end. Faust skips records around the rebalances a kill causes; the agent reads them
    # itself and acks them to Faust, without which their partition's commit stalled for good.
    await wait_until_processed(
        settings, app_id, timeout_s=300, check=restarted.alive, workers=[b, restarted]
    )
    b.alive()

    seen: dict[tuple[str, int], bytes] = {}
    duplicates = 0
    for raw, m in await matched(settings):
        key = (m.record.stream_id, m.record.segment)
        assert raw.key == m.record.stream_id.encode()
        if key in seen:
            duplicates += 1
            assert seen[key] == raw.value, f"duplicate of {key} differs"
        seen[key] = raw.value
        assert set(m.rules) == expected[key]
    missing = sorted(set(expected) - set(seen))
    assert not missing, f"{len(missing)} matched segments missing, e.g. {missing[:5]}"
    assert set(seen) == set(expected)
    print(f"{len(records)} records, {len(seen)} matched segments, {duplicates} duplicates")


async def test_watch_prints_one_line_per_matched_stream(
    settings: Any, workers: list[WorkerProcess], tmp_path: Path
) -> None:
    app_id = f"p-{uuid.uuid4().hex[:8]}"
    start(workers, settings, tmp_path, app_id=app_id, recording_kfl="http or dns")
    await produce(settings, corpus_records(CORPUS / MIXED))
    await wait_until_processed(settings, app_id, check=workers[0].alive)
    http = len(truth_pairs("http_transactions"))

    env = {**settings_env(settings), "PATH": str(Path(sys.executable).parent)}
    done = subprocess.run(
        [
            str(Path(sys.executable).parent / "streamtap"),
            "watch",
            "--from-beginning",
            "--kfl",
            "http",
            "--limit",
            str(http),
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert len(lines) == http
    for line in lines:
        assert "  recording  HTTP  " in line and " -> " in line and "GET " in line
