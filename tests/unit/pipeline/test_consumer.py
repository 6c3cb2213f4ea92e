"""The worker's batch path for ``streams`` (``pipeline.consumer``), without Kafka: a fetch goes
to the handler whole, and is acked to Faust's bookkeeping (what its commits are computed from)
only after the handler returned; a rebalance waits for a batch in flight."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from faust.types import TP

from pipeline.consumer import BatchConsumer, BatchRoute, PipelineApp
from pipeline.process import Incoming

STREAMS = "streams"
TP0 = TP(STREAMS, 0)
TP1 = TP(STREAMS, 1)


class Record:
    """The fields of an aiokafka ``ConsumerRecord`` the consumer reads."""

    def __init__(self, offset: int) -> None:
        self.offset = offset
        self.key = b"k%d" % offset
        self.value = b"v%d" % offset


def records(*offsets: int) -> list[Any]:
    return [Record(o) for o in offsets]


@pytest.fixture
async def consumer(tmp_path: Path) -> BatchConsumer:
    app = PipelineApp(
        "unit",
        route=BatchRoute(STREAMS),
        broker="kafka://127.0.0.1:1",  # never connected: the consumer is not started
        store="memory://",
        autodiscover=False,
        datadir=str(tmp_path),
    )
    app.topics.acking_topics.add(STREAMS)  # what subscribing to an acking topic records
    consumer = app.consumer
    assert isinstance(consumer, BatchConsumer)
    consumer.assignment = lambda: {TP0, TP1}  # type: ignore[method-assign]
    consumer.highwater = lambda tp: 1000  # type: ignore[method-assign]
    return consumer


Handled = tuple[list[Incoming], "asyncio.Future[None]"]


def done() -> asyncio.Future[None]:
    """A batch whose outputs are all acknowledged already."""
    future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    future.set_result(None)
    return future


async def settle() -> None:
    for _ in range(3):
        await asyncio.sleep(0)


def acked(consumer: BatchConsumer, tp: TP) -> list[int]:
    return sorted(consumer._acked.get(tp, []))


async def test_a_fetch_is_acked_only_after_the_handler_returns(consumer: BatchConsumer) -> None:
    during: list[tuple[list[int], list[int]]] = []

    async def handle(items: list[Incoming]) -> Handled:
        during.append((acked(consumer, TP0), acked(consumer, TP1)))
        assert [(i.partition, i.offset, i.highwater) for i in items] == [
            (0, 10, 1000),
            (0, 11, 1000),
            (1, 5, 1000),
        ]
        return [Incoming(1, 6, b"k", b"v")], done()  # a record the processor read itself

    consumer.route.handle = handle
    generation = consumer.app.consumer_generation_id
    await consumer._handle_batch({TP0: records(10, 11), TP1: records(5)}, generation)
    await settle()
    assert during == [([], [])]
    assert acked(consumer, TP0) == [10, 11]
    assert acked(consumer, TP1) == [5, 6]
    assert consumer._read_offset[TP0] == 11
    assert consumer._new_offset(TP0) == 12  # what the next commit of partition 0 would be


async def test_a_failing_handler_acks_nothing(consumer: BatchConsumer) -> None:
    async def handle(items: list[Incoming]) -> Handled:
        raise RuntimeError("broken")

    consumer.route.handle = handle
    with pytest.raises(RuntimeError):
        await consumer._handle_batch({TP0: records(1, 2)}, consumer.app.consumer_generation_id)
    assert acked(consumer, TP0) == []
    assert consumer._idle.is_set()


async def test_a_fetch_overtaken_by_a_rebalance_is_not_handled(consumer: BatchConsumer) -> None:
    handled: list[list[Incoming]] = []

    async def handle(items: list[Incoming]) -> Handled:
        handled.append(items)
        return [], done()

    consumer.route.handle = handle
    consumer.stop_flow()  # what a rebalance does first
    await consumer._handle_batch({TP0: records(1)}, consumer.app.consumer_generation_id)
    consumer.resume_flow()
    generation = consumer.app.consumer_generation_id
    consumer.app.consumer_generation_id = generation + 1  # a rebalance completed meanwhile
    await consumer._handle_batch({TP0: records(1)}, generation)
    assert handled == []
    assert acked(consumer, TP0) == []


async def test_records_already_read_or_of_revoked_partitions_are_left_out(
    consumer: BatchConsumer,
) -> None:
    handled: list[int] = []

    async def handle(items: list[Incoming]) -> Handled:
        handled.extend(i.offset for i in items)
        return [], done()

    consumer.route.handle = handle
    consumer._read_offset[TP0] = 7
    revoked = TP(STREAMS, 2)
    await consumer._handle_batch(
        {TP0: records(5, 6, 7, 8), revoked: records(1)}, consumer.app.consumer_generation_id
    )
    assert handled == [7, 8]
    assert acked(consumer, revoked) == []


async def test_a_rebalance_waits_for_the_batch_in_flight(consumer: BatchConsumer) -> None:
    release = asyncio.Event()
    started = asyncio.Event()

    async def handle(items: list[Incoming]) -> Handled:
        started.set()
        await release.wait()
        return [], done()

    consumer.route.handle = handle
    batch = asyncio.create_task(
        consumer._handle_batch({TP0: records(3)}, consumer.app.consumer_generation_id)
    )
    await started.wait()
    waiting = asyncio.create_task(consumer._idle.wait())
    await asyncio.sleep(0.01)
    assert not waiting.done() and acked(consumer, TP0) == []
    release.set()
    await batch
    await asyncio.wait_for(waiting, 1)
    await settle()
    assert acked(consumer, TP0) == [3]


def test_ack_offsets_counts_each_offset_once_and_none_below_the_commit(
    consumer: BatchConsumer,
) -> None:
    consumer._committed_offset[TP0] = 10
    assert consumer.ack_offsets(TP0, [8, 10, 11]) == 2
    assert consumer.ack_offsets(TP0, [11, 12]) == 1
    assert acked(consumer, TP0) == [10, 11, 12]


async def test_a_revocation_that_starts_before_the_handler_is_waited_for_or_stops_it(
    consumer: BatchConsumer,
) -> None:
    """Records 6 and 7 are missing from the fetch, so the consumer records a gap before the
    handler starts, which yields to the loop; a revocation that stops the flow there and waits
    for the batches in flight (``wait_empty``) must not see the handler start afterwards, on
    partitions it is about to give up."""
    events: list[str] = []

    async def handle(items: list[Incoming]) -> Handled:
        events.append("handled")
        return [], done()

    consumer.route.handle = handle
    consumer._read_offset[TP0] = 5
    batch = asyncio.create_task(
        consumer._handle_batch({TP0: records(8, 9)}, consumer.app.consumer_generation_id)
    )
    await asyncio.sleep(0)  # the batch runs up to its first await
    consumer.stop_flow()  # a revocation starts ...
    await consumer._idle.wait()  # ... and waits for work in flight (as ``wait_empty``)
    events.append("revoked")
    await batch
    assert events in (["revoked"], ["handled", "revoked"])


async def test_catch_up_acks_what_it_read_and_stops_at_a_revocation(
    consumer: BatchConsumer,
) -> None:
    """A revocation that starts during one partition's turn waits for that turn, and no later
    turn starts once it is past its wait."""
    events: list[str] = []
    revocations: list[asyncio.Task[None]] = []

    async def revoke() -> None:
        await consumer._idle.wait()  # as ``wait_empty``
        events.append("revoked")

    async def read(tp: TP) -> list[Incoming]:
        events.append(f"read {tp.partition}")
        if not revocations:
            consumer.stop_flow()  # a revocation starts ...
            revocations.append(asyncio.create_task(revoke()))
        await asyncio.sleep(0)  # ... and waits for this turn
        events.append(f"done {tp.partition}")
        return [Incoming(tp.partition, 4, b"k", b"v")]

    await consumer.catch_up(read)
    await revocations[0]
    assert events == ["read 0", "done 0", "revoked"]
    assert acked(consumer, TP0) == [4]
    assert acked(consumer, TP1) == []


async def test_the_next_fetch_is_handled_while_the_last_is_acknowledged_two_at_most(
    consumer: BatchConsumer,
) -> None:
    """A batch is acked only when its future is done, in order; the next batch is handed over
    meanwhile, and the one after waits (two in flight); a revocation waits for both."""
    futures: list[asyncio.Future[None]] = []
    handled: list[int] = []

    async def handle(items: list[Incoming]) -> Handled:
        handled.extend(i.offset for i in items)
        futures.append(asyncio.get_running_loop().create_future())
        return [], futures[-1]

    consumer.route.handle = handle
    generation = consumer.app.consumer_generation_id
    await consumer._handle_batch({TP0: records(3)}, generation)
    assert handled == [3] and acked(consumer, TP0) == [] and not consumer._idle.is_set()
    second = asyncio.create_task(consumer._handle_batch({TP0: records(4)}, generation))
    await settle()
    assert handled == [3, 4] and not second.done()  # decided; waits for the first batch
    assert acked(consumer, TP0) == []
    futures[0].set_result(None)
    await settle()
    assert second.done() and acked(consumer, TP0) == [3]
    assert not consumer._idle.is_set()  # the second batch is still in flight
    futures[1].set_result(None)
    await settle()
    assert acked(consumer, TP0) == [3, 4] and consumer._idle.is_set()


async def test_a_cancelled_batch_is_not_acked(consumer: BatchConsumer) -> None:
    future: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    async def handle(items: list[Incoming]) -> Handled:
        return [], future

    consumer.route.handle = handle
    await consumer._handle_batch({TP0: records(3)}, consumer.app.consumer_generation_id)
    assert consumer._finishing is future
    future.cancel()  # what a stop does (the drain loop's end)
    await settle()
    assert acked(consumer, TP0) == [] and consumer._idle.is_set()
