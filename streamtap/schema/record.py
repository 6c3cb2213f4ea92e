"""The stream record: what sensors publish on the ``streams`` topic and every later stage reads.

One record is one *segment* of one L4 stream: its 5-tuple, counters, the entries the dissectors
made of it, and the raw packets, so a PCAP can be rebuilt byte for byte anywhere downstream.
Long-lived streams are published as several segments under the same ``stream_id``.

The wire form is JSON (orjson) with packet bytes in base64, so ``kcat | jq`` can read it; the
topic's producer compression (zstd) takes back most of the base64 overhead.
"""

from __future__ import annotations

import base64
import hashlib
from typing import Any, Literal, TypeVar

import orjson
from pydantic import BaseModel, ConfigDict, Field, field_serializer, field_validator

__all__ = [
    "RECORD_SCHEMA_VERSION",
    "DirectionStats",
    "Endpoint",
    "Gap",
    "Node",
    "RawPacket",
    "RecordError",
    "StreamRecord",
    "decode_record",
    "encode_record",
    "make_stream_id",
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


def decode_versioned(data: bytes, model: type[M], max_version: int, what: str) -> M:
    """Parse one published JSON message into ``model``: one error type (RecordError) for bad
    JSON, a wrong shape, and versions newer than this code knows, so every consumer can route
    all of them to its dead-letter topic the same way."""
    try:
        obj = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise RecordError(f"not JSON: {exc}") from exc
    if not isinstance(obj, dict):
        raise RecordError(f"a {what} must be a JSON object")
    version = obj.get("schema_version")
    if not isinstance(version, int) or version > max_version:
        raise RecordError(f"unsupported schema_version {version!r}")
    try:
        return model.model_validate(obj)
    except ValueError as exc:
        raise RecordError(str(exc)) from exc


def decode_record(data: bytes) -> StreamRecord:
    """Parse a published record, refusing versions newer than this code knows."""
    return decode_versioned(data, StreamRecord, RECORD_SCHEMA_VERSION, "stream record")
