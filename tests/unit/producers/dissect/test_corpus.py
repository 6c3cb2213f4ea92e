"""Every HTTP/DNS capture of the corpus agrees with tshark's ground truth (manifest.json).

Payload streams come from ``corpus_streams`` (scapy, test-only); the assertions live in
``manifest_check`` so they can be rerun on the engine's entries later. Where we differ from
tshark on purpose, a test below says why and checks what we do instead.
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

import pytest
from corpus_streams import capture_entries, dissect_flow, make_dissector, read_flows
from manifest_check import DELIBERATE_DIFFERENCES, assert_matches_manifest, http_view

from streamtap.schema import entry_from_json

CORPUS = Path(__file__).parents[3] / "data" / "corpus"


@cache
def manifest() -> dict[str, dict[str, Any]]:
    files = json.loads((CORPUS / "manifest.json").read_text())["files"]
    return {f["file"].rsplit("/", 1)[-1]: f for f in files}


@cache
def entries_of(name: str) -> tuple[list[dict[str, Any]], tuple]:
    entries, _flows, errors = capture_entries(CORPUS / name)
    return entries, tuple(errors)


def _convs_of_unmatched(name: str) -> set[tuple[str, int, str, int]]:
    return {
        (r["dst"], r["dport"], r["src"], r["sport"])
        for r in manifest()[name].get("http_unmatched_responses", [])
    }


DIFFERENT = DELIBERATE_DIFFERENCES

CAPTURES = sorted(
    name
    for name, f in manifest().items()
    if (f.get("http_transactions") or f.get("dns_messages")) and (CORPUS / name).exists()
)


def test_corpus_copies_are_there() -> None:
    assert len(CAPTURES) >= 30


@pytest.mark.parametrize("name", [n for n in CAPTURES if n not in DIFFERENT])
def test_capture_agrees_with_tshark(name: str) -> None:
    entries, errors = entries_of(name)
    assert errors == ()
    assert_matches_manifest(entries, manifest()[name])


@pytest.mark.parametrize("name", CAPTURES)
def test_entries_validate_against_schema(name: str) -> None:
    entries, _ = entries_of(name)
    for entry in entries:
        entry_from_json(entry)


def test_many_methods_bogus_request_lines_stay_bare() -> None:
    """tshark lists 22 responses to requests it could not parse as unmatched HTTP responses.
    We choose a dissector from the stream's first payload, and a stream that starts with
    ``GET/ HTTP/1.1`` or a non-token method is not HTTP by our detection: it becomes one bare
    tcp entry (the engine's job), so those conversations have no HTTP entries at all."""
    name = "http11-many-methods.pcap"
    odd = _convs_of_unmatched(name)
    assert len(odd) == 22
    entries, errors = entries_of(name)
    assert errors == ()
    assert_matches_manifest(entries, manifest()[name], skip_conversations=odd)
    for flow in read_flows(CORPUS / name):
        conv = (*flow.client, *flow.server)
        assert (make_dissector(flow) is None) == (conv in odd), conv


def test_retransmitted_responses_are_not_counted_twice() -> None:
    """tshark dissects two retransmitted chunked responses a second time and cannot pair them.
    Our reassembly drops retransmitted bytes, so every request has exactly one response."""
    name = "http11-post-chunked-retrans.pcap"
    entries, _ = entries_of(name)
    ours, theirs = http_view(entries, manifest()[name])
    (conv,) = theirs
    assert ours[conv] == [row for row in theirs[conv] if row[0] is not None]
    assert len(theirs[conv]) - len(ours[conv]) == 2


def test_response_cut_short_keeps_its_status() -> None:
    """The capture ends inside the response body. tshark then shows no response; we keep the
    status line and headers (useful to rules such as ``response.status == 200``) and mark the
    item incomplete."""
    flow = read_flows(CORPUS / "http11-qinq-2vlan.pcap")[0]
    _d, items, err = dissect_flow(flow, make_dissector)
    assert err is None
    (item,) = items
    assert item.response is not None and item.response["status"] == 200
    assert item.extra.get("response_incomplete") is True
    assert manifest()["http11-qinq-2vlan.pcap"]["http_transactions"][0]["status"] is None


def test_http_inside_socks_is_not_detected() -> None:
    """Detection sees the stream's first payload, which is the SOCKS5 greeting; tshark
    follows the SOCKS dissector into HTTP. The stream stays a bare tcp entry for us."""
    (flow,) = read_flows(CORPUS / "http11-socks5-ipfrag.pcap")
    assert flow.first_payload() is not None
    assert flow.first_payload().data[:1] == b"\x05"
    assert make_dissector(flow) is None


def test_out_of_order_206_is_complete_here() -> None:
    """tshark's reassembly gives up on the first 206 of the heavily reordered connection; with
    segments put back in order the response is complete, so we pair it (status 206) and the
    body has exactly the length the headers announced."""
    name = "http11-206-heavy-ooo.pcap"
    entries, _ = entries_of(name)
    ours, theirs = http_view(entries, manifest()[name])
    for conv, rows in theirs.items():
        assert [r[:3] for r in ours[conv]] == [r[:3] for r in rows]
        for mine, tshark in zip(ours[conv], rows, strict=True):
            assert tshark[3] in (None, mine[3])
    for entry in entries:
        resp = entry["response"]
        assert resp["status"] == 206
        length = next(v for k, v in resp["headers"].items() if k.lower() == "content-length")
        assert resp["bodySize"] == int(length)
