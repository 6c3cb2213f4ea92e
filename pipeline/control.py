"""Rule updates on the control topic, so a fleet of workers changes together.

Every worker must see every update, so the listener is a consumer with no group (a group would
hand each update to one worker only). The topic is compacted on the key ``rules``: a worker that
starts reads it from the beginning and ends up with the latest rule set, then follows new ones.
The value is a rules document in the same shape as the rules file, as JSON:
``{"rules": {"name": {"kfl": "...", "retention_days": 30}}}``; ``{"rules": {}}`` withdraws the
control rules (the env and file rules remain).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.errors import KafkaError

from pipeline.rules import RuleSpec
from pipeline.topics import CONTROL_KEY

__all__ = ["ControlListener", "publish_rules", "rules_document"]

log = logging.getLogger("streamtap.pipeline")


def rules_document(specs: Mapping[str, RuleSpec]) -> dict[str, Any]:
    return {"rules": {name: spec.model_dump(exclude_defaults=True) for name, spec in specs.items()}}


async def publish_rules(bootstrap: str, topic: str, specs: Mapping[str, RuleSpec]) -> None:
    """Publish a rule set for every worker (used by ``streamtap pipeline --publish-rules``)."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", enable_idempotence=True)
    await producer.start()
    try:
        await producer.send_and_wait(topic, orjson.dumps(rules_document(specs)), key=CONTROL_KEY)
    finally:
        await producer.stop()


class ControlListener:
    """Follows the control topic and hands each rules document to ``apply``."""

    def __init__(
        self, bootstrap: str, topic: str, apply: Callable[[Any], None], *, retry_s: float = 2.0
    ) -> None:
        self._bootstrap = bootstrap
        self._topic = topic
        self._apply = apply
        self._retry_s = retry_s
        #: per partition, the offset the snapshot read up to (``run`` skips what it applied)
        self._seen: dict[int, int] = {}

    async def snapshot(self) -> Any | None:
        """The latest rules document on the topic, read before the worker starts, so a new
        worker never evaluates a record with rules the fleet has already replaced."""
        consumer = self._consumer()
        await consumer.start()
        try:
            partitions = consumer.assignment()
            while not partitions:
                await asyncio.sleep(0.1)
                partitions = consumer.assignment()
            ends = await consumer.end_offsets(list(partitions))
            latest = None
            while not await self._at_end(consumer, ends):
                batches = await consumer.getmany(timeout_ms=500)
                for messages in batches.values():
                    for message in messages:
                        document = self._decode(message.key, message.value, message.offset)
                        if document is not None:
                            latest = document
            self._seen = {tp.partition: end for tp, end in ends.items()}
            return latest
        finally:
            await consumer.stop()

    def _consumer(self) -> AIOKafkaConsumer:
        return AIOKafkaConsumer(
            self._topic,
            bootstrap_servers=self._bootstrap,
            group_id=None,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
        )

    @staticmethod
    async def _at_end(consumer: AIOKafkaConsumer, ends: Mapping[Any, int]) -> bool:
        for tp, end in ends.items():
            if await consumer.position(tp) < end:
                return False
        return True

    async def run(self) -> None:
        while True:
            consumer = self._consumer()
            try:
                await consumer.start()
                async for message in consumer:
                    if message.offset < self._seen.get(message.partition, 0):
                        continue  # applied by the snapshot at start
                    document = self._decode(message.key, message.value, message.offset)
                    if document is not None:
                        self._apply(document)
            except asyncio.CancelledError:
                raise
            except KafkaError as exc:
                log.warning("control topic %s unavailable (%s); retrying", self._topic, exc)
            finally:
                await consumer.stop()
            await asyncio.sleep(self._retry_s)

    @staticmethod
    def _decode(key: bytes | None, value: bytes | None, offset: int) -> Any | None:
        if key != CONTROL_KEY:
            return None
        try:
            return orjson.loads(value) if value else {"rules": {}}
        except orjson.JSONDecodeError as exc:
            log.warning("control message at offset %d is not JSON (%s); ignored", offset, exc)
            return None
