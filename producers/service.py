"""The sensor service: a thin async shell that moves frames through the pure engine to an outlet.

A thread reads frames (a file, stdin or a live interface may block) into a bounded queue; the
event loop feeds them to the engine and hands finished records to an outlet (Kafka, or JSON lines
on stdout). The queue bound and the publisher's in-flight cap together give back-pressure from a
slow broker all the way to the reader, so memory stays bounded and nothing is dropped.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import IO, Any, Protocol

import orjson

from producers.capture import Frame
from producers.engine import Engine
from producers.publisher import RecordPublisher
from streamtap.schema import StreamRecord, encode_record

__all__ = [
    "EntriesOutlet",
    "JsonLinesOutlet",
    "KafkaOutlet",
    "Outlet",
    "SensorReport",
    "run_sensor",
    "tune_gc",
]

log = logging.getLogger("streamtap.sensor")

_BATCH = 512  # frames handed from the reader thread per queue item
_QUEUE_BATCHES = 64  # ~32k frames in flight between reader and engine


#: allocations between young collections (CPython's default is 700)
GC_GEN0_THRESHOLD = 50_000


def tune_gc() -> None:
    """Make the cyclic GC cheap for a sensor: freeze the startup heap, collect young objects
    less often.

    The engine allocates a few short-lived containers per packet and keeps many streams open
    (their frames, entries and dissector state are long-lived, tracked objects). With the
    default gen0 threshold of 700, the collector runs every few packets and its older
    generations keep rescanning those open streams: ~15% of the engine's CPU on the sensor
    benchmark. Almost nothing the engine makes is cyclic (a stream's ``Conn``/``HalfStream``
    pair is, and lives as long as the stream), so collecting 70x less often costs little
    memory; ``gc.freeze()`` moves what exists at startup (modules, settings, clients) out of
    every scan. Called once by ``streamtap sensor`` before the run, and by the benchmark.
    """
    gc.collect()
    gc.freeze()
    _, gen1, gen2 = gc.get_threshold()
    gc.set_threshold(GC_GEN0_THRESHOLD, gen1, gen2)


class Outlet(Protocol):
    """Where finished records go."""

    async def put(self, record: StreamRecord) -> None: ...

    async def close(self) -> None: ...

    def stats(self) -> dict[str, Any]: ...


class KafkaOutlet:
    """Records to the streams topic, keyed by stream id."""

    def __init__(self, publisher: RecordPublisher) -> None:
        self.publisher = publisher

    async def put(self, record: StreamRecord) -> None:
        await self.publisher.publish(record.key, encode_record(record))

    async def close(self) -> None:
        await self.publisher.stop()

    def stats(self) -> dict[str, Any]:
        return self.publisher.stats.as_dict()


class JsonLinesOutlet:
    """Records as JSON lines (packets base64): what would be published, for ``jq``."""

    def __init__(self, out: IO[bytes]) -> None:
        self.out = out
        self.written = 0

    async def put(self, record: StreamRecord) -> None:
        self.out.write(encode_record(record) + b"\n")
        self.written += 1

    async def close(self) -> None:
        self.out.flush()

    def stats(self) -> dict[str, Any]:
        return {"written": self.written}


class EntriesOutlet(JsonLinesOutlet):
    """Just the entries, one JSON object per line."""

    async def put(self, record: StreamRecord) -> None:
        for entry in record.entries:
            self.out.write(orjson.dumps(entry) + b"\n")
            self.written += 1


@dataclass
class SensorReport:
    """What a run did, for the final summary and the stats topic."""

    node: str
    source: str
    engine: dict[str, Any]
    outlet: dict[str, Any]
    elapsed_s: float
    source_error: str | None = None
    kernel: dict[str, int] | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "node": self.node,
            "source": self.source,
            "elapsed_s": round(self.elapsed_s, 3),
            "engine": self.engine,
            "outlet": self.outlet,
            "source_error": self.source_error,
            "kernel": self.kernel,
        }


class _Reader(threading.Thread):
    """Reads frames in a thread so a blocking source never stalls the event loop."""

    def __init__(
        self, frames: Iterable[Frame], loop: asyncio.AbstractEventLoop, queue: asyncio.Queue[Any]
    ) -> None:
        super().__init__(name="streamtap-capture", daemon=True)
        self.frames = frames
        self.loop = loop
        self.queue = queue
        self.error: BaseException | None = None
        self.stopping = threading.Event()

    def run(self) -> None:
        batch: list[Frame] = []
        try:
            for frame in self.frames:
                batch.append(frame)
                if len(batch) >= _BATCH:
                    self._put(batch)
                    batch = []
                if self.stopping.is_set():
                    break
        except BaseException as exc:  # reported by the service, never swallowed
            self.error = exc
        finally:
            if batch:
                self._put(batch)
            self._put(None)

    def _put(self, item: list[Frame] | None) -> None:
        future = asyncio.run_coroutine_threadsafe(self.queue.put(item), self.loop)
        future.result()


async def _pace(first_ts: int, ts: int, started: float, speed: float) -> None:
    """Sleep until packet time ``ts`` is due at ``speed`` times capture pace."""
    due = started + (ts - first_ts) / 1e9 / speed
    delay = due - time.monotonic()
    if delay > 0:
        await asyncio.sleep(delay)


async def run_sensor(
    frames: Iterable[Frame],
    engine: Engine,
    outlet: Outlet,
    *,
    source: str,
    speed: float = 0.0,
    report_every_s: float = 10.0,
    on_report: Callable[[SensorReport, bool], Any] | None = None,
    source_error: Callable[[], str | None] = lambda: None,
    kernel_stats: Callable[[], dict[str, int] | None] = lambda: None,
) -> SensorReport:
    """Run frames through the engine into the outlet until the source ends or is cancelled.

    ``on_report(report, final)`` is called every ``report_every_s`` and once at the end (it
    logs, draws the progress line, publishes to the stats topic).
    """
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[list[Frame] | None] = asyncio.Queue(_QUEUE_BATCHES)
    reader = _Reader(frames, loop, queue)
    started = time.monotonic()
    next_report = started + report_every_s
    first_ts: int | None = None

    def report(final: bool) -> SensorReport:
        error = source_error() or (repr(reader.error) if reader.error else None)
        rep = SensorReport(
            node=engine.node.name,
            source=source,
            engine=engine.stats_dict(),
            outlet=outlet.stats(),
            elapsed_s=time.monotonic() - started,
            source_error=error,
            kernel=kernel_stats(),
        )
        if on_report is not None:
            on_report(rep, final)
        return rep

    reader.start()
    try:
        while (batch := await queue.get()) is not None:
            for frame in batch:
                if speed > 0:
                    first_ts = frame[0] if first_ts is None else first_ts
                    await _pace(first_ts, frame[0], started, speed)
                for record in engine.feed(frame):
                    await outlet.put(record)
            if time.monotonic() >= next_report:
                next_report = time.monotonic() + report_every_s
                report(final=False)
        for record in engine.flush():
            await outlet.put(record)
    finally:
        reader.stopping.set()
        while reader.is_alive() and not queue.empty():
            queue.get_nowait()  # let a reader blocked on a full queue finish
        await outlet.close()
    return report(final=True)
