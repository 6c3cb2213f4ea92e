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
from typing import Any, Literal

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


def encode_record(record: StreamRecord) -> bytes:
    """The record as UTF-8 JSON, packet bytes base64: the value published on Kafka."""
    return orjson.dumps(record.model_dump(mode="json"))


def decode_record(data: bytes) -> StreamRecord:
    """Parse a published record, refusing versions newer than this code knows."""
    try:
        obj = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise RecordError(f"not JSON: {exc}") from exc
    if not isinstance(obj, dict):
        raise RecordError("a stream record must be a JSON object")
    version = obj.get("schema_version")
    if not isinstance(version, int) or version > RECORD_SCHEMA_VERSION:
        raise RecordError(f"unsupported schema_version {version!r}")
    try:
        return StreamRecord.model_validate(obj)
    except ValueError as exc:
        raise RecordError(str(exc)) from exc
