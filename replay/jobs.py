"""Replay jobs: what was asked, how far it got, and the files that let it resume after a crash.

A job's state is one JSON file under ``<STREAMTAP_HOME>/replay/jobs/``, rewritten atomically
(write to a temp file, then rename) after every finished object. A crash therefore loses at most
the object in progress, and ``streamtap replay --resume <id>`` skips every object the file lists
as done. Cancelling sets a flag the runner checks between objects, so a cancelled job stops
cleanly with its counters and the objects it finished on record.
"""

from __future__ import annotations

import os
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

import orjson
from pydantic import BaseModel, Field

from replay.errors import ReplayError

__all__ = ["Job", "JobManager", "JobSpec", "JobState", "JobStore", "new_job_id"]

JobState = Literal["queued", "running", "done", "failed", "cancelled"]


class JobSpec(BaseModel):
    """What to replay and where the records go."""

    source: str = Field(description="s3://bucket/prefix, a local capture file, or a folder")
    since: datetime | None = Field(default=None, description="skip traffic before this time")
    until: datetime | None = Field(default=None, description="skip traffic after this time")
    rule: str | None = Field(default=None, description="only objects recorded by this rule")
    kfl: str = Field(default="", description="keep only streams with an entry matching this query")
    to_topic: str | None = Field(default=None, description="Kafka topic; default replay.<job-id>")
    rate: float = Field(
        default=0.0, ge=0, description="speed vs capture time (1 = real time, 0 = max)"
    )
    parallel: int = Field(default=4, ge=1, le=64, description="objects downloaded at once")
    workers: int = Field(
        default=1, ge=1, le=64, description="processes dissecting objects in parallel"
    )
    to_store: bool = Field(default=False, description="write into the local store instead of Kafka")

    def since_ns(self) -> int | None:
        return int(self.since.timestamp() * 1e9) if self.since else None

    def until_ns(self) -> int | None:
        return int(self.until.timestamp() * 1e9) if self.until else None


@dataclass
class Job:
    """A job's progress counters and the keys of the objects it finished (for resume)."""

    id: str
    spec: dict[str, Any]
    state: JobState = "queued"
    topic: str | None = None
    created: float = field(default_factory=time.time)
    started: float | None = None
    finished: float | None = None
    objects_listed: int = 0
    objects_selected: int = 0
    objects_pruned: int = 0
    objects_done: int = 0
    objects_failed: int = 0
    bytes_total: int = 0
    bytes_done: int = 0
    streams: int = 0
    streams_kept: int = 0
    entries: int = 0
    records_out: int = 0
    error: str | None = None
    pid: int | None = None
    done_keys: list[str] = field(default_factory=list)

    @property
    def spec_model(self) -> JobSpec:
        return JobSpec.model_validate(self.spec)

    @property
    def alive(self) -> bool:
        """Whether a job marked running still has a process behind it (not killed mid-run)."""
        if self.state not in ("queued", "running") or self.pid is None:
            return self.state in ("queued", "running")
        try:
            os.kill(self.pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True

    @property
    def shown_state(self) -> str:
        """``interrupted`` for a job whose process died while running (resume it)."""
        return (
            self.state if self.alive or self.state not in ("queued", "running") else "interrupted"
        )

    def public(self) -> dict[str, Any]:
        """The job as the API shows it (without the long list of finished keys)."""
        out = asdict(self)
        out.pop("done_keys")
        out["state"] = self.shown_state
        elapsed = (self.finished or time.time()) - self.started if self.started else 0.0
        out["elapsed_s"] = round(elapsed, 3)
        out["mb_per_s"] = round(self.bytes_done / elapsed / 1e6, 2) if elapsed > 0 else 0.0
        return out


def new_job_id() -> str:
    """Sortable by creation time, unique without coordination: ``20261127-121314-3fa2``."""
    return time.strftime("%Y%m%d-%H%M%S", time.gmtime()) + "-" + secrets.token_hex(2)


class JobStore:
    """Job state files in one folder; every write is atomic."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()

    def path(self, job_id: str) -> Path:
        if not job_id or "/" in job_id or job_id.startswith("."):
            raise ReplayError(f"not a job id: {job_id!r}")
        return self.folder / f"{job_id}.json"

    def save(self, job: Job) -> None:
        path = self.path(job.id)
        tmp = path.with_suffix(f".tmp{threading.get_ident()}")
        with self._lock:
            tmp.write_bytes(orjson.dumps(asdict(job), option=orjson.OPT_INDENT_2))
            os.replace(tmp, path)

    def load(self, job_id: str) -> Job:
        path = self.path(job_id)
        try:
            data = orjson.loads(path.read_bytes())
        except FileNotFoundError:
            raise ReplayError(f"no job {job_id} in {self.folder}") from None
        except orjson.JSONDecodeError as exc:
            raise ReplayError(f"{path}: damaged job file: {exc}") from exc
        return Job(**data)

    def request_cancel(self, job_id: str) -> None:
        """Ask a job running in another process to stop (it checks between objects)."""
        self.path(job_id).with_suffix(".cancel").touch()

    def cancel_requested(self, job_id: str) -> bool:
        return self.path(job_id).with_suffix(".cancel").exists()

    def clear_cancel(self, job_id: str) -> None:
        self.path(job_id).with_suffix(".cancel").unlink(missing_ok=True)

    def list(self) -> list[Job]:
        jobs = []
        for path in sorted(self.folder.glob("*.json"), reverse=True):
            try:
                jobs.append(Job(**orjson.loads(path.read_bytes())))
            except (orjson.JSONDecodeError, TypeError):
                continue
        return jobs


Runner = Callable[[Job, JobStore, threading.Event], None]


class JobManager:
    """Runs jobs submitted over the API, one thread each, and cancels them on request."""

    def __init__(self, store: JobStore, runner: Runner) -> None:
        self.store = store
        self._runner = runner
        self._cancel: dict[str, threading.Event] = {}
        self._threads: dict[str, threading.Thread] = {}
        self._live: dict[str, Job] = {}

    def submit(self, spec: JobSpec, job_id: str | None = None) -> Job:
        job = Job(id=job_id or new_job_id(), spec=spec.model_dump(mode="json"))
        self.store.save(job)
        self.start(job)
        return job

    def start(self, job: Job) -> None:
        """Run (or resume) ``job`` in a background thread."""
        cancel = threading.Event()
        self._cancel[job.id] = cancel
        self._live[job.id] = job
        thread = threading.Thread(
            target=self._runner, args=(job, self.store, cancel), name=f"replay-{job.id}",
            daemon=True,
        )  # fmt: skip
        self._threads[job.id] = thread
        thread.start()

    def get(self, job_id: str) -> Job | None:
        if job_id in self._live:
            return self._live[job_id]
        try:
            return self.store.load(job_id)
        except ReplayError:
            return None

    def list(self) -> list[Job]:
        on_disk = {j.id: j for j in self.store.list()}
        on_disk.update(self._live)
        return sorted(on_disk.values(), key=lambda j: j.id, reverse=True)

    def cancel(self, job_id: str) -> Job | None:
        job = self.get(job_id)
        if job is None:
            return None
        event = self._cancel.get(job_id)
        if event is not None:
            event.set()
        elif job.alive:
            self.store.request_cancel(job_id)
        return job

    def stop_all(self, timeout: float | None = None) -> None:
        """Cancel the jobs this manager started and wait for them (service shutdown)."""
        for event in self._cancel.values():
            event.set()
        for thread in self._threads.values():
            thread.join(timeout)

    def wait(self, job_id: str, timeout: float | None = None) -> Job | None:
        thread = self._threads.get(job_id)
        if thread is not None:
            thread.join(timeout)
        return self.get(job_id)
