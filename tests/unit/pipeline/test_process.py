"""The batch logic between Faust and Kafka, with an in-process producer and memory store."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiokafka.errors import KafkaTimeoutError, MessageSizeTooLargeError

from pipeline.matcher import SourcePos, decide
from pipeline.process import Deliverer, Incoming, Outgoing, SegmentProcessor
from pipeline.recent import ENTRY_OVERHEAD, RecentValues
from pipeline.reload import RuleSources
from pipeline.stats import PipelineStats
from pipeline.testing import TableCompiler, corpus_records, make_entry, make_record
from streamtap.schema import (
    RecordError,
    decode_matched,
    decode_record,
    encode_matched,
    encode_record,
)


class Producer:
    """Acknowledges every send, except the scripted failures."""

    def __init__(self, fail: list[BaseException] | None = None) -> None:
        self.fail = list(fail or [])
        self.sent: list[tuple[str, bytes, bytes]] = []

    async def send(self, topic: str, key: Any, value: Any, *_: Any) -> Any:
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        if self.fail:
            future.set_exception(self.fail.pop(0))
        else:
            self.sent.append((topic, key, value))
            future.set_result(None)
        return future


class Memory:
    def __init__(self) -> None:
        self.data: dict[bytes, Any] = {}
        self.writes: list[tuple[bytes, int, Any]] = []

    def get(self, key: bytes) -> Any:
        return self.data.get(key)

    def put(self, key: bytes, partition: int, value: Any) -> Outgoing | None:
        self.writes.append((key, partition, value))
        if value is None:
            self.data.pop(key, None)
            return Outgoing("changelog", key, None, partition=partition)
        self.data[key] = value
        return Outgoing("changelog", key, orjson.dumps(value), partition=partition)

    def closed(self, partition: int) -> list[tuple[int, bytes]]:
        return [
            (v["closed_at"][1], k)
            for k, v in self.data.items()
            if v.get("closed_at") and v["closed_at"][0] == partition
        ]

    def unmatched(self, partition: int) -> list[tuple[int, bytes]]:
        return [
            (v["last"][1], k)
            for k, v in self.data.items()
            if v.get("last") and not v.get("rules") and v["last"][0] == partition
        ]


class Fetcher:
    def __init__(self, values: dict[tuple[int, int], bytes]) -> None:
        self.values = values
        self.asked: list[SourcePos] = []

    async def fetch_range(self, partition: int, start: int, end: int) -> list[Any]:
        out = []
        for (p, o), value in sorted(self.values.items()):
            if p == partition and start <= o < end:
                out.append((o, orjson.loads(value)["stream_id"].encode(), value))
        return out

    async def fetch(self, positions: Any) -> list[tuple[SourcePos, bytes | None]]:
        self.asked += positions
        return [(p, self.values.get((p.partition, p.offset))) for p in positions]


def processor(
    kfl: str = "http",
    producer: Producer | None = None,
    fetcher: Fetcher | None = None,
    committed: dict[int, int] | None = None,
    idle_records: int | None = None,
    recent: RecentValues | None = None,
) -> tuple[SegmentProcessor, Producer, Memory]:
    producer = producer or Producer()
    memory = Memory()
    stats = PipelineStats()
    sources = RuleSources(recording_kfl=kfl, compiler=TableCompiler())
    sources.start(0.0, None)
    commits = committed if committed is not None else {}
    proc = SegmentProcessor(
        sources=sources,
        memory=memory,
        deliverer=Deliverer(producer, stats, sleep=lambda s: asyncio.sleep(0)),
        fetcher=fetcher or Fetcher({}),
        stats=stats,
        streams_topic="streams",
        matched_topic="matched",
        deadletter_topic="dead",
        max_pending=8,
        idle_records=idle_records,
        committed=commits.get,
        clock=lambda: 0.0,
        recent=recent,
    )
    return proc, producer, memory


def incoming(record: Any, offset: int, partition: int = 0) -> Incoming:
    return Incoming(partition, offset, record.key, encode_record(record))


async def test_poison_records_are_dead_lettered_with_a_reason() -> None:
    proc, producer, _ = processor()
    good = make_record(stream="s1", entries=(make_entry("http"),))
    await proc.handle(
        [
            Incoming(0, 0, b"k", b"{nope"),
            Incoming(0, 1, b"other", encode_record(good)),
            Incoming(0, 2, None, None),
            incoming(good, 3),
        ]
    )
    dead = [orjson.loads(v) for t, _, v in producer.sent if t == "dead"]
    assert [d["kind"] for d in dead] == ["decode", "key", "decode"]
    assert [d["offset"] for d in dead] == [0, 1, 2]
    assert [decode_matched(v).source_offset for t, _, v in producer.sent if t == "matched"] == [3]
    assert proc.stats.deadlettered == 3


async def test_earlier_segments_are_published_before_the_match_in_order() -> None:
    s0 = make_record(stream="s2", segment=0, closed=False, entries=(make_entry("tcp"),))
    s1 = make_record(stream="s2", segment=1, closed=False, entries=(make_entry("tcp"),))
    s2 = make_record(stream="s2", segment=2, closed=True, entries=(make_entry("http"),))
    fetcher = Fetcher({(0, 10): encode_record(s0)})
    proc, producer, _ = processor(fetcher=fetcher)
    await proc.handle([incoming(s0, 10)])
    await proc.handle([incoming(s1, 11), incoming(s2, 12)])
    assert [p.offset for p in fetcher.asked] == [10]  # s1 came from the batch itself
    published = [decode_matched(v) for t, _, v in producer.sent if t == "matched"]
    assert [m.record.segment for m in published] == [0, 1, 2]


async def _earlier_then_match(
    recent: RecentValues | None,
) -> tuple[Fetcher, SegmentProcessor, list[bytes]]:
    """A stream's two unmatched segments in one batch each, then its matching one."""
    s0 = make_record(stream="s9", segment=0, closed=False, entries=(make_entry("tcp"),))
    s1 = make_record(stream="s9", segment=1, closed=False, entries=(make_entry("tcp"),))
    s2 = make_record(stream="s9", segment=2, closed=True, entries=(make_entry("http"),))
    fetcher = Fetcher({(0, 10): encode_record(s0), (0, 11): encode_record(s1)})
    proc, producer, _ = processor(fetcher=fetcher, recent=recent)
    await proc.handle([incoming(s0, 10)])
    await proc.handle([incoming(s1, 11)])
    await proc.handle([incoming(s2, 12)])
    return fetcher, proc, [v for t, _, v in producer.sent if t == "matched"]


async def test_earlier_segments_this_worker_saw_are_published_without_reading_kafka() -> None:
    fetcher, proc, published = await _earlier_then_match(RecentValues(1 << 20))
    assert fetcher.asked == []
    assert proc.stats.earlier_refetched == 0
    assert [decode_matched(v).record.segment for v in published] == [0, 1, 2]
    assert len(proc.recent) == 0  # taken once published
    # byte for byte what re-reading them from Kafka gives (a replay after a restart)
    fetcher, proc, from_kafka = await _earlier_then_match(None)
    assert [p.offset for p in fetcher.asked] == [10, 11]
    assert proc.stats.earlier_refetched == 2
    assert published == from_kafka


async def test_an_earlier_segment_of_the_same_batch_is_not_kept_once_published() -> None:
    s0 = make_record(stream="s8", segment=0, closed=False, entries=(make_entry("tcp"),))
    s1 = make_record(stream="s8", segment=1, closed=True, entries=(make_entry("http"),))
    fetcher = Fetcher({})
    proc, producer, _ = processor(fetcher=fetcher, recent=RecentValues(1 << 20))
    await proc.handle([incoming(s0, 20), incoming(s1, 21)])
    assert fetcher.asked == []
    assert [decode_matched(v).record.segment for t, _, v in producer.sent if t == "matched"] == [
        0,
        1,
    ]
    assert len(proc.recent) == 0 and proc.recent.held_bytes == 0


async def test_values_of_a_stream_that_closes_unmatched_are_forgotten() -> None:
    s0 = make_record(stream="s7", segment=0, closed=False, entries=(make_entry("tcp"),))
    s1 = make_record(stream="s7", segment=1, closed=True, entries=(make_entry("tcp"),))
    proc, _, _ = processor(recent=RecentValues(1 << 20))
    await proc.handle([incoming(s0, 30)])
    assert len(proc.recent) == 1
    await proc.handle([incoming(s1, 31)])
    assert len(proc.recent) == 0 and proc.recent.held_bytes == 0


class FailingFetcher(Fetcher):
    async def fetch(self, positions: Any) -> list[tuple[SourcePos, bytes | None]]:
        raise ConnectionError("broker away")


async def test_a_failed_re_read_keeps_the_values_it_had_for_the_next_match() -> None:
    s0, s1, s2 = (
        make_record(stream="s6", segment=i, closed=False, entries=(make_entry("tcp"),))
        for i in range(3)
    )
    s3 = make_record(stream="s6", segment=3, closed=False, entries=(make_entry("http"),))
    one = len(encode_record(s1)) + ENTRY_OVERHEAD
    proc, producer, _ = processor(fetcher=FailingFetcher({}), recent=RecentValues(2 * one))
    for offset, record in enumerate((s0, s1, s2)):
        await proc.handle([incoming(record, 40 + offset)])
    assert proc.recent.get(0, 40) is None  # evicted: must be re-read, and that fails
    await proc.handle([incoming(s3, 43)])
    assert [orjson.loads(v)["kind"] for t, _, v in producer.sent if t == "dead"] == ["internal"]
    assert proc.recent.get(0, 41) == encode_record(s1)
    assert proc.recent.get(0, 42) == encode_record(s2)


async def test_earlier_segments_evicted_from_memory_are_read_from_kafka() -> None:
    one = len(encode_record(make_record(stream="s9", segment=1, closed=False,
                                        entries=(make_entry("tcp"),))))  # fmt: skip
    fetcher, proc, published = await _earlier_then_match(RecentValues(one + ENTRY_OVERHEAD))
    assert [p.offset for p in fetcher.asked] == [10]  # 11 pushed 10 out
    assert proc.stats.earlier_refetched == 1
    assert [decode_matched(v).record.segment for v in published] == [0, 1, 2]


async def test_closed_stream_memory_is_deleted_once_committed() -> None:
    commits: dict[int, int] = {}
    proc, producer, memory = processor(committed=commits)
    opened = make_record(stream="s3", segment=0, closed=False, entries=(make_entry("http"),))
    await proc.handle([incoming(opened, 4)])
    producer.sent.clear()
    rec = make_record(stream="s3", segment=1, closed=True, entries=(make_entry("tcp"),))
    await proc.handle([incoming(rec, 5)])
    assert memory.data[b"s3"]["closed_at"] == [0, 5]
    assert [t for t, _, _ in producer.sent] == ["matched", "changelog"]  # memory after output
    other = make_record(stream="s4", entries=(make_entry("tcp"),))
    await proc.handle([incoming(other, 6)])
    assert b"s3" in memory.data  # not committed yet: a replay may still need it
    commits[0] = 6
    await proc.handle([incoming(other, 7)])
    assert b"s3" not in memory.data


async def test_a_stream_matched_and_closed_in_one_segment_writes_no_memory() -> None:
    proc, producer, memory = processor()
    rec = make_record(stream="s5", segment=0, closed=True, entries=(make_entry("http"),))
    await proc.handle([incoming(rec, 5)])
    assert [t for t, _, _ in producer.sent] == ["matched"]
    assert memory.writes == []


async def test_a_restarted_processor_finds_closed_memories_to_clean() -> None:
    commits = {0: 100}
    proc, _, memory = processor(committed=commits)
    memory.data[b"old"] = {"rules": {"recording": 0}, "closed_at": [0, 50]}
    await proc.handle([incoming(make_record(stream="x", entries=()), 100)])
    assert b"old" not in memory.data


async def test_failed_sends_are_retried_until_acknowledged() -> None:
    producer = Producer(fail=[KafkaTimeoutError(), KafkaTimeoutError()])
    stats = PipelineStats()
    deliverer = Deliverer(producer, stats, sleep=lambda s: asyncio.sleep(0))
    refused = await deliverer.deliver(
        [Outgoing("t", b"k", b"1"), Outgoing("t", b"k", b"2"), Outgoing("t", b"k", b"3")]
    )
    assert refused == []
    assert sorted(v for _, _, v in producer.sent) == [b"1", b"2", b"3"]
    assert stats.send_retries == 2


async def test_too_large_output_is_dead_lettered_not_retried() -> None:
    producer = Producer(fail=[MessageSizeTooLargeError()])
    proc, _, _ = processor(producer=producer)
    rec = make_record(stream="big", entries=(make_entry("http"),))
    await proc.handle([incoming(rec, 0)])
    dead = [orjson.loads(v) for t, _, v in producer.sent if t == "dead"]
    assert [(d["kind"], d["offset"]) for d in dead] == [("output", 0)]
    assert "too-large" in dead[0]["reason"]


async def test_records_the_consumer_skipped_are_read_and_processed_first() -> None:
    s0 = make_record(stream="g0", entries=(make_entry("http"),))
    s1 = make_record(stream="g1", entries=(make_entry("http"),))
    s2 = make_record(stream="g2", entries=(make_entry("http"),))
    fetcher = Fetcher({(0, 10): encode_record(s0), (0, 11): encode_record(s1)})
    proc, producer, _ = processor(fetcher=fetcher, committed={0: 10})
    await proc.handle([incoming(s2, 12)])  # 10 and 11 never reached the agent
    published = [decode_matched(v) for t, _, v in producer.sent if t == "matched"]
    assert [m.source_offset for m in published] == [10, 11, 12]
    assert proc.stats.gaps_filled == 2
    await proc.handle([incoming(s2, 13)])  # contiguous now: nothing more is read
    assert proc.stats.gaps_filled == 2


async def test_a_record_skipped_inside_a_batch_is_read_and_processed_in_its_place() -> None:
    """Seen after a SIGKILL and rebalance: Faust handed over offsets 12 and 14 of a partition in
    one batch, never 13. The hole is read before the record after it, so order holds."""
    s = [make_record(stream=f"h{i}", entries=(make_entry("http"),)) for i in range(4)]
    fetcher = Fetcher({(0, 13): encode_record(s[1])})
    proc, producer, _ = processor(fetcher=fetcher, committed={0: 12})
    holes = await proc.handle([incoming(s[0], 12), incoming(s[2], 14), incoming(s[3], 15)])
    assert [(h.partition, h.offset) for h in holes] == [(0, 13)]  # the consumer acks them
    published = [decode_matched(v) for t, _, v in producer.sent if t == "matched"]
    assert [m.source_offset for m in published] == [12, 13, 14, 15]
    assert [m.record.stream_id for m in published] == ["h0", "h1", "h2", "h3"]
    assert proc.stats.gaps_filled == 1
    assert await proc.handle([incoming(s[0], 16), incoming(s[0], 15)]) == []  # no hole
    assert proc.stats.gaps_filled == 1


async def test_records_skipped_at_the_end_of_a_partition_are_read_once_it_is_idle() -> None:
    s = [make_record(stream=f"t{i}", entries=(make_entry("http"),)) for i in range(3)]
    fetcher = Fetcher({(0, 6): encode_record(s[1]), (0, 7): encode_record(s[2])})
    proc, producer, _ = processor(fetcher=fetcher, committed={0: 5})
    now = [100.0]
    proc.clock = lambda: now[0]
    await proc.handle([incoming(s[0], 5)])  # 6 and 7 were skipped, and nothing came after
    assert await proc.catch_up(0, 8, idle_s=10, limit=1) == []  # not idle for long enough
    now[0] = 111.0
    assert [i.offset for i in await proc.catch_up(0, 8, idle_s=10, limit=1)] == [6]
    assert [i.offset for i in await proc.catch_up(0, 8, idle_s=10, limit=1)] == [7]
    assert await proc.catch_up(0, 8, idle_s=10, limit=1) == []  # caught up
    published = [decode_matched(v) for t, _, v in producer.sent if t == "matched"]
    assert [m.source_offset for m in published] == [5, 6, 7]
    assert await proc.catch_up(1, 4, idle_s=10, limit=1) == []  # a partition new to it waits


CORPUS = Path(__file__).resolve().parents[2] / "data" / "corpus"


async def test_published_bytes_are_what_encode_matched_writes_for_the_decoded_record() -> None:
    """The worker forwards the record's bytes instead of decoding and re-encoding them; the
    output must be exactly what the model path (decode_record, decide, encode_matched) gives."""
    records = corpus_records(CORPUS / "mixed-http-dns-204-304.pcap")
    proc, producer, _ = processor(kfl="http or dns")
    await proc.handle([incoming(r, i) for i, r in enumerate(records)])
    ruleset = proc.sources.current
    expected = []
    for i, record in enumerate(records):
        model = decode_record(encode_record(record))
        d = decide(model, ruleset, None, partition=0, offset=i, max_pending=8)
        if d.message is not None:
            expected.append(encode_matched(d.message))
    assert len(expected) > 5
    assert [v for t, _, v in producer.sent if t == "matched"] == expected


async def test_a_record_with_bad_packet_bytes_is_dead_lettered_with_the_decoders_reason() -> None:
    """Packets are not decoded by the worker, but they are checked: a sink must never receive
    a record it cannot decode."""
    good = make_record(stream="p1", entries=(make_entry("http"),))
    doc = orjson.loads(encode_record(good))
    doc["packets"] = [{"ts_ns": 1, "linktype": 1, "wirelen": 3, "data": "not base64!"}]
    bad = orjson.dumps(doc)
    with pytest.raises(RecordError) as err:
        decode_record(bad)
    proc, producer, _ = processor()
    await proc.handle([Incoming(0, 0, b"p1", bad)])
    dead = [orjson.loads(v) for t, _, v in producer.sent if t == "dead"]
    assert [(d["kind"], d["reason"]) for d in dead] == [("decode", str(err.value))]
    assert not [t for t, _, _ in producer.sent if t == "matched"]


async def test_a_valid_record_in_another_json_form_is_published_as_the_same_record() -> None:
    record = make_record(stream="p2", entries=(make_entry("http"),))
    doc = orjson.loads(encode_record(record))
    doc["src"]["port"] = str(doc["src"]["port"])  # pydantic accepts "40000" for an int
    proc, producer, _ = processor()
    await proc.handle([Incoming(0, 0, b"p2", orjson.dumps(doc, option=orjson.OPT_INDENT_2))])
    (value,) = [v for t, _, v in producer.sent if t == "matched"]
    assert decode_matched(value).record == record
    assert value == encode_matched(decode_matched(value))  # rebuilt in the canonical form


async def test_unmatched_memories_of_streams_that_never_close_are_swept(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr("pipeline.process.IDLE_SWEEP_BATCHES", 1)
    commits: dict[int, int] = {}
    proc, _, memory = processor(committed=commits, idle_records=5)
    stale = make_record(stream="gone", segment=0, closed=False, entries=(make_entry("tcp"),))
    fresh = make_record(stream="live", segment=0, closed=False, entries=(make_entry("tcp"),))
    await proc.handle([incoming(stale, 1), incoming(fresh, 4)])
    assert memory.data[b"gone"]["last"] == [0, 1] and b"live" in memory.data
    commits[0] = 7  # 7 - 1 > 5: "gone" can never be met unexpired again; 7 - 4 is not
    await proc.handle([incoming(make_record(stream="x", entries=()), 7)])
    assert b"gone" not in memory.data and b"live" in memory.data
    assert proc.stats.memories_expired == 1
    assert proc.stats.as_dict(0.0)["stream_memories_expired"] == 1


async def test_an_expired_memory_met_again_is_counted_and_restarted() -> None:
    proc, _, memory = processor(idle_records=5)
    seg0 = make_record(stream="slow", segment=0, closed=False, entries=(make_entry("tcp"),))
    seg1 = make_record(stream="slow", segment=1, closed=False, entries=(make_entry("tcp"),))
    await proc.handle([incoming(seg0, 1)])
    await proc.handle([incoming(seg1, 20)])
    assert proc.stats.memories_expired == 1
    assert memory.data[b"slow"]["pending"] == [[0, 20, 1]]
    assert memory.data[b"slow"]["since"] == 1


def test_the_table_store_finds_unmatched_memories_by_partition() -> None:
    from pipeline.agents import TableMemory

    class Table:
        def __init__(self, data: dict[bytes, Any]) -> None:
            self.data = data

    table = Table(
        {
            b"a": {"rules": {}, "pending": [[2, 5, 0]], "overflow": 0, "last": [2, 5]},
            b"b": {"rules": {}, "pending": [[3, 6, 0]], "overflow": 0, "last": [3, 6]},
            b"c": {"rules": {"web": 0}, "pending": [], "overflow": 0},
            b"d": {"rules": {}, "pending": [[2, 1, 0]], "overflow": 0},  # before "last" existed
        }
    )
    assert TableMemory(table).unmatched(2) == [(5, b"a")]


class HeldProducer:
    """Records every send and acknowledges it only when the test says so."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, bytes, asyncio.Future[None]]] = []

    async def send(self, topic: str, key: Any, value: Any, *_: Any) -> Any:
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.sent.append((topic, key, future))
        return future

    def topics(self) -> list[str]:
        return [topic for topic, _, _ in self.sent]

    async def ack(self, index: int) -> None:
        self.sent[index][2].set_result(None)
        for _ in range(5):
            await asyncio.sleep(0)


async def test_the_next_batch_is_decided_while_the_last_is_acknowledged_memory_in_order() -> None:
    """Batch B is decided (against A's memory) and sent before A is acknowledged; each batch's
    changelog goes only after its own outputs and the previous batch's changelog are
    acknowledged, and each future is done only once its changelog is."""
    held = HeldProducer()
    proc, _, memory = processor(producer=held)  # type: ignore[arg-type]
    opened = make_record(stream="o", segment=0, closed=False, entries=(make_entry("http"),))
    later = make_record(stream="o", segment=1, closed=False, entries=(make_entry("tcp"),))
    fresh = make_record(stream="n", segment=0, closed=False, entries=(make_entry("http"),))
    _, done_a = await proc.start([incoming(opened, 0)])
    await asyncio.sleep(0)
    assert held.topics() == ["matched"]  # A's output, no memory yet
    assert memory.data[b"o"]["rules"]  # the local memory already knows
    # a tcp segment, published because A's memory says the stream matched
    _, done_b = await proc.start([incoming(later, 1), incoming(fresh, 2)])
    await asyncio.sleep(0)
    assert held.topics() == ["matched"] * 3
    await held.ack(1)
    await held.ack(2)  # B's outputs first: B's memory still waits for A's
    assert held.topics() == ["matched"] * 3
    await held.ack(0)
    assert held.topics() == ["matched"] * 3 + ["changelog"]  # A's memory
    assert held.sent[3][1] == b"o"
    assert not done_a.done() and not done_b.done()
    await held.ack(3)
    assert done_a.done() and not done_b.done()
    assert held.topics() == ["matched"] * 3 + ["changelog"] * 2  # then B's
    assert held.sent[4][1] == b"n"
    await held.ack(4)
    assert done_b.done()
