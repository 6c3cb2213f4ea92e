"""The topics streamtap needs, created with explicit partition counts, idempotently.

Partition counts are chosen here rather than left to broker auto-creation: the record key is
the stream id, so the partition count fixes how far the pipeline and sinks can scale out.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import (
    InvalidReplicationFactorError,
    KafkaError,
    TopicAlreadyExistsError,
    for_code,
)

from stack.errors import StackError
from streamtap.kafka import make_admin
from streamtap.settings import Settings

__all__ = ["TopicSpec", "describe_topics", "ensure_topics", "topic_specs"]

CREATE_TIMEOUT_S = 60.0


@dataclass(frozen=True)
class TopicSpec:
    """A topic as streamtap wants it."""

    name: str
    partitions: int
    config: dict[str, str] = field(default_factory=dict)


def topic_specs(settings: Settings) -> list[TopicSpec]:
    """Data topics get TOPIC_PARTITIONS; stats and control are low-volume, so one partition."""
    big = {"max.message.bytes": str(settings.max_message_bytes)}
    n = settings.topic_partitions
    return [
        TopicSpec(settings.streams_topic, n, big),
        TopicSpec(settings.matched_topic, n, big),
        TopicSpec(settings.deadletter_topic, n, big),
        TopicSpec(settings.stats_topic, 1),
        TopicSpec(settings.control_topic, 1),
    ]


async def _create_missing(admin: AIOKafkaAdminClient, specs: list[TopicSpec]) -> list[str]:
    existing = set(await admin.list_topics())
    missing = [s for s in specs if s.name not in existing]
    if not missing:
        return []
    new = [NewTopic(s.name, s.partitions, 1, topic_configs=s.config) for s in missing]
    response = await admin.create_topics(new)
    created = []
    for entry in response.topic_errors:
        name, code = entry[0], entry[1]
        if code == 0:
            created.append(name)
            continue
        error = for_code(code)
        if error is TopicAlreadyExistsError:
            continue
        message = entry[2] if len(entry) > 2 and entry[2] else error.__name__
        raise error(f"creating topic {name!r}: {message}")
    return created


async def _wait_for_leaders(
    admin: AIOKafkaAdminClient, specs: list[TopicSpec], deadline: float
) -> None:
    """Return once every partition has a leader, so a producer started right after `up` does
    not begin with NotLeaderForPartition retries."""
    names = [spec.name for spec in specs]
    while True:
        topics = await admin.describe_topics(names)
        pending = [
            t["topic"]
            for t in topics
            if t["error_code"]
            or not t["partitions"]
            or any(p["leader"] < 0 for p in t["partitions"])
        ]
        if not pending:
            return
        if time.monotonic() > deadline:
            raise StackError(f"topics without partition leaders: {', '.join(sorted(pending))}")
        await asyncio.sleep(0.1)


def worth_retrying(exc: KafkaError) -> bool:
    """Whether topic creation may succeed if asked again. Besides the errors Kafka calls
    retriable: a KRaft broker that has just started registers fenced and is unfenced a moment
    later; until then creation fails with "All brokers are currently fenced", an error aiokafka
    marks as final (seen on a loaded machine right after ``up``)."""
    return bool(exc.retriable) or isinstance(exc, InvalidReplicationFactorError)


async def ensure_topics(settings: Settings, specs: list[TopicSpec] | None = None) -> list[str]:
    """Create the topics that do not exist yet; returns the names created this time.

    A broker that has just started can answer with retriable errors (no controller yet), so
    those are retried until a deadline rather than failing the first `up`.
    """
    specs = topic_specs(settings) if specs is None else specs
    deadline = time.monotonic() + CREATE_TIMEOUT_S
    created: list[str] = []
    while True:
        admin = make_admin(settings, request_timeout_ms=15000)
        try:
            await admin.start()
            created += await _create_missing(admin, specs)
            await _wait_for_leaders(admin, specs, deadline)
            return created
        except KafkaError as exc:
            if not worth_retrying(exc) or time.monotonic() > deadline:
                raise StackError(
                    f"topic creation on {settings.kafka_bootstrap} failed: {exc!r}"
                ) from exc
        finally:
            await admin.close()
        await asyncio.sleep(0.5)


async def describe_topics(settings: Settings) -> dict[str, int]:
    """Every topic on the broker (internal ones excluded) with its partition count."""
    admin = make_admin(settings, request_timeout_ms=10000)
    try:
        await admin.start()
        topics = await admin.describe_topics()
    finally:
        await admin.close()
    return {
        t["topic"]: len(t["partitions"])
        for t in topics
        if not t.get("is_internal") and not t["topic"].startswith("__")
    }
