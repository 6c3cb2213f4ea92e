"""Entry and record builders."""

from __future__ import annotations

import copy
import pickle
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel, ValidationError

from producers.capture import open_capture
from producers.dissect import Item, ProtocolInfo
from producers.engine import Engine
from producers.records import (
    Endpoints,
    bare_entry,
    build_record,
    item_entry,
    raw_packet,
    validated_record,
)
from streamtap.schema import Gap, Node, RawPacket, StreamRecord, decode_record, encode_record

ENDS = Endpoints("s1", Node(name="n", ip="192.0.2.1"), "udp", ("10.0.0.1", 5000), ("10.0.0.2", 53))


def test_raw_packet_equals_a_validated_one() -> None:
    frame = (1_700_000_000_000_000_001, 113, 1514, b"\x00\x01payload")
    fast = raw_packet(frame)
    slow = RawPacket(ts_ns=frame[0], linktype=frame[1], wirelen=frame[2], data=frame[3])
    assert fast == slow
    assert fast.model_fields_set == slow.model_fields_set
    assert fast.model_dump_json() == slow.model_dump_json()
    assert fast.model_dump(exclude_unset=True) == slow.model_dump(exclude_unset=True)
    assert RawPacket.model_validate_json(fast.model_dump_json()) == slow


def test_shared_fields_set_is_never_changed_through_an_instance() -> None:
    """RawPackets share one fields set (``records._shared_fields_set``): copies with updates,
    refused assignments, deep copies and pickling must leave every other packet's set alone,
    and the copies must still behave as pydantic's own."""
    a, b = raw_packet((1, 1, 3, b"abc")), raw_packet((2, 1, 3, b"xyz"))
    before = set(b.model_fields_set)
    changed = a.model_copy(update={"ts_ns": 5})
    assert changed.ts_ns == 5 and changed.data == b"abc" and a.ts_ns == 1
    assert changed == RawPacket(ts_ns=5, linktype=1, wirelen=3, data=b"abc")
    with pytest.raises(ValidationError):
        a.ts_ns = 9  # type: ignore[misc]
    deep = copy.deepcopy(a)
    deep.model_fields_set.add("x")  # a copy owns its set
    shallow = copy.copy(b)
    shallow.model_fields_set.discard("data")
    again = pickle.loads(pickle.dumps([a, b]))
    assert again == [a, b] and again[0].model_fields_set == before
    assert a.model_fields_set == before == b.model_fields_set
    assert raw_packet((3, 1, 1, b"q")).model_fields_set == before
    assert a.model_dump() == {"ts_ns": 1, "linktype": 1, "wirelen": 3, "data": b"abc"}
    assert a != b and a == raw_packet((1, 1, 3, b"abc"))


def test_record_round_trips() -> None:
    frames = [(10, 1, 60, b"a" * 60), (20, 1, 70, b"b" * 70)]
    entry = bare_entry(ENDS, 0, ("", "dns.example"), 10, 60, 70, 10, 20)
    record = build_record(
        ENDS,
        (7,),
        2,
        True,
        10,
        20,
        (1, 1),
        (60, 70),
        [Gap(direction="server", offset=5, length=9, ts_ns=15)],
        [entry],
        frames,
    )
    assert isinstance(record, StreamRecord)
    assert record.key == b"s1" and record.vlan == (7,) and record.segment == 2
    again = decode_record(encode_record(record))
    assert again == record
    assert [(p.ts_ns, p.linktype, p.wirelen, p.data) for p in again.packets] == frames


def test_item_entry_elapsed_and_missing_response() -> None:
    proto = ProtocolInfo("dns", "DNS", "", "udp")
    answered = Item(proto, 1_000_000_000, {"id": 1}, {"rcode": 0}, 1_025_600_000, 30, 90)
    entry = item_entry(ENDS, 3, answered, ("", ""))
    assert entry["elapsedTime"] == 25 and entry["timestamp"] == 1000
    assert entry["id"] == "s1-3" and entry["protocol"]["abbr"] == "DNS"
    assert (entry["requestSize"], entry["responseSize"]) == (30, 90)
    lonely = item_entry(ENDS, 4, Item(proto, 5, {"id": 2}), ("", ""))
    assert "response" not in lonely and lonely["elapsedTime"] == 0


def test_bare_entry_shape() -> None:
    entry = bare_entry(ENDS, 0, ("a", "b"), 2_000_000, 1, 2, None, None)
    assert entry["protocol"] == {"name": "udp", "abbr": "UDP", "version": "", "layer4": "udp"}
    assert entry["src"] == {"ip": "10.0.0.1", "port": 5000, "name": "a", "namespace": "", "pod": ""}
    assert entry["elapsedTime"] == 0 and entry["timestamp"] == 2
    assert "request" not in entry


def _record_args(vlan: tuple[int, ...] = (7,)) -> tuple[Any, ...]:
    frames = [(10, 1, 60, b"a" * 60), (20, 113, 90, b"\x00b" * 35)]
    entry = bare_entry(ENDS, 0, ("", "dns.example"), 10, 60, 70, 10, 20)
    gaps = [Gap(direction="server", offset=5, length=9, ts_ns=15)]
    return (ENDS, vlan, 2, True, 10, 20, (1, 1), (60, 70), gaps, [entry], frames)


def _same_model(fast: BaseModel, slow: BaseModel) -> None:
    """Equal values, and also equal types, field sets and nested models all the way down."""
    assert type(fast) is type(slow)
    assert fast == slow
    assert fast.model_fields_set == slow.model_fields_set
    for name in type(slow).model_fields:
        a, b = getattr(fast, name), getattr(slow, name)
        assert type(a) is type(b), name
        if isinstance(b, BaseModel):
            _same_model(a, b)
        elif isinstance(b, tuple):
            assert len(a) == len(b)
            for x, y in zip(a, b, strict=True):
                assert type(x) is type(y), name
                if isinstance(y, BaseModel):
                    _same_model(x, y)


@pytest.mark.parametrize("vlan", [(), (7,), (100, 200)])
def test_trusted_record_equals_a_validated_one(vlan: tuple[int, ...]) -> None:
    fast = build_record(*_record_args(vlan))
    slow = validated_record(*_record_args(vlan))
    _same_model(fast, slow)
    assert encode_record(fast) == encode_record(slow)
    assert fast.model_dump() == slow.model_dump()
    assert fast.model_dump(exclude_unset=True) == slow.model_dump(exclude_unset=True)
    assert decode_record(encode_record(fast)) == slow


def test_trusted_record_is_frozen_like_a_validated_one() -> None:
    fast = build_record(*_record_args())
    with pytest.raises(ValidationError):
        fast.segment = 3  # type: ignore[misc]
    assert hash(fast.src) == hash(validated_record(*_record_args()).src)


@pytest.mark.parametrize("name", ["http11-keepalive-gzip-5req.pcap", "mixed-http-dns-204-304.pcap"])
def test_engine_records_equal_validated_ones_on_corpus(name: str) -> None:
    """Every record the engine builds (trusted) is what full validation of it gives."""
    corpus = Path(__file__).resolve().parents[2] / "data" / "corpus"
    records = Engine("test-node").feed_all(open_capture(corpus / name))
    assert records
    for record in records:
        again = StreamRecord.model_validate(record.model_dump(exclude_unset=True))
        _same_model(record, again)
        assert encode_record(record) == encode_record(again)
