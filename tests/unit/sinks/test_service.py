"""The service's commit protocol and back-pressure, with a fake consumer and a fake store.

The real Kafka and S3 paths are covered in tests/integration/sinks; here the order of events is
checked exactly: a batch's close is committed before any of its objects is stored, its offsets
only after all of them are, and a dead store fills memory, then the spill area, then pauses.
"""

from __future__ import annotations

import asyncio
import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiokafka import TopicPartition
from aiokafka.structs import OffsetAndMetadata

from sinks.config import load_sink_settings
from sinks.keys import MANIFEST_SUFFIX, parse_key
from sinks.service import SinkService, decode_closes, encode_closes
from sinks.spill import SpillArea
from sinks.store import PutOptions, StoredObject
from sinks.testing import MemoryStore, matched, packet
from sinks.verify import verify_prefix
from streamtap.schema import RecordError, decode_matched, encode_matched

TP = TopicPartition("matched", 0)
BOUND_S = 60  # only so a broken service fails instead of hanging
_NOTHING = OffsetAndMetadata(-1, "")


@dataclass
class _Record:
    offset: int
    value: bytes
    timestamp: int
    key: bytes | None = None


@dataclass
class FakeConsumer:
    log: list[tuple[Any, ...]]
    records: list[_Record] = field(default_factory=list)
    committed: dict[TopicPartition, OffsetAndMetadata] = field(default_factory=dict)
    _paused: set[TopicPartition] = field(default_factory=set)
    _next: int = 0
    #: answer highwater() as Kafka does once fetched from (None: not known, as before a fetch)
    knows_highwater: bool = False

    def assignment(self) -> set[TopicPartition]:
        return {TP}

    def paused(self) -> set[TopicPartition]:
        return set(self._paused)

    def pause(self, *tps: TopicPartition) -> None:
        self._paused.update(tps)

    def resume(self, *tps: TopicPartition) -> None:
        self._paused.difference_update(tps)

    def highwater(self, tp: TopicPartition) -> int | None:
        return len(self.records) if self.knows_highwater else None

    async def position(self, tp: TopicPartition) -> int:
        return self._next

    async def getmany(self, timeout_ms: int, max_records: int) -> dict[Any, list[_Record]]:
        if TP in self._paused or self._next >= len(self.records):
            await asyncio.sleep(0.01)
            return {}
        batch = self.records[self._next : self._next + min(max_records, 3)]
        self._next += len(batch)
        return {TP: batch}

    async def commit(self, offsets: dict[TopicPartition, OffsetAndMetadata]) -> None:
        for tp, om in offsets.items():
            self.committed[tp] = om
            self.log.append(("commit", om.offset, tuple(decode_closes(om.metadata))))


@dataclass
class LoggingStore(MemoryStore):
    log: list[tuple[Any, ...]] = field(default_factory=list)
    down: bool = False

    def put(self, key: str, data: bytes, options: PutOptions) -> StoredObject:
        if self.down:
            raise ConnectionError("S3 is down")
        self.log.append(("put", key))
        return super().put(key, data, options)

    def list_keys(self, prefix: str):  # type: ignore[no-untyped-def]
        if self.down:
            raise ConnectionError("S3 is down")
        return super().list_keys(prefix)


def _records(count: int) -> list[_Record]:
    return [
        _Record(i, encode_matched(matched(f"s{i}", [packet(1_795_773_600_000_000_000 + i)])), 1000)
        for i in range(count)
    ]


def _service(
    consumer: FakeConsumer,
    store: LoggingStore,
    tmp: Path,
    dead: Any = None,
    clock_s: float = 0.0,
    **env: str,
) -> SinkService:
    values = {
        "SINK_MAX_BATCH_MESSAGES": "4",
        "SINK_MAX_BATCH_AGE_S": "3600",
        "SINK_RETRY_BASE_S": "0.01",
        "SINK_RETRY_MAX_S": "0.02",
        "SINK_DEFAULT_RETENTION_DAYS": "1",
    }
    settings = load_sink_settings(**{**values, **env})

    async def fetch(tps: list[TopicPartition]) -> dict[TopicPartition, OffsetAndMetadata]:
        return {tp: consumer.committed[tp] for tp in tps if tp in consumer.committed}

    return SinkService(
        consumer,  # type: ignore[arg-type]
        store,
        settings,
        fetch,
        SpillArea(tmp / "spill", settings.max_spill_bytes),
        deadletter=dead,
        clock=lambda: clock_s,
    )


async def _run_until(service: SinkService, done: Any) -> None:
    stop = asyncio.Event()
    task = asyncio.create_task(service.run(stop))
    async with asyncio.timeout(BOUND_S):
        while not done():
            assert not task.done(), task.exception() if task.done() else None
            await asyncio.sleep(0.01)
    stop.set()
    await task


async def test_close_is_committed_before_upload_and_offsets_after(tmp_path: Path) -> None:
    log: list[tuple[Any, ...]] = []
    consumer, store = FakeConsumer(log, _records(10)), LoggingStore(log=log)
    service = _service(consumer, store, tmp_path)
    await _run_until(service, lambda: service.stats.messages == 10)
    assert consumer.committed[TP].offset == 10
    assert decode_closes(consumer.committed[TP].metadata) == []
    pcaps = [(i, e[1]) for i, e in enumerate(log) if e[0] == "put" and e[1].endswith(".pcap")]
    assert len(pcaps) == 3  # 0-3, 4-7, and 8-9 flushed at shutdown
    for index, key in pcaps:
        last = parse_key(key).last_offset
        intent = next(i for i, e in enumerate(log) if e[0] == "commit" and last in e[2])
        done = next(i for i, e in enumerate(log) if e[0] == "commit" and e[1] == last + 1)
        manifest = log.index(("put", key + MANIFEST_SUFFIX))
        assert intent < index < manifest < done


def _ranges(store: LoggingStore) -> list[tuple[int, int]]:
    return sorted(
        (parse_key(k).first_offset, parse_key(k).last_offset)
        for k in store.objects
        if k.endswith(".pcap")
    )


@pytest.mark.parametrize(
    ("knows_highwater", "ranges"),
    [
        # Kafka says more records wait: batches fill up (4 messages) whatever their age, and
        # the last one closes by age as soon as the partition has caught up.
        (True, [(0, 3), (4, 7), (8, 9)]),
        # Nothing known about what waits: every fetch (3 records here) ends an old batch.
        (False, [(0, 2), (3, 5), (6, 8), (9, 9)]),
    ],
)
async def test_backlog_batches_close_by_age_only_once_caught_up(
    tmp_path: Path, knows_highwater: bool, ranges: list[tuple[int, int]]
) -> None:
    log: list[tuple[Any, ...]] = []
    consumer = FakeConsumer(log, _records(10), knows_highwater=knows_highwater)
    store = LoggingStore(log=log)
    # Every message is far older than the batch age by the service's clock: a backlog.
    service = _service(consumer, store, tmp_path, clock_s=10_000.0, SINK_MAX_BATCH_AGE_S="1")
    # Waiting for the last commit means the last batch closed by age, not at shutdown.
    await _run_until(service, lambda: consumer.committed.get(TP, _NOTHING).offset == 10)
    assert _ranges(store) == ranges


async def test_restart_rebuilds_recorded_closes_exactly(tmp_path: Path) -> None:
    # A previous run closed [0..1] and [2..6] (say, at shutdown) and died before uploading.
    log: list[tuple[Any, ...]] = []
    consumer, store = FakeConsumer(log, _records(10)), LoggingStore(log=log)
    consumer.committed[TP] = OffsetAndMetadata(0, encode_closes([1, 6]))
    service = _service(consumer, store, tmp_path)
    await _run_until(service, lambda: service.stats.messages == 10)
    ranges = sorted(
        (parse_key(k).first_offset, parse_key(k).last_offset)
        for k in store.objects
        if k.endswith(".pcap")
    )
    assert ranges == [(0, 1), (2, 6), (7, 9)]


async def test_dead_store_fills_memory_then_spill_then_pauses(tmp_path: Path) -> None:
    log: list[tuple[Any, ...]] = []
    consumer, store = FakeConsumer(log, _records(40)), LoggingStore(log=log, down=True)
    service = _service(
        consumer,
        store,
        tmp_path,
        SINK_MAX_BATCH_MESSAGES="2",
        SINK_MAX_PENDING_BYTES="1000",
        SINK_MAX_SPILL_BYTES="2000",
    )
    stop = asyncio.Event()
    task = asyncio.create_task(service.run(stop))
    async with asyncio.timeout(BOUND_S):
        while not service.stats.paused:
            await asyncio.sleep(0.01)
    assert service.stats.spilled_bytes_total > 0
    assert consumer._next < len(consumer.records), "it paused before reading everything"
    assert TP not in consumer.committed or consumer.committed[TP].offset == 0
    store.down = False
    async with asyncio.timeout(BOUND_S):
        while consumer.committed.get(TP, OffsetAndMetadata(0, "")).offset < 40:
            await asyncio.sleep(0.01)
    stop.set()
    await task
    ids = []
    for key in store.objects:
        if key.endswith(MANIFEST_SUFFIX):
            ids += [s["id"] for s in orjson.loads(store.get(key))["streams"]]
    assert sorted(ids) == sorted(f"s{i}" for i in range(40))
    assert service.stats.retries > 0 and service.stats.pauses > 0


async def test_bad_messages_are_counted_and_left_out(tmp_path: Path) -> None:
    log: list[tuple[Any, ...]] = []
    records = _records(8)
    records[3] = _Record(3, b"not a matched stream", 1000, b"s3")
    records[7] = _Record(7, b'{"schema_version": 99}', 1000, b"s7")
    consumer, store = FakeConsumer(log, records), LoggingStore(log=log)
    dead: list[tuple[bytes | None, dict[str, Any]]] = []

    async def deadletter(key: bytes | None, value: bytes) -> None:
        dead.append((key, orjson.loads(value)))

    service = _service(consumer, store, tmp_path, deadletter)
    await _run_until(service, lambda: service.stats.messages + service.stats.bad_messages == 8)
    assert service.stats.bad_messages == 2
    ids = sorted(
        s["id"]
        for key in store.objects
        if key.endswith(MANIFEST_SUFFIX)
        for s in orjson.loads(store.get(key))["streams"]
    )
    assert ids == ["s0", "s1", "s2", "s4", "s5", "s6"]
    assert [(k, d["offset"], d["kind"], d["topic"]) for k, d in dead] == [
        (b"s3", 3, "decode", "matched"),
        (b"s7", 7, "decode", "matched"),
    ]
    assert "schema_version" in dead[1][1]["reason"]


def _damaged(offset: int, where: tuple[Any, ...], value: Any) -> _Record:
    """A message that is valid JSON of the right version but wrong at ``where``."""
    doc = orjson.loads(_records(offset + 1)[offset].value)
    parent = doc
    for step in where[:-1]:
        parent = parent[step]
    parent[where[-1]] = value
    return _Record(offset, orjson.dumps(doc), 1000, f"s{offset}".encode())


async def test_damaged_messages_are_dead_lettered_with_the_schemas_reason(tmp_path: Path) -> None:
    """The sink decodes packets itself (``decode_matched_packets``), yet refuses exactly what
    ``decode_matched`` refuses, with its reason: bad base64, a bad header beside good packets,
    a bad rule setting, and a timestamp no PCAP can hold."""
    log: list[tuple[Any, ...]] = []
    records = _records(8)
    records[1] = _damaged(1, ("record", "packets", 0, "data"), "bm90IGJhc2U2NA")
    records[2] = _damaged(2, ("record", "dst", "port"), 65536)
    records[4] = _damaged(4, ("rules", "web", "retention_days"), 0)
    records[6] = _damaged(6, ("record", "packets", 0, "ts_ns"), -5)
    consumer, store = FakeConsumer(log, records), LoggingStore(log=log)
    dead: list[dict[str, Any]] = []

    async def deadletter(key: bytes | None, value: bytes) -> None:
        dead.append(orjson.loads(value))

    service = _service(consumer, store, tmp_path, deadletter)
    await _run_until(service, lambda: service.stats.messages + service.stats.bad_messages == 8)
    assert [d["offset"] for d in dead] == [1, 2, 4, 6]
    for d in dead[:3]:
        with pytest.raises(RecordError) as reference:
            decode_matched(records[d["offset"]].value)
        assert d["reason"] == str(reference.value)
    assert "before 1970" in dead[3]["reason"]
    stored = sorted(
        s["id"]
        for key in store.objects
        if key.endswith(MANIFEST_SUFFIX)
        for s in orjson.loads(store.get(key))["streams"]
    )
    assert stored == ["s0", "s3", "s5", "s7"]


@dataclass
class GatedStore(LoggingStore):
    """Holds the first batch's manifest until an object of a later batch has arrived, so a
    service that stores batches strictly one after another never gets past it."""

    later_object: threading.Event = field(default_factory=threading.Event)
    waited: list[bool] = field(default_factory=list)

    def put(self, key: str, data: bytes, options: PutOptions) -> StoredObject:
        if key.endswith(".pcap") and parse_key(key).first_offset > 0:
            self.later_object.set()
        if (
            key.endswith(MANIFEST_SUFFIX)
            and parse_key(key[: -len(MANIFEST_SUFFIX)]).first_offset == 0
        ):
            # Bounded only so a service that does not overlap fails instead of hanging.
            self.waited.append(self.later_object.wait(BOUND_S / 4))
        return super().put(key, data, options)


async def test_next_batch_objects_overlap_but_manifests_and_commits_stay_in_order(
    tmp_path: Path,
) -> None:
    log: list[tuple[Any, ...]] = []
    consumer, store = FakeConsumer(log, _records(24)), GatedStore(log=log)
    service = _service(consumer, store, tmp_path, SINK_BATCHES_IN_FLIGHT="3")
    await _run_until(service, lambda: consumer.committed.get(TP, _NOTHING).offset == 24)
    assert store.waited == [True], "batch 2's object was not sent while batch 1 was pending"
    manifests = [
        parse_key(e[1][: -len(MANIFEST_SUFFIX)]).first_offset
        for e in log
        if e[0] == "put" and e[1].endswith(MANIFEST_SUFFIX)
    ]
    assert manifests == sorted(manifests) == list(range(0, 24, 4))
    commits = [e[1] for e in log if e[0] == "commit"]
    assert commits == sorted(commits)
    for first in range(0, 24, 4):
        # No batch's offsets are committed before its manifest is stored.
        manifest = next(
            i
            for i, e in enumerate(log)
            if e[0] == "put"
            and e[1].endswith(MANIFEST_SUFFIX)
            and parse_key(e[1][: -len(MANIFEST_SUFFIX)]).first_offset == first
        )
        done = next(i for i, e in enumerate(log) if e[0] == "commit" and e[1] >= first + 4)
        assert manifest < done
    # The fake records carry Kafka timestamp 1 s, so their retention runs to 2 Jan 1970.
    assert verify_prefix(store, "", datetime(1970, 1, 1, 12, tzinfo=UTC)).ok


async def test_one_batch_in_flight_stores_strictly_in_turn(tmp_path: Path) -> None:
    log: list[tuple[Any, ...]] = []
    consumer, store = FakeConsumer(log, _records(12)), LoggingStore(log=log)
    service = _service(consumer, store, tmp_path, SINK_BATCHES_IN_FLIGHT="1")
    await _run_until(service, lambda: consumer.committed.get(TP, _NOTHING).offset == 12)
    firsts = [
        parse_key(e[1].removesuffix(MANIFEST_SUFFIX)).first_offset for e in log if e[0] == "put"
    ]
    assert firsts == [0, 0, 4, 4, 8, 8]  # object, manifest, object, manifest, ...
