"""`streamtap stack ...`: parse options, call LocalStack, print. No logic lives here."""

from __future__ import annotations

import asyncio
import logging
import sys
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

import click

from stack.errors import StackError
from stack.local import LocalStack, StackStatus, init_resources
from streamtap.settings import Settings, SettingsError, load_settings

__all__ = ["stack"]

T = TypeVar("T")


def _settings(ctx: click.Context) -> Settings:
    try:
        return load_settings(ctx.obj.get("config"))
    except SettingsError as exc:
        raise click.ClickException(str(exc)) from exc


def _run(make: Callable[[], Coroutine[Any, Any, T]]) -> T:
    try:
        return asyncio.run(make())
    except StackError as exc:
        raise click.ClickException(str(exc)) from exc


@click.group()
@click.option(
    "--config",
    type=click.Path(dir_okay=False),
    default=None,
    help="YAML settings file (default: $STREAMTAP_CONFIG).",
)
@click.pass_context
def stack(ctx: click.Context, config: str | None) -> None:
    """Run Kafka (KRaft) and SeaweedFS S3 on 127.0.0.1, state under STREAMTAP_HOME."""
    ctx.ensure_object(dict)
    ctx.obj["config"] = config
    # Readiness polls and retries expect refused connections; aiokafka would log each one.
    # Failures reach the user as one StackError message instead.
    logging.getLogger("aiokafka").setLevel(logging.CRITICAL)


@stack.command()
@click.option("--force", is_flag=True, help="Fetch the jars again even if installed.")
@click.pass_context
def install(ctx: click.Context, force: bool) -> None:
    """Fetch the Kafka jars with Maven into <home>/kafka/lib (no-op when up to date)."""
    local = LocalStack(_settings(ctx))
    try:
        fetched = local.install(force=force)
    except StackError as exc:
        raise click.ClickException(str(exc)) from exc
    state = "installed" if fetched else "already installed"
    click.echo(f"kafka {local.kafka.version()} jars {state} in {local.layout.kafka_lib}")


@stack.command()
@click.pass_context
def up(ctx: click.Context) -> None:
    """Start Kafka and S3 (if not running), then create the topics and the bucket."""
    local = LocalStack(_settings(ctx))
    report = _run(local.up)
    for name in report.started:
        click.echo(f"{name}: started")
    for name in report.already_running:
        click.echo(f"{name}: already running")
    if report.topics_created:
        click.echo(f"topics created: {', '.join(report.topics_created)}")
    if report.bucket_created:
        click.echo(f"bucket created with Object Lock: {local.settings.s3_bucket}")
    click.echo(f"stack ready in {report.seconds:.1f}s (home: {local.layout.home})")


@stack.command()
@click.pass_context
def down(ctx: click.Context) -> None:
    """Stop Kafka and S3; data stays under <home> for the next `up`."""
    local = LocalStack(_settings(ctx))
    stopped = _run(local.down)
    click.echo(f"stopped: {', '.join(stopped)}" if stopped else "nothing was running")


@stack.command()
@click.pass_context
def init(ctx: click.Context) -> None:
    """Create topics and the Object-Lock bucket on KAFKA_BOOTSTRAP and S3_ENDPOINT (no servers
    are started; for docker-compose or an existing deployment)."""
    settings = _settings(ctx)
    topics, bucket = _run(lambda: init_resources(settings))
    click.echo(f"topics created: {', '.join(topics) or 'none (all exist)'}")
    click.echo(f"bucket {settings.s3_bucket}: {'created' if bucket else 'exists'} (Object Lock)")


@stack.command()
@click.pass_context
def status(ctx: click.Context) -> None:
    """Versions, ports, pids, topics and the bucket's lock config; exit 1 if not running."""
    local = LocalStack(_settings(ctx))
    report = _run(local.status)
    click.echo(render_status(report))
    if not report.running:
        sys.exit(1)


def _topic_line(report: StackStatus, name: str) -> str:
    actual = (report.topics or {}).get(name)
    wanted = report.expected_topics.get(name)
    if actual is None:
        return f"  {name}: MISSING (run `streamtap stack up` or `streamtap stack init`)"
    note = "" if wanted in (None, actual) else f"; settings want {wanted}"
    return f"  {name} ({actual} partitions{note})"


def render_status(report: StackStatus) -> str:
    lines = []
    for server in (report.kafka, report.s3):
        state = f"running, pid {server.pid}" if server.pid else "stopped"
        lines.append(f"{server.name} {server.version or '(not installed)'}: {state}")
        lines.append(f"  port {server.port} on 127.0.0.1; log {server.log}")
        lines += [f"  {key}: {value}" for key, value in server.extra.items()]
    if report.kafka.pid and report.topics is None:
        lines.append("topics: (broker not answering)")
    if report.topics is not None:
        lines.append("topics:")
        lines += [
            _topic_line(report, name) for name in sorted({*report.topics, *report.expected_topics})
        ]
    if report.s3.pid and report.bucket_lock is None:
        lines.append(f"bucket {report.bucket}: (S3 not answering)")
    if report.bucket_lock is not None:
        lines.append(f"bucket {report.bucket}: {report.bucket_lock}")
    lines.append("clients: " + " ".join(f"{k}={v}" for k, v in report.client_env.items()))
    return "\n".join(lines)
