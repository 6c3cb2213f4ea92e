"""The matched stream: what the pipeline publishes on ``matched-streams`` and sinks consume.

It wraps one stream record segment (with ``redact()`` already applied to its entries) with the
rules that matched the stream and, per rule, which entries of *this* segment matched. A later
segment of an already-matched stream carries the rule names with an empty index list: it is
recorded because its stream was. Per-rule recording settings travel with the message, so a sink
honours them without reading the rules file.

Encoding is hand-written for the reason given in ``record``: the record inside is most of the
message. ``encode_matched`` gives pydantic's bytes without its serializer; ``encode_matched_view``
goes further for the pipeline: the record's published JSON is spliced into the message unchanged
when its entries were not redacted, so the packets are never decoded or re-encoded there.
Decoding is pydantic's (a hand-written builder measured no faster; see ``record``), except for a
consumer that writes the packets out (the sink): ``decode_matched_packets`` checks the message
exactly as ``decode_matched`` does but decodes each packet's base64 once, into a plain
``Packet`` tuple, instead of building a ``RawPacket`` model through a Python validator per
packet. Packets are almost all of a message, so that is most of the decoding cost.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import orjson
from pydantic import BaseModel, ConfigDict, Field

from streamtap.schema.record import (
    _FAST_ENCODE,
    Packet,
    RecordView,
    StreamRecord,
    _record_json,
    decode_packets,
    decode_versioned,
    load_versioned,
    validate_model,
)

__all__ = [
    "MATCHED_SCHEMA_VERSION",
    "MatchedPackets",
    "MatchedStream",
    "RuleSettings",
    "decode_matched",
    "decode_matched_packets",
    "encode_matched",
    "encode_matched_view",
]

MATCHED_SCHEMA_VERSION = 1


class RuleSettings(BaseModel):
    """What a rule asks of the sink; ``None`` means the bucket's default."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    retention_days: int | None = Field(None, ge=1)
    lock_mode: Literal["GOVERNANCE", "COMPLIANCE"] | None = None
    legal_hold: bool = False
    prefix: str = ""


class MatchedStream(BaseModel):
    """One matched stream segment. Kafka key: the stream id; dedupe on (stream id, segment)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    schema_version: int = MATCHED_SCHEMA_VERSION
    record: StreamRecord
    rules: dict[str, RuleSettings] = Field(
        description="every rule that matched this stream, with its recording settings"
    )
    matched_entries: dict[str, tuple[int, ...]] = Field(
        default_factory=dict,
        description="rule name -> indices (into record.entries) of the entries that matched",
    )
    source_partition: int | None = None
    source_offset: int | None = None

    @property
    def key(self) -> bytes:
        return self.record.key

    @property
    def dedupe_key(self) -> tuple[str, int]:
        return (self.record.stream_id, self.record.segment)


_MATCHED_KEYS = (
    "schema_version",
    "record",
    "rules",
    "matched_entries",
    "source_partition",
    "source_offset",
)
_SETTINGS_KEYS = ("retention_days", "lock_mode", "legal_hold", "prefix")
_FAST = (
    _FAST_ENCODE
    and tuple(MatchedStream.model_fields) == _MATCHED_KEYS
    and tuple(RuleSettings.model_fields) == _SETTINGS_KEYS
    and not MatchedStream.__pydantic_post_init__
    and not RuleSettings.__pydantic_post_init__
)


def _settings_json(s: RuleSettings) -> dict[str, Any]:
    return {
        "retention_days": s.retention_days,
        "lock_mode": s.lock_mode,
        "legal_hold": s.legal_hold,
        "prefix": s.prefix,
    }


def _tail_json(
    rules: Mapping[str, RuleSettings],
    matched_entries: Mapping[str, Sequence[int]],
    source_partition: int | None,
    source_offset: int | None,
) -> dict[str, Any]:
    """The message's fields after ``record``, as ``model_dump(mode="json")`` writes them."""
    return {
        "rules": {name: _settings_json(s) for name, s in rules.items()},
        "matched_entries": {name: tuple(ix) for name, ix in matched_entries.items()},
        "source_partition": source_partition,
        "source_offset": source_offset,
    }


def encode_matched(message: MatchedStream) -> bytes:
    """``orjson.dumps(message.model_dump(mode="json"))``, byte for byte, written by hand when
    the models have the fields it knows (anything orjson refuses goes through pydantic)."""
    if (
        _FAST
        and type(message) is MatchedStream
        and type(message.record) is StreamRecord
        and all(type(s) is RuleSettings for s in message.rules.values())
    ):
        doc = {
            "schema_version": message.schema_version,
            "record": _record_json(message.record),
            **_tail_json(
                message.rules,
                message.matched_entries,
                message.source_partition,
                message.source_offset,
            ),
        }
        try:
            return orjson.dumps(doc)
        except TypeError:
            pass
    return orjson.dumps(message.model_dump(mode="json"))


_HEAD = b'{"schema_version":%d,"record":' % MATCHED_SCHEMA_VERSION


def encode_matched_view(
    view: RecordView,
    *,
    rules: Mapping[str, RuleSettings],
    matched_entries: Mapping[str, Sequence[int]],
    source_partition: int | None,
    source_offset: int | None,
    entries: Sequence[dict[str, Any]] | None = None,
) -> bytes:
    """The message for ``view``'s record (with ``entries`` instead of its own, when given: the
    redacted ones), without decoding the packets.

    Equal to ``encode_matched(MatchedStream(record=view.record() with those entries, ...))``;
    byte for byte when the record was published as ``encode_record`` writes it (whitespace and
    escapes included: every sensor's output), because then its bytes are spliced in unchanged.
    A record published in another valid JSON form is carried as published: the same record to
    any reader, and the same bytes for the same input, which is what deduplication needs.
    """
    tail = orjson.dumps(_tail_json(rules, matched_entries, source_partition, source_offset))
    if entries is None and view.raw is not None:
        return b"".join((_HEAD, view.raw, b",", tail[1:]))
    document = view.document
    if entries is not None:
        document = {**document, "entries": tuple(entries)}
    try:
        return b"".join((_HEAD, orjson.dumps(document), b",", tail[1:]))
    except TypeError:
        # an entry orjson refuses (only possible after a redact() that put one there)
        record = view.record().model_copy(update={"entries": tuple(entries or ())})
        return encode_matched(
            MatchedStream(
                record=record,
                rules=dict(rules),
                matched_entries={n: tuple(ix) for n, ix in matched_entries.items()},
                source_partition=source_partition,
                source_offset=source_offset,
            )
        )


def decode_matched(data: bytes) -> MatchedStream:
    """Parse a published matched stream (pydantic; see ``record``'s docstring for why)."""
    return decode_versioned(data, MatchedStream, MATCHED_SCHEMA_VERSION, "matched stream")


@dataclass(frozen=True, slots=True)
class MatchedPackets:
    """A matched stream as a consumer that writes its packets out needs it: the message without
    its packets (``header``, whose ``record.packets`` is empty) and the packets as plain tuples.

    ``message()`` is the full model, equal to what ``decode_matched`` gives for the same bytes.
    """

    header: MatchedStream
    packets: tuple[Packet, ...]

    @classmethod
    def of(cls, message: MatchedStream) -> MatchedPackets:
        """Split a model (tests, tools, and the fallback of ``decode_matched_packets``)."""
        record = message.record.model_copy(update={"packets": ()})
        return cls(
            message.model_copy(update={"record": record}),
            tuple(map(Packet.of, message.record.packets)),
        )

    def message(self) -> MatchedStream:
        """The full model (builds a ``RawPacket`` per packet)."""
        header = self.header
        packets = tuple(p.model() for p in self.packets)
        record = header.record.model_copy(update={"packets": packets})
        return header.model_copy(update={"record": record})

    @property
    def dedupe_key(self) -> tuple[str, int]:
        return self.header.dedupe_key


def decode_matched_packets(data: bytes) -> MatchedPackets:
    """Check a published matched stream as ``decode_matched`` does (the same RecordError, with
    the same text, for the same input) and decode its packets once, into tuples.

    When every packet is in ``encode_record``'s form (every sensor's output), pydantic checks
    the rest of the message and the packets are decoded here (``record.decode_packets``, the
    checks ``view_record`` relies on); anything else goes through ``decode_matched`` whole, so
    what is accepted and the error text stay pydantic's.
    """
    obj = load_versioned(data, MATCHED_SCHEMA_VERSION, "matched stream")
    record = obj.get("record")
    if _FAST and type(record) is dict:
        packets = decode_packets(record.get("packets"))
        if packets is not None:
            try:
                # pydantic checks each field on its own, so the header it accepts here is the
                # one it accepts with the packets in place, and it refuses any other
                header = MatchedStream.model_validate({**obj, "record": {**record, "packets": ()}})
            except ValueError:
                pass  # refused: validate_model below gives pydantic's error for the whole message
            else:
                return MatchedPackets(header, packets)
    return MatchedPackets.of(validate_model(MatchedStream, obj))
