"""Running one replay job: list, prune, download in parallel, re-dissect, filter, write out.

Each capture object is dissected on its own by a fresh engine: in a pool of worker processes
when the job asks for more than one (the engine is CPU-bound Python, so threads would not
help), else in a thread of its own that hands the records over as they come (``_Feed``). Sink
objects hold whole record segments, so nothing is lost by that, and it is what makes a job
resumable object by object (no engine state has to survive a crash) and lets objects be
downloaded and dissected ahead in parallel. Results are taken in capture-time order, with at
most ``parallel`` objects in flight, so memory stays bounded by that many objects (in a thread,
by that many downloads plus a few hand-overs of records each) whatever the size of the bucket.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterable
from concurrent.futures import Executor, ProcessPoolExecutor
from typing import Any, Final, Protocol

from replay.dissect import dissect_capture
from replay.errors import ReplayError
from replay.jobs import Job, JobStore
from replay.manifest import criteria_from, may_match
from replay.query import Query, compile_query
from replay.sources import CaptureObject, list_source, read_object
from replay.store import redacted
from streamtap.schema import StreamRecord

__all__ = ["RecordSink", "restore_names", "run_job"]

Dissect = Callable[[bytes, str], Iterable[StreamRecord]]
Progress = Callable[[Job], None]


class RecordSink(Protocol):
    """Where a job's records go: the local store (``tap``) or a Kafka topic (``replay``)."""

    async def write(self, records: list[StreamRecord]) -> None: ...

    async def close(self) -> None: ...


def restore_names(record: StreamRecord, names: dict[str, str]) -> StreamRecord:
    """Fill empty ``src.name``/``dst.name`` from the recording's resolution data (ip -> name).

    Names seen at capture time are kept as they are; the stored data only fills the gaps, the
    way Kubeshark read ``name_resolution_history.json`` back when it opened a recording.
    """
    if not names:
        return record
    changed = False
    entries = []
    for entry in record.entries:
        new = entry
        for side in ("src", "dst"):
            ep = entry.get(side)
            if isinstance(ep, dict) and not ep.get("name") and ep.get("ip") in names:
                if new is entry:
                    new = dict(entry)
                new[side] = {**ep, "name": names[ep["ip"]]}
                changed = True
        entries.append(new)
    return record.model_copy(update={"entries": tuple(entries)}) if changed else record


def _select(record: StreamRecord, query: Query | None) -> tuple[StreamRecord | None, int]:
    """The record as it is written out (redacted) if any entry matches, and the match count."""
    if query is None or (query.plan.exact and not query.plan.where and not query.redacts):
        return record, len(record.entries)
    matches = sum(1 for e in record.entries if query.match(e))
    if not matches:
        return None, 0
    if query.redacts:
        record = record.model_copy(
            update={"entries": tuple(redacted(query, e) for e in record.entries)}
        )
    return record, matches


def _plan_objects(
    job: Job, objects: list[CaptureObject], query: Query | None
) -> list[CaptureObject]:
    spec = job.spec_model
    criteria = criteria_from(query.plan if query else None, spec.since_ns(), spec.until_ns(),
                             spec.rule)  # fmt: skip
    selected = [o for o in objects if o.manifest is None or may_match(o.manifest, criteria)]
    job.objects_listed = len(objects)
    job.objects_selected = len(selected)
    job.objects_pruned = len(objects) - len(selected)
    job.bytes_total = sum(o.size for o in selected)
    return selected


def _resolution(objects: list[CaptureObject]) -> dict[str, str]:
    """ip -> name from every manifest of the recording, not only the object's own.

    A name is often resolved in one batch and used in a later one (the DNS answer comes first,
    the connection later), which is why Kubeshark kept one resolution history per recording.
    The first name recorded for an address wins, so a replay shows the same name whatever
    subset of objects it downloads.
    """
    names: dict[str, str] = {}
    for obj in objects:
        if obj.manifest is not None:
            for ip, name in obj.manifest.names.items():
                names.setdefault(ip, name)
    return names


Dissected = tuple[list[StreamRecord], "ReplayError | None"]


def _dissect_all(dissect: Dissect, data: bytes, node: str) -> Dissected:
    """The records of one capture, and the damage that cut it short (if any): the frames
    before the damage are real traffic and are kept."""
    records: list[StreamRecord] = []
    try:
        records.extend(dissect(data, node))
    except ReplayError as exc:
        return records, exc
    return records, None


#: records per hand-over from a dissecting thread, and hand-overs it may run ahead: caps what
#: one object in flight holds to ~``_FEED_AHEAD * _FEED_CHUNK`` records beyond what is written
_FEED_CHUNK: Final = 256
_FEED_AHEAD: Final = 8
#: records per ``RecordSink.write``
_SINK_BATCH: Final = 256


class _End:
    """The last item of a ``_Feed``: the damage that cut the capture short, or the error."""

    __slots__ = ("damage", "error")

    def __init__(self, damage: ReplayError | None, error: BaseException | None) -> None:
        self.damage = damage
        self.error = error


class _Feed:
    """One capture object's records, handed from the thread dissecting it to the job's loop
    in chunks, at most ``_FEED_AHEAD`` chunks ahead of the loop.

    Holding every record of an object until it was all dissected cost the local-file replay
    ~20% of its CPU: the cyclic GC rescanned the growing pile (a 253 MB capture holds ~1M
    tracked objects), where records written as they come are freed young. The thread is its
    own, not the default executor's, so objects dissected ahead that wait for the loop can
    never take the threads the loop needs. ``stop()`` releases a waiting thread for good.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self._items: asyncio.Queue[list[StreamRecord] | _End] = asyncio.Queue()
        self._room = threading.Semaphore(_FEED_AHEAD)
        self._stopped = threading.Event()
        #: set once ``records`` is exhausted: the damage that cut the capture short, if any
        self.damage: ReplayError | None = None

    def produce(self, dissect: Dissect, data: bytes, node: str) -> None:
        """Thread body: dissect ``data`` and hand the records over (``records`` takes them)."""
        chunk: list[StreamRecord] = []
        end = _End(None, None)
        try:
            for rec in dissect(data, node):
                chunk.append(rec)
                if len(chunk) >= _FEED_CHUNK:
                    if not self._put(chunk):
                        return
                    chunk = []
        except ReplayError as exc:
            end.damage = exc
        except BaseException as exc:  # a bug: re-raised in the loop, where the job fails
            end.error = exc
        if chunk and not self._put(chunk):
            return
        self._put(end)

    def put_all(self, records: list[StreamRecord], damage: ReplayError | None) -> None:
        """Everything at once (the records came back whole from a worker process)."""
        self._items.put_nowait(records)
        self._items.put_nowait(_End(damage, None))

    def _put(self, item: list[StreamRecord] | _End) -> bool:
        if not isinstance(item, _End):
            while not self._room.acquire(timeout=0.5):
                if self._stopped.is_set():
                    return False
        if self._stopped.is_set():
            return False
        try:
            self.loop.call_soon_threadsafe(self._items.put_nowait, item)
        except RuntimeError:  # the loop is closed: nobody is reading any more
            return False
        return True

    async def records(self) -> AsyncIterator[list[StreamRecord]]:
        """The chunks in order; then ``damage`` says whether the capture was cut short."""
        while True:
            item = await self._items.get()
            if isinstance(item, _End):
                if item.error is not None:
                    raise item.error
                self.damage = item.damage
                return
            self._room.release()
            yield item

    def stop(self) -> None:
        """Nobody will read on: let the dissecting thread end."""
        self._stopped.set()


async def run_job(
    job: Job,
    jobs: JobStore,
    cancel: threading.Event,
    *,
    sink: RecordSink,
    client: Any = None,
    node: str = "replay",
    dissect: Dissect = dissect_capture,
    progress: Progress | None = None,
    objects: list[CaptureObject] | None = None,
) -> Job:
    """Run ``job`` to the end (or until ``cancel`` is set); its state file is kept current."""
    spec = job.spec_model
    query = compile_query(spec.kfl) if spec.kfl.strip() else None
    job.state = "running"
    job.started = job.started or time.time()
    job.error = None
    job.pid = os.getpid()
    jobs.clear_cancel(job.id)
    jobs.save(job)
    try:
        listed = (
            objects
            if objects is not None
            else await asyncio.to_thread(list_source, spec.source, client)
        )
        selected = _plan_objects(job, listed, query)
        names = _resolution(listed)
        done = set(job.done_keys)
        todo = [o for o in selected if o.key not in done]
        jobs.save(job)
        if progress:
            progress(job)
        await _replay_objects(job, jobs, cancel, todo, sink, client, node, dissect, query,
                              progress, names)  # fmt: skip
        if job.state == "running":
            job.state = "cancelled" if _cancelled(cancel, jobs, job) else "done"
    except ReplayError as exc:
        job.state = "failed"
        job.error = str(exc)
    except Exception as exc:
        job.state = "failed"
        job.error = f"{type(exc).__name__}: {exc}"
    finally:
        await sink.close()
        job.finished = time.time()
        jobs.save(job)
        if progress:
            progress(job)
    return job


async def _replay_objects(
    job: Job,
    jobs: JobStore,
    cancel: threading.Event,
    todo: list[CaptureObject],
    sink: RecordSink,
    client: Any,
    node: str,
    dissect: Dissect,
    query: Query | None,
    progress: Progress | None,
    names: dict[str, str],
) -> None:
    spec = job.spec_model
    parallel = max(1, spec.parallel, spec.workers)
    pending: list[tuple[CaptureObject, asyncio.Task[_Feed]]] = []
    it = iter(todo)
    matched_entries = 0
    pace_start: tuple[float, int] | None = None
    pool: Executor | None = None
    if spec.workers > 1:
        # spawn, not fork: this process runs threads (the API server, other jobs).
        pool = ProcessPoolExecutor(spec.workers, mp_context=multiprocessing.get_context("spawn"))

    def fill() -> None:
        while len(pending) < parallel:
            obj = next(it, None)
            if obj is None:
                return
            # Dissect as the node that recorded it: entries keep their node.name, and stream
            # ids (which hash the node) come out as the sensor made them.
            recorded_by = (obj.manifest.node if obj.manifest else "") or node
            task = asyncio.create_task(_fetch(obj, client, dissect, recorded_by, pool))
            pending.append((obj, task))

    fill()
    try:
        while pending and not _cancelled(cancel, jobs, job):
            obj, task = pending.pop(0)
            try:
                feed = await task
            except ReplayError as exc:
                job.objects_failed += 1
                job.error = str(exc)
                fill()
                continue
            fill()
            kept = 0
            batch: list[StreamRecord] = []
            limited = False
            try:
                async for chunk in feed.records():
                    for rec in chunk:
                        job.streams += 1 if rec.segment == 0 else 0
                        rec = restore_names(rec, names)
                        out, n = _select(rec, query)
                        if out is None:
                            continue
                        if spec.rate > 0 and not kept:
                            pace_start = await _pace(out.first_ts_ns, spec.rate, pace_start)
                        batch.append(out)
                        kept += 1
                        job.entries += len(out.entries)
                        job.streams_kept += 1 if out.segment == 0 else 0
                        matched_entries += n
                        if query is not None and query.limit and matched_entries >= query.limit:
                            limited = True
                            break
                        if len(batch) >= _SINK_BATCH:
                            await sink.write(batch)
                            batch = []
                    if limited:
                        break
            finally:
                feed.stop()
            if batch:
                await sink.write(batch)
            if feed.damage is not None:
                job.objects_failed += 1
                job.error = f"{obj.key}: {feed.damage}"
            job.records_out += kept
            job.objects_done += 1
            job.bytes_done += obj.size
            job.done_keys.append(obj.key)
            await asyncio.to_thread(jobs.save, job)
            if progress:
                progress(job)
            if limited:
                break
        if _cancelled(cancel, jobs, job):
            job.state = "cancelled"
    finally:
        for _obj, task in pending:
            task.cancel()
            if task.done() and not task.cancelled() and task.exception() is None:
                task.result().stop()
        if pool is not None:
            pool.shutdown(wait=False, cancel_futures=True)


async def _fetch(
    obj: CaptureObject, client: Any, dissect: Dissect, node: str, pool: Executor | None
) -> _Feed:
    """Download one object (a thread: minio blocks) and start dissecting it: in the pool (one
    list back), or in a thread of its own that hands records over as they come (``_Feed``)."""
    data = await asyncio.to_thread(read_object, obj, client)
    feed = _Feed(asyncio.get_running_loop())
    if pool is not None:
        records, damage = await feed.loop.run_in_executor(pool, _dissect_all, dissect, data, node)
        feed.put_all(records, damage)
    else:
        threading.Thread(
            target=feed.produce, args=(dissect, data, node), name="replay-dissect", daemon=True
        ).start()
    return feed


def _cancelled(cancel: threading.Event, jobs: JobStore, job: Job) -> bool:
    if not cancel.is_set() and jobs.cancel_requested(job.id):
        cancel.set()
    return cancel.is_set()


async def _pace(ts_ns: int, rate: float, start: tuple[float, int] | None) -> tuple[float, int]:
    """Sleep so capture time advances at most ``rate`` times as fast as the wall clock."""
    if start is None:
        return (time.monotonic(), ts_ns)
    wall0, ts0 = start
    due = wall0 + (ts_ns - ts0) / 1e9 / rate
    delay = due - time.monotonic()
    if delay > 0:
        await asyncio.sleep(delay)
    return start
