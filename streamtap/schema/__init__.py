"""The one record schema every service, topic subscriber and the dashboard share."""

from streamtap.schema.entry import (
    BareEntry,
    DnsEntry,
    Entry,
    HttpEntry,
    entry_from_json,
)
from streamtap.schema.matched import (
    MATCHED_SCHEMA_VERSION,
    MatchedStream,
    RuleSettings,
    decode_matched,
    encode_matched,
    encode_matched_view,
)
from streamtap.schema.record import (
    RECORD_SCHEMA_VERSION,
    DirectionStats,
    Endpoint,
    Gap,
    Node,
    RawPacket,
    RecordError,
    RecordView,
    StreamRecord,
    decode_record,
    encode_record,
    make_stream_id,
    view_record,
)

__all__ = [
    "MATCHED_SCHEMA_VERSION",
    "RECORD_SCHEMA_VERSION",
    "BareEntry",
    "DirectionStats",
    "DnsEntry",
    "Endpoint",
    "Entry",
    "Gap",
    "HttpEntry",
    "MatchedStream",
    "Node",
    "RawPacket",
    "RecordError",
    "RecordView",
    "RuleSettings",
    "StreamRecord",
    "decode_matched",
    "decode_record",
    "encode_matched",
    "encode_matched_view",
    "encode_record",
    "entry_from_json",
    "make_stream_id",
    "view_record",
]
