"""Entries and stream records: the shapes of ``../shared/kfl/ENTRY.md`` and
``streamtap.schema.StreamRecord``, built from a stream's state. No I/O, no clocks."""

from __future__ import annotations

from typing import Any, Final

import orjson
from pydantic import BaseModel

from producers.capture import FrameRef
from producers.dissect import Item
from streamtap.schema import (
    RECORD_SCHEMA_VERSION,
    DirectionStats,
    Endpoint,
    Gap,
    Node,
    RawPacket,
    StreamRecord,
)

__all__ = [
    "Endpoints",
    "bare_entry",
    "build_record",
    "entry_size",
    "entry_size_parts",
    "item_entry",
    "json_text_size",
    "json_text_slack",
    "raw_packet",
    "record_size",
    "validated_record",
]

_PROTOCOLS: Final = {
    "tcp": {"name": "tcp", "abbr": "TCP", "version": "", "layer4": "tcp"},
    "udp": {"name": "udp", "abbr": "UDP", "version": "", "layer4": "udp"},
}

#: JSON bytes a raw packet costs beyond its base64 data (keys, numbers, punctuation).
PACKET_OVERHEAD: Final = 80
#: the record's own fields plus room for the bare entry added when a segment is published
RECORD_OVERHEAD: Final = 2048


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


#: bytes orjson writes unchanged inside a JSON string: 0x20-0x7F except quote and backslash
_JSON_PLAIN: Final = bytes(c for c in range(0x20, 0x80) if c not in (0x22, 0x5C))
#: bytes escaped as two (backslash + one letter); other control bytes take six (\u00XX)
_JSON_SHORT_ESCAPES: Final = b'"\\\b\f\n\r\t'
#: body texts at least this long are measured by ``json_text_size`` rather than serialised
_LONG_TEXT: Final = 256
#: where an HTTP entry keeps a body text: (side, holder) -> ``entry[side][holder]["text"]``
_TEXT_SLOTS: Final = (("request", "postData"), ("response", "content"))


def json_text_size(text: str) -> int:
    """``len(orjson.dumps(text))`` for an ASCII ``text``, without building the JSON.

    orjson is slow on strings full of quotes (JSON bodies: ~20 us for 3 KB), and the engine
    only wants the size: the text's length, two quotes, one more byte per two-byte escape and
    five more per six-byte one. Counted with two ``bytes.translate`` passes.
    """
    special = text.encode("ascii").translate(None, _JSON_PLAIN)
    return len(text) + 2 + len(special) + 4 * len(special.translate(None, _JSON_SHORT_ESCAPES))


def json_text_slack(text: str) -> int:
    """An upper bound of ``json_text_size(text) - 2`` (every character escaped as six),
    known without reading the text."""
    return 6 * len(text)


def entry_size(entry: dict[str, Any]) -> int:
    """``len(orjson.dumps(entry))``, which decides where records are cut, measured without
    serialising long ASCII body texts (``json_text_size``). ``test_records`` checks the
    result equals ``len(orjson.dumps(entry))`` on every corpus entry and generated ones.
    """
    size, texts = entry_size_parts(entry)
    for text in texts:
        size += json_text_size(text) - 2
    return size


def entry_size_parts(entry: dict[str, Any]) -> tuple[int, list[str]]:
    """``entry_size`` in two parts: the JSON size of ``entry`` with each long ASCII body text
    swapped for "" (the swap is undone; key order is kept), and those texts. Their own sizes
    (``json_text_size(text) - 2`` each) are left to the caller, which can often do with an
    upper bound (``json_text_slack``) instead of reading every byte of every body.
    """
    slots: list[tuple[dict[str, Any], str]] = []
    for side, key in _TEXT_SLOTS:
        obj = entry.get(side)
        if type(obj) is dict:
            holder = obj.get(key)
            if type(holder) is dict:
                text = holder.get("text")
                if type(text) is str and len(text) >= _LONG_TEXT and text.isascii():
                    slots.append((holder, text))
    if not slots:
        return len(orjson.dumps(entry)), []
    for holder, _text in slots:
        holder["text"] = ""
    try:
        size = len(orjson.dumps(entry))
    finally:
        for holder, text in slots:
            holder["text"] = text
    return size, [text for _holder, text in slots]


def record_size(frames: list[FrameRef]) -> int:
    """What ``frames`` add to a record's JSON: base64 data plus per-packet overhead."""
    return sum((len(f[3]) + 2) // 3 * 4 + PACKET_OVERHEAD for f in frames)


_new: Final = object.__new__
#: the getter and setters of the four slots every pydantic model has (``BaseModel.__slots__``):
#: called directly they skip the attribute lookup ``getattr``/``object.__setattr__`` do
_get_dict: Final = BaseModel.__dict__["__dict__"].__get__
_set_fields: Final = BaseModel.__dict__["__pydantic_fields_set__"].__set__
_set_extra: Final = BaseModel.__dict__["__pydantic_extra__"].__set__
_set_private: Final = BaseModel.__dict__["__pydantic_private__"].__set__


def _shared_fields_set(names: frozenset[str]) -> set[str]:
    """One ``__pydantic_fields_set__`` object shared by every instance built here of a
    model.

    pydantic only ever changes an instance's fields set when a field is assigned (refused
    first for these frozen models) and in ``model_copy(update=...)``, which updates a copy
    (``__copy__`` copies the set before). A set per instance was a second GC-tracked object
    per packet: its allocation, freeing and the collector's scans of it cost more than the
    RawPacket's own fields. ``test_records`` checks copies, equality, dumps and pickling.
    """
    return set(names)


_RAW_SET: Final = _shared_fields_set(frozenset(RawPacket.model_fields))
#: the fields ``build_record`` supplies (all but ``schema_version``, left at its default), so
#: ``model_fields_set`` matches what ``model_validate`` of the same dict reports
_RECORD_SET: Final = _shared_fields_set(frozenset(StreamRecord.model_fields) - {"schema_version"})
_ENDPOINT_SET: Final = _shared_fields_set(frozenset(Endpoint.model_fields))
_STATS_SET: Final = _shared_fields_set(frozenset(DirectionStats.model_fields))


def _finish(obj: BaseModel, fields_set: set[str]) -> None:
    """The three slots besides ``__dict__`` of an instance whose ``__dict__`` was filled in
    place: what pydantic's ``model_construct`` does, minus its per-field Python loop and
    defaults pass (every field is given here). ``fields_set`` is shared between instances
    (``_shared_fields_set``), never mutated."""
    _set_fields(obj, fields_set)
    _set_extra(obj, None)
    _set_private(obj, None)


def raw_packet(frame: FrameRef) -> RawPacket:
    """A RawPacket for a frame the capture reader produced (so its types are already right).

    Validating ``data`` through the schema's before-validator costs ~1 us per packet, about a
    tenth of the whole per-packet budget. ``test_records`` checks the result equals a validated
    RawPacket and survives the JSON round trip.
    """
    obj = _new(RawPacket)
    # filled in place, the instance dict the type hands out shares its keys with every other
    # RawPacket's (a split-table dict): no keys object of its own to allocate and free per
    # packet, 104 bytes instead of 184; equality, dumps and pickling see an ordinary dict
    values = _get_dict(obj)
    values["ts_ns"] = frame[0]
    values["linktype"] = frame[1]
    values["wirelen"] = frame[2]
    values["data"] = frame[3]
    _finish(obj, _RAW_SET)
    return obj


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
    frames: list[FrameRef],
) -> StreamRecord:
    """A StreamRecord from the engine's state, built without re-validating it.

    Every input is already of its schema type (ints from the decoder, ``Node``/``Gap`` models,
    ports 0-65535 off the wire, ``layer4`` "tcp" or "udp"), and ``model_validate`` of the whole
    record was ~10% of the engine's CPU. ``test_records`` checks the result equals
    ``StreamRecord.model_validate`` of the same fields (``validated_record``) field for field,
    including ``model_fields_set``, and on the corpus via ``test_engine_corpus``.
    """
    # filled in place like ``raw_packet``'s, in field order (each dict shares its type's keys)
    src = _new(Endpoint)
    values = _get_dict(src)
    values["ip"] = ends.src_ip
    values["port"] = ends.src_port
    _finish(src, _ENDPOINT_SET)
    dst = _new(Endpoint)
    values = _get_dict(dst)
    values["ip"] = ends.dst_ip
    values["port"] = ends.dst_port
    _finish(dst, _ENDPOINT_SET)
    client = _new(DirectionStats)
    values = _get_dict(client)
    values["packets"] = packets[0]
    values["bytes"] = payload_bytes[0]
    _finish(client, _STATS_SET)
    server = _new(DirectionStats)
    values = _get_dict(server)
    values["packets"] = packets[1]
    values["bytes"] = payload_bytes[1]
    _finish(server, _STATS_SET)
    record = _new(StreamRecord)
    values = _get_dict(record)
    values["schema_version"] = RECORD_SCHEMA_VERSION
    values["stream_id"] = ends.stream_id
    values["segment"] = segment
    values["closed"] = closed
    values["node"] = ends.node
    values["layer4"] = ends.layer4
    values["src"] = src
    values["dst"] = dst
    values["vlan"] = tuple(vlan)
    values["first_ts_ns"] = first_ts_ns
    values["last_ts_ns"] = last_ts_ns
    values["client"] = client
    values["server"] = server
    values["gaps"] = tuple(gaps)
    values["entries"] = tuple(entries)
    values["packets"] = tuple([raw_packet(f) for f in frames])
    _finish(record, _RECORD_SET)
    return record


def validated_record(
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
    frames: list[FrameRef],
) -> StreamRecord:
    """``build_record``'s reference: the same record through full pydantic validation (tests
    compare the two; nothing on the hot path calls this)."""
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
            "packets": [
                {"ts_ns": f[0], "linktype": f[1], "wirelen": f[2], "data": f[3]} for f in frames
            ],
        }
    )
