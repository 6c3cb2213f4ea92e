"""The publisher's retry and back-pressure logic, against a scripted in-process producer.

The real-broker behaviour (a broker restart mid-run) is covered in tests/e2e; here we pin the
bookkeeping: nothing is dropped on retriable errors, oversize records are counted, and the
in-flight cap holds.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from aiokafka.errors import KafkaConnectionError, KafkaTimeoutError, MessageSizeTooLargeError

from producers.publisher import RecordPublisher, RetryPolicy


class ScriptedProducer:
    """Fails the first ``failures`` sends with the given error, then acknowledges."""

    def __init__(self, failures: int = 0, error: type[Exception] = KafkaTimeoutError) -> None:
        self.failures = failures
        self.error = error
        self.sent: list[tuple[str, bytes, bytes]] = []
        self.attempts = 0
        self.in_flight = 0
        self.max_in_flight = 0
        self.start_failures = 0

    async def start(self) -> None:
        if self.start_failures:
            self.start_failures -= 1
            raise KafkaConnectionError("no broker")

    async def stop(self) -> None:
        pass

    async def send(self, topic: str, value: bytes | None = None, key: bytes | None = None) -> Any:
        self.attempts += 1
        fail = self.failures > 0
        if fail:
            self.failures -= 1
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)

        def settle() -> None:
            self.in_flight -= 1
            if fail:
                future.set_exception(self.error())
            else:
                assert key is not None and value is not None
                self.sent.append((topic, key, value))
                future.set_result(None)

        asyncio.get_running_loop().call_later(0.001, settle)
        return future


async def no_sleep(_: float) -> None:
    await asyncio.sleep(0)


async def test_retriable_failures_are_retried_until_acknowledged() -> None:
    producer = ScriptedProducer(failures=7)
    publisher = RecordPublisher(producer, "streams", retry=RetryPolicy(), sleep=no_sleep)
    await publisher.start()
    for i in range(5):
        await publisher.publish(f"s{i}".encode(), b"v%d" % i)
    await publisher.stop()

    assert sorted(k for _, k, _ in producer.sent) == [b"s0", b"s1", b"s2", b"s3", b"s4"]
    assert publisher.stats.published == 5
    assert publisher.stats.retries == 7
    assert publisher.stats.dropped == 0
    assert publisher.stats.in_flight == 0


async def test_oversize_record_is_counted_as_dropped_not_retried() -> None:
    producer = ScriptedProducer(failures=1, error=MessageSizeTooLargeError)
    publisher = RecordPublisher(producer, "streams", sleep=no_sleep)
    await publisher.publish(b"big", b"x")
    await publisher.publish(b"ok", b"y")
    await publisher.stop()

    assert publisher.stats.dropped == 1
    assert publisher.stats.drop_reasons == {"MessageSizeTooLargeError": 1}
    assert [k for _, k, _ in producer.sent] == [b"ok"]
    assert producer.attempts == 2


async def test_in_flight_sends_never_exceed_the_cap() -> None:
    producer = ScriptedProducer()
    publisher = RecordPublisher(producer, "streams", max_in_flight=3, sleep=no_sleep)
    for i in range(50):
        await publisher.publish(b"k", b"%d" % i)
    await publisher.stop()

    assert producer.max_in_flight <= 3
    assert len(producer.sent) == 50


@pytest.mark.parametrize("failures", [0, 3])
async def test_start_waits_for_the_broker(failures: int) -> None:
    producer = ScriptedProducer()
    producer.start_failures = failures
    publisher = RecordPublisher(producer, "streams", sleep=no_sleep)
    await publisher.start()
    assert producer.start_failures == 0
