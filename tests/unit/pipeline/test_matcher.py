"""Stream semantics, decided per segment without Kafka."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.matcher import (
    SourcePos,
    StreamMemory,
    decide,
    earlier_message,
    earlier_publish,
    evaluate,
)
from pipeline.rules import RuleSet, RuleSpec, build_ruleset
from pipeline.testing import TableCompiler, corpus_records, make_entry, make_record
from streamtap.schema import (
    StreamRecord,
    decode_matched,
    encode_matched,
    encode_record,
    view_record,
)

HTTP = make_entry("http")
DNS = make_entry("dns")
TCP = make_entry("tcp")


def rules(**queries: str) -> RuleSet:
    return build_ruleset(
        {name: RuleSpec(kfl=q) for name, q in queries.items()}, compiler=TableCompiler()
    )


def test_evaluate_lists_matching_entry_indices_per_rule() -> None:
    rec = make_record(entries=(TCP, HTTP, DNS, HTTP))
    assert evaluate(rec, rules(web="http", any="http or dns")) == {
        "any": (1, 2, 3),
        "web": (1, 3),
    }


def test_single_matching_segment_is_published_and_leaves_no_memory() -> None:
    d = decide(
        make_record(entries=(HTTP,)), rules(web="http"), None, partition=2, offset=7, max_pending=4
    )
    assert d.message is not None
    assert d.message.matched_entries == {"web": (0,)}
    assert set(d.message.rules) == {"web"}
    assert (d.message.source_partition, d.message.source_offset) == (2, 7)
    assert d.refetch == ()
    # nothing was remembered before it, so a replay needs nothing either: no table write
    assert d.memory is None and not d.memory_changed


def test_a_matched_stream_closing_is_marked_closed_until_committed() -> None:
    rs = rules(web="http")
    opened = decide(
        make_record(segment=0, closed=False, entries=(HTTP,)),
        rs,
        None,
        partition=2,
        offset=6,
        max_pending=4,
    )
    d = decide(
        make_record(segment=1, closed=True, entries=(TCP,)),
        rs,
        opened.memory,
        partition=2,
        offset=7,
        max_pending=4,
    )
    assert d.message is not None and d.message.matched_entries == {"web": ()}
    # kept (marked closed) until the worker commits past it; then the agent deletes it
    assert d.memory == StreamMemory(first=(("web", 0),), closed_at=(2, 7)) and d.memory_changed


def test_unmatched_closed_stream_leaves_no_memory() -> None:
    d = decide(
        make_record(entries=(TCP,)), rules(web="http"), None, partition=0, offset=1, max_pending=4
    )
    assert d.message is None and d.memory is None and not d.memory_changed


def test_earlier_segments_are_remembered_then_refetched_on_match() -> None:
    rs = rules(web="http")
    mem = None
    for seg in range(3):
        d = decide(
            make_record(segment=seg, closed=False, entries=(TCP,)),
            rs,
            mem,
            partition=1,
            offset=10 + seg,
            max_pending=8,
        )
        assert d.message is None and d.memory_changed
        mem = d.memory
    d = decide(
        make_record(segment=3, closed=False, entries=(HTTP,)),
        rs,
        mem,
        partition=1,
        offset=20,
        max_pending=8,
    )
    assert d.refetch == (SourcePos(1, 10, 0), SourcePos(1, 11, 1), SourcePos(1, 12, 2))
    assert d.message is not None and d.message.matched_entries == {"web": (0,)}
    assert d.memory == StreamMemory.matched(web=3)


def test_later_segments_of_a_matched_stream_are_published_with_empty_indices() -> None:
    rs = rules(web="http")
    mem = StreamMemory.matched(web=0)
    d = decide(
        make_record(segment=5, closed=False, entries=(TCP,)),
        rs,
        mem,
        partition=0,
        offset=3,
        max_pending=4,
    )
    assert d.message is not None
    assert d.message.matched_entries == {"web": ()}
    assert d.memory == mem and not d.memory_changed
    closing = decide(
        make_record(segment=6, closed=True), rs, mem, partition=0, offset=4, max_pending=4
    )
    assert closing.message is not None
    assert closing.memory == StreamMemory(first=(("web", 0),), closed_at=(0, 4))


def test_a_removed_rule_stops_recording_its_streams() -> None:
    mem = StreamMemory.matched(gone=0)
    d = decide(
        make_record(segment=1, closed=False, entries=(TCP,)),
        rules(web="http"),
        mem,
        partition=0,
        offset=1,
        max_pending=4,
    )
    assert d.message is None


def test_new_rules_join_a_matched_stream() -> None:
    rs = rules(web="http", names="dns")
    mem = StreamMemory.matched(web=0)
    d = decide(
        make_record(segment=1, closed=False, entries=(DNS,)),
        rs,
        mem,
        partition=0,
        offset=1,
        max_pending=4,
    )
    assert d.message is not None
    assert d.message.matched_entries == {"names": (0,), "web": ()}
    assert d.memory == StreamMemory.matched(web=0, names=1)


def test_pending_is_bounded_and_overflow_is_counted() -> None:
    rs = rules(web="http")
    mem = None
    for seg in range(5):
        mem = decide(
            make_record(segment=seg, closed=False, entries=(TCP,)),
            rs,
            mem,
            partition=0,
            offset=seg,
            max_pending=2,
        ).memory
    assert mem is not None and len(mem.pending) == 2 and mem.overflow == 3
    d = decide(
        make_record(segment=5, closed=False, entries=(HTTP,)),
        rs,
        mem,
        partition=0,
        offset=9,
        max_pending=2,
    )
    assert [p.segment for p in d.refetch] == [0, 1]
    assert d.lost_earlier == 3


def test_recording_off_remembers_nothing() -> None:
    d = decide(
        make_record(closed=False, entries=(HTTP,)),
        rules(),
        None,
        partition=0,
        offset=0,
        max_pending=4,
    )
    assert d.message is None and not d.memory_changed


def test_a_redelivered_segment_is_not_remembered_twice() -> None:
    rs = rules(web="http")
    first = decide(
        make_record(segment=0, closed=False), rs, None, partition=0, offset=0, max_pending=4
    )
    again = decide(
        make_record(segment=0, closed=False), rs, first.memory, partition=0, offset=0, max_pending=4
    )
    assert again.memory == first.memory and not again.memory_changed


def test_processing_twice_gives_an_identical_message() -> None:
    """A worker killed after publishing but before committing sees the segment again, with the
    table either before or after its update; the message must not change."""
    rs = rules(web="http", names="dns")
    before = StreamMemory.matched(names=0)
    rec = make_record(segment=2, closed=False, entries=(HTTP,))
    first = decide(rec, rs, before, partition=0, offset=5, max_pending=4)
    second = decide(rec, rs, first.memory, partition=0, offset=5, max_pending=4)
    assert first.message == second.message


def test_redaction_is_applied_to_published_entries() -> None:
    rs = rules(hide="secret")
    d = decide(
        make_record(entries=(make_entry("http", secret="pw"),)),
        rs,
        None,
        partition=0,
        offset=0,
        max_pending=4,
    )
    assert d.message is not None
    assert d.message.record.entries[0]["secret"] == "[REDACTED]"


def test_earlier_message_carries_rules_with_empty_indices() -> None:
    rs = rules(web="http", hide="secret")
    rec = make_record(segment=0, closed=False, entries=(make_entry("tcp", secret="x"),))
    msg = earlier_message(rec, rs, frozenset({"web", "hide", "removed"}), 3, 9)
    assert msg.matched_entries == {"hide": (), "web": ()}
    assert msg.record.entries[0]["secret"] == "[REDACTED]"
    assert (msg.source_partition, msg.source_offset) == (3, 9)


def test_memory_round_trips_through_json() -> None:
    mem = StreamMemory(first=(("a", 7),), pending=(SourcePos(1, 2, 3),), overflow=4)
    assert StreamMemory.from_json(mem.to_json()) == mem
    assert StreamMemory.from_json(None) == StreamMemory()


@given(
    flags=st.lists(st.booleans(), min_size=1, max_size=12),
    max_pending=st.integers(min_value=0, max_value=12),
)
def test_every_segment_from_a_matching_stream_is_published_once(
    flags: list[bool], max_pending: int
) -> None:
    """One pass over a stream's segments: if any segment matches, each segment is published
    exactly once (directly or re-read), except the ones the bounded memory counted as lost."""
    rs = rules(web="http")
    mem: StreamMemory | None = None
    published: list[int] = []
    lost = 0
    for seg, hit in enumerate(flags):
        rec = make_record(
            segment=seg, closed=seg == len(flags) - 1, entries=(HTTP if hit else TCP,)
        )
        d = decide(rec, rs, mem, partition=0, offset=seg, max_pending=max_pending)
        published.extend(p.segment for p in d.refetch)
        if d.message is not None:
            published.append(d.message.record.segment)
        lost += d.lost_earlier
        mem = d.memory
    if any(flags):
        first = flags.index(True)
        expected_lost = max(0, first - max_pending)
        assert lost == expected_lost
        assert sorted(published) == published
        assert published == [s for s in range(len(flags)) if s >= first or s < max_pending]
    else:
        assert published == [] and lost == 0


def _run(
    segments: list[Any], rs: RuleSet, memory: StreamMemory | None, everything: list[Any]
) -> tuple[dict[int, Any], StreamMemory | None]:
    """Process a batch the way the agent does: memory threaded through, written at the end.
    Returns what was published (segment -> message) and the memory after the batch."""
    by_segment = {r.segment: r for r in everything}
    out: dict[int, Any] = {}
    for rec in segments:
        d = decide(rec, rs, memory, partition=0, offset=rec.segment, max_pending=16)
        if d.message is not None:
            names = frozenset(d.message.rules)
            for pos in d.refetch:
                out[pos.segment] = earlier_message(
                    by_segment[pos.segment], rs, names, 0, pos.offset
                )
            out[rec.segment] = d.message
        if d.memory_changed:
            memory = d.memory
    return out, memory


@given(
    kinds=st.lists(st.sampled_from(["h", "d", "t"]), min_size=1, max_size=10),
    cut=st.integers(min_value=0, max_value=10),
    closed=st.booleans(),
)
def test_a_replayed_batch_publishes_identical_messages(
    kinds: list[str], cut: int, closed: bool
) -> None:
    """Segments [0, cut) were committed; the batch [cut, n) was published and then the worker
    died before committing. Whether the table write of the batch made it or not, processing the
    batch again publishes only byte-identical copies (or nothing new)."""
    rs = rules(web="http", names="dns")
    entries = {"h": HTTP, "d": DNS, "t": TCP}
    n = len(kinds)
    recs = [
        make_record(segment=i, closed=closed and i == n - 1, entries=(entries[k],))
        for i, k in enumerate(kinds)
    ]
    cut = min(cut, n - 1)
    _, before = _run(recs[:cut], rs, None, recs)
    first, after = _run(recs[cut:], rs, before, recs)
    for memory in (before, after):
        again, _ = _run(recs[cut:], rs, memory, recs)
        for seg, message in again.items():
            assert seg in first
            assert encode_matched(message) == encode_matched(first[seg])


# -- the worker's encoding: a view of the record, its bytes spliced when nothing is redacted ---

CORPUS = Path(__file__).resolve().parents[2] / "data" / "corpus"


def _segments() -> list[StreamRecord]:
    records = [
        *corpus_records(CORPUS / "mixed-http-dns-204-304.pcap"),
        *corpus_records(CORPUS / "dns-tcp.pcap"),
    ]
    secret = make_record(
        stream="s9", segment=1, closed=False, entries=(make_entry("http", secret="pw"), TCP)
    )
    return [*records, secret]


@pytest.mark.parametrize(
    "queries",
    [{"web": "http"}, {"any": "http or dns", "hide": "secret"}, {"web": "http", "names": "dns"}],
)
def test_a_view_decides_and_encodes_as_the_model_does(queries: dict[str, str]) -> None:
    rs = rules(**queries)
    published = 0
    for record in _segments():
        view = view_record(encode_record(record))
        assert view.raw is not None  # the sensor's form: the splice path is the one tested
        for memory in (None, StreamMemory.matched(**dict.fromkeys(queries, 0))):
            by_model = decide(record, rs, memory, partition=1, offset=2, max_pending=4)
            by_view = decide(view, rs, memory, partition=1, offset=2, max_pending=4)
            assert by_view.publish == by_model.publish
            assert by_view.memory == by_model.memory
            if by_model.publish is None:
                continue
            published += 1
            redacts = any(rs.rules[n].redacts for n in by_model.publish.rules)
            assert (by_view.publish.entries is None) == (not redacts)
            assert by_view.publish.encode(view) == encode_matched(by_model.message)
            earlier = earlier_publish(view, rs, frozenset(queries), 3, 4)
            assert earlier.encode(view) == encode_matched(
                earlier_message(record, rs, frozenset(queries), 3, 4)
            )
    assert published > 10


def test_redacted_entries_are_what_the_view_publishes() -> None:
    rs = rules(hide="secret")
    record = make_record(entries=(make_entry("http", secret="pw"),))
    view = view_record(encode_record(record))
    d = decide(view, rs, None, partition=0, offset=0, max_pending=4)
    assert d.publish is not None
    message = decode_matched(d.publish.encode(view))
    assert message.record.entries[0]["secret"] == "[REDACTED]"
    assert b'"pw"' not in d.publish.encode(view)


# -- unmatched memories of streams that never close expire ----------------------------------------


def test_an_idle_unmatched_memory_expires_and_the_segment_starts_afresh() -> None:
    rs = rules(web="http")
    old = StreamMemory(pending=(SourcePos(0, 10, 0),), last=(0, 10))
    d = decide(
        make_record(segment=1, closed=False, entries=(TCP,)),
        rs,
        old,
        partition=0,
        offset=16,
        max_pending=4,
        idle_records=5,
    )
    assert d.expired and d.memory_changed
    assert d.memory == StreamMemory(pending=(SourcePos(0, 16, 1),), last=(0, 16), since=1)
    matched = decide(
        make_record(segment=1, closed=False, entries=(HTTP,)),
        rs,
        old,
        partition=0,
        offset=16,
        max_pending=4,
        idle_records=5,
    )
    assert matched.expired and matched.refetch == ()  # the expired pending is not re-read


@pytest.mark.parametrize(
    ("memory", "offset", "partition", "idle"),
    [
        (StreamMemory(pending=(SourcePos(0, 10, 0),), last=(0, 10)), 15, 0, 5),  # not yet
        (StreamMemory(pending=(SourcePos(0, 10, 0),), last=(0, 10)), 99, 0, None),  # off
        (StreamMemory(pending=(SourcePos(1, 10, 0),), last=(1, 10)), 99, 0, 5),  # elsewhere
        (StreamMemory.matched(web=0), 99, 0, 5),  # matched streams are not expired
    ],
)
def test_what_does_not_expire(
    memory: StreamMemory, offset: int, partition: int, idle: int | None
) -> None:
    d = decide(
        make_record(segment=1, closed=False, entries=(TCP,)),
        rules(web="http"),
        memory,
        partition=partition,
        offset=offset,
        max_pending=4,
        idle_records=idle,
    )
    assert not d.expired


def test_an_expired_memory_with_recording_off_is_deleted() -> None:
    old = StreamMemory(pending=(SourcePos(0, 10, 0),), last=(0, 10))
    d = decide(
        make_record(segment=1, closed=False, entries=(TCP,)),
        rules(),
        old,
        partition=0,
        offset=20,
        max_pending=4,
        idle_records=5,
    )
    assert d.expired and d.memory is None and d.memory_changed


def test_memory_with_last_round_trips_through_json() -> None:
    mem = StreamMemory(pending=(SourcePos(1, 2, 3),), overflow=1, last=(1, 9), since=3)
    assert StreamMemory.from_json(mem.to_json()) == mem


@settings(max_examples=400, deadline=None)
@given(
    kinds=st.lists(st.sampled_from(["h", "d", "t"]), min_size=1, max_size=8),
    gaps=st.lists(st.integers(min_value=1, max_value=6), min_size=8, max_size=8),
    cut=st.integers(min_value=0, max_value=8),
    idle=st.integers(min_value=1, max_value=8),
    closed=st.booleans(),
)
def test_a_replayed_batch_is_identical_with_expiry(
    kinds: list[str], gaps: list[int], cut: int, idle: int, closed: bool
) -> None:
    """Expiry depends only on the memory and the segment's offset: replaying a batch against
    the memory from before or after it publishes the same bytes."""
    rs = rules(web="http", names="dns")
    entries = {"h": HTTP, "d": DNS, "t": TCP}
    offsets = [sum(gaps[: i + 1]) for i in range(len(kinds))]
    n = len(kinds)
    recs = [
        make_record(segment=i, closed=closed and i == n - 1, entries=(entries[k],))
        for i, k in enumerate(kinds)
    ]
    by_offset = dict(zip(offsets, recs, strict=False))

    def run(batch: list[int], memory: StreamMemory | None) -> tuple[dict[int, bytes], Any]:
        out: dict[int, bytes] = {}
        for off in batch:
            rec = by_offset[off]
            d = decide(rec, rs, memory, partition=0, offset=off, max_pending=16, idle_records=idle)
            if d.message is not None:
                names = frozenset(d.message.rules)
                for pos in d.refetch:
                    earlier = earlier_message(by_offset[pos.offset], rs, names, 0, pos.offset)
                    out[pos.offset] = encode_matched(earlier)
                out[off] = encode_matched(d.message)
            if d.memory_changed:
                memory = d.memory
        return out, memory

    cut = min(cut, len(kinds) - 1)
    _, before = run(offsets[:cut], None)
    first, after = run(offsets[cut:], before)
    for memory in (before, after):
        again, _ = run(offsets[cut:], memory)
        for off, value in again.items():
            assert off in first
            assert value == first[off]
