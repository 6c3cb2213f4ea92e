"""Kafka on the test stack: topics from `up`, a consumer-group round trip, Faust's declare path."""

from __future__ import annotations

import tempfile
import uuid

import faust
import pytest
from aiokafka import TopicPartition

from stack import LocalStack
from stack.topics import TopicSpec, describe_topics, ensure_topics, topic_specs
from streamtap.kafka import make_consumer, make_producer

pytestmark = pytest.mark.integration


def _name(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


async def test_up_created_every_topic_with_its_partitions(stack: LocalStack) -> None:
    topics = await describe_topics(stack.settings)
    for spec in topic_specs(stack.settings):
        assert topics.get(spec.name) == spec.partitions


async def test_ensure_topics_is_idempotent(stack: LocalStack) -> None:
    assert await ensure_topics(stack.settings) == []


async def _produce(stack: LocalStack, topic: str, count: int) -> None:
    producer = make_producer(stack.settings)
    await producer.start()
    try:
        for i in range(count):
            await producer.send_and_wait(topic, f"value-{i}".encode(), key=f"stream-{i}".encode())
    finally:
        await producer.stop()


async def _take(stack: LocalStack, topic: str, group: str, count: int) -> list[tuple[int, bytes]]:
    """Read `count` records as a member of `group`, commit what was read, leave the group."""
    consumer = make_consumer(stack.settings, topic, group_id=group)
    await consumer.start()
    try:
        seen: list[tuple[int, bytes]] = []
        while len(seen) < count:
            batch = await consumer.getmany(timeout_ms=1000, max_records=count - len(seen))
            for records in batch.values():
                seen += [(r.offset, r.value or b"") for r in records]
        last = seen[-1][0]
        await consumer.commit({TopicPartition(topic, 0): last + 1})
    finally:
        await consumer.stop()
    return seen


async def test_consumer_group_resumes_from_committed_offset(stack: LocalStack) -> None:
    topic, group = _name("roundtrip"), _name("group")
    await ensure_topics(stack.settings, [TopicSpec(topic, 1)])
    await _produce(stack, topic, 10)

    first = await _take(stack, topic, group, 4)
    second = await _take(stack, topic, group, 6)

    assert [offset for offset, _ in first] == [0, 1, 2, 3]
    assert [offset for offset, _ in second] == [4, 5, 6, 7, 8, 9]
    assert [value for _, value in first + second] == [f"value-{i}".encode() for i in range(10)]


async def test_faust_declares_topics_through_its_own_admin_path(stack: LocalStack) -> None:
    topic = _name("faust")
    app = faust.App(
        _name("faust-app"),
        broker=f"kafka://{stack.settings.kafka_bootstrap}",
        datadir=tempfile.mkdtemp(),
        web_enabled=False,
    )
    declared = app.topic(topic, partitions=3, value_type=bytes)
    try:
        await declared.maybe_declare()
        await declared.maybe_declare()  # a second declare of an existing topic is a no-op
    finally:
        await app.producer.stop()
    assert (await describe_topics(stack.settings))[topic] == 3
