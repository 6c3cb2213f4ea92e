"""One batch of stream records in, matched streams out, then the stream memory updated.

The order inside a batch is what makes a SIGKILL at any point lose nothing:

1. decide every record (``matcher.decide``), re-reading earlier segments that a match needs,
   and update the local copy of the stream memory (not yet the changelog);
2. send every output message and wait until Kafka has acknowledged each one (retrying a failed
   send; a broker that is away means waiting, not dropping);
3. only then write the stream memory's changelog and wait for its acknowledgement;
4. the consumer acks the batch to Faust; Faust's commit flushes its producer before it commits
   offsets.

A kill before 4 replays the batch: the memory is either the old one or already updated, and
``decide`` gives byte-identical messages either way (see ``matcher``), so the replay only adds
identical keyed duplicates. The changelog must never be ahead of the outputs: a memory that says
"matched, nothing pending" while the earlier segments it re-read are not in Kafka would lose
them on a replay; hence 3 after 2, never together. Records that cannot be processed go to the
dead-letter topic with a reason, in step 2, so they are not acked before they are parked.

Steps 2-4 of a batch overlap step 1 of the next (``start`` returns after step 1 with the rest
running): the worker decides while Kafka acknowledges, instead of waiting twice per batch. What
keeps that safe: the next batch decides against the local memory, which already holds this
batch's decisions; a batch's changelog is written only after its own outputs *and* the previous
batch's changelog are acknowledged (the changelog is written in batch order, so a later value
of a key can never be overtaken by an earlier one), and the consumer acks batches in order,
each only once its own steps 2-3 are done. A kill with two batches in flight replays both from
the commit, against a memory at most as far as the outputs already in Kafka.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import random
import time
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import orjson
from aiokafka.errors import KafkaError, MessageSizeTooLargeError, RecordTooLargeError

from pipeline.matcher import Decision, SourcePos, StreamMemory, decide, earlier_publish
from pipeline.recent import RecentValues
from pipeline.reload import RuleSources
from pipeline.rules import RuleSet
from pipeline.stats import PipelineStats
from streamtap.schema import RecordError, RecordView, view_record

__all__ = ["Deliverer", "Incoming", "Outgoing", "SegmentProcessor"]

log = logging.getLogger("streamtap.pipeline")

#: deadletter copies of values larger than this keep only the metadata
DEADLETTER_VALUE_CAP = 256 * 1024

#: batches between two scans of the stream memory for idle unmatched streams
IDLE_SWEEP_BATCHES = 100


@dataclass(frozen=True)
class Incoming:
    """One consumed ``streams`` message, detached from Faust."""

    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    highwater: int | None = None


@dataclass(frozen=True)
class Outgoing:
    topic: str
    key: bytes
    value: bytes | None
    #: what to dead-letter instead if Kafka refuses the message as too large
    source: Incoming | None = None
    #: explicit partition (the stream memory's changelog); ``None``: by key
    partition: int | None = None


class Producer(Protocol):
    """The part of Faust's producer the deliverer uses: ``send`` enqueues, its future acks."""

    async def send(
        self,
        topic: str,
        key: bytes | None,
        value: bytes | None,
        partition: int | None,
        timestamp: float | None,
        headers: Any,
    ) -> Awaitable[Any]: ...


class MemoryStore(Protocol):
    """Where stream memory lives (the Faust table); writes name the partition explicitly."""

    def get(self, key: bytes) -> Any: ...

    def put(self, key: bytes, partition: int, value: dict[str, Any] | None) -> Outgoing | None:
        """Update the local copy; return the changelog record to deliver (``None``: no-op)."""
        ...

    def closed(self, partition: int) -> list[tuple[int, bytes]]:
        """(offset, key) of closed-stream memories of ``partition`` (found after a restart)."""
        ...

    def unmatched(self, partition: int) -> list[tuple[int, bytes]]:
        """(last offset, key) of unmatched memories last touched in ``partition``."""
        ...


class FetchesSegments(Protocol):
    async def fetch(
        self, positions: Sequence[SourcePos]
    ) -> list[tuple[SourcePos, bytes | None]]: ...

    async def fetch_range(
        self, partition: int, start: int, end: int
    ) -> list[tuple[int, bytes | None, bytes | None]]: ...


class Deliverer:
    """Sends a batch and returns only when every message is acknowledged (or refused as too
    large, which retrying cannot fix: those are returned for the dead-letter topic).

    Messages are enqueued one after another, in batch order, and only then awaited together:
    the order of a stream's segments is kept (earlier segments before the one that matched),
    the producer batches them, and aiokafka's accumulator is not woken once per waiting sender
    (concurrent ``send`` calls on one partition spin on its drain signal). A failed message is
    sent again, alone, with capped jittered backoff, until acknowledged: a broker that is away
    means waiting, not dropping.
    """

    def __init__(
        self,
        producer: Producer,
        stats: PipelineStats,
        *,
        base_delay_s: float = 0.2,
        max_delay_s: float = 5.0,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self._producer = producer
        self._stats = stats
        self._base = base_delay_s
        self._max = max_delay_s
        self._sleep = sleep

    async def deliver(self, messages: Sequence[Outgoing]) -> list[tuple[Outgoing, str]]:
        refused: list[tuple[Outgoing, str]] = []
        pending: list[tuple[Outgoing, Any]] = []
        for message in messages:
            try:
                pending.append((message, await self._enqueue(message)))
            except Exception as exc:
                pending.append((message, exc))
        retry: list[tuple[Outgoing, BaseException]] = []
        for message, future in pending:
            if isinstance(future, BaseException):
                retry.append((message, future))
                continue
            try:
                await future
            except Exception as exc:
                retry.append((message, exc))
        for message, error in retry:
            reason = await self._one(message, error)
            if reason is not None:
                refused.append((message, reason))
        return refused

    async def _enqueue(self, message: Outgoing) -> Any:
        return await self._producer.send(
            message.topic, message.key, message.value, message.partition, None, None
        )

    async def _one(self, message: Outgoing, first: BaseException) -> str | None:
        """Retry one message until acknowledged; a reason string when it can never be."""
        exc: BaseException | None = first
        attempt = 0
        while True:
            if exc is not None:
                cause = exc.__cause__ if exc.__cause__ is not None else exc
                if isinstance(cause, MessageSizeTooLargeError | RecordTooLargeError):
                    return f"too-large: {type(cause).__name__}"
                if not isinstance(cause, KafkaError) and not _is_send_error(exc):
                    raise exc
                delay = random.uniform(0, min(self._max, self._base * 2**attempt))
                if attempt % 10 == 0:
                    log.warning(
                        "send to %s failed (%s); retrying in %.1fs (attempt %d)",
                        message.topic,
                        type(cause).__name__,
                        delay,
                        attempt + 1,
                    )
                self._stats.send_retries += 1
                attempt += 1
                await self._sleep(delay)
            try:
                await (await self._enqueue(message))
                return None
            except Exception as err:
                exc = err


def _remembers(memory: StreamMemory | None, item: Incoming) -> bool:
    """Whether ``memory`` keeps ``item`` as an earlier segment to publish on a later match."""
    if memory is None or not memory.pending:
        return False
    last = memory.pending[-1]
    return last.offset == item.offset and last.partition == item.partition


def _still_pending(memory: StreamMemory, decision: Decision) -> bool:
    """Whether the memory after ``decision`` still holds ``memory``'s pending segments."""
    after = decision.memory
    return after is not None and after.pending[: len(memory.pending)] == memory.pending


def _is_send_error(exc: BaseException) -> bool:
    return type(exc).__name__ == "ProducerSendError"


def deadletter_value(source: Incoming, topic: str, kind: str, reason: str) -> bytes:
    """The dead-letter record: why, where from, and the original bytes when they are small."""
    doc: dict[str, Any] = {
        "kind": kind,
        "reason": reason,
        "topic": topic,
        "partition": source.partition,
        "offset": source.offset,
        "key": source.key.decode("utf-8", "replace") if source.key is not None else None,
    }
    if source.value is not None and len(source.value) <= DEADLETTER_VALUE_CAP:
        doc["value_b64"] = base64.b64encode(source.value).decode("ascii")
    return orjson.dumps(doc)


class SegmentProcessor:
    """The worker's logic between Faust (events, table) and Kafka (sends, re-reads)."""

    def __init__(
        self,
        *,
        sources: RuleSources,
        memory: MemoryStore,
        deliverer: Deliverer,
        fetcher: FetchesSegments,
        stats: PipelineStats,
        streams_topic: str,
        matched_topic: str,
        deadletter_topic: str,
        max_pending: int,
        idle_records: int | None = None,
        committed: Callable[[int], int | None] = lambda partition: None,
        clock: Callable[[], float] = time.time,
        recent: RecentValues | None = None,
    ) -> None:
        self.sources = sources
        self.memory = memory
        self.deliverer = deliverer
        self.fetcher = fetcher
        self.stats = stats
        self.streams_topic = streams_topic
        self.matched_topic = matched_topic
        self.deadletter_topic = deadletter_topic
        self.max_pending = max_pending
        self.idle_records = idle_records
        self.committed = committed
        self.clock = clock
        #: values of remembered unmatched segments, so a match rarely re-reads them from Kafka
        self.recent = recent if recent is not None else RecentValues(0)
        #: per partition, closed matched streams waiting for the commit to pass them
        self._closing: dict[int, deque[tuple[int, bytes]]] = {}
        #: batches since the last sweep for idle unmatched memories
        self._since_sweep = 0
        #: per partition, the offset after the last record handled (gap detection)
        self._next: dict[int, int] = {}
        #: per partition, when the consumer last handed over one of its records
        self._seen: dict[int, float] = {}
        #: the last batch's steps 2-3 (outputs, then changelog acknowledged), still running
        self._tail: asyncio.Future[None] | None = None

    async def _fill_gaps(self, batch: Sequence[Incoming]) -> tuple[list[Incoming], list[Incoming]]:
        """The batch with the records the consumer skipped read from ``streams`` and put where
        they belong (before the first record after each hole), and those records alone.

        A partition's records must reach the processor in order from the committed offset; around
        rebalances Faust has been seen to hand over a partition's later records first (it skips
        events fetched before the rebalance and its seek back can come too late), and to leave
        out a record in the middle of a batch. Every record's offset is checked against the one
        after the record before it on its partition (for a batch's first record of a partition:
        the later of the last one handled here and the group's commit); any hole is read here,
        so skipped records are processed, never lost. A hole another worker already handled
        gives identical duplicates.
        """
        out: list[Incoming] = []
        holes: list[Incoming] = []
        expect: dict[int, int | None] = {}
        for item in batch:
            partition = item.partition
            if partition in expect:
                expected = expect[partition]
            else:
                # the later of: after the last record handled here, and the group's commit (a
                # partition that comes back after another worker had it starts from its commit)
                known = [o for o in (self._next.get(partition), self.committed(partition)) if o]
                expected = max(known) if known else None
            if expected is not None and item.offset > expected:
                hole = await self._read_hole(partition, expected, item.offset)
                holes += hole
                out += hole
            if expected is None or item.offset + 1 > expected:
                expected = item.offset + 1
            expect[partition] = expected
            out.append(item)
        now = self.clock()
        for partition, expected in expect.items():
            self._seen[partition] = now
            if expected is not None:
                self._next[partition] = expected
        return out, holes

    async def catch_up(self, partition: int, end: int, idle_s: float, limit: int) -> list[Incoming]:
        """Read and process a partition's records below ``end`` (its high-water mark) that the
        consumer has not handed over for ``idle_s``: a record it skipped with nothing after it
        (see ``_fill_gaps``) would otherwise wait for the partition's next record, unprocessed
        and uncommitted. At most ``limit`` records per call, from the offset after the last one
        handled (or the commit). Returns the records processed, which the consumer should
        count as acked. A consumer that is merely slow on the partition later hands over the
        same records: identical duplicates, no loss."""
        now = self.clock()
        if now - self._seen.setdefault(partition, now) < idle_s:
            return []
        known = [o for o in (self._next.get(partition), self.committed(partition)) if o]
        start = max(known) if known else None
        if start is None or start >= end:
            return []
        items = await self._read_hole(partition, start, min(end, start + limit))
        if items:
            await (await self._process(items))  # contiguous from ``start``, and not the consumer's
            self._next[partition] = max(self._next.get(partition, 0), items[-1].offset + 1)
        return items

    async def _read_hole(self, partition: int, start: int, end: int) -> list[Incoming]:
        log.warning(
            "%s/%d: records %d..%d were not delivered to the agent; reading them",
            self.streams_topic,
            partition,
            start,
            end - 1,
        )
        self.stats.gaps_filled += end - start
        return [
            Incoming(partition, offset, key, value)
            for offset, key, value in await self.fetcher.fetch_range(partition, start, end)
        ]

    async def handle(self, batch: Sequence[Incoming]) -> list[Incoming]:
        """Process ``batch``; returns, once all its outputs and memory writes are acknowledged,
        the records read here because the consumer skipped them (already processed and
        delivered too), which the consumer should count as acked."""
        holes, done = await self.start(batch)
        await done
        return holes

    async def start(self, batch: Sequence[Incoming]) -> tuple[list[Incoming], asyncio.Future[None]]:
        """``handle`` up to the decisions (step 1): returns the records read here and a future
        that is done when the batch's outputs and then its memory writes are acknowledged
        (steps 2-3; the module docstring). The next batch may be started before it is done."""
        batch, holes = await self._fill_gaps(batch)
        return holes, await self._process(batch)

    async def _process(self, batch: Sequence[Incoming]) -> asyncio.Future[None]:
        """Decide and update the local memory, then hand the rest (deliver, then write the
        changelog) to a task: the order the module docstring explains."""
        stats = self.stats
        out: list[Outgoing] = []
        writes: dict[bytes, tuple[int, StreamMemory | None]] = {}
        in_batch: dict[tuple[int, int], bytes | None] = {}
        for item in batch:
            stats.records += 1
            stats.record_bytes += len(item.value or b"")
            if item.highwater is not None:
                stats.positions[item.partition] = (item.offset + 1, item.highwater)
            in_batch[(item.partition, item.offset)] = item.value
            try:
                await self._one(item, out, writes, in_batch)
            except Exception as exc:  # a bug must park the record, not stop the worker
                log.exception("internal error on %s/%d", self.streams_topic, item.offset)
                self._deadletter(item, "internal", f"{type(exc).__name__}: {exc}", out)

        self._forget_committed(batch, writes)
        changelog = []
        for key, (partition, mem) in writes.items():
            record = self.memory.put(key, partition, None if mem is None else mem.to_json())
            if record is not None:
                changelog.append(record)
        self._tail = asyncio.ensure_future(self._deliver(batch, out, changelog, self._tail))
        return self._tail

    async def _deliver(
        self,
        batch: Sequence[Incoming],
        out: list[Outgoing],
        changelog: list[Outgoing],
        previous: asyncio.Future[None] | None,
    ) -> None:
        """Steps 2-3: the outputs acknowledged, then (after the previous batch's) the memory."""
        refused = await self.deliverer.deliver(out)
        if refused:
            parked: list[Outgoing] = []
            for message, reason in refused:
                if message.source is not None:
                    self._deadletter(message.source, "output", reason, parked)
            if await self.deliverer.deliver(parked):
                log.error("dead-letter topic refused %d records", len(parked))
        if previous is not None:
            await previous  # changelog writes in batch order
        # The memory is durable (acknowledged) before the batch is acked, not just buffered.
        if changelog and await self.deliverer.deliver(changelog):
            log.error("stream memory changelog refused %d records", len(changelog))
        # Everything this batch caused is acknowledged: its offsets may be committed.
        stats = self.stats
        for item in batch:
            if item.offset + 1 > stats.delivered.get(item.partition, 0):
                stats.delivered[item.partition] = item.offset + 1
        stats.batches += 1
        stats.sample(self.clock())

    def _forget_committed(
        self, batch: Sequence[Incoming], writes: dict[bytes, tuple[int, StreamMemory | None]]
    ) -> None:
        """Delete the memory of closed streams whose closing segment is committed: no replay
        can reach them any more (decided by the commit alone, so before the outputs' acks)."""
        for partition in {item.partition for item in batch}:
            if partition not in self._closing:
                self._closing[partition] = deque(sorted(self.memory.closed(partition)))
        for key, (partition, mem) in writes.items():
            if mem is not None and mem.closed_at is not None:
                self._closing[partition].append((mem.closed_at[1], key))
        self._forget_idle({item.partition for item in batch}, writes)
        for partition, queue in self._closing.items():
            done = self.committed(partition)
            while queue and done is not None and queue[0][0] < done:
                offset, key = queue.popleft()
                if key in writes:
                    continue  # written again in this batch; its own entry decides
                current = StreamMemory.from_json(self.memory.get(key))
                if current.closed_at == (partition, offset):
                    writes[key] = (partition, None)

    def _forget_idle(
        self, partitions: set[int], writes: dict[bytes, tuple[int, StreamMemory | None]]
    ) -> None:
        """Every ``IDLE_SWEEP_BATCHES`` batches, delete the unmatched memories of the batch's
        partitions last touched more than ``idle_records`` offsets before the partition's
        commit: streams that stopped without a closing segment, which would otherwise stay in
        the table for good. Every record ``decide`` can still be given (this batch, a replay:
        all at or after the commit) would find them expired (``StreamMemory.idle``), so
        deleting them changes no output. A scan, not an index: the table holds open streams
        only, and an index kept per write would grow with every unmatched segment."""
        if self.idle_records is None:
            return
        self._since_sweep += 1
        if self._since_sweep < IDLE_SWEEP_BATCHES:
            return
        self._since_sweep = 0
        for partition in sorted(partitions):
            done = self.committed(partition)
            if done is None:
                continue
            for last, key in self.memory.unmatched(partition):
                if done - last > self.idle_records and key not in writes:
                    writes[key] = (partition, None)
                    self.stats.memories_expired += 1
                    self._forget_recent(StreamMemory.from_json(self.memory.get(key)).pending)

    def _memory_of(
        self, key: bytes, writes: dict[bytes, tuple[int, StreamMemory | None]]
    ) -> StreamMemory:
        if key in writes:
            return writes[key][1] or StreamMemory()
        return StreamMemory.from_json(self.memory.get(key))

    async def _one(
        self,
        item: Incoming,
        out: list[Outgoing],
        writes: dict[bytes, tuple[int, StreamMemory | None]],
        in_batch: dict[tuple[int, int], bytes | None],
    ) -> None:
        if item.value is None:
            self._deadletter(item, "decode", "no value (tombstone)", out)
            return
        try:
            # checked as decode_record checks it (a bad record is dead-lettered with pydantic's
            # reason), but the packets stay base64: they are forwarded, never decoded here
            record = view_record(item.value)
        except RecordError as exc:
            self._deadletter(item, "decode", str(exc), out)
            return
        if item.key != record.key:
            # Memory and co-partitioning rely on the key being the stream id.
            self._deadletter(item, "key", f"message key {item.key!r} is not the stream id", out)
            return
        ruleset = self.sources.current  # read once: a reload takes effect between records
        memory = self._memory_of(record.key, writes)
        decision = decide(
            record,
            ruleset,
            memory,
            partition=item.partition,
            offset=item.offset,
            max_pending=self.max_pending,
            idle_records=self.idle_records,
        )
        if decision.expired:
            self.stats.memories_expired += 1
        stats = self.stats
        if decision.publish is not None:
            names = frozenset(decision.publish.rules)
            if decision.refetch:
                await self._earlier(record, ruleset, decision.refetch, names, out, in_batch)
            stats.count_match(decision.matched_now)
            value = decision.publish.encode(record)
            out.append(Outgoing(self.matched_topic, record.key, value, item))
            stats.published += 1
            stats.published_bytes += len(value)
            if decision.matched_now and not memory.rules:
                log.debug(
                    "stream %s matched %s at segment %d (%d earlier re-read)",
                    record.stream_id,
                    ",".join(sorted(decision.matched_now)),
                    record.segment,
                    len(decision.refetch),
                )
        if decision.lost_earlier:
            stats.earlier_lost += decision.lost_earlier
            log.warning(
                "stream %s: %d earlier segments were not remembered (MAX_PENDING_SEGMENTS)",
                record.stream_id,
                decision.lost_earlier,
            )
        if decision.publish is None and _remembers(decision.memory, item):
            self.recent.put(item.partition, item.offset, item.value)
        elif memory.pending and not decision.refetch and not _still_pending(memory, decision):
            self._forget_recent(memory.pending)  # closed unmatched, expired: never re-read
        if decision.memory_changed:
            writes[record.key] = (item.partition, decision.memory)

    async def _earlier(
        self,
        record: RecordView,
        ruleset: RuleSet,
        positions: Sequence[SourcePos],
        names: frozenset[str],
        out: list[Outgoing],
        in_batch: dict[tuple[int, int], bytes | None],
    ) -> None:
        fetched: dict[SourcePos, bytes | None] = {}
        missing = []
        for pos in positions:
            if (pos.partition, pos.offset) in in_batch:
                continue
            value = self.recent.get(pos.partition, pos.offset)
            if value is None:
                missing.append(pos)
            else:
                fetched[pos] = value
        if missing:
            self.stats.earlier_refetched += len(missing)
            fetched.update(await self.fetcher.fetch(missing))
        # only once the re-read succeeded: if it raises, the memory keeps the positions (the
        # record is dead-lettered) and their values stay here for the next match
        self._forget_recent(positions)
        for pos in positions:
            raw = in_batch.get((pos.partition, pos.offset)) or fetched.get(pos)
            earlier = None
            if raw is not None:
                try:
                    earlier = view_record(raw)
                except RecordError:
                    earlier = None
            if earlier is None or earlier.stream_id != record.stream_id:
                self.stats.earlier_lost += 1
                log.warning(
                    "stream %s: earlier segment %d at %d@%d could not be re-read",
                    record.stream_id,
                    pos.segment,
                    pos.partition,
                    pos.offset,
                )
                continue
            publish = earlier_publish(earlier, ruleset, names, pos.partition, pos.offset)
            value = publish.encode(earlier)
            source = Incoming(pos.partition, pos.offset, earlier.key, raw)
            out.append(Outgoing(self.matched_topic, earlier.key, value, source))
            self.stats.published += 1
            self.stats.published_bytes += len(value)
            self.stats.earlier_published += 1

    def _forget_recent(self, positions: Sequence[SourcePos]) -> None:
        for pos in positions:
            self.recent.discard(pos.partition, pos.offset)

    def _deadletter(self, item: Incoming, kind: str, reason: str, out: list[Outgoing]) -> None:
        self.stats.deadletter(kind)
        self.stats.error(
            self.clock(), f"{self.streams_topic}/{item.partition}@{item.offset}", reason
        )
        log.warning(
            "dead-lettered %s/%d@%d (%s): %s",
            self.streams_topic,
            item.partition,
            item.offset,
            kind,
            reason.splitlines()[0] if reason else "",
        )
        value = deadletter_value(item, self.streams_topic, kind, reason)
        out.append(Outgoing(self.deadletter_topic, item.key or b"", value, None))
