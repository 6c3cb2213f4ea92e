"""The one record schema every service, topic subscriber and the dashboard share."""

from streamtap.schema.record import (
    RECORD_SCHEMA_VERSION,
    DirectionStats,
    Endpoint,
    Gap,
    Node,
    RawPacket,
    RecordError,
    StreamRecord,
    decode_record,
    encode_record,
    make_stream_id,
)

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
