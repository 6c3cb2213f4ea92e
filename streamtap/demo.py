"""``streamtap demo``: the whole recording path, end to end, on the local stack.

It does what an operator does by hand: starts a pipeline worker with ``RECORDING_KFL`` and a
sink, runs the sensor on a capture, waits until every record has been evaluated and every match
stored, stops the services cleanly, lists the objects written and verifies them. Each service is
a real ``streamtap`` process with its log under ``<home>/logs``.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Coroutine, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import click
from aiokafka.errors import KafkaError
from aiokafka.structs import TopicPartition

from streamtap.kafka import make_admin, make_consumer
from streamtap.settings import Settings, SettingsError, load_settings

__all__ = ["demo"]

SAMPLE = Path(__file__).parent / "samples" / "demo.pcap"
PIPELINE_GROUP = "streamtap-demo-pipeline"
SINK_GROUP = "streamtap-demo-sink"


def _streamtap() -> list[str]:
    exe = Path(sys.executable).parent / "streamtap"
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "streamtap.cli"]


@contextmanager
def _service(name: str, args: list[str], env: dict[str, str], logs: Path) -> Iterator[Path]:
    """A streamtap service in the background, logging to a file; SIGTERM on the way out."""
    logs.mkdir(parents=True, exist_ok=True)
    log_path = logs / f"demo-{name}.log"
    with log_path.open("ab") as log:
        proc = subprocess.Popen([*_streamtap(), *args], env=env, stdout=log, stderr=log)
        try:
            yield log_path
            if proc.poll() is not None:
                raise click.ClickException(
                    f"{name} exited early (code {proc.returncode}); see {log_path}"
                )
        finally:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(timeout=90)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()


async def _lag(settings: Settings, group: str, topic: str) -> int:
    """Messages of ``topic`` the consumer group has not committed yet."""
    admin = make_admin(settings)
    consumer = make_consumer(settings, group_id=None)
    await admin.start()
    await consumer.start()
    try:
        described = await admin.describe_topics([topic])
        partitions = [p["partition"] for d in described for p in d.get("partitions", [])]
        if not partitions:
            raise click.ClickException(f"topic {topic} does not exist; run `streamtap stack up`")
        tps = [TopicPartition(topic, p) for p in partitions]
        ends = await consumer.end_offsets(tps)
        committed = await admin.list_consumer_group_offsets(group, partitions=tps)
        lag = 0
        for tp in tps:
            done = committed.get(tp)
            lag += ends[tp] - (done.offset if done is not None and done.offset >= 0 else 0)
        return lag
    finally:
        await consumer.stop()
        await admin.close()


def _wait_for_lag_zero(
    settings: Settings,
    group: str,
    topic: str,
    what: str,
    timeout: float,
    measure: Callable[[Settings, str, str], Coroutine[Any, Any, int]] = _lag,
) -> None:
    """Polls the group's lag until it is zero. A broker that is busy or between coordinators
    answers with retriable errors (no group coordinator yet, a connection refused); those
    mean "ask again", not "the demo failed", until the deadline."""
    deadline = time.monotonic() + timeout
    last = -1
    problem = ""
    while time.monotonic() < deadline:
        try:
            lag = asyncio.run(measure(settings, group, topic))
        except KafkaError as exc:
            if not exc.retriable:
                raise click.ClickException(f"{what}: lag of {group} not readable: {exc!r}") from exc
            if type(exc).__name__ != problem:
                problem = type(exc).__name__
                click.echo(f"  {what}: broker not ready to answer ({problem}); asking again")
            time.sleep(1.0)
            continue
        problem = ""
        if lag == 0:
            click.echo(f"  {what}: caught up")
            return
        if lag != last:
            click.echo(f"  {what}: {lag} messages to go")
            last = lag
        time.sleep(1.0)
    detail = f" (the broker kept answering {problem})" if problem else ""
    raise click.ClickException(f"{what} did not catch up within {timeout:.0f}s{detail}")


def _list_objects(settings: Settings, prefix: str, since: float) -> None:
    """The objects this run wrote (newer than its start), as ``aws s3 ls`` would show them."""
    from streamtap.objectstore import make_minio

    client = make_minio(settings)
    count = 0
    for obj in client.list_objects(settings.s3_bucket, prefix=prefix + "/", recursive=True):
        modified = obj.last_modified.timestamp() if obj.last_modified else 0.0
        if modified >= since - 1:
            count += 1
            click.echo(f"  {obj.size:>10,}  s3://{settings.s3_bucket}/{obj.object_name}")
    if count == 0:
        raise click.ClickException("no objects were written")


def _run(args: list[str], env: dict[str, str]) -> int:
    return subprocess.run([*_streamtap(), *args], env=env, check=False).returncode


@click.command()
@click.option(
    "--pcap",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=SAMPLE,
    show_default="a bundled capture of HTTP and DNS traffic",
    help="Capture to record.",
)
@click.option("--kfl", default="http or dns", show_default=True, help="The recording rule.")
@click.option("--timeout", default=300.0, show_default=True, help="Seconds to wait per stage.")
def demo(pcap: Path, kfl: str, timeout: float) -> None:
    """Record a capture end to end on the local stack: sensor -> pipeline (RECORDING_KFL) ->
    sink -> S3, then list the objects written and verify them.

    Run `streamtap stack up` first (make demo does both).
    """
    try:
        settings = load_settings()
    except SettingsError as exc:
        raise click.ClickException(f"bad setting: {exc}") from None
    from stack import settings_env
    from stack.ports import free_port

    web = ["--web-port", str(free_port())]

    env = (
        os.environ
        | settings_env(settings)
        | {
            "RECORDING_KFL": kfl,
            "SINK_GROUP": SINK_GROUP,
            "SINK_MAX_BATCH_AGE_S": "5",
            # the demo's objects stay locked for a day (GOVERNANCE), long enough to inspect
            "SINK_DEFAULT_RETENTION_DAYS": os.environ.get("SINK_DEFAULT_RETENTION_DAYS", "1"),
        }
    )
    logs = settings.home / "logs"
    bucket = settings.s3_bucket
    prefix = env.get("SINK_PREFIX", "recordings").strip("/")
    where = f"s3://{bucket}/{prefix}/"
    click.echo(f"recording {pcap} with RECORDING_KFL={kfl!r} into {where}")
    started = time.time()
    with (
        _service("pipeline", ["pipeline", "--app-id", PIPELINE_GROUP, *web], env, logs),
        _service("sink", ["sink"], env, logs) as sink_log,
    ):
        click.echo("- sensor")
        if _run(["sensor", "--pcap", str(pcap)], env) != 0:
            raise click.ClickException("the sensor failed (see above)")
        click.echo("- pipeline")
        _wait_for_lag_zero(settings, PIPELINE_GROUP, settings.streams_topic, "pipeline", timeout)
        click.echo(f"- sink (log: {sink_log})")
        _wait_for_lag_zero(settings, SINK_GROUP, settings.matched_topic, "sink", timeout)
    click.echo("- objects written")
    _list_objects(settings, prefix, started)
    click.echo("- verify")
    code = _run(["verify", where], env)
    click.echo("")
    click.echo("Open the recording in the dashboard:")
    click.echo(f"  .venv/bin/streamtap tap --pcap {where}")
    click.echo("and browse to http://127.0.0.1:8898/ (tap prints the URL when it is ready)")
    if code != 0:
        raise SystemExit(code)
