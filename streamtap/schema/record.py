"""The stream record: what sensors publish on the ``streams`` topic and every later stage reads.

One record is one *segment* of one L4 stream: its 5-tuple, counters, the entries the dissectors
made of it, and the raw packets, so a PCAP can be rebuilt byte for byte anywhere downstream.
Long-lived streams are published as several segments under the same ``stream_id``.

The wire form is JSON (orjson) with packet bytes in base64, so ``kcat | jq`` can read it; the
topic's producer compression (zstd) takes back most of the base64 overhead.

What is written by hand, and why. Every stage handles every record (~5.5 kB, most of it base64
packets), so per-record costs decide a worker's rate:

* ``encode_record`` builds the JSON dict itself (``_record_json``) instead of pydantic's
  serializer, which calls a Python serializer per packet and walks entries generically;
* ``view_record`` checks a record without building models (``_header_ok``/``_packets_ok``: the
  mirror of ``_record_json``, accepting only what ``encode_record`` writes: exact JSON types,
  field order, constraints, canonical base64 only: decoded, then re-encoded and compared) and
  hands anything else to pydantic, so what is accepted, what is refused and the error text stay
  pydantic's. For a stage that reads entries and a few header fields and forwards the packets
  (the pipeline), it is ~35% cheaper than ``decode_record``, and the record's bytes can then be
  forwarded as they are (``matched.encode_matched_view``).
* ``decode_packets`` is the same check for a stage that writes the packets out (the sink): each
  packet's base64 is decoded once, into a plain ``Packet`` tuple instead of a ``RawPacket``
  model (whose validator is a Python call per packet); see ``matched.decode_matched_packets``.
* ``decode_record`` stays pydantic's ``model_validate``. A hand-written checker + builder
  (``model_construct`` or setting ``__dict__`` directly) was measured: no faster, because
  pydantic-core validates in Rust and the time goes to ``orjson.loads`` (~7 us), base64 (~0.6 us
  a packet) and creating ~14 model objects per record, which any builder pays too.

``tests/unit/schema`` checks each hand-written path against pydantic (same bytes out; same
acceptance and values in) on corpus, generated and hypothesis-mutated records.
"""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass
from typing import Any, Literal, NamedTuple, TypeVar

import orjson
from pybase64 import b64decode, b64encode_as_string
from pydantic import BaseModel, ConfigDict, Field, field_serializer, field_validator

__all__ = [
    "RECORD_SCHEMA_VERSION",
    "DirectionStats",
    "Endpoint",
    "Gap",
    "Node",
    "Packet",
    "RawPacket",
    "RecordError",
    "RecordView",
    "StreamRecord",
    "decode_record",
    "encode_record",
    "make_stream_id",
    "view_record",
]

RECORD_SCHEMA_VERSION = 1

M = TypeVar("M", bound=BaseModel)


class RecordError(ValueError):
    """Bytes that are not a stream record of a version this code understands."""


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Node(_Model):
    """The sensor that captured the stream."""

    name: str
    ip: str = ""


class Endpoint(_Model):
    """One side of the stream; ``src`` is whoever opened it (the client)."""

    ip: str
    port: int = Field(ge=0, le=65535)


class DirectionStats(_Model):
    """Packets and payload bytes seen in one direction in this segment."""

    packets: int = 0
    bytes: int = 0


class Gap(_Model):
    """Bytes the capture never saw (dropped by the kernel, or before the capture began)."""

    direction: Literal["client", "server"]
    offset: int = Field(description="stream offset in that direction where the gap starts")
    length: int
    ts_ns: int


class RawPacket(_Model):
    """One captured frame exactly as it was read: enough to rewrite it into a PCAP unchanged."""

    ts_ns: int
    linktype: int
    wirelen: int = Field(description="original length on the wire (>= len(data) when snapped)")
    data: bytes

    @field_serializer("data", when_used="json")
    def _data_b64(self, value: bytes) -> str:
        return base64.b64encode(value).decode("ascii")

    @field_validator("data", mode="before")
    @classmethod
    def _data_from_b64(cls, value: Any) -> Any:
        if isinstance(value, str):
            return base64.b64decode(value, validate=True)
        return value


class Packet(NamedTuple):
    """A ``RawPacket``'s fields as a plain tuple, for a stage that only writes packets out.

    Tens of thousands of packets go through a sink per second; a tuple costs a fraction of a
    model to build and reads the same (``p.ts_ns``, ``p.data``)."""

    ts_ns: int
    linktype: int
    wirelen: int
    data: bytes

    @classmethod
    def of(cls, packet: RawPacket) -> Packet:
        return cls(packet.ts_ns, packet.linktype, packet.wirelen, packet.data)

    def model(self) -> RawPacket:
        return RawPacket(
            ts_ns=self.ts_ns, linktype=self.linktype, wirelen=self.wirelen, data=self.data
        )


class StreamRecord(_Model):
    """One segment of one L4 stream. ``key`` (the stream id) is the Kafka message key."""

    schema_version: int = RECORD_SCHEMA_VERSION
    stream_id: str
    segment: int = Field(0, ge=0, description="0 for the first segment of the stream")
    closed: bool = Field(description="true on the stream's last segment (FIN/RST/idle/end)")
    node: Node
    layer4: Literal["tcp", "udp"]
    src: Endpoint
    dst: Endpoint
    vlan: tuple[int, ...] = ()
    first_ts_ns: int
    last_ts_ns: int
    client: DirectionStats = DirectionStats()
    server: DirectionStats = DirectionStats()
    gaps: tuple[Gap, ...] = ()
    entries: tuple[dict[str, Any], ...] = ()
    packets: tuple[RawPacket, ...] = ()

    @property
    def key(self) -> bytes:
        return self.stream_id.encode("ascii")


def make_stream_id(
    node: str,
    layer4: str,
    src: tuple[str, int],
    dst: tuple[str, int],
    vlan: tuple[int, ...],
    first_ts_ns: int,
) -> str:
    """A stable id for a stream: the same capture always yields the same ids (replays dedupe)."""
    text = f"{node}|{layer4}|{src[0]}|{src[1]}|{dst[0]}|{dst[1]}|{vlan}|{first_ts_ns}"
    return hashlib.blake2b(text.encode(), digest_size=8).hexdigest()


#: the fields ``_record_json`` writes, in model order; if the models change, encode_record
#: falls back to pydantic until ``_record_json`` is taught the new shape
_KNOWN_FIELDS: dict[type[BaseModel], tuple[str, ...]] = {
    StreamRecord: (
        "schema_version",
        "stream_id",
        "segment",
        "closed",
        "node",
        "layer4",
        "src",
        "dst",
        "vlan",
        "first_ts_ns",
        "last_ts_ns",
        "client",
        "server",
        "gaps",
        "entries",
        "packets",
    ),
    Node: ("name", "ip"),
    Endpoint: ("ip", "port"),
    DirectionStats: ("packets", "bytes"),
    Gap: ("direction", "offset", "length", "ts_ns"),
    RawPacket: ("ts_ns", "linktype", "wirelen", "data"),
}
_FAST_ENCODE = all(tuple(cls.model_fields) == names for cls, names in _KNOWN_FIELDS.items())
_b64 = base64.b64encode


def _record_json(r: StreamRecord) -> dict[str, Any]:
    """``r.model_dump(mode="json")`` written out by hand (same keys, same order, same values).

    pydantic's serializer calls the Python ``data`` serializer once per packet and walks every
    entry generically: ~4 us per packet, a fifth of the sensor's CPU per packet before Kafka.
    """
    node, src, dst, client, server = r.node, r.src, r.dst, r.client, r.server
    return {
        "schema_version": r.schema_version,
        "stream_id": r.stream_id,
        "segment": r.segment,
        "closed": r.closed,
        "node": {"name": node.name, "ip": node.ip},
        "layer4": r.layer4,
        "src": {"ip": src.ip, "port": src.port},
        "dst": {"ip": dst.ip, "port": dst.port},
        "vlan": r.vlan,
        "first_ts_ns": r.first_ts_ns,
        "last_ts_ns": r.last_ts_ns,
        "client": {"packets": client.packets, "bytes": client.bytes},
        "server": {"packets": server.packets, "bytes": server.bytes},
        "gaps": [
            {"direction": g.direction, "offset": g.offset, "length": g.length, "ts_ns": g.ts_ns}
            for g in r.gaps
        ],
        "entries": r.entries,
        "packets": [
            {
                "ts_ns": p.ts_ns,
                "linktype": p.linktype,
                "wirelen": p.wirelen,
                "data": _b64(p.data).decode("ascii"),
            }
            for p in r.packets
        ],
    }


def encode_record(record: StreamRecord) -> bytes:
    """The record as UTF-8 JSON, packet bytes base64: the value published on Kafka.

    Byte for byte ``orjson.dumps(record.model_dump(mode="json"))`` (``tests/unit/schema``
    checks it on corpus, generated and hypothesis records), built without pydantic's
    serializer when the models have the fields ``_record_json`` knows and the entries are
    plain JSON values (anything orjson refuses, e.g. bytes in an entry, goes through pydantic,
    which has its own rules for them).
    """
    if _FAST_ENCODE and type(record) is StreamRecord:
        try:
            return orjson.dumps(_record_json(record))
        except TypeError:
            pass
    return orjson.dumps(record.model_dump(mode="json"))


def load_versioned(data: bytes, max_version: int, what: str) -> dict[str, Any]:
    """Parse one published JSON message, checking only that it is an object of a known version.

    One error type (RecordError) for bad JSON, a wrong shape, and versions newer than this code
    knows, so every consumer can route all of them to its dead-letter topic the same way."""
    try:
        obj = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise RecordError(f"not JSON: {exc}") from exc
    if not isinstance(obj, dict):
        raise RecordError(f"a {what} must be a JSON object")
    version = obj.get("schema_version")
    if not isinstance(version, int) or version > max_version:
        raise RecordError(f"unsupported schema_version {version!r}")
    return obj


def validate_model(model: type[M], obj: dict[str, Any]) -> M:
    """pydantic's validation, with its error text in a RecordError: the reference behaviour."""
    try:
        return model.model_validate(obj)
    except ValueError as exc:
        raise RecordError(str(exc)) from exc


def decode_versioned(data: bytes, model: type[M], max_version: int, what: str) -> M:
    """``load_versioned`` then pydantic: the slow, general path the fast decoders fall back to."""
    return validate_model(model, load_versioned(data, max_version, what))


# -- the fast check --------------------------------------------------------------------------------
#
# ``_header_ok`` and ``_packets_ok`` are the mirror of ``_record_json``: they recognise exactly the
# JSON that ``encode_record`` writes and say no to anything else (the caller then asks pydantic).
# Everything they accept, pydantic accepts too, giving the same values: exact types only (no bool
# for int, no "80" for 80, no float), the models' constraints, every field present in model order,
# no extra keys, canonical base64.

#: the check relies on the field lists ``_record_json`` writes
_FAST_CHECK = _FAST_ENCODE
_RECORD_KEYS = _KNOWN_FIELDS[StreamRecord]
_NODE_KEYS = _KNOWN_FIELDS[Node]
_ENDPOINT_KEYS = _KNOWN_FIELDS[Endpoint]
_STATS_KEYS = _KNOWN_FIELDS[DirectionStats]
_GAP_KEYS = _KNOWN_FIELDS[Gap]
_PACKET_KEYS = _KNOWN_FIELDS[RawPacket]


def _is_int(value: Any) -> bool:
    return type(value) is int


def _pair_ok(obj: Any, keys: tuple[str, ...]) -> bool:
    return type(obj) is dict and tuple(obj) == keys


def _header_ok(obj: Any) -> bool:
    """Every field but ``packets`` is exactly what ``encode_record`` writes."""
    if type(obj) is not dict or tuple(obj) != _RECORD_KEYS:
        return False
    (
        version,
        stream_id,
        segment,
        closed,
        node,
        layer4,
        src,
        dst,
        vlan,
        first_ts,
        last_ts,
        client,
        server,
        gaps,
        entries,
        _packets,
    ) = obj.values()
    if not (
        type(version) is int
        and type(stream_id) is str
        and type(segment) is int
        and segment >= 0
        and type(closed) is bool
        and type(layer4) is str
        and (layer4 == "tcp" or layer4 == "udp")
        and type(first_ts) is int
        and type(last_ts) is int
        and _pair_ok(node, _NODE_KEYS)
        and type(node["name"]) is str
        and type(node["ip"]) is str
    ):
        return False
    for end in (src, dst):
        if not _pair_ok(end, _ENDPOINT_KEYS):
            return False
        port = end["port"]
        if type(end["ip"]) is not str or type(port) is not int or not 0 <= port <= 65535:
            return False
    for stats in (client, server):
        if not (
            _pair_ok(stats, _STATS_KEYS)
            and type(stats["packets"]) is int
            and type(stats["bytes"]) is int
        ):
            return False
    if type(vlan) is not list or not all(map(_is_int, vlan)):
        return False
    if type(gaps) is not list:
        return False
    for gap in gaps:
        if not _pair_ok(gap, _GAP_KEYS):
            return False
        direction, offset, length, ts_ns = gap.values()
        if not (
            type(direction) is str
            and (direction == "client" or direction == "server")
            and type(offset) is int
            and type(length) is int
            and type(ts_ns) is int
        ):
            return False
    if type(entries) is not list:
        return False
    return all(type(entry) is dict for entry in entries)


def _canonical_b64(text: str) -> bytes | None:
    """The bytes ``text`` encodes if it is exactly what ``b64encode`` writes for them, else None.

    Whatever this accepts, ``b64decode(validate=True)`` (pydantic's path) accepts and decodes
    to the same bytes: the text is the canonical encoding of what it returns, whatever the
    decoder let through. pybase64 (SIMD) rather than ``binascii``: base64 was most of the
    sink's decoding time (2.6 us against 0.7 us for a 1514-byte frame, decode and re-encode).
    """
    try:
        data = b64decode(text, validate=True)
    except ValueError:  # binascii.Error, or a non-ASCII str
        return None
    return data if b64encode_as_string(data) == text else None


def _packet_data(packet: Any) -> bytes | None:
    """A packet's data, decoded, if the packet is exactly what ``encode_record`` writes; else
    None. The one check behind both ``_packets_ok`` and ``decode_packets``."""
    if type(packet) is not dict or tuple(packet) != _PACKET_KEYS:
        return None
    ts_ns, linktype, wirelen, text = packet.values()
    if (
        type(ts_ns) is not int
        or type(linktype) is not int
        or type(wirelen) is not int
        or type(text) is not str
    ):
        return None
    return _canonical_b64(text)


def _packets_ok(packets: Any) -> bool:
    """Every packet is exactly what ``encode_record`` writes (its base64 decoded and dropped)."""
    return type(packets) is list and None not in map(_packet_data, packets)


def decode_packets(packets: Any) -> tuple[Packet, ...] | None:
    """A record's JSON ``packets``, decoded, when every packet is exactly what ``encode_record``
    writes; None otherwise (the caller then asks pydantic, which decides and explains).

    What it returns is what pydantic's ``RawPacket`` validation gives for the same JSON, field
    for field: the checks are ``_packets_ok``'s (both are ``_packet_data``)."""
    if not _FAST_CHECK or type(packets) is not list:
        return None
    decoded = []
    for packet in packets:
        data = _packet_data(packet)
        if data is None:
            return None
        decoded.append(Packet(packet["ts_ns"], packet["linktype"], packet["wirelen"], data))
    return tuple(decoded)


def decode_record(data: bytes) -> StreamRecord:
    """Parse a published record, refusing versions newer than this code knows.

    pydantic all the way: its validation runs in Rust and a hand-written builder of the same
    models measured no faster (see the module docstring). A stage that does not need the
    packets as bytes should use ``view_record``."""
    return decode_versioned(data, StreamRecord, RECORD_SCHEMA_VERSION, "stream record")


@dataclass(frozen=True, slots=True, eq=False)
class RecordView:
    """A stream record checked as ``decode_record`` checks it, with its packets left undecoded.

    For a stage that reads the entries and a few header fields and forwards the rest (the
    pipeline). ``document`` is the record's JSON object in ``encode_record``'s form (packets as
    base64 text); ``raw`` is the published bytes when they parsed as that form, else None (the
    record took pydantic's path and ``document`` was rebuilt from the model). Treat both as
    read-only.
    """

    stream_id: str
    segment: int
    closed: bool
    entries: tuple[dict[str, Any], ...]
    document: dict[str, Any]
    raw: bytes | None
    _model: StreamRecord | None = None

    @property
    def key(self) -> bytes:
        return self.stream_id.encode("ascii")

    def record(self) -> StreamRecord:
        """The full model (decodes the packets)."""
        if self._model is not None:
            return self._model
        assert self.raw is not None  # a view without a model was built from canonical bytes
        return decode_record(self.raw)


def view_record(data: bytes) -> RecordView:
    """Check a published record as ``decode_record`` would (same RecordError for the same
    input) without decoding its packets into models: their base64 is still checked, strictly,
    so a record that passes here is one every later ``decode_record`` accepts."""
    obj = load_versioned(data, RECORD_SCHEMA_VERSION, "stream record")
    if _FAST_CHECK and _header_ok(obj) and _packets_ok(obj["packets"]):
        return RecordView(
            obj["stream_id"], obj["segment"], obj["closed"], tuple(obj["entries"]), obj, data
        )
    record = validate_model(StreamRecord, obj)
    return RecordView(
        record.stream_id,
        record.segment,
        record.closed,
        record.entries,
        _record_json(record),
        None,
        record,
    )
