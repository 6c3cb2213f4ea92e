"""The rich progress bar of a replay job: objects, bytes, streams, rate and ETA.

Driven by the job's own counters (the runner calls ``update(job)`` after every object), so what
the bar shows is exactly what the state file records.
"""

from __future__ import annotations

from types import TracebackType

from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)

from replay.jobs import Job

__all__ = ["JobProgress"]


class JobProgress:
    """A context manager wrapping ``rich.progress.Progress`` for one job."""

    def __init__(self, console: Console) -> None:
        self._progress = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            DownloadColumn(),
            TransferSpeedColumn(),
            TextColumn("{task.fields[objects]} objects · {task.fields[streams]} streams"),
            TimeRemainingColumn(),
            console=console,
            transient=False,
        )
        self._task: TaskID | None = None

    def __enter__(self) -> JobProgress:
        self._progress.__enter__()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._progress.__exit__(exc_type, exc, tb)

    def update(self, job: Job) -> None:
        objects = f"{job.objects_done}/{job.objects_selected}"
        streams = f"{job.streams_kept:,}"
        if self._task is None:
            self._task = self._progress.add_task(
                f"replay {job.id}", total=job.bytes_total or None, objects=objects, streams=streams
            )
        self._progress.update(
            self._task,
            completed=job.bytes_done,
            total=job.bytes_total or None,
            description=f"replay {job.id} [{job.state}]",
            objects=objects,
            streams=streams,
        )
