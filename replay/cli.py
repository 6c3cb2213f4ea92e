"""``streamtap tap``, ``streamtap replay`` and ``streamtap jobs``: parse options, call services.

Nothing here decides anything about replaying; it builds settings once, hands them to
``replay.service`` and shows progress and results.
"""

from __future__ import annotations

import hashlib
import signal
import sys
import threading
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.table import Table

from replay.errors import ReplayError
from replay.jobs import Job, JobSpec, JobStore, new_job_id
from replay.progress import JobProgress
from replay.query import KFLError, check
from replay.service import job_folder, make_runner
from replay.store import EntryStore, StoreError
from streamtap.settings import Settings, SettingsError, load_settings

__all__ = ["jobs", "replay", "tap"]

console = Console(stderr=True)


def _settings() -> Settings:
    try:
        return load_settings()
    except SettingsError as exc:
        raise click.ClickException(str(exc)) from exc


def _time(value: str | None) -> datetime | None:
    if value is None:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise click.BadParameter(f"{value!r} is not an ISO-8601 time") from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _check_kfl(text: str) -> None:
    err: KFLError | None = check(text) if text else None
    if err is not None:
        raise click.BadParameter(f"\n{err}", param_hint="--kfl")


def _interruptible(cancel: threading.Event) -> None:
    """First Ctrl-C (or SIGTERM) asks the job to stop cleanly; a second one stops at once."""

    def handler(signum: int, frame: Any) -> None:
        if cancel.is_set():
            raise KeyboardInterrupt
        cancel.set()
        console.print("[yellow]stopping after the current object (Ctrl-C again to abort)[/]")

    signal.signal(signal.SIGINT, handler)
    signal.signal(signal.SIGTERM, handler)


def _summary(job: Job) -> None:
    pub = job.public()
    table = Table(title=f"replay job {job.id}: {pub['state']}", show_header=False)
    rows = [
        ("source", job.spec["source"]),
        ("objects", f"{job.objects_done} replayed of {job.objects_listed} listed "
                    f"({job.objects_pruned} skipped by manifests, {job.objects_failed} failed)"),
        ("bytes", f"{job.bytes_done:,} ({pub['mb_per_s']} MB/s)"),
        ("streams", f"{job.streams_kept:,} kept of {job.streams:,}"),
        ("entries", f"{job.entries:,}"),
        ("written to", job.topic or "local store"),
        ("elapsed", f"{pub['elapsed_s']} s"),
    ]  # fmt: skip
    if job.error:
        rows.append(("error", job.error))
    for k, v in rows:
        table.add_row(k, str(v))
    console.print(table)


def _run(job: Job, store_: JobStore, settings: Settings, store: EntryStore | None) -> Job:
    cancel = threading.Event()
    _interruptible(cancel)
    with JobProgress(console) as progress:
        runner = make_runner(settings, store, progress=progress.update)
        runner(job, store_, cancel)
    done = store_.load(job.id)
    _summary(done)
    return done


@click.command()
@click.argument("source", required=False)
@click.option("--pcap", "pcap", help="a local capture file or folder instead of SOURCE")
@click.option("--since", help="skip traffic before this ISO-8601 time")
@click.option("--until", help="skip traffic after this ISO-8601 time")
@click.option("--rule", help="only objects recorded by this rule")
@click.option("--kfl", default="", help="keep only streams with an entry matching this query")
@click.option("--to-topic", help="Kafka topic to publish to (default replay.<job-id>)")
@click.option(
    "--rate", type=float, default=0.0, help="speed vs capture time; 0 = as fast as possible"
)
@click.option("--parallel", type=click.IntRange(1, 64), default=4, help="downloads in flight")
@click.option(
    "--workers", type=click.IntRange(1, 64), default=1, help="processes dissecting objects"
)
@click.option("--resume", "resume_id", help="continue an interrupted job by its id")
@click.option(
    "--serve",
    "serve_port",
    type=click.IntRange(0, 65535),
    help="run as a service on HOST:PORT: jobs submitted over the API (POST /api/jobs)",
)
@click.option(
    "--host",
    "serve_host",
    default="127.0.0.1",
    show_default=True,
    help="address --serve binds (0.0.0.0 inside a container)",
)
def replay(
    source: str | None,
    pcap: str | None,
    since: str | None,
    until: str | None,
    rule: str | None,
    kfl: str,
    to_topic: str | None,
    rate: float,
    parallel: int,
    workers: int,
    resume_id: str | None,
    serve_port: int | None,
    serve_host: str,
) -> None:
    """Replay recorded PCAPs (s3://bucket/prefix, a file or a folder) into a Kafka topic.

    Objects whose manifests show they cannot match are skipped without downloading them; the
    rest are downloaded in parallel, re-dissected, filtered by --kfl and published as stream
    records in the live schema. Ctrl-C stops cleanly; --resume JOB continues where it stopped.
    """
    settings = _settings()
    store_ = JobStore(job_folder(settings))
    if serve_port is not None:
        try:
            store = EntryStore(settings.home / "replay" / "service.db")
        except StoreError as exc:
            raise click.ClickException(str(exc)) from exc
        _serve(settings, store, None, store_, serve_host, serve_port)
        return
    if resume_id:
        try:
            job = store_.load(resume_id)
        except ReplayError as exc:
            raise click.ClickException(str(exc)) from exc
        console.print(f"resuming job {job.id}: {len(job.done_keys)} objects already done")
    else:
        src = pcap or source
        if not src:
            raise click.UsageError("give SOURCE (s3://bucket/prefix) or --pcap FILE")
        _check_kfl(kfl)
        spec = JobSpec(source=src, since=_time(since), until=_time(until), rule=rule, kfl=kfl,
                       to_topic=to_topic, rate=rate, parallel=parallel,
                       workers=workers)  # fmt: skip
        job = Job(id=new_job_id(), spec=spec.model_dump(mode="json"))
        store_.save(job)
        console.print(f"job {job.id}: replaying {src} -> {to_topic or 'replay.' + job.id}")
    done = _run(job, store_, settings, None)
    if done.state == "failed":
        sys.exit(1)
    if done.state == "cancelled":
        sys.exit(130)


@click.group(invoke_without_command=True)
@click.option("--json", "as_json", is_flag=True, help="print JSON instead of a table")
@click.pass_context
def jobs(ctx: click.Context, as_json: bool) -> None:
    """List replay jobs and their state (``jobs cancel ID`` stops one)."""
    if ctx.invoked_subcommand is not None:
        return
    found = JobStore(job_folder(_settings())).list()
    if as_json:
        import orjson

        click.echo(orjson.dumps([j.public() for j in found], option=orjson.OPT_INDENT_2))
        return
    table = Table("id", "state", "source", "objects", "streams", "entries", "to")
    for j in found:
        table.add_row(
            j.id, j.shown_state, j.spec.get("source", ""),
            f"{j.objects_done}/{j.objects_selected} (+{j.objects_pruned} skipped)",
            f"{j.streams_kept:,}", f"{j.entries:,}", j.topic or "store",
        )  # fmt: skip
    Console().print(table)


@jobs.command("cancel")
@click.argument("job_id")
def cancel_job(job_id: str) -> None:
    """Ask a running job to stop after the object it is on."""
    store_ = JobStore(job_folder(_settings()))
    try:
        store_.load(job_id)
    except ReplayError as exc:
        raise click.ClickException(str(exc)) from exc
    store_.request_cancel(job_id)
    click.echo(f"asked job {job_id} to stop")


def _default_db(settings: Settings, source: str) -> Path:
    digest = hashlib.blake2b(source.encode(), digest_size=6).hexdigest()
    return settings.home / "replay" / f"tap-{digest}.db"


@click.command()
@click.option(
    "--pcap",
    "source",
    required=True,
    help="s3://bucket/prefix, a local capture file, or a folder of captures",
)
@click.option("--kfl", default="", help="store only streams with an entry matching this query")
@click.option(
    "--db",
    type=click.Path(dir_okay=False, path_type=Path),
    help="the store file (default: under STREAMTAP_HOME, one per source)",
)
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option(
    "--port",
    type=click.IntRange(0, 65535),
    default=8898,
    show_default=True,
    help="0 picks a free port",
)
@click.option("--no-serve", is_flag=True, help="replay into the store, print a summary, exit")
@click.option("--parallel", type=click.IntRange(1, 64), default=4, help="downloads in flight")
@click.option(
    "--workers", type=click.IntRange(1, 64), default=1, help="processes dissecting objects"
)
def tap(source: str, kfl: str, db: Path | None, host: str, port: int, no_serve: bool,
        parallel: int, workers: int) -> None:  # fmt: skip
    """Open a recording in the local dashboard: replay it into a SQLite store and serve it.

    The dashboard is up at once and its table fills while the replay runs. The store file is
    kept, so opening the same recording again is instant (already stored streams are skipped).
    """
    settings = _settings()
    _check_kfl(kfl)
    try:
        store = EntryStore(db or _default_db(settings, source))
    except StoreError as exc:
        raise click.ClickException(str(exc)) from exc
    spec = JobSpec(source=source, kfl=kfl, to_store=True, parallel=parallel, workers=workers)
    job_store = JobStore(job_folder(settings))
    if no_serve:
        job = Job(id=new_job_id(), spec=spec.model_dump(mode="json"))
        job_store.save(job)
        done = _run(job, job_store, settings, store)
        click.echo(f"store: {store.path} ({store.total():,} entries)")
        if done.state != "done":
            sys.exit(1)
        return
    _serve(settings, store, spec, job_store, host, port)


def _serve(
    settings: Settings, store: EntryStore, spec: JobSpec | None, job_store: JobStore, host: str,
    port: int,
) -> None:  # fmt: skip
    """Serve the dashboard and API; with ``spec``, start that job at once (``tap``)."""
    from replay.app import create_app
    from replay.jobs import JobManager
    from replay.server import DashboardServer

    manager = JobManager(job_store, make_runner(settings, store))
    store.warm()
    try:
        server = DashboardServer(create_app(store, manager), host, port)
    except OSError as exc:
        raise click.ClickException(f"cannot listen on {host}:{port}: {exc.strerror}") from exc
    job = manager.submit(spec) if spec is not None else None
    if job is not None and spec is not None:
        click.echo(f"replaying {spec.source} into {store.path} (job {job.id})")
    click.echo(f"Dashboard: {server.url}")
    sys.stdout.flush()
    try:
        server.run()
    finally:
        manager.stop_all(timeout=30)
