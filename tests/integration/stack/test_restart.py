"""`down` then `up` keeps topics, committed offsets and objects; `up` twice is harmless."""

from __future__ import annotations

import asyncio
import uuid

import pytest
from aiokafka import TopicPartition

from stack import LocalStack
from stack.topics import TopicSpec, describe_topics, ensure_topics
from streamtap.kafka import make_consumer, make_producer
from streamtap.objectstore import MinioObjectStore

pytestmark = pytest.mark.integration

READ_BOUND_S = 120.0  # only so a broken broker fails the test instead of hanging it


async def _read_one_and_commit(stack: LocalStack, topic: str, group: str) -> tuple[int, bytes]:
    """Join the group, read the next record, commit past it, leave."""
    consumer = make_consumer(stack.settings, topic, group_id=group)
    await consumer.start()
    try:
        record = await asyncio.wait_for(consumer.getone(), READ_BOUND_S)
        await consumer.commit({TopicPartition(topic, 0): record.offset + 1})
    finally:
        await consumer.stop()
    return record.offset, record.value or b""


async def test_up_when_running_starts_nothing(stack: LocalStack) -> None:
    report = await stack.up()
    assert report.started == []
    assert sorted(report.already_running) == ["kafka", "seaweedfs"]


async def test_down_then_up_keeps_topics_offsets_and_objects(stack: LocalStack) -> None:
    tag = uuid.uuid4().hex[:8]
    topic, group, key = f"restart-{tag}", f"restart-group-{tag}", f"test/restart-{tag}.bin"
    await ensure_topics(stack.settings, [TopicSpec(topic, 2)])
    producer = make_producer(stack.settings)
    await producer.start()
    try:
        await producer.send_and_wait(topic, b"first", partition=0)
        await producer.send_and_wait(topic, b"second", partition=0)
    finally:
        await producer.stop()
    assert await _read_one_and_commit(stack, topic, group) == (0, b"first")
    store = MinioObjectStore.from_settings(stack.settings)
    put = await store.put(key, b"kept across restarts")
    topics_before = await describe_topics(stack.settings)

    assert sorted(await stack.down()) == ["kafka", "seaweedfs"]
    assert not (await stack.status()).running
    report = await stack.up()

    assert sorted(report.started) == ["kafka", "seaweedfs"]
    assert await describe_topics(stack.settings) == topics_before
    assert await _read_one_and_commit(stack, topic, group) == (1, b"second")
    assert await store.get(key, version_id=put.version_id) == b"kept across restarts"
