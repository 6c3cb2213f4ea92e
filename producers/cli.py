"""``streamtap sensor``: parse options, build the engine and an outlet, run the service."""

from __future__ import annotations

import asyncio
import logging
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click
import orjson

from producers.capture import CaptureError, open_capture
from producers.engine import Engine, EngineConfig
from producers.publisher import RecordPublisher
from producers.service import (
    EntriesOutlet,
    JsonLinesOutlet,
    KafkaOutlet,
    Outlet,
    SensorReport,
    run_sensor,
    tune_gc,
)
from streamtap.settings import Settings, SettingsError, load_settings

if TYPE_CHECKING:
    from aiokafka import AIOKafkaProducer

__all__ = ["sensor", "streams_producer"]

log = logging.getLogger("streamtap.sensor")


def _progress_line(rep: SensorReport) -> str:
    e = rep.engine
    rate = e["frames"] / rep.elapsed_s if rep.elapsed_s > 0 else 0.0
    mb = e["bytes"] / 1e6
    streams = e["streams"]["tcp"] + e["streams"]["udp"]
    out = rep.outlet.get("published", rep.outlet.get("written", 0))
    return (
        f"{e['frames']:,} packets ({mb:,.1f} MB, {rate:,.0f} pkt/s) | {streams:,} streams | "
        f"{e['records']:,} records, {out:,} out | {e['gaps']} gaps"
    )


def _summary(rep: SensorReport) -> str:
    e = rep.engine
    lost = e["frames_not_recorded"]
    lines = [
        f"sensor {rep.node}: {rep.source} done in {rep.elapsed_s:.2f}s",
        f"  {_progress_line(rep)}",
        f"  frames recorded {e['frames_recorded']:,}; not recorded: "
        f"malformed {sum(lost['malformed'].values())}, not TCP/UDP "
        f"{sum(lost['not_tcp_udp'].values())}, incomplete fragments "
        f"{lost['fragments_incomplete']}",
    ]
    if rep.outlet.get("dropped"):
        lines.append(f"  DROPPED {rep.outlet['dropped']} records: {rep.outlet['drop_reasons']}")
    if rep.source_error:
        lines.append(f"  source stopped early: {rep.source_error}")
    return "\n".join(lines)


class _Reporter:
    """Progress on a TTY, a log line otherwise, and the stats topic when publishing."""

    def __init__(self, stats_publisher: RecordPublisher | None, quiet: bool) -> None:
        self.stats_publisher = stats_publisher
        self.tty = sys.stderr.isatty() and not quiet
        self.quiet = quiet

    def __call__(self, rep: SensorReport, final: bool) -> None:
        if self.tty and not final:
            sys.stderr.write("\r" + _progress_line(rep) + "\033[K")
            sys.stderr.flush()
        elif not final and not self.quiet:
            log.info("progress: %s", _progress_line(rep))
        if final:
            if self.tty:
                sys.stderr.write("\r\033[K")
            if not self.quiet:
                click.echo(_summary(rep), err=True)
            elif rep.source_error:
                click.echo(f"error: {rep.source_error}", err=True)
        if self.stats_publisher is not None:
            payload = orjson.dumps(rep.as_dict() | {"final": final})
            asyncio.get_running_loop().create_task(
                self.stats_publisher.publish(rep.node.encode(), payload)
            )


def _settings(config: str | None, node: str | None) -> Settings:
    try:
        overrides: dict[str, Any] = {"node_name": node} if node else {}
        return load_settings(config, **overrides)
    except SettingsError as exc:
        raise click.ClickException(f"bad setting: {exc}") from None


#: room left in a producer batch for Kafka's batch and record headers
_BATCH_HEADROOM = 64 * 1024


def streams_producer(settings: Settings) -> AIOKafkaProducer:
    """The producer for stream records: ``streamtap.kafka``'s, with batches near the topic's
    max message size instead of aiokafka's 16 KiB default.

    A stream record is usually 5-100 KB of JSON, so with 16 KiB batches every record went out
    as its own batch, one produce request (acks=all) per record and partition at a time: on
    the sensor benchmark that was ~3x the CPU and ~3x the wall time of big batches. Batches are
    sized on uncompressed bytes and compression only shrinks them, so a batch stays under the
    topic's ``max.message.bytes`` (a record bigger than a batch still goes alone, as before).
    """
    from streamtap.kafka import make_producer

    batch = max(16 * 1024, settings.max_message_bytes - _BATCH_HEADROOM)
    return make_producer(settings, max_batch_size=batch)


async def _run(
    settings: Settings,
    frames: Any,
    source: str,
    mode: str,
    speed: float,
    report_every: float,
    source_error: Any,
    kernel_stats: Any,
) -> SensorReport:
    from streamtap.kafka import make_producer

    engine = Engine(
        settings.node_name,
        EngineConfig(max_record_bytes=max(64 * 1024, settings.max_message_bytes - 64 * 1024)),
    )
    stats_publisher: RecordPublisher | None = None
    outlet: Outlet
    if mode == "kafka":
        publisher = RecordPublisher(streams_producer(settings), settings.streams_topic)
        log.info("publishing to %s on %s", settings.streams_topic, settings.kafka_bootstrap)
        await publisher.start()
        stats_publisher = RecordPublisher(make_producer(settings), settings.stats_topic)
        await stats_publisher.start()
        outlet = KafkaOutlet(publisher)
    elif mode == "entries":
        outlet = EntriesOutlet(sys.stdout.buffer)
    else:
        outlet = JsonLinesOutlet(sys.stdout.buffer)
    reporter = _Reporter(stats_publisher, quiet=mode != "kafka" and not sys.stderr.isatty())
    try:
        return await run_sensor(
            frames,
            engine,
            outlet,
            source=source,
            speed=speed,
            report_every_s=report_every,
            on_report=reporter,
            source_error=source_error,
            kernel_stats=kernel_stats,
        )
    finally:
        if stats_publisher is not None:
            await stats_publisher.stop()


@click.command()
@click.option(
    "--pcap", "pcap", metavar="FILE|-", help="Read a pcap/pcapng file (gzip ok), - for stdin."
)
@click.option("--iface", metavar="IF", help="Capture live from a network interface.")
@click.option("--bpf", default="", metavar="FILTER", help="BPF capture filter (live only).")
@click.option("--snaplen", default=262144, show_default=True, help="Bytes kept per packet (live).")
@click.option("--node", metavar="NAME", help="Node name in records (default: NODE_NAME or host).")
@click.option(
    "--speed",
    default=0.0,
    show_default=True,
    help="Replay files at this multiple of capture pace; 0 = as fast as possible.",
)
@click.option("--stdout", "to_stdout", is_flag=True, help="Write records as JSON lines; no Kafka.")
@click.option("--entries", is_flag=True, help="Write just the entries as JSON lines; no Kafka.")
@click.option("--report-every", default=5.0, show_default=True, help="Seconds between stats.")
@click.option("--config", type=click.Path(dir_okay=False), help="YAML settings file.")
def sensor(
    pcap: str | None,
    iface: str | None,
    bpf: str,
    snaplen: int,
    node: str | None,
    speed: float,
    to_stdout: bool,
    entries: bool,
    report_every: float,
    config: str | None,
) -> None:
    """Capture packets, reassemble TCP/UDP streams, dissect HTTP/1.x and DNS, and publish one
    stream record per stream segment to the streams topic (KAFKA_BOOTSTRAP, STREAMS_TOPIC).

    \b
    Examples:
      streamtap sensor --pcap capture.pcap
      tcpdump -i eth0 -w - | streamtap sensor --pcap -
      streamtap sensor --iface eth0 --bpf 'tcp or udp port 53'
      streamtap sensor --pcap capture.pcap --entries | jq .request.url
    """
    logging.basicConfig(
        level=os.environ.get("LOG_LEVEL", "INFO"),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    if (pcap is None) == (iface is None):
        raise click.UsageError("give exactly one of --pcap FILE|- or --iface IF")
    settings = _settings(config, node)
    mode = "entries" if entries else "stdout" if to_stdout else "kafka"
    kernel_stats: Any = lambda: None  # noqa: E731
    if pcap is not None:
        if pcap != "-" and not Path(pcap).is_file():
            raise click.ClickException(f"no such capture file: {pcap}")
        try:
            reader = open_capture(pcap)
        except (OSError, CaptureError) as exc:
            raise click.ClickException(f"cannot open {pcap}: {exc}") from None
        frames: Any = reader
        source = reader.source

        def source_error() -> str | None:
            return str(reader.error) if reader.error else None
    else:
        from producers.capture.live import LiveCapture, LiveCaptureError

        try:
            live = LiveCapture(str(iface), bpf=bpf, snaplen=snaplen)
        except LiveCaptureError as exc:
            raise click.ClickException(str(exc)) from None
        frames, source = live, f"iface {iface}"
        kernel_stats = live.stats

        def source_error() -> str | None:
            return None

    tune_gc()
    try:
        report = asyncio.run(
            _run(settings, frames, source, mode, speed, report_every, source_error, kernel_stats)
        )
    except KeyboardInterrupt:
        raise click.ClickException("interrupted") from None
    if report.source_error and pcap is not None:
        raise SystemExit(2)
