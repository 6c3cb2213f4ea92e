"""``view_record`` (hand-written check, packets left as base64) against ``decode_record``
(pydantic), and the hand-written matched-stream encoders against ``model_dump``.

The contract under test: for any bytes, ``view_record`` accepts exactly when ``decode_record``
does, with the same RecordError text when it refuses and an equal record when it accepts; when
it took its own path (``raw`` set) the record's bytes are exactly ``encode_record``'s, so
splicing them (``encode_matched_view``) gives ``encode_matched``'s bytes. Inputs: corpus records,
records built from the entry factories with every field set, and hypothesis mutations of those
(wrong types, bools for ints, numbers as strings, missing, extra and reordered keys, bad or
non-canonical base64, out-of-range ports, negative segments...).
"""

from __future__ import annotations

import base64
import binascii
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from producers.capture import open_capture
from producers.engine import Engine
from streamtap.schema import (
    MatchedStream,
    RecordError,
    RuleSettings,
    StreamRecord,
    decode_matched,
    decode_record,
    encode_matched,
    encode_matched_view,
    encode_record,
    view_record,
)
from streamtap.schema.record import _FAST_CHECK, _packets_ok
from streamtap.schema.testing import full_record
from tests.unit.schema.mutation import mutated

CORPUS = Path(__file__).resolve().parents[2] / "data" / "corpus"
CAPTURES = sorted(p.name for p in CORPUS.glob("*.pcap"))


def _corpus(name: str) -> list[StreamRecord]:
    return Engine("test-node").feed_all(open_capture(CORPUS / name))


def _outcome(fn: Any, data: bytes) -> Any:
    try:
        return fn(data)
    except RecordError as exc:
        return ("RecordError", str(exc))


def _key(record: Any) -> Any:
    try:
        return record.key
    except UnicodeError as exc:  # a non-ASCII stream id: the same error from both
        return type(exc)


def _assert_same(data: bytes) -> None:
    """The contract, for one input."""
    expected = _outcome(decode_record, data)
    got = _outcome(view_record, data)
    if isinstance(expected, tuple):
        assert got == expected
        return
    assert not isinstance(got, tuple), got
    assert got.record() == expected
    assert (got.stream_id, got.segment, got.closed) == (
        expected.stream_id,
        expected.segment,
        expected.closed,
    )
    assert got.entries == expected.entries
    assert _key(got) == _key(expected)
    assert orjson.dumps(got.document) == encode_record(expected)
    if got.raw is not None:
        assert got.raw is data
        assert orjson.loads(data) == orjson.loads(encode_record(expected))


def test_the_fast_check_is_in_use() -> None:
    assert _FAST_CHECK, "the record models changed: teach _record_json and _header_ok"


@pytest.mark.parametrize("name", CAPTURES)
def test_corpus_records_take_the_fast_path_and_agree(name: str) -> None:
    for record in _corpus(name):
        data = encode_record(record)
        view = view_record(data)
        assert view.raw is data, "a sensor's record must not need pydantic"
        _assert_same(data)


def test_generated_records_take_the_fast_path_and_agree() -> None:
    for record in (full_record(), full_record(vlan=(), gaps=(), entries=(), packets=())):
        data = encode_record(record)
        assert view_record(data).raw is data
        _assert_same(data)


def test_valid_but_unusual_json_takes_pydantics_path() -> None:
    doc = orjson.loads(encode_record(full_record()))
    doc["src"]["port"] = "80"  # pydantic's lax mode accepts it; the check leaves it to pydantic
    view = view_record(orjson.dumps(doc))
    assert view.raw is None
    assert view.record().src.port == 80
    _assert_same(orjson.dumps(doc))


# -- hypothesis mutations ----------------------------------------------------------------------

BASES = [encode_record(full_record())] + [encode_record(r) for r in _corpus("dns-mx.pcap")[:2]]
MUTATED = mutated(BASES, ["extra", "data", "port", "x"])


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(MUTATED)
def test_mutated_records_get_the_same_outcome(data: bytes) -> None:
    _assert_same(data)


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=200))
def test_arbitrary_bytes_get_the_same_outcome(data: bytes) -> None:
    _assert_same(data)


@settings(max_examples=500, deadline=None)
@given(
    st.text(alphabet="ABCDQRSgwZhm9v+/=\n -", max_size=12)
    | st.binary(max_size=9).map(lambda b: base64.b64encode(b).decode())
)
@example("999w=")  # strict_mode accepts excess padding after a full quantum
@example("AAAA=")
@example("Zh==")  # unused bits set
@example("Zm9=")
@example("Zg")
@example("=Zg=")
@example("Zg==Zg==")
def test_packet_check_accepts_only_canonical_base64(text: str) -> None:
    packet = {"ts_ns": 1, "linktype": 1, "wirelen": 1, "data": text}
    if _packets_ok([packet]):  # canonical: what b64encode writes, so a re-dump is identical
        data = base64.b64decode(text, validate=True)  # what pydantic's validator runs
        assert base64.b64encode(data).decode() == text
    else:
        try:
            data = base64.b64decode(text, validate=True)
        except (binascii.Error, ValueError):
            return
        assert base64.b64encode(data).decode() != text, "canonical base64 refused"


# -- matched streams ------------------------------------------------------------------------------

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


def _reference(message: MatchedStream) -> bytes:
    return orjson.dumps(message.model_dump(mode="json"))


@pytest.mark.parametrize("name", CAPTURES[:12])
def test_encode_matched_gives_pydantics_bytes_on_corpus(name: str) -> None:
    for record in _corpus(name):
        message = _matched(record)
        assert encode_matched(message) == _reference(message)
        assert decode_matched(encode_matched(message)) == message


def test_encode_matched_gives_pydantics_bytes_with_defaults_and_odd_entries() -> None:
    for message in (
        MatchedStream(record=full_record(), rules={}),
        _matched(full_record(entries=[{"raw": b"bytes", "t": (1, 2)}])),  # orjson refuses: pydantic
        _matched(full_record(), source_partition=None, source_offset=None),
    ):
        assert encode_matched(message) == _reference(message)


def _view_message(data: bytes, entries: Any = None, **fields: Any) -> bytes:
    values: dict[str, Any] = {
        "rules": RULES,
        "matched_entries": {"web": (0, 2), "all": ()},
        "source_partition": 4,
        "source_offset": 123,
    }
    values.update(fields)
    return encode_matched_view(view_record(data), entries=entries, **values)


@pytest.mark.parametrize("name", CAPTURES[:12])
def test_spliced_message_is_byte_identical_on_corpus(name: str) -> None:
    for record in _corpus(name):
        assert _view_message(encode_record(record)) == encode_matched(_matched(record))


def test_spliced_message_with_redacted_entries_is_byte_identical() -> None:
    record = full_record()
    redacted = ({"id": "x", "secret": "[REDACTED]"}, *record.entries[1:])
    expected = encode_matched(_matched(record.model_copy(update={"entries": redacted})))
    assert _view_message(encode_record(record), entries=redacted) == expected
    # an unchanged copy of the entries gives the same bytes as splicing
    same = _view_message(encode_record(record), entries=[dict(e) for e in record.entries])
    assert same == encode_matched(_matched(record))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(MUTATED)
def test_spliced_message_decodes_to_the_same_message(data: bytes) -> None:
    """Whatever the record's form: if decode_record accepts it, the spliced message is the
    message encode_matched would write (same model), and the same bytes when the record was
    in encode_record's form; otherwise view_record refuses it."""
    try:
        record = decode_record(data)
    except RecordError:
        with pytest.raises(RecordError):
            view_record(data)
        return
    message = _matched(record)
    spliced = _view_message(data)
    assert decode_matched(spliced) == message
    if view_record(data).raw is not None:
        assert spliced == encode_matched(message)
    redacted = _view_message(data, entries=[{"r": 1}] * len(record.entries))
    assert redacted == encode_matched(
        _matched(record.model_copy(update={"entries": ({"r": 1},) * len(record.entries)}))
    )


def test_non_canonical_json_is_carried_as_published() -> None:
    record = full_record()
    pretty = orjson.dumps(orjson.loads(encode_record(record)), option=orjson.OPT_INDENT_2)
    spliced = _view_message(pretty)
    assert pretty in spliced
    assert decode_matched(spliced) == _matched(record)
