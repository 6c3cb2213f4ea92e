"""``streamtap sink`` and ``streamtap verify``: build clients at the edge, run, close them.

No logic lives here beyond wiring: the service and the checks are in their own modules.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import signal
import sys
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlsplit

import click
import orjson
from aiokafka import TopicPartition
from aiokafka.errors import KafkaError
from aiokafka.structs import OffsetAndMetadata

from sinks.config import SinkSettings, load_sink_settings
from sinks.s3 import MinioStore, make_sse, make_store_client
from sinks.service import SinkService
from sinks.spill import SpillArea
from sinks.verify import verify_prefix
from streamtap.kafka import make_admin, make_consumer, make_producer
from streamtap.settings import Settings, SettingsError, load_settings

__all__ = ["frozen_heap", "run_sink", "sink", "verify"]

log = logging.getLogger("streamtap.sink")


def _store(settings: Settings, sink_settings: SinkSettings, bucket: str) -> MinioStore:
    return MinioStore(
        make_store_client(settings, sink_settings.addressing),
        bucket,
        part_size=sink_settings.part_size,
        parallel_parts=sink_settings.parallel_parts,
        sse=make_sse(sink_settings.sse, sink_settings.sse_kms_key_id),
    )


async def run_sink(
    settings: Settings,
    sink_settings: SinkSettings,
    stop: asyncio.Event | None = None,
    started: Callable[[SinkService], None] | None = None,
) -> SinkService:
    """The sink's lifecycle: every client is started and stopped here, in one place."""
    stop = stop or asyncio.Event()
    # Large fetches: a sink reads whole batches' worth of packets, not single records.
    consumer = make_consumer(
        settings,
        group_id=sink_settings.group_id,
        max_partition_fetch_bytes=max(settings.max_message_bytes, 16 * 1024 * 1024),
    )
    admin = make_admin(settings)
    producer = make_producer(settings)
    store = _store(settings, sink_settings, settings.s3_bucket)
    spill_dir = sink_settings.spill_dir or Path(settings.home) / "sink-spill"

    async def fetch_committed(
        partitions: list[TopicPartition],
    ) -> dict[TopicPartition, OffsetAndMetadata]:
        found = await admin.list_consumer_group_offsets(
            sink_settings.group_id, partitions=partitions
        )
        return dict(found)

    async def deadletter(key: bytes | None, value: bytes) -> None:
        await producer.send_and_wait(settings.deadletter_topic, value, key=key)

    service = SinkService(
        consumer,
        store,
        sink_settings,
        fetch_committed,
        SpillArea(spill_dir, sink_settings.max_spill_bytes),
        deadletter=deadletter,
    )
    if started is not None:
        started(service)
    consumer.subscribe([settings.matched_topic], listener=service.listener)
    await _start(consumer.start, "consumer", stop)
    await _start(admin.start, "admin client", stop)
    await _start(producer.start, "producer", stop)
    server = None
    try:
        if sink_settings.stats_port:
            from sinks.stats import serve_stats

            server = await serve_stats(service.stats, sink_settings.stats_port)
        log.info(
            "sink: %s -> s3://%s/%s (group %s)",
            settings.matched_topic,
            settings.s3_bucket,
            sink_settings.prefix,
            sink_settings.group_id,
        )
        with frozen_heap():
            await service.run(stop)
    finally:
        if server is not None:
            server.close()
        await consumer.stop()
        await producer.stop()
        await admin.close()
    return service


#: full passes of the collector wait for this many passes of its middle generation (Python's
#: default is 10) while a sink runs
FULL_PASS_EVERY = 100
_frozen_depth = 0
_saved_threshold: tuple[int, int, int] | None = None


@contextlib.contextmanager
def frozen_heap() -> Iterator[None]:
    """Fewer and cheaper full passes of the garbage collector while the sink runs.

    A full pass holds the GIL, so no thread of the sink (consumer loop, planning, uploads)
    runs meanwhile, and it walks every tracked object: the packets of all open and pending
    batches (``Packet`` is a named tuple, which the collector never untracks as it does plain
    tuples: 42,000 per 64 MB), and what the sink built at start (modules, models, clients),
    which lives as long as it does. In the benchmark that was 3 passes and 0.35-0.57 s per
    192 MB. So the start-up heap is frozen (``gc.freeze``, after one collection, so no garbage
    is kept) and a full pass waits for ``FULL_PASS_EVERY`` middle-generation passes instead of
    10: none in that benchmark. Young passes still run as usual (they free cycles of young
    objects); acyclic garbage is freed by reference counting as ever, so memory stays bounded.
    Both settings are the process's: they are undone when the last sink of the process stops
    (two sinks may run in one process, as in tests).
    """
    global _frozen_depth, _saved_threshold
    gc.collect()
    gc.freeze()
    if _frozen_depth == 0:
        _saved_threshold = gc.get_threshold()
        young, middle, full = _saved_threshold
        gc.set_threshold(young, middle, max(full, FULL_PASS_EVERY))
    _frozen_depth += 1
    try:
        yield
    finally:
        _frozen_depth -= 1
        if _frozen_depth == 0:
            gc.unfreeze()
            if _saved_threshold is not None:
                gc.set_threshold(*_saved_threshold)


async def _start(start: object, name: str, stop: asyncio.Event) -> None:
    attempt = 0
    while not stop.is_set():
        try:
            await start()  # type: ignore[operator]
            return
        except KafkaError as exc:
            attempt += 1
            log.warning("Kafka %s could not start (%s); retrying", name, exc)
            await asyncio.sleep(min(5.0, 0.2 * 2**attempt))


@click.command()
@click.option("--config", type=click.Path(dir_okay=False), help="YAML settings file.")
def sink(config: str | None) -> None:
    """Consume matched streams and store them as locked PCAP objects with manifests.

    Settings: the shared ones (KAFKA_BOOTSTRAP, S3_ENDPOINT, S3_BUCKET, ...) plus SINK_*
    (see docs/sink.md). Stops cleanly on SIGTERM or Ctrl-C, after storing what it holds.
    """
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    try:
        settings = load_settings(config)
        sink_settings = load_sink_settings()
        make_sse(sink_settings.sse, sink_settings.sse_kms_key_id)
    except (SettingsError, ValueError) as exc:
        raise click.UsageError(str(exc)) from None

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await run_sink(settings, sink_settings, stop)

    asyncio.run(main())


def parse_s3_url(url: str) -> tuple[str, str]:
    parts = urlsplit(url)
    if parts.scheme != "s3" or not parts.netloc:
        raise click.BadParameter(f"expected s3://bucket[/prefix], got {url!r}")
    return parts.netloc, parts.path.lstrip("/")


@click.command()
@click.argument("url")
@click.option("--config", type=click.Path(dir_okay=False), help="YAML settings file.")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@click.option(
    "--workers", default=8, show_default=True, type=click.IntRange(1, 64), help="Parallel reads."
)
def verify(url: str, config: str | None, as_json: bool, workers: int) -> None:
    """Re-hash every object under s3://BUCKET/PREFIX, walk the manifest chains and check locks.

    Exits 1 when anything is missing, altered, unlocked, orphaned or out of chain.
    """
    bucket, prefix = parse_s3_url(url)
    try:
        settings = load_settings(config)
        sink_settings = load_sink_settings()
    except SettingsError as exc:
        raise click.UsageError(str(exc)) from None
    store = _store(settings, sink_settings, bucket)
    report = verify_prefix(store, prefix, datetime.now(UTC), workers=workers)
    if as_json:
        click.echo(
            orjson.dumps(
                {
                    "ok": report.ok,
                    "objects": report.objects,
                    "manifests": report.manifests,
                    "chains": report.chains,
                    "bytes_hashed": report.bytes_hashed,
                    "problems": [p.__dict__ for p in report.problems],
                },
                option=orjson.OPT_INDENT_2,
            ).decode()
        )
    else:
        for problem in report.problems:
            click.echo(str(problem))
        verdict = "OK" if report.ok else f"{len(report.problems)} problem(s)"
        click.echo(
            f"{verdict}: {report.objects} objects, {report.manifests} manifests, "
            f"{report.chains} chains, {report.bytes_hashed} bytes re-hashed under {url}"
        )
    sys.exit(0 if report.ok else 1)
