"""Entries and stream records: the shapes of ``../shared/kfl/ENTRY.md`` and
``streamtap.schema.StreamRecord``, built from a stream's state. No I/O, no clocks."""

from __future__ import annotations

from typing import Any

from producers.capture import Frame
from producers.dissect import Item
from streamtap.schema import Gap, Node, RawPacket, StreamRecord

__all__ = [
    "Endpoints",
    "bare_entry",
    "build_record",
    "item_entry",
    "raw_packet",
    "record_size",
]

_PROTOCOLS = {
    "tcp": {"name": "tcp", "abbr": "TCP", "version": "", "layer4": "tcp"},
    "udp": {"name": "udp", "abbr": "UDP", "version": "", "layer4": "udp"},
}

#: JSON bytes a raw packet costs beyond its base64 data (keys, numbers, punctuation).
PACKET_OVERHEAD = 80
#: the record's own fields plus room for the bare entry added when a segment is published
RECORD_OVERHEAD = 2048


class Endpoints:
    """The text fields of a stream an entry repeats: node, addresses, ports, names."""

    __slots__ = ("dst_ip", "dst_port", "layer4", "node", "src_ip", "src_port", "stream_id")

    def __init__(
        self,
        stream_id: str,
        node: Node,
        layer4: str,
        src: tuple[str, int],
        dst: tuple[str, int],
    ) -> None:
        self.stream_id = stream_id
        self.node = node
        self.layer4 = layer4
        self.src_ip, self.src_port = src
        self.dst_ip, self.dst_port = dst


def _common(
    ends: Endpoints,
    index: int,
    protocol: dict[str, str],
    names: tuple[str, str],
    ts_ns: int,
    elapsed_ms: int,
    request_size: int,
    response_size: int,
) -> dict[str, Any]:
    return {
        "id": f"{ends.stream_id}-{index}",
        "stream": ends.stream_id,
        "index": index,
        "node": {"name": ends.node.name, "ip": ends.node.ip},
        "protocol": protocol,
        "src": {
            "ip": ends.src_ip,
            "port": ends.src_port,
            "name": names[0],
            "namespace": "",
            "pod": "",
        },
        "dst": {
            "ip": ends.dst_ip,
            "port": ends.dst_port,
            "name": names[1],
            "namespace": "",
            "pod": "",
        },
        "timestamp": ts_ns // 1_000_000,
        "elapsedTime": elapsed_ms,
        "requestSize": request_size,
        "responseSize": response_size,
    }


def item_entry(ends: Endpoints, index: int, item: Item, names: tuple[str, str]) -> dict[str, Any]:
    """One dissected item as an entry: the common fields, then ``request``/``response``.

    ``item.extra`` keys are added too, but never over a common field.
    """
    p = item.protocol
    protocol = {"name": p.name, "abbr": p.abbr, "version": p.version, "layer4": p.layer4}
    elapsed = 0
    if item.response is not None and item.response_ts_ns is not None:
        elapsed = max(0, item.response_ts_ns - item.ts_ns) // 1_000_000
    entry = _common(
        ends, index, protocol, names, item.ts_ns, elapsed, item.request_size, item.response_size
    )
    if item.request is not None:
        entry["request"] = item.request
    if item.response is not None:
        entry["response"] = item.response
    for key, value in item.extra.items():
        entry.setdefault(key, value)
    return entry


def bare_entry(
    ends: Endpoints,
    index: int,
    names: tuple[str, str],
    ts_ns: int,
    request_bytes: int,
    response_bytes: int,
    request_ts_ns: int | None,
    response_ts_ns: int | None,
) -> dict[str, Any]:
    """The entry of a stream no dissector claimed: common fields only. ``requestSize`` and
    ``responseSize`` are the payload bytes each side sent; ``elapsedTime`` runs from the
    client's first payload to the server's first payload after it (0 if either is missing)."""
    elapsed = 0
    if request_ts_ns is not None and response_ts_ns is not None:
        elapsed = max(0, response_ts_ns - request_ts_ns) // 1_000_000
    return _common(
        ends, index, _PROTOCOLS[ends.layer4], names, ts_ns, elapsed, request_bytes, response_bytes
    )


def record_size(frames: list[Frame]) -> int:
    """What ``frames`` add to a record's JSON: base64 data plus per-packet overhead."""
    return sum((len(f[3]) + 2) // 3 * 4 + PACKET_OVERHEAD for f in frames)


_new = object.__new__
_setattr = object.__setattr__
_RAW_FIELDS = frozenset(RawPacket.model_fields)


def raw_packet(frame: Frame) -> RawPacket:
    """A RawPacket for a frame the capture reader produced (so its types are already right).

    Built the way pydantic's ``model_construct`` builds one, minus its per-field Python loop:
    validating ``data`` through the schema's before-validator costs ~1 us per packet, about a
    tenth of the whole per-packet budget. ``test_records`` checks the result equals a validated
    RawPacket and survives the JSON round trip.
    """
    packet = _new(RawPacket)
    _setattr(
        packet,
        "__dict__",
        {"ts_ns": frame[0], "linktype": frame[1], "wirelen": frame[2], "data": frame[3]},
    )
    _setattr(packet, "__pydantic_fields_set__", _RAW_FIELDS)
    _setattr(packet, "__pydantic_extra__", None)
    _setattr(packet, "__pydantic_private__", None)
    return packet


def build_record(
    ends: Endpoints,
    vlan: tuple[int, ...],
    segment: int,
    closed: bool,
    first_ts_ns: int,
    last_ts_ns: int,
    packets: tuple[int, int],
    payload_bytes: tuple[int, int],
    gaps: list[Gap],
    entries: list[dict[str, Any]],
    frames: list[Frame],
) -> StreamRecord:
    """A validated StreamRecord; its packets are trusted RawPackets (see ``raw_packet``)."""
    return StreamRecord.model_validate(
        {
            "stream_id": ends.stream_id,
            "segment": segment,
            "closed": closed,
            "node": ends.node,
            "layer4": ends.layer4,
            "src": {"ip": ends.src_ip, "port": ends.src_port},
            "dst": {"ip": ends.dst_ip, "port": ends.dst_port},
            "vlan": vlan,
            "first_ts_ns": first_ts_ns,
            "last_ts_ns": last_ts_ns,
            "client": {"packets": packets[0], "bytes": payload_bytes[0]},
            "server": {"packets": packets[1], "bytes": payload_bytes[1]},
            "gaps": gaps,
            "entries": entries,
            "packets": [raw_packet(f) for f in frames],
        }
    )
