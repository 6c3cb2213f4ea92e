"""Faults on the real stack: the sink killed, S3 stopped, Kafka restarted.

After each, every matched segment is in the bucket exactly once (by key), every packet is
there exactly once, and verify finds nothing wrong.
"""

from __future__ import annotations

import asyncio
import signal
import time
from collections import Counter
from datetime import UTC, datetime
from typing import Any

import pytest
from aiokafka import TopicPartition
from aiokafka.structs import OffsetAndMetadata

from sinks.batch import ClosedBatch, Consumed
from sinks.plan import PlanOptions, plan_batch
from sinks.service import encode_closes
from sinks.store import PutOptions
from sinks.verify import verify_prefix
from stack.topics import TopicSpec, ensure_topics
from streamtap.kafka import make_consumer
from streamtap.schema import decode_matched_packets

pytestmark = pytest.mark.integration

NODES = 8


def _messages(packets: list[Any], helpers: Any) -> list[Any]:
    out = []
    for n in range(NODES):
        out += helpers.build_messages(packets, f"node-{n}", helpers.web_and_dns)
    return out


async def _wait_some_stored(harness: Any, at_least: int) -> int:
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline:
        found = len(await asyncio.to_thread(harness.stored_segments))
        if found >= at_least:
            return found
        await asyncio.sleep(0.05)
    raise AssertionError(f"fewer than {at_least} segments stored")


async def _wait_started(log: Any) -> None:
    """Until the sink says it runs: its signal handlers are installed by then."""
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if log.exists() and "streamtap.sink INFO sink: " in log.read_text(errors="replace"):
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"the sink did not start; see {log}")


def _assert_exactly_once(harness: Any, messages: list[Any], helpers: Any) -> None:
    found = harness.stored_segments()
    assert set(found) == helpers.expected_segments(messages)
    assert set(found.values()) == {1}, "a segment is in more than one object"
    for rule in ("web", "dns"):
        expected = Counter(
            (p.ts_ns, p.data) for m in messages if rule in m.rules for p in m.record.packets
        )
        assert harness.stored_packets(rule) == expected
    report = verify_prefix(harness.store, harness.prefix + "/", datetime.now(UTC))
    assert report.ok, report.problems[:10]


async def test_sigkill_mid_upload_then_restart(
    harness: Any, corpus_http_dns: list[Any], helpers: Any
) -> None:
    messages = _messages(corpus_http_dns, helpers)
    await harness.produce(messages)
    total = len(helpers.expected_segments(messages))
    # Kill the sink three times while it is storing, each time after some more progress.
    stored = 0
    for round_ in range(3):
        proc = harness.spawn(f"sink-{round_}.log")
        try:
            stored = await _wait_some_stored(harness, min(total, stored + max(1, total // 6)))
        finally:
            proc.send_signal(signal.SIGKILL)
            proc.wait(timeout=60)
    proc = harness.spawn("sink-final.log")
    try:
        await _wait_started(harness.tmp / "sink-final.log")
        await harness.wait_for(helpers.expected_segments(messages))
    finally:
        assert helpers.stop_process(proc, signal.SIGTERM) == 0
    _assert_exactly_once(harness, messages, helpers)


async def test_s3_down_for_30s_mid_run(
    harness: Any, corpus_http_dns: list[Any], helpers: Any
) -> None:
    messages = _messages(corpus_http_dns, helpers)
    half = len(messages) // 2
    await harness.produce(messages[:half])
    # Small caps, so the outage overflows memory into the spill area and then pauses.
    stop, task = await harness.run_inprocess(max_pending_bytes=32 * 1024, max_spill_bytes=96 * 1024)
    try:
        await _wait_some_stored(harness, 1)
        await asyncio.to_thread(harness.stack.s3.stop)
        await harness.produce(messages[half:])
        await asyncio.sleep(30)
        assert not task.done()
        [service] = harness.services
        during = (service.stats.spilled_bytes_total, service.stats.pauses)
        await harness.stack.up()
        await harness.wait_for(helpers.expected_segments(messages))
    finally:
        if not (await harness.stack.status()).s3.pid:
            await harness.stack.up()
        stop.set()
    service = await task
    assert service.stats.retries > 0  # it really did meet a dead S3
    spilled, pauses = during
    assert spilled > 0 and pauses > 0, "the outage never reached the spill area and the pause"
    _assert_exactly_once(harness, messages, helpers)


async def test_kafka_restart_mid_run(
    harness: Any, corpus_http_dns: list[Any], helpers: Any
) -> None:
    messages = _messages(corpus_http_dns, helpers)
    half = len(messages) // 2
    await harness.produce(messages[:half])
    stop, task = await harness.run_inprocess()
    try:
        await _wait_some_stored(harness, 1)
        await asyncio.to_thread(harness.stack.kafka.stop)
        await asyncio.sleep(5)
        await harness.stack.up()
        await harness.produce(messages[half:])
        await harness.wait_for(helpers.expected_segments(messages))
    finally:
        if not (await harness.stack.status()).kafka.pid:
            await harness.stack.up()
        stop.set()
    await task
    _assert_exactly_once(harness, messages, helpers)


async def test_crash_between_object_and_manifest_is_repaired(
    harness: Any, corpus_http_dns: list[Any], helpers: Any
) -> None:
    """The exact state a sink killed mid-batch leaves: its close recorded in Kafka, the first
    object of the batch stored (locked), no manifest. The next sink must finish that batch
    under the same key, without a second version and without an orphan."""
    topic = f"{harness.settings.matched_topic}-one"
    harness.settings = harness.settings.model_copy(update={"matched_topic": topic})
    await ensure_topics(harness.settings, [TopicSpec(topic, 1)])
    messages = helpers.build_messages(corpus_http_dns, "node-a", helpers.web_and_dns)
    await harness.produce(messages)
    close_at = len(messages) // 2
    tp = TopicPartition(topic, 0)

    # Read the batch back as the sink will see it, and commit its close for the sink's group.
    consumer = make_consumer(harness.settings, group_id=harness.sink_env["SINK_GROUP"])
    await consumer.start()
    try:
        consumer.assign([tp])
        consumer.seek(tp, 0)
        records = []
        while len(records) <= close_at:
            got = await asyncio.wait_for(consumer.getmany(tp, timeout_ms=1000), 60)
            records += got.get(tp, [])
        await consumer.commit({tp: OffsetAndMetadata(0, encode_closes([close_at]))})
    finally:
        await consumer.stop()
    batch = ClosedBatch(
        0,
        tuple(
            Consumed(0, r.offset, r.timestamp, len(r.value), decode_matched_packets(r.value))
            for r in records[: close_at + 1]
        ),
        "shutdown",
    )
    options = PlanOptions(default_prefix=harness.prefix, default_retention_days=1)
    first = plan_batch(batch, options)[0]
    harness.store.put(
        str(first.key),
        first.data,
        PutOptions(
            lock_mode=first.settings.lock_mode or "GOVERNANCE",
            retain_until_ms=first.retain_until_ms,
            legal_hold=first.settings.legal_hold,
            sha256=first.sha256,
        ),
    )

    stop, task = await harness.run_inprocess()
    await harness.wait_for(helpers.expected_segments(messages))
    stop.set()
    service = await task
    assert service.stats.objects_already_stored >= 1
    versions = [v for v in harness.store.list_versions(str(first.key)) if v.key == str(first.key)]
    assert len(versions) == 1
    _assert_exactly_once(harness, messages, helpers)


async def test_two_sinks_share_partitions_through_rebalances(
    harness: Any, corpus_http_dns: list[Any], helpers: Any
) -> None:
    """A second sink joins mid-run and the first one leaves: partitions move twice, batches
    in flight are finished by whoever owns them, and every segment is stored exactly once."""
    messages = _messages(corpus_http_dns, helpers)
    third = len(messages) // 3
    await harness.produce(messages[:third])
    stop_a, task_a = await harness.run_inprocess()
    await _wait_some_stored(harness, 1)
    stop_b, task_b = await harness.run_inprocess()
    await harness.produce(messages[third : 2 * third])
    await _wait_some_stored(harness, len(helpers.expected_segments(messages[:third])))
    stop_a.set()
    await task_a
    await harness.produce(messages[2 * third :])
    await harness.wait_for(helpers.expected_segments(messages))
    stop_b.set()
    await task_b
    first, second = harness.services
    assert first.stats.objects > 0 and second.stats.objects > 0
    _assert_exactly_once(harness, messages, helpers)
