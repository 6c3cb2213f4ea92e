"""The worker's Faust parts: the ``streams`` batch handler, the catch-up and rules-file timers,
the control task and the ``/stats`` page. The logic they call lives in ``process`` and ``reload``.

``streams`` has no agent: the worker's consumer (``consumer.BatchConsumer``) hands each fetch of
its records to ``handle``, which returns once they are decided with a future done when every
output and memory write is acknowledged by Kafka, and acks them to Faust's bookkeeping only
then, so committed offsets never run ahead of delivered output. Batching is what lets one
worker wait for acknowledgements without waiting one round trip per record.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

import faust
import orjson
from aiokafka.errors import KafkaError
from faust.types import TP

from pipeline.consumer import PipelineApp, batch_consumer
from pipeline.control import ControlListener
from pipeline.fetch import SegmentFetcher
from pipeline.process import Deliverer, Incoming, Outgoing, SegmentProcessor
from pipeline.recent import RecentValues
from pipeline.topics import Topics

__all__ = ["register"]

log = logging.getLogger("streamtap.pipeline")


class TableMemory:
    """The stream-memory table, written to the changelog partition of the record's own
    ``streams`` partition (the co-partitioning Faust's recovery relies on), named explicitly
    because the agent writes after a batch, when no single event is current. Faust reads the
    changelog back on recovery (value JSON, key the raw stream id, tombstone = deletion)."""

    def __init__(self, table: Any) -> None:
        self._table = table

    def get(self, key: bytes) -> Any:
        return self._table.data.get(key)

    def closed(self, partition: int) -> list[tuple[int, bytes]]:
        found = []
        for key, value in list(self._table.data.items()):
            closed_at = value.get("closed_at") if isinstance(value, dict) else None
            if closed_at and int(closed_at[0]) == partition:
                found.append((int(closed_at[1]), key))
        return found

    def unmatched(self, partition: int) -> list[tuple[int, bytes]]:
        found = []
        for key, value in list(self._table.data.items()):
            last = value.get("last") if isinstance(value, dict) else None
            if last and not value.get("rules") and int(last[0]) == partition:
                found.append((int(last[1]), key))
        return found

    def put(self, key: bytes, partition: int, value: dict[str, Any] | None) -> Outgoing | None:
        """Update the table's local store and hand back its changelog record: the processor
        delivers it with the batch's outputs and waits for the acknowledgement (Faust's own
        changelog path buffers it, and its pre-commit flush may return before the buffer is
        empty)."""
        data = self._table.data
        topic = self._table.changelog_topic.get_topic_name()
        if value is None:
            if key not in data:
                return None
            del data[key]
            return Outgoing(topic, key, None, partition=partition)
        data[key] = value
        return Outgoing(topic, key, orjson.dumps(value), partition=partition)


def register(app: PipelineApp, runtime: Any, topics: Topics, table: Any) -> None:
    config = runtime.config
    settings = config.settings
    text = runtime.watcher.read_now() if runtime.watcher is not None else None
    control = ControlListener(
        settings.kafka_bootstrap, settings.control_topic, runtime.apply_control
    )
    # Loaded now, before the worker joins the group (logged once logging is up): the file, the
    # env and the latest rule set on the control topic.
    runtime.sources.start(time.time(), text)
    snapshot_problem = None
    try:
        document = asyncio.run(asyncio.wait_for(control.snapshot(), config.control_wait_s))
    except (TimeoutError, OSError, KafkaError) as exc:
        document = None
        snapshot_problem = f"control topic not read at start ({type(exc).__name__}); following it"
    if document is not None:
        runtime.sources.apply_control(time.time(), document)
    startup = list(runtime.sources.history)

    fetcher = SegmentFetcher(
        settings.kafka_bootstrap, settings.streams_topic, max_bytes=settings.max_message_bytes
    )
    control = ControlListener(
        settings.kafka_bootstrap, settings.control_topic, runtime.apply_control
    )
    state: dict[str, SegmentProcessor] = {}

    def processor() -> SegmentProcessor:
        if "p" not in state:
            state["p"] = SegmentProcessor(
                sources=runtime.sources,
                memory=TableMemory(table),
                deliverer=Deliverer(app.producer, runtime.stats),
                fetcher=fetcher,
                stats=runtime.stats,
                streams_topic=settings.streams_topic,
                matched_topic=settings.matched_topic,
                deadletter_topic=settings.deadletter_topic,
                max_pending=config.max_pending,
                idle_records=config.idle_records,
                committed=committed,
                recent=RecentValues(config.recent_bytes),
            )
        return state["p"]

    def committed(partition: int) -> int | None:
        """The offset Faust last committed for ``streams``/partition (its own bookkeeping)."""
        offsets = getattr(app.consumer, "_committed_offset", {})
        offset = offsets.get(TP(settings.streams_topic, partition))
        return None if offset is None else int(offset)

    def read_through(tp: TP, end: int) -> bool:
        """Whether Faust's consumer has passed every record below ``end`` on (its own
        bookkeeping: the offset of the last record it handed to the streams)."""
        offset = getattr(app.consumer, "_read_offset", {}).get(tp)
        return offset is not None and int(offset) + 1 >= end

    def highwater(tp: TP) -> int | None:
        try:
            return int(app.consumer.highwater(tp))
        except Exception:
            return None

    one_at_a_time = asyncio.Lock()  # the consumer's batches and the catch-up timer share it

    async def handle(batch: list[Incoming]) -> tuple[list[Incoming], asyncio.Future[None]]:
        """One fetch of ``streams`` records (``BatchConsumer``): decided; the future is done
        once its outputs and memory are acknowledged by Kafka, and the consumer acks them (and
        the records read here) then. The lock covers the decisions only (the catch-up's
        batches go after the one being decided; the changelog is written in batch order)."""
        async with one_at_a_time:
            return await processor().start(batch)

    app.route.handle = handle
    app.batch_topic = topics.streams

    @app.timer(config.catch_up_interval_s)
    async def catch_up() -> None:
        """Records skipped at the end of a partition have no later record to reveal them."""
        if not app.rebalancing:
            await batch_consumer(app).catch_up(read_skipped)

    async def read_skipped(tp: TP) -> list[Incoming]:
        """One partition's turn of ``catch_up``: the records read and processed here, which the
        consumer acks as if it had handed them over."""
        end = highwater(tp)
        if end is None or not read_through(tp, end):
            return []  # the consumer has not fetched them yet: they are coming, not skipped
        async with one_at_a_time:
            return await processor().catch_up(
                tp.partition, end, config.catch_up_idle_s, config.batch_size
            )

    @app.timer(config.poll_interval_s)
    async def poll_rules() -> None:
        runtime.poll_rules_file()

    @app.task
    async def follow_control() -> None:
        for event in startup:
            runtime.record_reload(event)
        if snapshot_problem:
            log.warning("%s", snapshot_problem)
        await control.run()

    @app.page("/stats/")
    async def stats_view(self: faust.web.View, request: faust.web.Request) -> Any:
        return self.json(runtime.stats_dict())

    @app.on_before_shutdown.connect  # type: ignore[arg-type]
    async def close_fetcher(sender: Any, *args: Any, **kwargs: Any) -> None:
        await fetcher.stop()
