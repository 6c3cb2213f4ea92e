"""The sink's decoding (``decode_matched_packets``: packets as tuples) changes no stored byte.

Objects and manifests planned from messages as the sink decodes them are compared with those
planned from pydantic's models (``decode_matched``), and pinned to the digest the sink wrote
before it decoded packets into tuples (computed with the code of commit 73a4aec on the same
messages), for classic PCAP (split by link type) and pcapng.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path

import pytest

from sinks.batch import ClosedBatch, Consumed
from sinks.manifest import ChainLink, build_manifest
from sinks.plan import PlannedObject, PlanOptions, plan_batch
from sinks.spill import SpillArea
from sinks.testing import matched, packet
from streamtap.schema import (
    MatchedPackets,
    MatchedStream,
    RuleSettings,
    decode_matched,
    decode_matched_packets,
    encode_matched,
)
from streamtap.schema.testing import dns_entry, http_entry

BASE = 1_795_773_600_000_000_000
KAFKA_MS = 1_795_773_600_000

#: sha256 over every (key, object, manifest) that ``_digest`` plans, by the sink before this
#: change (``Consumed`` holding ``decode_matched``'s models); see the module docstring
BEFORE = {
    "pcap": "ddf605ff010bdc5bcd918728d8ac4f18b877fc2eaa9365eb5c1dc9e7813f75ad",
    "pcapng": "d079034e0f17707e7d0e7338f14278b42c958aec021f9337adfa9f5a8fc0d65f",
}


def messages() -> list[MatchedStream]:
    """Two nodes, two rules (one with its own prefix and retention), two link types, a
    snapped frame, a stream without packets, a duplicate segment, HTTP and DNS entries."""
    web = RuleSettings(retention_days=3, lock_mode="COMPLIANCE", prefix="evidence/")
    both = {"web": web, "all": RuleSettings()}
    http = http_entry(src=("10.0.0.1", 40000, "client.local"), dst=("10.0.0.2", 80, "shop"))
    dns = dns_entry()
    return [
        matched(
            "a",
            [packet(BASE + 5, b"a1" * 40), packet(BASE + 1, b"a0", wirelen=1514)],
            rules=both,
            entries=(http,),
        ),
        matched("b", [packet(BASE + 2, bytes(range(256)))], node="node-2", entries=(dns,)),
        matched("c", [packet(BASE + 3, b"ip", linktype=101), packet(BASE + 4, b"\x00")]),
        matched("d", [], rules=both),
        matched("a", [packet(BASE + 5, b"a1" * 40), packet(BASE + 1, b"a0", wirelen=1514)]),
        matched("a", [packet(BASE + 9, b"a2")], segment=1, rules=both),
    ]


def _batch(decode: Callable[[bytes], MatchedPackets]) -> ClosedBatch:
    items = []
    for offset, message in enumerate(messages()):
        data = encode_matched(message)
        items.append(Consumed(2, 100 + offset, KAFKA_MS + offset, len(data), decode(data)))
    return ClosedBatch(2, tuple(items), "size")


def _stored(objects: list[PlannedObject]) -> list[tuple[str, bytes, bytes]]:
    """Each object's key, bytes and manifest, chained as the writer chains them."""
    heads: dict[object, ChainLink] = {}
    out = []
    for obj in objects:
        manifest = build_manifest(obj, heads.get(obj.writer))
        heads[obj.writer] = ChainLink(
            f"{obj.key}.manifest.json", hashlib.sha256(manifest).hexdigest(), obj.key.order
        )
        out.append((str(obj.key), obj.data, manifest))
    return out


def _digest(stored: list[tuple[str, bytes, bytes]]) -> str:
    h = hashlib.sha256()
    for key, data, manifest in stored:
        for part in (key.encode(), data, manifest):
            h.update(len(part).to_bytes(8, "big") + part)
    return h.hexdigest()


def _models(data: bytes) -> MatchedPackets:
    return MatchedPackets.of(decode_matched(data))


@pytest.mark.parametrize("fmt", ["pcap", "pcapng"])
def test_same_objects_and_manifests_as_from_models(fmt: str) -> None:
    options = PlanOptions(format=fmt, default_retention_days=1)  # type: ignore[arg-type]
    sink = _stored(plan_batch(_batch(decode_matched_packets), options))
    reference = _stored(plan_batch(_batch(_models), options))
    assert sink == reference
    assert len(sink) == (5 if fmt == "pcap" else 4)  # classic PCAP splits node-1/all by link type
    assert _digest(sink) == BEFORE[fmt]


def test_spilled_batches_come_back_equal(tmp_path: Path) -> None:
    batch = _batch(decode_matched_packets)
    area = SpillArea(tmp_path / "spill", max_bytes=10**6)
    area.reset()
    assert area.spill(batch).load() == batch
