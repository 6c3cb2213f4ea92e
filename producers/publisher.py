"""Publishing stream records to Kafka without losing any while the broker is away.

aiokafka retries inside one request timeout; past that, a send fails. Here a failed send is
retried (with capped, jittered backoff) until it is acknowledged, so a broker outage means
waiting, not dropping. In-flight sends are capped: when the cap is reached, ``publish`` waits,
which slows the capture loop down (back-pressure) instead of growing memory. A retried send may
be delivered twice; the key (the stream id) and value are identical, so consumers dedupe.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from aiokafka.errors import KafkaError, MessageSizeTooLargeError, RecordTooLargeError

__all__ = ["Producer", "PublishStats", "RecordPublisher", "RetryPolicy"]

log = logging.getLogger("streamtap.publisher")


class Producer(Protocol):
    """The part of ``aiokafka.AIOKafkaProducer`` the publisher needs (injected, so tests and
    the CLI decide how clients are built)."""

    async def start(self) -> None: ...

    async def stop(self) -> None: ...

    async def send(self, topic: str, value: bytes | None = ..., key: bytes | None = ...) -> Any: ...


@dataclass(frozen=True)
class RetryPolicy:
    """Exponential backoff with full jitter, capped: 0.2 s, 0.4 s, ... up to ``max_delay_s``."""

    base_delay_s: float = 0.2
    max_delay_s: float = 5.0

    def delay(self, attempt: int) -> float:
        return random.uniform(0, min(self.max_delay_s, self.base_delay_s * 2**attempt))


@dataclass
class PublishStats:
    """Counters a sensor reports: what was sent, retried and (never silently) given up on."""

    published: int = 0
    published_bytes: int = 0
    retries: int = 0
    dropped: int = 0
    drop_reasons: dict[str, int] = field(default_factory=dict)
    in_flight: int = 0

    def as_dict(self) -> dict[str, Any]:
        return {
            "published": self.published,
            "published_bytes": self.published_bytes,
            "retries": self.retries,
            "dropped": self.dropped,
            "drop_reasons": dict(self.drop_reasons),
            "in_flight": self.in_flight,
        }


class RecordPublisher:
    """Sends keyed messages to one topic with bounded in-flight work and endless retry."""

    def __init__(
        self,
        producer: Producer,
        topic: str,
        *,
        max_in_flight: int = 1000,
        retry: RetryPolicy | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self._producer = producer
        self._topic = topic
        self._slots = asyncio.Semaphore(max_in_flight)
        self._retry = retry or RetryPolicy()
        self._sleep = sleep
        self._tasks: set[asyncio.Task[None]] = set()
        self.stats = PublishStats()

    async def start(self) -> None:
        """Connect, retrying while the broker is unreachable (a sensor may start first)."""
        attempt = 0
        while True:
            try:
                await self._producer.start()
                return
            except KafkaError as exc:
                delay = self._retry.delay(attempt)
                log.warning("Kafka not reachable (%s); retrying in %.1fs", exc, delay)
                attempt += 1
                await self._sleep(delay)

    async def publish(self, key: bytes, value: bytes) -> None:
        """Queue one message; waits (back-pressure) while ``max_in_flight`` are unacknowledged."""
        await self._slots.acquire()
        self.stats.in_flight += 1
        task = asyncio.create_task(self._deliver(key, value))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def flush(self) -> None:
        """Wait until every queued message is acknowledged (or counted as dropped)."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks))

    async def stop(self) -> None:
        await self.flush()
        await self._producer.stop()

    async def _deliver(self, key: bytes, value: bytes) -> None:
        attempt = 0
        try:
            while True:
                try:
                    future = await self._producer.send(self._topic, value=value, key=key)
                    await future
                    self.stats.published += 1
                    self.stats.published_bytes += len(value)
                    return
                except (MessageSizeTooLargeError, RecordTooLargeError) as exc:
                    # Retrying cannot help; the record splitter should have prevented this.
                    self._drop(type(exc).__name__, key, exc)
                    return
                except KafkaError as exc:
                    delay = self._retry.delay(attempt)
                    if attempt == 0 or attempt % 10 == 0:
                        log.warning(
                            "send of stream %s failed (%s); retrying in %.1fs (attempt %d)",
                            key.decode(errors="replace"),
                            type(exc).__name__,
                            delay,
                            attempt + 1,
                        )
                    self.stats.retries += 1
                    attempt += 1
                    await self._sleep(delay)
        finally:
            self.stats.in_flight -= 1
            self._slots.release()

    def _drop(self, reason: str, key: bytes, exc: Exception) -> None:
        self.stats.dropped += 1
        self.stats.drop_reasons[reason] = self.stats.drop_reasons.get(reason, 0) + 1
        log.error("dropped stream %s: %s (%s)", key.decode(errors="replace"), reason, exc)
