"""``decode_matched_packets`` (packets decoded once into tuples) against ``decode_matched``
(pydantic models).

The contract under test: for any bytes, ``decode_matched_packets`` accepts exactly when
``decode_matched`` does, with the same RecordError text when it refuses, and when it accepts,
``message()`` equals ``decode_matched``'s model and ``packets`` holds the same values. Inputs:
corpus records and factory records in matched streams, hypothesis mutations of those (anywhere
in the message: record header, packets, rules, matched entries, source offsets), arbitrary bytes.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from producers.capture import open_capture
from producers.engine import Engine
from streamtap.schema import (
    MatchedPackets,
    MatchedStream,
    Packet,
    RawPacket,
    RecordError,
    RuleSettings,
    StreamRecord,
    decode_matched,
    decode_matched_packets,
    encode_matched,
)
from streamtap.schema.record import decode_packets
from streamtap.schema.testing import full_record
from tests.unit.schema.mutation import mutated

CORPUS = Path(__file__).resolve().parents[2] / "data" / "corpus"
CAPTURES = sorted(p.name for p in CORPUS.glob("*.pcap"))
RULES = {
    "web": RuleSettings(retention_days=7, lock_mode="COMPLIANCE", legal_hold=True, prefix="w/"),
    "all": RuleSettings(),
}


def _matched(record: StreamRecord, **fields: Any) -> MatchedStream:
    values: dict[str, Any] = {
        "record": record,
        "rules": RULES,
        "matched_entries": {"web": (0, 2), "all": ()},
        "source_partition": 4,
        "source_offset": 123,
    }
    values.update(fields)
    return MatchedStream(**values)


def _outcome(fn: Any, data: bytes) -> Any:
    try:
        return fn(data)
    except RecordError as exc:
        return ("RecordError", str(exc))


def _assert_same(data: bytes) -> None:
    """The contract, for one input."""
    expected = _outcome(decode_matched, data)
    got = _outcome(decode_matched_packets, data)
    if isinstance(expected, tuple):
        assert got == expected
        return
    assert isinstance(got, MatchedPackets), got
    assert got.message() == expected
    assert got.header.record.packets == ()
    assert got.header == expected.model_copy(
        update={"record": expected.record.model_copy(update={"packets": ()})}
    )
    assert got.packets == tuple(
        (p.ts_ns, p.linktype, p.wirelen, p.data) for p in expected.record.packets
    )
    assert all(type(p) is Packet and type(p.data) is bytes for p in got.packets)
    assert got.dedupe_key == expected.dedupe_key


def _fast(data: bytes) -> bool:
    """True if the packets are decoded by ``decode_packets`` (not by pydantic)."""
    return decode_packets(orjson.loads(data)["record"]["packets"]) is not None


def _corpus(name: str) -> list[StreamRecord]:
    return Engine("test-node").feed_all(open_capture(CORPUS / name))


@pytest.mark.parametrize("name", CAPTURES)
def test_corpus_messages_take_the_fast_path_and_agree(name: str) -> None:
    for record in _corpus(name):
        data = encode_matched(_matched(record))
        assert _fast(data), "a sensor's packets must not need pydantic"
        _assert_same(data)


def test_factory_messages_take_the_fast_path_and_agree() -> None:
    for message in (
        _matched(full_record()),
        _matched(full_record(vlan=(), gaps=(), entries=(), packets=())),
        MatchedStream(record=full_record(), rules={}),
        _matched(full_record(), source_partition=None, source_offset=None, matched_entries={}),
    ):
        data = encode_matched(message)
        assert _fast(data)
        _assert_same(data)
        assert decode_matched_packets(data).message() == message


def test_non_canonical_but_valid_input_goes_through_pydantic() -> None:
    doc = orjson.loads(encode_matched(_matched(full_record())))
    doc["record"]["packets"][2]["data"] = "/w=="  # canonical: b"\xff"
    doc["record"]["packets"][3]["data"] = "//8="
    doc["record"]["packets"][0]["ts_ns"] = "1"  # pydantic's lax mode accepts it
    data = orjson.dumps(doc)
    assert not _fast(data)
    _assert_same(data)
    doc["record"]["packets"][2]["data"] = "/x=="  # unused bits set: decodes to b"\xff" too
    _assert_same(orjson.dumps(doc))
    assert decode_matched_packets(orjson.dumps(doc)).packets[2].data == b"\xff"


@pytest.mark.parametrize(
    ("where", "value"),
    [
        (("record", "packets", 0, "data"), "not base64!"),
        (("record", "packets", 0, "data"), "Zg"),
        (("record", "packets", 1, "linktype"), 1.5),
        (("record", "packets"), {"ts_ns": 1}),
        (("record", "src", "port"), 70000),  # a bad header beside canonical packets
        (("record", "layer4"), "sctp"),
        (("rules", "web", "lock_mode"), "NEVER"),
        (("matched_entries", "web"), ["x"]),
        (("record",), []),
        (("schema_version",), 2),
    ],
)
def test_malformed_messages_get_decode_matcheds_error(where: tuple[Any, ...], value: Any) -> None:
    doc = orjson.loads(encode_matched(_matched(full_record())))
    parent = doc
    for step in where[:-1]:
        parent = parent[step]
    parent[where[-1]] = value
    data = orjson.dumps(doc)
    with pytest.raises(RecordError) as refused:
        decode_matched_packets(data)
    with pytest.raises(RecordError) as reference:
        decode_matched(data)
    assert str(refused.value) == str(reference.value)


def test_of_and_message_round_trip() -> None:
    message = _matched(full_record())
    split = MatchedPackets.of(message)
    assert split.message() == message
    assert split == decode_matched_packets(encode_matched(message))
    for raw, packet in zip(message.record.packets, split.packets, strict=True):
        assert Packet.of(raw) == packet and packet.model() == raw
        assert isinstance(packet.model(), RawPacket)


# -- hypothesis mutations ----------------------------------------------------------------------

BASES = [encode_matched(_matched(full_record()))] + [
    encode_matched(_matched(r)) for r in _corpus("dns-mx.pcap")[:2]
]


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutated(BASES, ["extra", "data", "packets", "x"]))
def test_mutated_messages_get_the_same_outcome(data: bytes) -> None:
    _assert_same(data)


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=200))
def test_arbitrary_bytes_get_the_same_outcome(data: bytes) -> None:
    _assert_same(data)
