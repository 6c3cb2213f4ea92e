"""Objects planned from a batch: grouping, dedupe, capture-time merge, deterministic keys."""

from __future__ import annotations

import io

from scapy.utils import RawPcapReader

from sinks.batch import ClosedBatch
from sinks.keys import parse_key
from sinks.plan import PlanOptions, plan_batch
from sinks.testing import consumed, matched, packet
from streamtap.schema import RuleSettings

BASE = 1_795_773_600_000_000_000  # 2026-11-27 10:00 UTC


def _read(data: bytes) -> list[tuple[bytes, int]]:
    return [(p, m.sec * 10**9 + m.usec) for p, m in RawPcapReader(io.BytesIO(data))]


def _batch(*messages):  # type: ignore[no-untyped-def]
    return ClosedBatch(
        3, tuple(consumed(10 + i, m, partition=3) for i, m in enumerate(messages)), "size"
    )


def test_packets_are_merged_by_capture_time_across_streams() -> None:
    a = matched("a", [packet(BASE + 1, b"a1"), packet(BASE + 4, b"a2")])
    b = matched("b", [packet(BASE + 2, b"b1"), packet(BASE + 4, b"b2"), packet(BASE + 3, b"b3")])
    [obj] = plan_batch(_batch(a, b), PlanOptions())
    # ties (BASE+4) go to the lower offset: stream a
    assert _read(obj.data) == [
        (b"a1", BASE + 1),
        (b"b1", BASE + 2),
        (b"b3", BASE + 3),
        (b"a2", BASE + 4),
        (b"b2", BASE + 4),
    ]


def test_key_is_built_from_content_and_offsets() -> None:
    a = matched("a", [packet(BASE + 5, b"a1")], node="worker 1")
    b = matched("b", [packet(BASE + 9, b"b1")], node="worker 1")
    [obj] = plan_batch(_batch(a, b), PlanOptions(default_prefix="rec"))
    key = str(obj.key)
    assert key == (f"rec/web/worker_1/2026/11/27/10/{BASE + 5:019d}_{BASE + 9:019d}_3-10-11.pcap")
    assert parse_key(key) == obj.key


def test_same_batch_gives_same_bytes_and_keys() -> None:
    msgs = [matched(f"s{i}", [packet(BASE + (7 * i) % 5, bytes([i]) * i)]) for i in range(20)]
    one = plan_batch(_batch(*msgs), PlanOptions())
    two = plan_batch(_batch(*msgs), PlanOptions())
    assert [(str(o.key), o.data, o.sha256) for o in one] == [
        (str(o.key), o.data, o.sha256) for o in two
    ]


def test_duplicate_segments_are_written_once() -> None:
    a = matched("a", [packet(BASE, b"a1")])
    a_again = matched("a", [packet(BASE, b"a1")])
    a_next = matched("a", [packet(BASE + 10, b"a2")], segment=1)
    [obj] = plan_batch(_batch(a, a_again, a_next), PlanOptions())
    assert [s.message.dedupe_key for s in obj.streams] == [
        ("a", 0),
        ("a", 1),
    ]
    assert [p for p, _ in _read(obj.data)] == [b"a1", b"a2"]


def test_one_object_per_rule_prefix_and_node() -> None:
    rules = {
        "web": RuleSettings(prefix="hot", retention_days=1),
        "audit": RuleSettings(retention_days=30, lock_mode="COMPLIANCE"),
    }
    a = matched("a", [packet(BASE, b"a")], rules=rules, node="n1")
    b = matched("b", [packet(BASE, b"b")], rules={"web": rules["web"]}, node="n2")
    objs = plan_batch(_batch(a, b), PlanOptions(default_prefix="rec"))
    dirs = sorted(o.writer.directory for o in objs)
    assert dirs == ["hot/web/n1/", "hot/web/n2/", "rec/audit/n1/"]
    audit = next(o for o in objs if o.rule == "audit")
    assert audit.settings.lock_mode == "COMPLIANCE"
    # retention counts from the newest message's Kafka timestamp, not from a clock
    assert audit.retain_until_ms == 1_700_000_001_000 + 30 * 86_400_000  # rounded up to 1 s


def test_mixed_link_types_split_into_one_classic_pcap_each() -> None:
    a = matched("a", [packet(BASE, b"eth", linktype=1), packet(BASE + 1, b"ip", linktype=101)])
    b = matched("b", [packet(BASE + 2, b"eth2", linktype=1)])
    objs = plan_batch(_batch(a, b), PlanOptions())
    # chain (and list) order is key order: offsets first, so 10-10 comes before 10-11
    assert [(o.key.linktype, o.linktypes) for o in objs] == [(101, (101,)), (1, (1,))]
    assert str(objs[0].key).endswith("_3-10-10_lt101.pcap")
    assert str(objs[1].key).endswith("_3-10-11_lt1.pcap")
    assert RawPcapReader(io.BytesIO(objs[0].data)).linktype == 101
    assert [p for p, _ in _read(objs[1].data)] == [b"eth", b"eth2"]


def test_pcapng_keeps_mixed_link_types_in_one_object() -> None:
    a = matched("a", [packet(BASE, b"eth", linktype=1), packet(BASE + 1, b"ip", linktype=101)])
    [obj] = plan_batch(_batch(a), PlanOptions(format="pcapng"))
    assert str(obj.key).endswith(".pcapng") and obj.linktypes == (1, 101)
