"""The worker's Kafka consumer: Faust's aiokafka consumer, except that ``streams`` records reach
the processor a whole fetch at a time instead of one message at a time through Faust's dispatch.

Why bypass Faust's dispatch: per message, Faust's drain loop awaits
``wait_first(callback(message), suspend_flow.wait())`` (two tasks and an ``asyncio.wait``), then
the conductor takes a lock, the topic's queue, the stream iterator, the codec and a per-event ack
follow, before ``take_events`` hands the agent a batch: ~60-85 µs of CPU per record, more than
the Kafka client and our own work together (docs/benchmarks.md, "Pipeline"). Here the records
of a fetch go to the processor in one call, and are acked in one step once every output they
caused is acknowledged by Kafka. The same ``wait_first`` is also where Faust cancels a delivery
around rebalances and still moves its read position past it (docs/architecture.md).

What stays Faust's: group membership and rebalances, the seeks back to the committed offsets,
the ack bookkeeping its commits are computed from (so a commit still covers only acked,
contiguous offsets, and is still taken after a producer flush), and every other topic, such as
the stream-memory changelog read during recovery, which goes through Faust's own per-message
path unchanged.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from time import monotonic
from typing import Any, cast

import faust
from faust.transport.consumer import CONSUMER_FETCHING
from faust.transport.drivers.aiokafka import AIOKafkaConsumerThread
from faust.transport.drivers.aiokafka import Consumer as AIOKafkaConsumer
from faust.types import TP
from faust.types.tuples import ack_lock
from mode import Service
from mode.utils.futures import notify

from pipeline.process import Incoming

__all__ = ["DEFAULT_FETCH_WAIT_MS", "BatchConsumer", "BatchRoute", "PipelineApp"]

log = logging.getLogger("streamtap.pipeline")

#: how long the broker may hold a fetch that finds no new records (Faust's consumer: 1,500 ms)
DEFAULT_FETCH_WAIT_MS = 100

#: gets a fetch's records of the batch topic; returns the records it read itself (holes) and a
#: future done once everything the batch caused is acknowledged by Kafka
BatchHandler = Callable[[list[Incoming]], Awaitable[tuple[list[Incoming], asyncio.Future[None]]]]


@dataclass
class BatchRoute:
    """The topic whose records go to ``handle`` a fetch at a time (set once the agents exist)."""

    topic: str
    handle: BatchHandler | None = None


class FetchWaitThread(AIOKafkaConsumerThread):
    """Faust's consumer thread with the broker's fetch wait (``fetch_max_wait_ms``) set to
    ``fetch_wait_ms`` instead of Faust's fixed 1,500 ms.

    Why: aiokafka keeps one fetch in flight per broker, and once a partition's records have
    waited unread for 0.1 s (a slow batch) it fetches the others without it. When those are
    all at their end (the table's changelog, an idle partition), the broker holds the fetch
    for the whole wait, and every partition of that broker waits behind it however far behind
    it is: with Faust's 1,500 ms, a worker with a backlog stalled for a second several times
    per 40,000 records (docs/benchmarks.md, "Pipeline"). A short wait bounds the stall; what
    it costs is one more empty fetch per wait on an idle worker."""

    def __init__(self, *args: Any, fetch_wait_ms: int, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fetch_wait_ms = fetch_wait_ms

    def _create_worker_consumer(self, transport: Any) -> Any:
        consumer = super()._create_worker_consumer(transport)
        # Faust passes the wait as a literal; the aiokafka consumer reads it when it starts.
        consumer._fetch_max_wait_ms = self.fetch_wait_ms
        return consumer

    async def on_start(self) -> None:
        await super().on_start()
        # private attributes: say so if an aiokafka release stops reading them (checked for
        # the pinned range by tests/integration/pipeline/test_kafka_reads.py)
        used = getattr(getattr(self._consumer, "_fetcher", None), "_fetch_max_wait_ms", None)
        if used != self.fetch_wait_ms:
            log.warning(
                "the Kafka client fetches with a %s ms wait, not --fetch-wait-ms %d",
                used,
                self.fetch_wait_ms,
            )


class BatchConsumer(AIOKafkaConsumer):
    """Faust's aiokafka consumer with a batch path for one topic (see the module docstring)."""

    def __init__(
        self,
        *args: Any,
        route: BatchRoute,
        fetch_wait_ms: int = DEFAULT_FETCH_WAIT_MS,
        **kwargs: Any,
    ) -> None:
        self.fetch_wait_ms = fetch_wait_ms  # read by _new_consumer_thread, from super().__init__
        super().__init__(*args, **kwargs)
        self.route = route
        self._in_flight = 0
        self._idle = asyncio.Event()
        self._idle.set()
        #: the last batch handed over, still waiting for Kafka's acknowledgements
        self._finishing: asyncio.Future[None] | None = None

    @asynccontextmanager
    async def in_flight(self) -> AsyncIterator[None]:
        """Marks work on records that are not acked yet: a revocation waits for it
        (``wait_empty``) before Faust commits and gives the partitions up, as it waits for
        events an agent holds. Work asks ``rebalanced`` once marked, not before. (A stop
        cancels the drain's batch first, by stopping Faust's fetcher, and the drain's end
        cancels the one still being acknowledged: not acked, not committed.)"""
        self._enter()
        try:
            yield
        finally:
            self._leave()

    def _enter(self) -> None:
        self._in_flight += 1
        self._idle.clear()

    def _leave(self) -> None:
        self._in_flight -= 1
        if not self._in_flight:
            self._idle.set()

    def _new_consumer_thread(self) -> FetchWaitThread:
        return FetchWaitThread(
            self, loop=self.loop, beacon=self.beacon, fetch_wait_ms=self.fetch_wait_ms
        )

    async def wait_empty(self) -> None:
        await self._idle.wait()
        await super().wait_empty()

    def ack_offsets(self, tp: TP, offsets: Iterable[int]) -> int:
        """``ack`` for many offsets of one partition at once, with the same bookkeeping (an
        offset below the committed one, or acked before, is not counted again)."""
        added = 0
        with ack_lock:
            if not self.app.topics.acks_enabled_for(tp.topic):
                return 0
            committed = self._committed_offset[tp]
            index = self._acked_index[tp]
            acked = self._acked[tp]
            for offset in offsets:
                if (committed is None or offset >= committed) and offset not in index:
                    index.add(offset)
                    acked.append(offset)
                    added += 1
            self._n_acked += added
            notify(self._waiting_for_ack)
        return added

    async def _drain_messages(self, fetcher: Any) -> None:
        """Faust's drain loop (``Consumer._drain_messages``), one fetch per turn: the batch
        topic's records go to the route's handler together, the others one by one as in Faust."""
        consumer_should_stop = cast(Service, self)._stopped.is_set
        fetcher_should_stop = cast(Service, fetcher)._stopped.is_set
        try:
            while not (consumer_should_stop() or fetcher_should_stop()):
                self.diag.set_flag(CONSUMER_FETCHING)
                records, active = await self._wait_next_records(1.0)
                generation = self.app.consumer_generation_id  # read where Faust reads it
                await self.sleep(0)
                if not records or self.should_stop:
                    continue
                if not self.flow_active:
                    # as Faust's getmany: a fetch that returns while the flow is stopped is
                    # dropped, and the partitions go back to their committed offsets
                    await self._seek_back()
                    continue
                batch: dict[TP, list[Any]] = {}
                for tp, tp_records in records.items():
                    if active is not None and tp not in active | self._buffered_partitions:
                        continue
                    if tp.topic == self.route.topic and self.route.handle is not None:
                        batch[tp] = tp_records
                    elif not await self._one_by_one(tp, tp_records, generation):
                        break
                if batch:
                    await self._handle_batch(batch, generation)
                self.diag.unset_flag(CONSUMER_FETCHING)
        except self.consumer_stopped_errors:
            if self.transport.app.should_stop:
                self.log.info("Broker stopped consumer, shutting down...")
                return
            raise
        except asyncio.CancelledError:
            if self.transport.app.should_stop:
                self.log.info("Consumer shutting down for user cancel.")
                return
            raise
        except Exception as exc:
            self.log.exception("Drain messages raised: %r", exc)
            raise
        finally:
            self.diag.unset_flag(CONSUMER_FETCHING)
            if self._finishing is not None:
                self._finishing.cancel()  # a stop: not acked, not committed

    async def _seek_back(self) -> None:
        try:
            await self.perform_seek()
        except Exception as exc:
            self.log.warning("exception performing seek when flow not active %r", exc)

    def rebalanced(self, generation: int) -> bool:
        """Whether a rebalance or a stop began since ``generation`` was read (the flow is
        stopped first thing, then the generation changes). Work on the batch topic asks this
        only once it is marked ``in_flight``, with no await between: a revocation that stops
        the flow later finds the work in flight and waits for it, while one that stopped it
        earlier may already be past its wait (``wait_empty``) and giving the partitions up."""
        return not self.flow_active or self.app.consumer_generation_id != generation

    async def _one_by_one(self, tp: TP, records: Sequence[Any], generation: int) -> bool:
        """Faust's own per-message delivery (for the changelog during recovery and any topic
        but the batch topic). False when a rebalance started: the rest of the fetch is left,
        as Faust's getmany leaves it."""
        read_offset = self._read_offset
        acks_enabled = self.app.topics.acks_enabled_for(tp.topic)
        for record in records:
            if self.rebalanced(generation):
                return False
            offset = record.offset
            last = read_offset[tp]
            if last is not None and offset < last:
                continue  # already delivered (Faust's "DROPPED MESSAGE")
            if last and offset - last > 1 and acks_enabled:
                await self._add_gap(tp, last + 1, offset)
            await self._maybe_commit()
            self.app.monitor.track_tp_end_offset(tp, self.highwater(tp))
            message = self._to_message(tp, record)
            await self.wait_first(self.callback(message), self.suspend_flow.wait())
            read_offset[tp] = offset
        return True

    async def _maybe_commit(self) -> None:
        commit_every = self._commit_every
        if commit_every is not None and self._n_acked >= commit_every:
            self._n_acked = 0
            await self.commit()

    async def _handle_batch(self, batch: dict[TP, list[Any]], generation: int) -> None:
        """Hand the fetch's batch-topic records to the handler; ack them (and the records it
        read itself) only once the future it returns is done, which is after Kafka
        acknowledged their output and memory writes.

        The batch is marked in flight before anything else, then checked: a fetch that a
        rebalance overtook is dropped unread (the rebalance seeks the partitions back to their
        commits, and the records come again); otherwise a rebalance waits for it. Checked the
        other way round, the awaits in between (``_add_gap``) let a revocation pass its wait
        and hand the partitions over while the handler then runs on them.

        The handler returns once it has decided (``SegmentProcessor.start``); the next fetch
        is taken and decided while Kafka acknowledges this one. At most two batches are in
        flight: once the handler returned, the previous batch is waited for, and each stays
        in flight (``wait_empty``) until its future is done; batches are acked in order."""
        handle = self.route.handle
        if handle is None:
            return
        async with self.in_flight():
            if self.rebalanced(generation):
                return
            items = await self._incoming(batch)
            if not items:
                return
            read_here, done = await handle(items)
            self._hold(items + read_here, done)
            previous, self._finishing = self._finishing, done
            if previous is not None:
                await previous
        await self._maybe_commit()

    def _hold(self, items: list[Incoming], done: asyncio.Future[None]) -> None:
        """Keep ``items`` in flight until ``done``; ack them then, unless it failed or was
        cancelled (a failure is raised where the batch is waited for)."""
        self._enter()

        def finished(future: asyncio.Future[None]) -> None:
            try:
                if not future.cancelled() and future.exception() is None:
                    self.ack_incoming(items)
            finally:
                self._leave()

        done.add_done_callback(finished)

    async def _incoming(self, batch: dict[TP, list[Any]]) -> list[Incoming]:
        """The records of assigned partitions not handed over before, in ``Incoming`` form;
        moves Faust's read position and gap bookkeeping past them."""
        items: list[Incoming] = []
        now = monotonic()
        inbound = self.app.monitor.stream_inbound_time
        assignment = self.assignment()
        for tp, records in batch.items():
            if tp not in assignment:
                continue
            last = self._read_offset[tp]
            fresh = [r for r in records if last is None or r.offset >= last]
            if not fresh:
                continue
            await self._gaps(tp, last, fresh)
            highwater = self.highwater(tp)
            self.app.monitor.track_tp_end_offset(tp, highwater)
            inbound[tp] = now  # Faust's livelock check reads it
            items += [Incoming(tp.partition, r.offset, r.key, r.value, highwater) for r in fresh]
            self._read_offset[tp] = fresh[-1].offset
        return items

    async def _gaps(self, tp: TP, last: int | None, records: Sequence[Any]) -> None:
        """Offsets with no record (Faust's ``_add_gap``: compaction, transaction markers) count
        as acked, or the partition's commit would stop at them."""
        for record in records:
            if last and record.offset - last > 1:
                await self._add_gap(tp, last + 1, record.offset)
            last = record.offset

    async def catch_up(self, read: Callable[[TP], Awaitable[list[Incoming]]]) -> None:
        """Give ``read`` each assigned partition of the batch topic in turn, each turn in flight,
        and ack the records it returns (read and processed by the caller, never handed over
        here). Stops at a rebalance or a stop, checked at every turn once it is in flight: a
        revocation that waited for the previous turn may already be past its wait (an
        ``asyncio.Event`` set and cleared again still wakes its waiter)."""
        generation = self.app.consumer_generation_id
        for tp in sorted(self.assignment()):
            if tp.topic != self.route.topic:
                continue
            async with self.in_flight():
                if self.app.rebalancing or self.rebalanced(generation):
                    return
                if tp in self.assignment():
                    self.ack_incoming(await read(tp))

    def ack_incoming(self, items: Sequence[Incoming]) -> None:
        """Ack processed records of the batch topic, grouped by partition."""
        by_partition: dict[int, list[int]] = {}
        for item in items:
            by_partition.setdefault(item.partition, []).append(item.offset)
        for partition, offsets in by_partition.items():
            self.ack_offsets(TP(self.route.topic, partition), offsets)


class PipelineApp(faust.App):
    """A Faust app whose consumer is a ``BatchConsumer`` for ``route``, subscribed to the
    route's topic without an agent (no agent iterates it)."""

    def __init__(
        self,
        *args: Any,
        route: BatchRoute,
        fetch_wait_ms: int = DEFAULT_FETCH_WAIT_MS,
        **kwargs: Any,
    ) -> None:
        self.route = route
        self.fetch_wait_ms = fetch_wait_ms
        self.batch_topic: Any = None
        super().__init__(*args, **kwargs)

    def _new_consumer(self) -> BatchConsumer:
        return BatchConsumer(
            self.transport,
            route=self.route,
            fetch_wait_ms=self.fetch_wait_ms,
            callback=self.topics.on_message,
            on_partitions_revoked=self._on_partitions_revoked,
            on_partitions_assigned=self._on_partitions_assigned,
            beacon=self.beacon,
            loop=self.transport.loop,
        )

    async def on_first_start(self) -> None:
        await super().on_first_start()
        if self.batch_topic is not None:
            # What iterating the topic in an agent would do: the conductor subscribes to it
            # (before it starts, so the first subscription includes it).
            self.topics.add(self.batch_topic)


def batch_consumer(app: faust.App) -> BatchConsumer:
    consumer = app.consumer
    assert isinstance(consumer, BatchConsumer), type(consumer)
    return consumer
