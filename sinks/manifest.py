"""The JSON manifest stored beside every object: what is in it, and proof of what came before.

An investigator reads manifests, not PCAPs, to find streams: each lists its streams with their
5-tuple, protocol, counts and entry summaries (HTTP method/path/status, DNS names/rcodes), and
the IP -> name pairs seen, so ``src.name``/``dst.name`` can be restored offline (what
Kubeshark's ``name_resolution_history.json`` did).

Manifests are chained per writer (rule, node, partition): each names the SHA-256 of the
writer's previous manifest, so removing or editing any object or manifest in the middle of a
chain breaks it visibly. The bytes are canonical (sorted keys, no clock, no host data), so a
rebuilt batch produces the identical manifest.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson

from sinks.errors import SinkError
from sinks.plan import PlannedObject, StreamPart

__all__ = [
    "MANIFEST_VERSION",
    "ChainLink",
    "build_manifest",
    "entry_summary",
    "name_resolution",
    "parse_manifest",
]

MANIFEST_VERSION = 1


@dataclass(frozen=True)
class ChainLink:
    """The previous manifest of a writer, as the next one names it."""

    key: str
    sha256: str
    order: tuple[int, int, int]


def _iso_ms(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, tz=UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def _get(obj: Any, *path: str) -> Any:
    for name in path:
        if not isinstance(obj, dict):
            return None
        obj = obj.get(name)
    return obj


def entry_summary(entry: dict[str, Any]) -> dict[str, Any]:
    """The few fields of an entry that let a search skip a PCAP without opening it."""
    summary: dict[str, Any] = {
        "index": entry.get("index"),
        "protocol": _get(entry, "protocol", "name"),
        "timestamp": entry.get("timestamp"),
    }
    protocol = summary["protocol"]
    if protocol == "http":
        summary["method"] = _get(entry, "request", "method")
        summary["path"] = _get(entry, "request", "path")
        summary["status"] = _get(entry, "response", "status")
    elif protocol == "dns":
        questions = _get(entry, "request", "questions")
        questions = questions if isinstance(questions, list) else []
        summary["names"] = [q.get("name") for q in questions if isinstance(q, dict)]
        summary["types"] = [q.get("type") for q in questions if isinstance(q, dict)]
        summary["rcode"] = _get(entry, "response", "rcode")
        summary["code"] = _get(entry, "response", "code")
    return summary


def _add(names: dict[str, set[str]], ip: Any, name: Any) -> None:
    if isinstance(ip, str) and ip and isinstance(name, str) and name:
        names.setdefault(ip, set()).add(name)


def name_resolution(parts: tuple[StreamPart, ...]) -> dict[str, list[str]]:
    """IP -> names, from entries' ``src.name``/``dst.name`` and DNS A/AAAA answers."""
    names: dict[str, set[str]] = {}
    for part in parts:
        for entry in part.message.header.record.entries:
            for side in ("src", "dst"):
                _add(names, _get(entry, side, "ip"), _get(entry, side, "name"))
            if _get(entry, "protocol", "name") == "dns":
                for section in ("answers", "additionals"):
                    answers = _get(entry, "response", section)
                    for answer in answers if isinstance(answers, list) else []:
                        if isinstance(answer, dict):
                            _add(names, answer.get("ip"), answer.get("name"))
    return {ip: sorted(found) for ip, found in sorted(names.items())}


def _stream(part: StreamPart, rule: str) -> dict[str, Any]:
    header = part.message.header
    record = header.record
    first_protocol = _get(record.entries[0], "protocol", "name") if record.entries else None
    return {
        "id": record.stream_id,
        "segment": record.segment,
        "closed": record.closed,
        "offset": part.offset,
        "kafka_timestamp_ms": part.timestamp_ms,
        "node": record.node.name,
        "layer4": record.layer4,
        "src": {"ip": record.src.ip, "port": record.src.port},
        "dst": {"ip": record.dst.ip, "port": record.dst.port},
        "vlan": list(record.vlan),
        "protocol": first_protocol or record.layer4,
        "first_ts_ns": record.first_ts_ns,
        "last_ts_ns": record.last_ts_ns,
        "packets": part.packets,
        "captured_bytes": part.captured_bytes,
        "wire_bytes": part.wire_bytes,
        "client": {"packets": record.client.packets, "bytes": record.client.bytes},
        "server": {"packets": record.server.packets, "bytes": record.server.bytes},
        "gaps": len(record.gaps),
        "rules": sorted(header.rules),
        "matched_entries": list(header.matched_entries.get(rule, ())),
        "entries": [entry_summary(e) for e in record.entries],
    }


def build_manifest(obj: PlannedObject, previous: ChainLink | None) -> bytes:
    """The canonical manifest bytes for ``obj``, linked to ``previous`` (None: chain start)."""
    settings = obj.settings
    retention = None
    if obj.retain_until_ms is not None:
        retention = {
            "mode": settings.lock_mode or "GOVERNANCE",
            "retain_until": _iso_ms(obj.retain_until_ms),
            "days": settings.retention_days,
        }
    writer = obj.writer
    manifest = {
        "manifest_version": MANIFEST_VERSION,
        "key": str(obj.key),
        "size": obj.size,
        "sha256": obj.sha256,
        "format": obj.format,
        "linktypes": list(obj.linktypes),
        "time": {
            "first_ns": obj.key.first_ts_ns,
            "last_ns": obj.key.last_ts_ns,
            "first": _iso_ms(obj.key.first_ts_ns // 1_000_000),
            "last": _iso_ms(obj.key.last_ts_ns // 1_000_000),
        },
        "writer": {
            "prefix": writer.prefix,
            "rule": writer.rule,
            "node": writer.node,
            "partition": writer.partition,
        },
        "offsets": {"first": obj.key.first_offset, "last": obj.key.last_offset},
        "rule": {"name": obj.rule, **settings.model_dump(mode="json")},
        "rules": sorted({r for p in obj.streams for r in p.message.header.rules}),
        "retention": retention,
        "legal_hold": settings.legal_hold,
        "previous": None if previous is None else {"key": previous.key, "sha256": previous.sha256},
        "counts": {
            "streams": len(obj.streams),
            "packets": sum(p.packets for p in obj.streams),
            "captured_bytes": sum(p.captured_bytes for p in obj.streams),
        },
        "streams": [_stream(p, obj.rule) for p in obj.streams],
        "name_resolution": name_resolution(obj.streams),
    }
    return orjson.dumps(manifest, option=orjson.OPT_SORT_KEYS | orjson.OPT_INDENT_2) + b"\n"


def parse_manifest(data: bytes) -> dict[str, Any]:
    """A stored manifest, checked for the fields ``verify`` and chain lookups rely on."""
    try:
        obj = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise SinkError(f"manifest is not JSON: {exc}") from exc
    if not isinstance(obj, dict) or obj.get("manifest_version") != MANIFEST_VERSION:
        raise SinkError("not a version 1 manifest")
    for name, kind in (("key", str), ("size", int), ("sha256", str), ("offsets", dict)):
        if not isinstance(obj.get(name), kind):
            raise SinkError(f"manifest field {name!r} is missing or not a {kind.__name__}")
    previous = obj.get("previous")
    if previous is not None and not (
        isinstance(previous, dict)
        and isinstance(previous.get("sha256"), str)
        and isinstance(previous.get("key"), str)
    ):
        raise SinkError("manifest field 'previous' is malformed")
    return obj


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()
