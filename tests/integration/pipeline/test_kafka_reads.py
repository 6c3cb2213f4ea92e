"""How the worker reads ``streams`` from a real broker: the fetch wait its consumer asks for, and
re-reading earlier segments one partition at a time."""

from __future__ import annotations

import asyncio
import random
from pathlib import Path
from typing import Any

from pipeline.app import PipelineConfig, create_app
from pipeline.consumer import BatchConsumer
from pipeline.fetch import SegmentFetcher
from pipeline.matcher import SourcePos
from pipeline.testing import corpus_records, produce, read_topic

CORPUS = Path(__file__).resolve().parents[2] / "data" / "corpus"


def test_the_worker_consumer_asks_the_broker_for_the_configured_fetch_wait(
    settings: Any, tmp_path: Path
) -> None:
    """Faust builds its consumer with a fixed 1,500 ms wait; the worker's own is what reaches
    aiokafka's fetcher once the consumer runs (the attribute is read at start)."""
    app, _ = create_app(PipelineConfig(settings=settings, fetch_wait_ms=77, datadir=tmp_path))

    async def started_fetch_wait() -> int:
        consumer = app.consumer
        assert isinstance(consumer, BatchConsumer)
        client = consumer._thread._create_worker_consumer(app.transport)
        await client.start()
        try:
            return int(client._fetcher._fetch_max_wait_ms)
        finally:
            await client.stop()

    assert asyncio.run(started_fetch_wait()) == 77


async def test_segments_are_re_read_from_any_partition_in_any_order(settings: Any) -> None:
    records = corpus_records(CORPUS / "mixed-http-dns-204-304.pcap", node="reread")
    await produce(settings, records)
    stored = await read_topic(settings, settings.streams_topic)
    by_position = {(m.partition, m.offset): m.value for m in stored}
    assert len({p for p, _ in by_position}) > 1  # the test needs several partitions
    positions = [SourcePos(p, o, 0) for p, o in by_position]
    random.Random(7).shuffle(positions)
    fetcher = SegmentFetcher(
        settings.kafka_bootstrap, settings.streams_topic, max_bytes=settings.max_message_bytes
    )
    try:
        asked = positions[:40]
        got = await fetcher.fetch(asked)
        assert got == [(p, by_position[p.partition, p.offset]) for p in asked]
        # it reads one partition at a time: another assigned partition's unread prefetch
        # would hold back the next fetch (fetch.py, ``_focus``)
        assert fetcher._consumer is not None
        assert {tp.partition for tp in fetcher._consumer.assignment()} == {asked[-1].partition}
    finally:
        await fetcher.stop()
