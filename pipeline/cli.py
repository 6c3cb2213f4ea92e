"""``streamtap pipeline`` and ``streamtap watch``: parse options, build, hand over. No logic here.

Both read the same Settings as every other command (env vars and ``--config``/STREAMTAP_CONFIG).
Options that only a worker has (rules file, web port, app id) are options with env var fallbacks.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
from pathlib import Path

import click

from streamtap.settings import Settings, SettingsError, load_settings

__all__ = ["pipeline", "watch"]

_CONFIG = click.option(
    "--config",
    type=click.Path(dir_okay=False),
    default=None,
    help="YAML settings file (default: $STREAMTAP_CONFIG).",
)


def _settings(config: str | None) -> Settings:
    try:
        return load_settings(config)
    except SettingsError as exc:
        raise click.ClickException(str(exc)) from exc


@click.command()
@_CONFIG
@click.option(
    "--rules",
    "rules_file",
    type=click.Path(dir_okay=False, path_type=Path),
    envvar="RECORDING_RULES",
    default=None,
    help="YAML rules file, watched and reloaded on change ($RECORDING_RULES).",
)
@click.option(
    "--app-id",
    default="streamtap-pipeline",
    envvar="PIPELINE_APP_ID",
    show_default=True,
    help="Faust app id = consumer group; workers with the same id share partitions.",
)
@click.option("--web-host", default="127.0.0.1", envvar="PIPELINE_WEB_HOST", show_default=True)
@click.option(
    "--web-port",
    type=int,
    default=6066,
    envvar="PIPELINE_WEB_PORT",
    show_default=True,
    help="Port of / (liveness) and /stats/; give each worker on a host its own.",
)
@click.option(
    "--batch-size",
    type=click.IntRange(1, 100_000),
    default=500,
    show_default=True,
    envvar="PIPELINE_BATCH_SIZE",
)
@click.option(
    "--fetch-wait-ms",
    type=click.IntRange(1, 60_000),
    default=100,
    show_default=True,
    envvar="PIPELINE_FETCH_WAIT_MS",
    help="Longest the broker holds a fetch that finds no new records. Faust's 1500 ms stalls "
    "every partition behind one that is at its end.",
)
@click.option(
    "--max-pending",
    type=click.IntRange(0, 100_000),
    default=64,
    show_default=True,
    envvar="MAX_PENDING_SEGMENTS",
    help="Earlier unmatched segments remembered per open stream.",
)
@click.option(
    "--recent-mb",
    type=click.IntRange(0, 1_000_000),
    default=64,
    show_default=True,
    envvar="PIPELINE_RECENT_MB",
    help="Memory for the bytes of remembered earlier segments, so that a later match "
    "publishes them without reading Kafka again; 0 = always read Kafka.",
)
@click.option(
    "--idle-records",
    type=click.IntRange(0),
    default=10_000_000,
    show_default=True,
    envvar="PIPELINE_IDLE_RECORDS",
    help="Forget an unmatched open stream not seen for this many records of its partition "
    "(it stopped without closing); 0 = keep until it closes.",
)
@click.option(
    "--log-level",
    default="INFO",
    show_default=True,
    type=click.Choice(["DEBUG", "INFO", "WARNING", "ERROR"], case_sensitive=False),
)
@click.option("--check", is_flag=True, help="Compile the rules, report problems, and exit.")
@click.option(
    "--publish-rules",
    type=click.Path(dir_okay=False, exists=True, path_type=Path),
    default=None,
    help="Publish this rules file on the control topic (every worker switches to it) and exit.",
)
def pipeline(
    config: str | None,
    rules_file: Path | None,
    app_id: str,
    web_host: str,
    web_port: int,
    batch_size: int,
    fetch_wait_ms: int,
    max_pending: int,
    recent_mb: int,
    idle_records: int,
    log_level: str,
    check: bool,
    publish_rules: Path | None,
) -> None:
    """Run a rule-evaluation worker: streams -> KFL rules -> matched-streams.

    Rules come from RECORDING_KFL (one rule named "recording"; blank = off) and/or --rules FILE:

    \b
      rules:
        web-errors:
          kfl: http and response.status >= 500
          retention_days: 30
          lock_mode: GOVERNANCE
        names: dns
    """
    settings = _settings(config)
    if publish_rules is not None:
        _publish(settings, publish_rules)
        return
    if check:
        _check(settings, rules_file)
        return
    import faust

    from pipeline.app import PipelineConfig, create_app, logging_config

    app, _runtime = create_app(
        PipelineConfig(
            settings=settings,
            rules_file=rules_file,
            app_id=app_id,
            web_host=web_host,
            web_port=web_port,
            batch_size=batch_size,
            fetch_wait_ms=fetch_wait_ms,
            max_pending=max_pending,
            recent_bytes=recent_mb * 1024 * 1024,
            idle_records=idle_records or None,
        )
    )
    level = log_level.upper()
    worker = faust.Worker(
        app, loglevel=level, logging_config=logging_config(level), quiet=True, daemon=True
    )
    worker.execute_from_commandline()


def _check(settings: Settings, rules_file: Path | None) -> None:
    from pipeline.reload import RuleSources

    sources = RuleSources(recording_kfl=settings.recording_kfl)
    text = rules_file.read_text() if rules_file is not None and rules_file.exists() else None
    event = sources.start(0.0, text)
    for problem in event.problems:
        click.echo(problem, err=True)
    for name, rule in sorted(sources.current.rules.items()):
        click.echo(f"{name}: {rule.spec.kfl}")
        for warning in rule.warnings:
            click.echo(f"  warning: {warning}", err=True)
    if not sources.current.enabled:
        click.echo("no rules: recording is off")
    if event.problems:
        sys.exit(1)


def _publish(settings: Settings, path: Path) -> None:
    from pipeline.control import publish_rules
    from pipeline.rules import RulesError, parse_rules_yaml

    try:
        specs = parse_rules_yaml(path.read_text(), str(path))
    except RulesError as exc:
        raise click.ClickException(str(exc)) from exc
    asyncio.run(publish_rules(settings.kafka_bootstrap, settings.control_topic, specs))
    click.echo(f"published {len(specs)} rule(s) on {settings.control_topic}")


@click.command()
@_CONFIG
@click.option("--rule", default=None, help="Only streams matched by this rule.")
@click.option("--kfl", "kfl_query", default=None, help="Only streams with an entry matching Q.")
@click.option("--from-beginning", is_flag=True, help="Start at the oldest message, not the end.")
@click.option("--limit", type=click.IntRange(1), default=None, help="Stop after N lines.")
@click.option("--idle-exit", type=float, default=None, help="Stop after N quiet seconds.")
def watch(
    config: str | None,
    rule: str | None,
    kfl_query: str | None,
    from_beginning: bool,
    limit: int | None,
    idle_exit: float | None,
) -> None:
    """Print matched streams as they arrive: time, rule, protocol, src -> dst, summary."""
    settings = _settings(config)
    from pipeline.watch import watch_matched

    query = None
    if kfl_query:
        from pipeline.kfl import KFLError, compile

        try:
            query = compile(kfl_query)
        except KFLError as exc:
            raise click.ClickException(f"--kfl: {exc}") from exc

    def emit(line: str) -> None:
        click.echo(line)

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(
            watch_matched(
                settings.kafka_bootstrap,
                settings.matched_topic,
                emit,
                rule=rule,
                query=query,
                from_beginning=from_beginning,
                limit=limit,
                idle_exit_s=idle_exit,
            )
        )
