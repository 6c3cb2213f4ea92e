"""Batch boundaries come from the messages (and planned closes), never from a hidden clock."""

from __future__ import annotations

from sinks.batch import BatchLimits, PartitionBatcher
from sinks.testing import consumed, matched, packet


def _msg(offset: int, ts_ms: int = 0, size: int = 10):  # type: ignore[no-untyped-def]
    item = consumed(offset, matched(f"s{offset}", [packet(offset)]), timestamp_ms=ts_ms or 1000)
    return type(item)(item.partition, item.offset, item.timestamp_ms, size, item.message)


def test_closes_at_size_limit_including_the_message_that_reached_it() -> None:
    batcher = PartitionBatcher(0, BatchLimits(max_bytes=25, max_age_ms=10**9))
    assert batcher.add(_msg(0)) == []
    assert batcher.add(_msg(1)) == []
    closed = batcher.add(_msg(2))
    assert [(b.first_offset, b.last_offset, b.reason) for b in closed] == [(0, 2, "size")]
    assert batcher.open_messages == 0


def test_age_is_measured_in_message_timestamps() -> None:
    batcher = PartitionBatcher(0, BatchLimits(max_bytes=10**9, max_age_ms=100))
    batcher.add(_msg(0, ts_ms=1000))
    assert batcher.add(_msg(1, ts_ms=1099)) == []
    closed = batcher.add(_msg(2, ts_ms=1100))
    assert [(b.first_offset, b.last_offset, b.reason) for b in closed] == [(0, 1, "age")]
    assert batcher.first_offset == 2


def test_due_uses_the_callers_clock() -> None:
    batcher = PartitionBatcher(0, BatchLimits(max_bytes=10**9, max_age_ms=100))
    batcher.add(_msg(5, ts_ms=1000))
    assert batcher.due(1099) is None
    batch = batcher.due(1100)
    assert batch is not None and (batch.first_offset, batch.last_offset) == (5, 5)
    assert batcher.due(10**9) is None


def test_planned_closes_override_limits_so_a_rebuild_matches() -> None:
    first = PartitionBatcher(0, BatchLimits(max_bytes=10**9, max_age_ms=10**9))
    for offset in range(4):
        first.add(_msg(offset))
    original = first.flush()  # closed by shutdown: not derivable from the messages
    assert original is not None

    # With these limits the batch would close after two messages; the plan wins.
    rebuilt = PartitionBatcher(0, BatchLimits(max_bytes=15, max_age_ms=10**9), planned_closes=[3])
    closed = []
    for offset in range(6):
        closed += rebuilt.add(_msg(offset))
    assert (closed[0].first_offset, closed[0].last_offset) == (0, 3)
    assert closed[0].messages == original.messages


def test_planned_close_on_a_missing_offset_closes_before_the_next_one() -> None:
    batcher = PartitionBatcher(0, BatchLimits(), planned_closes=[2, 5])
    out = []
    for offset in (0, 1, 4, 7):  # 2 and 5 were compacted away or were markers
        out += batcher.add(_msg(offset))
    assert [(b.first_offset, b.last_offset) for b in out] == [(0, 1), (4, 4)]


def test_redelivered_offsets_are_ignored() -> None:
    batcher = PartitionBatcher(0, BatchLimits())
    batcher.add(_msg(0))
    batcher.add(_msg(1))
    batcher.add(_msg(1))
    batch = batcher.flush()
    assert batch is not None and [m.offset for m in batch.messages] == [0, 1]


def test_a_planned_close_on_a_bad_message_still_closes() -> None:
    batcher = PartitionBatcher(0, BatchLimits(), planned_closes=[2])
    assert batcher.add(_msg(0)) == [] and batcher.add(_msg(1)) == []
    [batch] = batcher.skip(2)  # offset 2 could not be decoded this time either
    assert (batch.first_offset, batch.last_offset, batch.reason) == (0, 1, "planned")
    assert batcher.skip(3) == [] and batcher.planned_closes == []
