"""Wiring: the record sinks (store or Kafka topic) and the job runner the CLI and API share.

Clients are built here, once per job, from the settings handed in at the edge, and every one is
stopped in the same function that started it.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from replay.dissect import dissect_capture
from replay.jobs import Job, JobManager, JobStore
from replay.runner import Dissect, Progress, RecordSink, run_job
from replay.sources import make_s3_client, parse_s3_url
from replay.store import EntryStore
from streamtap.schema import StreamRecord, encode_record
from streamtap.settings import Settings

__all__ = [
    "StoreSink",
    "TopicSink",
    "default_store_path",
    "job_folder",
    "make_manager",
    "make_runner",
    "run_sync",
]


def job_folder(settings: Settings) -> Path:
    return settings.home / "replay" / "jobs"


def default_store_path(settings: Settings) -> Path:
    return settings.home / "replay" / "tap.db"


class StoreSink:
    """Records into the embedded store (what ``streamtap tap`` shows)."""

    def __init__(self, store: EntryStore) -> None:
        self.store = store

    async def write(self, records: list[StreamRecord]) -> None:
        await asyncio.to_thread(self.store.add_records, records)

    async def close(self) -> None:
        return None


class TopicSink:
    """Records onto a Kafka topic, keyed by stream id, in the live schema."""

    def __init__(self, settings: Settings, topic: str) -> None:
        self.settings = settings
        self.topic = topic
        self._publisher: Any = None

    async def _start(self) -> Any:
        if self._publisher is None:
            from producers.publisher import RecordPublisher
            from streamtap.kafka import make_producer

            self._publisher = RecordPublisher(make_producer(self.settings), self.topic)
            await self._publisher.start()
        return self._publisher

    async def write(self, records: list[StreamRecord]) -> None:
        publisher = await self._start()
        for record in records:
            await publisher.publish(record.key, encode_record(record))

    async def close(self) -> None:
        if self._publisher is not None:
            await self._publisher.flush()
            await self._publisher.stop()
            self._publisher = None


JobRunner = Callable[[Job, JobStore, threading.Event], None]


def make_runner(
    settings: Settings,
    store: EntryStore | None = None,
    *,
    dissect: Dissect = dissect_capture,
    progress: Progress | None = None,
) -> JobRunner:
    """A blocking ``runner(job, jobs, cancel)``; each call runs one job on its own event loop."""

    def runner(job: Job, jobs: JobStore, cancel: threading.Event) -> None:
        spec = job.spec_model
        sink: RecordSink
        if spec.to_store:
            if store is None:
                raise ValueError("this service has no store to replay into")
            sink = StoreSink(store)
        else:
            job.topic = spec.to_topic or f"replay.{job.id}"
            sink = TopicSink(settings, job.topic)
        client = make_s3_client(settings) if parse_s3_url(spec.source) else None
        asyncio.run(
            run_job(job, jobs, cancel, sink=sink, client=client, node=settings.node_name,
                    dissect=dissect, progress=progress)
        )  # fmt: skip

    return runner


def make_manager(
    settings: Settings, store: EntryStore | None = None, *, dissect: Dissect = dissect_capture
) -> JobManager:
    return JobManager(JobStore(job_folder(settings)), make_runner(settings, store, dissect=dissect))


def run_sync(runner: JobRunner, job: Job, jobs: JobStore, cancel: threading.Event) -> Job:
    """Run a job in this thread (the CLI's way) and return its final state."""
    runner(job, jobs, cancel)
    return jobs.load(job.id)
