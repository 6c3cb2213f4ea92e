"""The same tshark agreement, on the entries the real sensor engine makes (capture, decode,
reassembly, records) instead of the scapy stand-in: the assertions are shared."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from manifest_check import DELIBERATE_DIFFERENCES, assert_matches_manifest

from producers.capture import open_capture
from producers.engine import Engine
from streamtap.schema import entry_from_json

CORPUS = Path(__file__).parents[3] / "data" / "corpus"
MANIFEST = {
    f["file"].rsplit("/", 1)[-1]: f
    for f in json.loads((CORPUS / "manifest.json").read_text())["files"]
}

SKIP = {
    **DELIBERATE_DIFFERENCES,
    # the engine keys flows by VLAN too, so the re-tagged copies are three conversations with
    # one request each where tshark (VLAN-blind) sees one (see test_engine_corpus.py)
    "http11-vlan-collisions.pcap": "VLAN-aware flow keys: three streams instead of one",
}
CAPTURES = sorted(
    n
    for n, f in MANIFEST.items()
    if (f.get("http_transactions") or f.get("dns_messages")) and (CORPUS / n).exists()
)


@pytest.mark.parametrize("name", [n for n in CAPTURES if n not in SKIP])
def test_engine_entries_agree_with_tshark(name: str) -> None:
    records = Engine("test-node").feed_all(open_capture(CORPUS / name))
    entries = [e for r in records for e in r.entries]
    for entry in entries:
        entry_from_json(entry)
    assert_matches_manifest(entries, MANIFEST[name])
