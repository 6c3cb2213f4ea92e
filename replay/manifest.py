"""Reading the sink's manifests and deciding, from one, whether its object can hold a match.

A manifest sits beside every PCAP object and says what is inside (time range, rules, each
stream's 5-tuple, protocol and entry summaries) so a replay can skip objects without
downloading them. Skipping must never lose a match, so every test here is a *necessary*
condition: when the manifest does not say, the object is kept.

The reader accepts the field spellings the sink writes and a few obvious aliases, because a
manifest written by an older sink must still prune rather than fail the replay.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import orjson

from replay.pushdown import SqlPlan

__all__ = ["Criteria", "Manifest", "StreamInfo", "criteria_from", "may_match", "parse_manifest"]

MANIFEST_SUFFIX = ".manifest.json"


@dataclass(frozen=True)
class StreamInfo:
    stream_id: str
    layer4: str
    src: tuple[str, int]
    dst: tuple[str, int]
    protocols: frozenset[str]
    statuses: frozenset[int]


@dataclass(frozen=True)
class Manifest:
    object_key: str
    first_ns: int | None
    last_ns: int | None
    rules: frozenset[str]
    streams: tuple[StreamInfo, ...]
    names: dict[str, str] = field(default_factory=dict)
    size: int | None = None
    sha256: str | None = None
    #: the sensor node that captured the object's streams (one node per object key)
    node: str = ""


@dataclass(frozen=True)
class Criteria:
    """What a replay asks for, in the terms a manifest can answer."""

    since_ns: int | None = None
    until_ns: int | None = None
    rule: str | None = None
    #: column -> allowed values, from the exact conjuncts of the KFL pushdown
    equals: dict[str, frozenset[Any]] = field(default_factory=dict)


def _first(obj: dict[str, Any], *names: str) -> Any:
    for name in names:
        if name in obj and obj[name] is not None:
            return obj[name]
    return None


def _proto(name: Any) -> str:
    """One spelling per protocol: ``HTTP/2``, ``http2`` and ``Http2`` are the same."""
    return str(name).lower().replace("/", "")


def _ns(value: Any) -> int | None:
    return int(value) if isinstance(value, int | float) else None


def _endpoint(value: Any, ip_key: str, port_key: str, obj: dict[str, Any]) -> tuple[str, int]:
    if isinstance(value, dict):
        return str(value.get("ip", "")), int(value.get("port", 0) or 0)
    return str(obj.get(ip_key, "")), int(obj.get(port_key, 0) or 0)


def _stream(obj: dict[str, Any]) -> StreamInfo:
    protocols: set[str] = set()
    statuses: set[int] = set()
    proto = _first(obj, "protocol", "protocols")
    for p in proto if isinstance(proto, list) else [proto]:
        if isinstance(p, str) and p:
            protocols.add(_proto(p))
    summaries = _first(obj, "entries", "entry_summaries", "summaries") or []
    for s in summaries if isinstance(summaries, list) else []:
        if not isinstance(s, dict):
            continue
        p = _first(s, "protocol", "proto")
        if isinstance(p, dict):
            p = p.get("name")
        if isinstance(p, str) and p:
            protocols.add(_proto(p))
        st = s.get("status")
        if isinstance(st, int) and not isinstance(st, bool):
            statuses.add(st)
    return StreamInfo(
        stream_id=str(_first(obj, "stream_id", "id", "stream") or ""),
        layer4=str(_first(obj, "layer4", "l4") or ""),
        src=_endpoint(obj.get("src"), "src_ip", "src_port", obj),
        dst=_endpoint(obj.get("dst"), "dst_ip", "dst_port", obj),
        protocols=frozenset(protocols),
        statuses=frozenset(statuses),
    )


def _names(obj: Any) -> dict[str, str]:
    """ip -> name from the manifest's resolution data (a map, or a list of records).

    The sink keeps every name seen for an address (``ip -> [names]``, sorted); the first is
    shown, as a table cell has room for one.
    """
    out: dict[str, str] = {}
    if isinstance(obj, dict):
        for ip, name in obj.items():
            if isinstance(name, list):
                name = next((n for n in name if isinstance(n, str) and n), None)
            if isinstance(name, str):
                out[str(ip)] = name
            elif isinstance(name, dict) and isinstance(name.get("name"), str):
                out[str(ip)] = name["name"]
    elif isinstance(obj, list):
        for item in obj:
            if isinstance(item, dict) and isinstance(item.get("ip"), str):
                name = item.get("name")
                if isinstance(name, str):
                    out[item["ip"]] = name
    return out


def parse_manifest(data: bytes, key: str = "") -> Manifest:
    """A manifest from its JSON bytes (ValueError when it is not a JSON object)."""
    obj = orjson.loads(data)
    if not isinstance(obj, dict):
        raise ValueError(f"{key}: a manifest must be a JSON object")
    tr = _first(obj, "time_range", "time") or {}
    tr = tr if isinstance(tr, dict) else {}
    first = _ns(_first(obj, "first_ts_ns", "first_ns")) or _ns(
        _first(tr, "first_ns", "first_ts_ns", "start_ns", "first")
    )
    last = _ns(_first(obj, "last_ts_ns", "last_ns")) or _ns(
        _first(tr, "last_ns", "last_ts_ns", "end_ns", "last")
    )
    rules = _first(obj, "rules") or []
    rule_names = frozenset(rules.keys() if isinstance(rules, dict) else map(str, rules))
    streams = tuple(_stream(s) for s in (_first(obj, "streams") or []) if isinstance(s, dict))
    writer = obj.get("writer")
    node = writer.get("node") if isinstance(writer, dict) else None
    if not isinstance(node, str) or not node:
        nodes = {st.get("node") for st in obj.get("streams") or [] if isinstance(st, dict)}
        node = nodes.pop() if len(nodes) == 1 else ""
    object_key = str(_first(obj, "object_key", "key", "object") or "")
    if not object_key and key.endswith(MANIFEST_SUFFIX):
        object_key = key[: -len(MANIFEST_SUFFIX)]
    return Manifest(
        object_key=object_key,
        first_ns=first,
        last_ns=last,
        rules=rule_names,
        streams=streams,
        names=_names(_first(obj, "names", "name_resolution", "resolution")),
        size=_ns(_first(obj, "size", "object_size")),
        sha256=_first(obj, "sha256"),
        node=node if isinstance(node, str) else "",
    )


_STREAM_FIELDS = {"src_ip", "dst_ip", "src_port", "dst_port", "proto", "abbr", "status"}


def criteria_from(
    plan: SqlPlan | None,
    since_ns: int | None = None,
    until_ns: int | None = None,
    rule: str | None = None,
) -> Criteria:
    """Criteria from the replay's flags and the ``==`` conjuncts of its KFL pushdown."""
    equals: dict[str, frozenset[Any]] = {}
    for column, value in plan.equals if plan is not None else ():
        if column in _STREAM_FIELDS:
            # Two == on one column: both must hold, so only the common values can match.
            equals[column] = equals[column] & {value} if column in equals else frozenset({value})
    return Criteria(since_ns=since_ns, until_ns=until_ns, rule=rule, equals=equals)


def _stream_may_match(s: StreamInfo, equals: dict[str, frozenset[Any]]) -> bool:
    checks: dict[str, Any] = {
        "src_ip": s.src[0] or None,
        "dst_ip": s.dst[0] or None,
        "src_port": s.src[1] or None,
        "dst_port": s.dst[1] or None,
    }
    for column, allowed in equals.items():
        if column in checks:
            if checks[column] is not None and checks[column] not in allowed:
                return False
        elif column in ("proto", "abbr"):
            if s.protocols and not {_proto(p) for p in allowed} & s.protocols:
                return False
        elif column == "status" and s.statuses and not allowed & s.statuses:
            return False
    return True


def may_match(manifest: Manifest, criteria: Criteria) -> bool:
    """False only when the manifest proves that nothing in its object can match."""
    last, first = manifest.last_ns, manifest.first_ns
    if criteria.since_ns is not None and last is not None and last < criteria.since_ns:
        return False
    if criteria.until_ns is not None and first is not None and first > criteria.until_ns:
        return False
    if criteria.rule is not None and manifest.rules and criteria.rule not in manifest.rules:
        return False
    if criteria.equals and manifest.streams:
        return any(_stream_may_match(s, criteria.equals) for s in manifest.streams)
    return True
