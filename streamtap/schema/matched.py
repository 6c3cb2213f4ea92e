"""The matched stream: what the pipeline publishes on ``matched-streams`` and sinks consume.

It wraps one stream record segment (with ``redact()`` already applied to its entries) with the
rules that matched the stream and, per rule, which entries of *this* segment matched. A later
segment of an already-matched stream carries the rule names with an empty index list: it is
recorded because its stream was. Per-rule recording settings travel with the message, so a sink
honours them without reading the rules file.
"""

from __future__ import annotations

from typing import Literal

import orjson
from pydantic import BaseModel, ConfigDict, Field

from streamtap.schema.record import StreamRecord, decode_versioned

__all__ = [
    "MATCHED_SCHEMA_VERSION",
    "MatchedStream",
    "RuleSettings",
    "decode_matched",
    "encode_matched",
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


def encode_matched(message: MatchedStream) -> bytes:
    return orjson.dumps(message.model_dump(mode="json"))


def decode_matched(data: bytes) -> MatchedStream:
    return decode_versioned(data, MatchedStream, MATCHED_SCHEMA_VERSION, "matched stream")
