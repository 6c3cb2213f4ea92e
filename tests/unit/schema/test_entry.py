"""The entry models accept ENTRY.md's examples unchanged and refuse shapes that drift."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

import streamtap.schema as schema
from streamtap.schema import BareEntry, DnsEntry, HttpEntry, entry_from_json
from streamtap.schema.testing import bare_entry, dns_entry, dns_record, http_entry

EXAMPLES = Path(__file__).parents[2] / "data" / "dissect" / "kfl_entries.json"


def _without_nulls(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {k: _without_nulls(v) for k, v in obj.items() if v is not None}
    if isinstance(obj, list):
        return [_without_nulls(v) for v in obj]
    return obj


@pytest.mark.parametrize("name", sorted(json.loads(EXAMPLES.read_text())))
def test_shared_examples_round_trip(name: str) -> None:
    obj = json.loads(EXAMPLES.read_text())[name]
    entry = entry_from_json(obj)
    assert entry.to_json() == _without_nulls(obj)
    kind = {"http": HttpEntry, "grpc": HttpEntry, "dns": DnsEntry}.get(obj["protocol"]["name"])
    assert isinstance(entry, kind or BareEntry)


def test_unknown_field_is_refused() -> None:
    obj = http_entry()
    obj["request"]["methd"] = "GET"
    with pytest.raises(ValidationError):
        entry_from_json(obj)


def test_top_level_extras_are_kept() -> None:
    obj = http_entry()
    obj["gap"] = True
    assert entry_from_json(obj).to_json()["gap"] is True


def test_unknown_protocol_is_refused() -> None:
    obj = bare_entry()
    obj["protocol"]["name"] = "smtp"
    with pytest.raises(ValueError):
        entry_from_json(obj)


def test_dns_record_class_alias_round_trips() -> None:
    rec = dns_record("a.test", "MX", mx={"preference": 10, "exchange": "mx.a.test"})
    obj = dns_entry("a.test", "MX", answers=[rec])
    assert obj["response"]["answers"][0]["class"] == "IN"
    assert obj["response"]["answers"][0]["mx"]["exchange"] == "mx.a.test"


def test_factories_leave_out_missing_response() -> None:
    assert "response" not in http_entry(status=None)
    assert http_entry(status=None)["elapsedTime"] == 0
    assert "response" not in dns_entry(rcode=None)
    assert "request" not in bare_entry("udp")


def test_factory_query_string_lists_repeats() -> None:
    qs = http_entry(url="/p?a=1&b=2&a=3")["request"]["queryString"]
    assert qs == {"a": ["1", "3"], "b": "2"}


def test_exports_are_listed() -> None:
    for name in ("Entry", "HttpEntry", "DnsEntry", "BareEntry", "entry_from_json"):
        assert name in schema.__all__
        assert hasattr(schema, name)
