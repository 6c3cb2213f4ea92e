"""The sink service: ``matched-streams`` in, PCAP objects and manifests out, nothing lost.

The loop is: consume -> batch per partition -> on close, record the close in the commit
metadata -> hand the batch to its upload worker, which plans the objects and stores them ->
after every object *and* manifest of a batch is stored, commit ``last offset + 1``. Each
partition always goes to the same upload worker, so its batches are planned, chained and
committed in order (a worker sends the next batch's objects while the previous batch's manifests
are pending, never its manifests); the consumer loop itself never waits on S3.

Offsets and the commit metadata (``{"closes": [...]}``, the last offsets of batches closed but
not yet stored) are the sink's only state. A sink that dies at any point restarts from the
committed offset, closes batches where the metadata says, and so rebuilds the same objects
under the same keys; the writer finds what is already stored and skips it.

While S3 is down, uploads retry forever with capped, jittered backoff. Closed batches wait in
memory up to ``SINK_MAX_PENDING_BYTES``, then on disk up to ``SINK_MAX_SPILL_BYTES``; past
that (or past ``SINK_MAX_PENDING_BATCHES`` for a partition) consumption pauses until uploads
catch up. Nothing is dropped.
"""

from __future__ import annotations

import asyncio
import base64
import functools
import itertools
import logging
import random
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import Executor, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, TopicPartition
from aiokafka.errors import CommitFailedError, IllegalStateError, KafkaError
from aiokafka.structs import OffsetAndMetadata

from sinks.batch import BatchLimits, ClosedBatch, Consumed, PartitionBatcher
from sinks.config import SinkSettings
from sinks.errors import ObjectConflictError, SinkError
from sinks.history import SegmentHistory
from sinks.keys import WriterId
from sinks.pcap import check_packets
from sinks.plan import PlannedObject, PlanOptions, plan_batch
from sinks.spill import SpillArea, SpilledBatch
from sinks.stats import SinkStats
from sinks.store import ObjectStore
from sinks.writer import BatchWriter, WriteOutcome
from streamtap.schema import RecordError, decode_matched_packets

__all__ = [
    "CommittedFetcher",
    "DeadLetter",
    "SinkService",
    "deadletter_value",
    "decode_closes",
    "encode_closes",
]

log = logging.getLogger("streamtap.sink")

CommittedFetcher = Callable[
    [list[TopicPartition]], Awaitable[dict[TopicPartition, OffsetAndMetadata]]
]
#: sends (key, value) to the dead-letter topic and returns once Kafka has it
DeadLetter = Callable[[bytes | None, bytes], Awaitable[None]]

DEADLETTER_VALUE_CAP = 256 * 1024
#: threads per upload worker for manifest writes (one per writer of a batch, side by side)
MANIFEST_THREADS_PER_WORKER = 4


def deadletter_value(
    topic: str, partition: int, offset: int, key: bytes | None, value: bytes | None, reason: str
) -> bytes:
    """The dead-letter record every streamtap consumer writes: why, where from, and the
    original bytes when they are small."""
    doc: dict[str, Any] = {
        "kind": "decode",
        "reason": reason,
        "topic": topic,
        "partition": partition,
        "offset": offset,
        "key": key.decode("utf-8", "replace") if key is not None else None,
    }
    if value is not None and len(value) <= DEADLETTER_VALUE_CAP:
        doc["value_b64"] = base64.b64encode(value).decode("ascii")
    return orjson.dumps(doc)


def encode_closes(closes: list[int]) -> str:
    return orjson.dumps({"v": 1, "closes": closes}).decode()


def decode_closes(metadata: str | None) -> list[int]:
    """Planned closes from commit metadata; anything unreadable means none."""
    if not metadata:
        return []
    try:
        data = orjson.loads(metadata)
    except orjson.JSONDecodeError:
        return []
    closes = data.get("closes") if isinstance(data, dict) else None
    if not isinstance(closes, list) or not all(isinstance(c, int) for c in closes):
        return []
    return sorted(closes)


@dataclass
class _Partition:
    batcher: PartitionBatcher
    base: int  # the offset a restart re-reads from: what is committed
    closes: list[int]
    generation: int
    commit_lock: asyncio.Lock = field(default_factory=asyncio.Lock)


@dataclass
class _Job:
    tp: TopicPartition
    generation: int
    last_offset: int
    batch: ClosedBatch | SpilledBatch
    memory_bytes: int
    #: the commit recording this batch's close (None: a previous run recorded it); True once
    #: Kafka has it, False if the partition was lost first
    recorded: asyncio.Task[bool] | None = None


class _Listener(ConsumerRebalanceListener):
    def __init__(self, service: SinkService) -> None:
        self._service = service

    async def on_partitions_revoked(self, revoked: Any) -> None:
        self._service.revoke(set(revoked))

    async def on_partitions_assigned(self, assigned: Any) -> None:
        return None


class SinkService:
    """One sink process; clients are built and closed by the caller (see ``sinks.cli``)."""

    def __init__(
        self,
        consumer: AIOKafkaConsumer,
        store: ObjectStore,
        settings: SinkSettings,
        fetch_committed: CommittedFetcher,
        spill: SpillArea,
        *,
        deadletter: DeadLetter | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.consumer = consumer
        self.store = store
        self.settings = settings
        self.fetch_committed = fetch_committed
        self.spill = spill
        self.clock = clock
        self.deadletter = deadletter
        self.stats = SinkStats()
        self.listener = _Listener(self)
        self._writer = BatchWriter(store)
        self._history = SegmentHistory(store)
        self._limits = BatchLimits(
            max_bytes=settings.max_batch_bytes,
            max_age_ms=int(settings.max_batch_age_s * 1000),
            max_messages=settings.max_batch_messages,
        )
        self._plan = PlanOptions(
            default_prefix=settings.prefix,
            format=settings.format,
            default_retention_days=settings.default_retention_days,
            default_lock_mode=settings.default_lock_mode,
        )
        self._parts: dict[TopicPartition, _Partition] = {}
        self._generations = itertools.count(1)
        self._queues: list[asyncio.Queue[_Job]] = [
            asyncio.Queue() for _ in range(settings.upload_workers)
        ]
        self._fatal: BaseException | None = None
        self._stop: asyncio.Event | None = None
        # Planning (PCAP bytes, hashes) gets one thread per upload worker: on the default
        # executor it would queue behind S3 calls that can block for seconds, and a batch
        # waiting to be planned is a batch not being uploaded.
        self._cpu: ThreadPoolExecutor | None = None
        # Manifests too: they decide when the next batch may write its own and when offsets
        # are committed, so they must not wait behind the next batches' PCAP PUTs on the
        # default executor.
        self._manifest_threads: ThreadPoolExecutor | None = None
        self._recording: set[asyncio.Task[bool]] = set()

    # --- ownership -----------------------------------------------------------------------

    def revoke(self, partitions: set[TopicPartition]) -> None:
        """Forget partitions moved away: their uncommitted batches are the new owner's now."""
        for tp in partitions:
            self._parts.pop(tp, None)
        self._writer.forget({tp.partition for tp in partitions})
        self._history.forget({tp.partition for tp in partitions})

    async def _partition(self, tp: TopicPartition, first_offset: int) -> _Partition:
        state = self._parts.get(tp)
        if state is not None:
            return state
        committed = await self._retry_kafka(lambda: self.fetch_committed([tp]), "read offsets")
        found = committed.get(tp)
        closes: list[int] = []
        base = first_offset
        if found is not None and found.offset >= 0:
            base = found.offset
            closes = [c for c in decode_closes(found.metadata) if c >= base]
        if closes:
            log.info("partition %s: rebuilding batches closed at %s", tp.partition, closes)
        state = _Partition(
            batcher=PartitionBatcher(tp.partition, self._limits, list(closes)),
            base=base,
            closes=list(closes),
            generation=next(self._generations),
        )
        self._parts[tp] = state
        return state

    # --- main loop -----------------------------------------------------------------------

    async def run(self, stop: asyncio.Event) -> None:
        """Consume until ``stop`` is set, then close open batches and wait for their upload."""
        self._stop = stop
        self.spill.reset()
        self._cpu = ThreadPoolExecutor(len(self._queues), thread_name_prefix="sink-plan")
        self._manifest_threads = ThreadPoolExecutor(
            len(self._queues) * MANIFEST_THREADS_PER_WORKER, thread_name_prefix="sink-manifest"
        )
        workers = [asyncio.create_task(self._upload_worker(q)) for q in self._queues]
        reporter = asyncio.create_task(self._report())
        try:
            while not stop.is_set() and self._fatal is None:
                self._apply_backpressure()
                records = await self.consumer.getmany(timeout_ms=500, max_records=1000)
                for tp, messages in records.items():
                    if messages:
                        await self._take(tp, messages)
                now_ms = int(self.clock() * 1000)
                for tp, state in list(self._parts.items()):
                    if await self._behind(tp):
                        continue
                    batch = state.batcher.due(now_ms)
                    if batch is not None:
                        await self._close(tp, state, batch)
            if self._fatal is None:
                for tp, state in list(self._parts.items()):
                    batch = state.batcher.flush()
                    if batch is not None:
                        await self._close(tp, state, batch)
                drained = asyncio.gather(*(q.join() for q in self._queues))
                try:
                    await asyncio.wait_for(drained, self.settings.shutdown_timeout_s)
                except TimeoutError:
                    log.warning("shutdown: uploads still pending; Kafka will replay them")
        finally:
            for task in [*workers, reporter, *self._recording]:
                task.cancel()
            await asyncio.gather(*workers, reporter, *self._recording, return_exceptions=True)
            self._cpu.shutdown(wait=False, cancel_futures=True)
            self._manifest_threads.shutdown(wait=False, cancel_futures=True)
            log.info("sink stopped: %s", self.stats.line())
        if self._fatal is not None:
            raise self._fatal

    async def _behind(self, tp: TopicPartition) -> bool:
        """True while Kafka already holds records of ``tp`` past those handed to the sink.

        The wall-clock close (``due``) is for a partition that has gone quiet. While the sink
        works through a backlog, the next records are already there: the batch fills up to its
        size limit, or closes on a message's own timestamp, instead of ending at every fetch
        boundary as small objects. Once the position reaches the high-water mark (aiokafka moves
        it past transaction markers too), ``due`` applies again, at once for old messages.
        """
        if tp not in self.consumer.assignment():
            return False
        high = self.consumer.highwater(tp)
        if high is None:
            return False
        try:
            position: int = await self.consumer.position(tp)
        except IllegalStateError:
            return False  # revoked meanwhile: the listener forgets the partition
        return position < high

    async def _take(self, tp: TopicPartition, messages: list[Any]) -> None:
        """Decode and batch one fetch's messages of a partition.

        The whole fetch is decoded without handing the loop back (only a dead-letter send or
        a spill to disk waits). Yielding every few milliseconds was tried, so that upload
        workers could start their next PUTs sooner: in the benchmark it made consuming ~20%
        slower (the workers' threads then compete with decoding for the GIL) and the whole run
        no faster. Yielding a few turns once per fetch, so that aiokafka's fetcher sends its
        next request before the decoding starts, was tried too: no faster either
        (docs/benchmarks.md, Sink).
        """
        state = await self._partition(tp, messages[0].offset)
        for record in messages:
            if self._parts.get(tp) is not state:
                return  # revoked while a dead-letter send or a spill was waited for
            if record.offset < state.base:
                continue
            try:
                message = decode_matched_packets(record.value or b"")
                check_packets(message.packets)
            except (RecordError, SinkError) as exc:
                self.stats.bad_messages += 1
                log.error("partition %s offset %s: skipped: %s", tp.partition, record.offset, exc)
                if self.deadletter is not None:
                    # Acknowledged before any later commit can move past this offset.
                    value = deadletter_value(
                        tp.topic, tp.partition, record.offset, record.key, record.value, str(exc)
                    )
                    await self._retry_kafka(
                        functools.partial(self.deadletter, record.key, value), "dead-letter"
                    )
                for batch in state.batcher.skip(record.offset):
                    await self._close(tp, state, batch)
                continue
            self.stats.messages += 1
            item = Consumed(
                tp.partition, record.offset, record.timestamp, len(record.value or b""), message
            )
            for batch in state.batcher.add(item):
                await self._close(tp, state, batch)

    def _apply_backpressure(self) -> None:
        assigned = self.consumer.assignment()
        # Memory only goes over its cap when the spill area could not take a batch either.
        full = self.stats.pending_bytes > self.settings.max_pending_bytes
        paused = set(self.consumer.paused())
        for tp in assigned:
            state = self._parts.get(tp)
            too_many = state is not None and len(state.closes) >= self.settings.max_pending_batches
            want = full or too_many
            if want and tp not in paused:
                self.consumer.pause(tp)
                self.stats.pauses += 1
            elif not want and tp in paused:
                self.consumer.resume(tp)
        self.stats.paused = bool(self.consumer.paused())

    # --- closing and uploading -----------------------------------------------------------

    async def _close(self, tp: TopicPartition, state: _Partition, batch: ClosedBatch) -> None:
        """Record the close, then queue the batch: in memory, or on disk past the memory cap.

        Planning (which reads recent manifests) and uploading both happen in the upload
        worker, so this loop never waits on S3 and keeps polling Kafka while S3 is away. The
        commit that records the close runs beside this loop too (a round trip per batch that
        decoding need not wait for); the worker waits for it before planning the batch, so
        nothing of a batch is stored before its close is in Kafka.
        """
        recorded = None
        if batch.last_offset not in state.closes:
            state.closes.append(batch.last_offset)
            recorded = asyncio.create_task(self._commit(tp, state))
            self._recording.add(recorded)
            recorded.add_done_callback(self._recording.discard)
        size = batch.size
        held: ClosedBatch | SpilledBatch = batch
        memory = size
        over = self.stats.pending_bytes + size > self.settings.max_pending_bytes
        if over and self.spill.fits(size):
            held = await asyncio.to_thread(self.spill.spill, batch)
            memory = 0
            self.stats.spilled_bytes = self.spill.used
            self.stats.spilled_bytes_total += size
        self.stats.pending_bytes += memory
        self.stats.pending_batches += 1
        self.stats.batches += 1
        job = _Job(tp, state.generation, batch.last_offset, held, memory, recorded)
        await self._queues[tp.partition % len(self._queues)].put(job)

    def _plan_batch(self, batch: ClosedBatch) -> list[PlannedObject]:
        before = (batch.first_offset, 0, 0)
        objects = plan_batch(batch, self._plan, lambda w: self._history.seen(w, before))
        self._history.record(objects)
        return objects

    async def _upload_worker(self, queue: asyncio.Queue[_Job]) -> None:
        """Plan this queue's batches in order and store up to ``batches_in_flight`` at once.

        Planning is sequential (a batch's dedupe depends on the batches planned before it).
        Storing overlaps: batch N+1's objects are sent while batch N's are still going up,
        but N+1's manifests wait until N has finished (manifests stored, offsets committed),
        so each chain grows in order and commits never pass an unstored batch. That keeps
        S3 busy across batch boundaries, which matters most for the last batches of a run.
        """
        previous: asyncio.Event | None = None
        running: set[asyncio.Task[None]] = set()
        try:
            while True:
                job = await queue.get()
                while len(running) >= self.settings.batches_in_flight:
                    await asyncio.wait(running, return_when=asyncio.FIRST_COMPLETED)
                finished = asyncio.Event()
                began = time.monotonic()
                objects = await self._guarded(self._prepare(job))
                if objects is None:  # not ours any more, or the sink is failing
                    finished.set()
                    queue.task_done()
                else:
                    store = self._store_job(job, objects, began, previous, finished)
                    task = asyncio.create_task(self._guarded(store, queue))
                    running.add(task)
                    task.add_done_callback(running.discard)
                previous = finished
        finally:
            for task in running:
                task.cancel()
            await asyncio.gather(*running, return_exceptions=True)

    async def _guarded(self, work: Awaitable[Any], queue: asyncio.Queue[_Job] | None = None) -> Any:
        """Run one step of an upload; a conflict or a bug stops the sink (never skips a batch)."""
        try:
            return await work
        except ObjectConflictError as exc:
            self.stats.conflicts += 1
            log.error("refusing to overwrite: %s; stopping the sink", exc)
            self._fail(exc)
        except Exception as exc:
            log.exception("upload worker failed")
            self._fail(exc)
        finally:
            if queue is not None:
                queue.task_done()
        return None

    def _fail(self, exc: BaseException) -> None:
        self._fatal = exc
        if self._stop is not None:
            self._stop.set()

    @staticmethod
    async def _in_thread(call: Callable[[], Any], executor: Executor | None = None) -> Any:
        """``call()`` in ``executor`` (None: the loop's default one, used for S3 calls)."""
        return await asyncio.get_running_loop().run_in_executor(executor, call)

    async def _until_done(
        self, what: str, call: Callable[[], Any], executor: Executor | None = None
    ) -> Any:
        """Run a blocking S3 call in a thread until it succeeds (S3 down, timeouts, 5xx)."""
        attempt = 0
        while True:
            try:
                return await self._in_thread(call, executor)
            except SinkError:
                raise  # conflicts and damaged data: retrying cannot help
            except Exception as exc:
                delay = self._delay(attempt)
                self.stats.retries += 1
                if attempt % 10 == 0:
                    log.warning(
                        "%s failed (%s: %s); retrying in %.1fs (attempt %d)",
                        what,
                        type(exc).__name__,
                        exc,
                        delay,
                        attempt + 1,
                    )
                attempt += 1
                await asyncio.sleep(delay)

    async def _prepare(self, job: _Job) -> list[PlannedObject] | None:
        """The batch's objects, once its close is recorded; None if it never was (the
        partition was lost first: its new owner redoes the batch)."""
        held = job.batch
        if job.recorded is not None and not await job.recorded:
            if isinstance(held, SpilledBatch):
                self.spill.release(held)
                self.stats.spilled_bytes = self.spill.used
            self.stats.pending_bytes -= job.memory_bytes
            self.stats.pending_batches -= 1
            return None
        batch = await asyncio.to_thread(held.load) if isinstance(held, SpilledBatch) else held
        objects: list[PlannedObject] = await self._until_done(
            f"planning batch {job.tp.partition}@{job.last_offset}",
            functools.partial(self._plan_batch, batch),
            self._cpu,
        )
        return objects

    async def _store_job(
        self,
        job: _Job,
        objects: list[PlannedObject],
        began: float,
        previous: asyncio.Event | None,
        finished: asyncio.Event,
    ) -> None:
        """Objects (any order, side by side), then, once the batch before is done, the
        manifests chain by chain, then the commit. ``finished`` is set in every case, so the
        batch after never waits forever; it checks ``_fatal`` before writing anything."""
        try:
            existed = await asyncio.gather(
                *(
                    self._until_done(
                        f"upload of {obj.key}", functools.partial(self._writer.put_object, obj)
                    )
                    for obj in objects
                )
            )
            if previous is not None:
                await previous.wait()
            if self._fatal is not None:
                return
            # Chains are independent: each writer's manifests go in order, writers side by side.
            chains: dict[WriterId, list[tuple[PlannedObject, bool]]] = {}
            for obj, was_there in zip(objects, existed, strict=True):
                chains.setdefault(obj.writer, []).append((obj, was_there))
            await asyncio.gather(*(self._write_manifests(chain) for chain in chains.values()))
            held = job.batch
            if isinstance(held, SpilledBatch):
                self.spill.release(held)
                self.stats.spilled_bytes = self.spill.used
            self.stats.pending_bytes -= job.memory_bytes
            self.stats.pending_batches -= 1
            self.stats.upload_done(time.monotonic() - began)
            state = self._parts.get(job.tp)
            if state is None or state.generation != job.generation:
                return  # stored, but the partition moved: its new owner commits
            if job.last_offset in state.closes:
                state.closes.remove(job.last_offset)
            state.base = max(state.base, job.last_offset + 1)
            # The next batch may write its manifests now; its own commit, serialised with this
            # one, carries this batch's progress too.
            finished.set()
            await self._commit(job.tp, state)
        finally:
            finished.set()

    async def _write_manifests(self, chain: list[tuple[PlannedObject, bool]]) -> None:
        for obj, existed in chain:
            outcome: WriteOutcome = await self._until_done(
                f"manifest of {obj.key}",
                functools.partial(self._writer.put_manifest, obj, existed),
                self._manifest_threads,
            )
            self.stats.objects += 1
            self.stats.objects_already_stored += int(outcome.already_stored)
            self.stats.bytes_uploaded += outcome.bytes_written

    async def _commit(self, tp: TopicPartition, state: _Partition) -> bool:
        """Commit ``base`` and the pending closes; False if the partition was lost meanwhile."""
        async with state.commit_lock:
            attempt = 0
            while self._parts.get(tp) is state:
                offsets = {tp: OffsetAndMetadata(state.base, encode_closes(state.closes))}
                try:
                    await self.consumer.commit(offsets)
                    return True
                except (CommitFailedError, IllegalStateError) as exc:
                    if tp not in self.consumer.assignment():
                        log.info("partition %s moved before commit (%s)", tp.partition, exc)
                        return False
                    error: Exception = exc
                except KafkaError as exc:
                    error = exc
                self.stats.commit_retries += 1
                delay = self._delay(attempt)
                if attempt % 10 == 0:
                    log.warning("commit failed (%s); retrying in %.1fs", error, delay)
                attempt += 1
                await asyncio.sleep(delay)
            return False

    async def _retry_kafka(self, call: Callable[[], Awaitable[Any]], what: str) -> Any:
        attempt = 0
        while True:
            try:
                return await call()
            except KafkaError as exc:
                delay = self._delay(attempt)
                log.warning("%s failed (%s); retrying in %.1fs", what, exc, delay)
                attempt += 1
                await asyncio.sleep(delay)

    def _delay(self, attempt: int) -> float:
        """Full jitter: a fleet of sinks does not retry in lockstep against a recovering S3."""
        cap = min(self.settings.retry_max_s, self.settings.retry_base_s * 2 ** min(attempt, 20))
        return random.uniform(self.settings.retry_base_s / 2, cap)

    async def _report(self) -> None:
        while True:
            await asyncio.sleep(self.settings.stats_interval_s)
            log.info("sink: %s", self.stats.line())
