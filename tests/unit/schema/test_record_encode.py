"""``encode_record`` (hand-written JSON) against pydantic's ``model_dump(mode="json")``.

The two must give the same bytes on the corpus's records, on records with every field set,
and on hypothesis records with arbitrary JSON entries; values orjson refuses take pydantic's
path and still match it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from producers.capture import open_capture
from producers.engine import Engine
from streamtap.schema import (
    Node,
    RawPacket,
    StreamRecord,
    decode_record,
    encode_record,
)
from streamtap.schema.record import _FAST_ENCODE
from streamtap.schema.testing import full_record

CORPUS = Path(__file__).resolve().parents[2] / "data" / "corpus"


def _reference(record: StreamRecord) -> bytes:
    return orjson.dumps(record.model_dump(mode="json"))


def test_the_fast_encoder_is_in_use() -> None:
    assert _FAST_ENCODE, "the record models changed: teach _record_json their new fields"


@pytest.mark.parametrize("name", sorted(p.name for p in CORPUS.glob("*.pcap")))
def test_same_bytes_as_pydantic_on_corpus_records(name: str) -> None:
    records = Engine("test-node").feed_all(open_capture(CORPUS / name))
    for record in records:
        assert encode_record(record) == _reference(record)


def test_same_bytes_with_every_field_set() -> None:
    record = full_record([{"id": "x-0", "nested": {"a": [1, 2.5, None, True, "é\u2028"]}}])
    assert encode_record(record) == _reference(record)
    assert decode_record(encode_record(record)) == record


def test_same_bytes_with_defaults() -> None:
    record = StreamRecord(
        stream_id="s", closed=False, node=Node(name="n"), layer4="udp",
        src={"ip": "1.2.3.4", "port": 1}, dst={"ip": "1.2.3.5", "port": 2},
        first_ts_ns=0, last_ts_ns=0,
    )  # fmt: skip
    assert encode_record(record) == _reference(record)


def test_values_orjson_refuses_go_through_pydantic() -> None:
    record = full_record([{"raw": b"bytes are utf-8 text in pydantic's JSON", "t": (1, 2)}])
    assert encode_record(record) == _reference(record)


_JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**64 - 1)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=20,
)


@settings(max_examples=150, deadline=None)
@given(
    st.lists(st.dictionaries(st.text(max_size=10), _JSON, max_size=6), max_size=3),
    st.binary(max_size=64),
)
def test_same_bytes_on_hypothesis_records(entries: list[dict[str, Any]], data: bytes) -> None:
    record = full_record(entries, packets=[RawPacket(ts_ns=5, linktype=1, wirelen=99, data=data)])
    try:
        expected: bytes | type[Exception] = _reference(record)
    except orjson.JSONEncodeError:
        expected = orjson.JSONEncodeError
    if isinstance(expected, bytes):
        assert encode_record(record) == expected
    else:
        with pytest.raises(orjson.JSONEncodeError):
            encode_record(record)
