"""A bounded spill area on disk for closed batches waiting on S3.

While S3 is down, closed batches pile up. Past the memory cap their messages go here instead
of being dropped; past the disk cap the service stops consuming (back-pressure) until uploads
catch up. Nothing here survives a restart on purpose: Kafka still holds every uncommitted
message, and a restarted sink rebuilds the same batches from it.
"""

from __future__ import annotations

import shutil
import struct
from pathlib import Path

from sinks.batch import ClosedBatch, Consumed
from sinks.errors import SinkError
from streamtap.schema import RecordError, decode_matched_packets, encode_matched

__all__ = ["SpillArea", "SpilledBatch"]

_HEADER = struct.Struct("<qqII")  # offset, timestamp ms, size, length of the encoded message


class SpilledBatch:
    """A closed batch whose messages wait in a file."""

    def __init__(self, partition: int, path: Path, size: int, last_offset: int, reason: str):
        self.partition = partition
        self.path = path
        self.size = size
        self.last_offset = last_offset
        self.reason = reason

    def load(self) -> ClosedBatch:
        data = self.path.read_bytes()
        items: list[Consumed] = []
        pos = 0
        try:
            while pos < len(data):
                offset, ts, size, length = _HEADER.unpack_from(data, pos)
                pos += _HEADER.size
                message = decode_matched_packets(data[pos : pos + length])
                pos += length
                items.append(Consumed(self.partition, offset, ts, size, message))
        except (struct.error, RecordError) as exc:
            raise SinkError(f"spill file {self.path} is damaged: {exc}") from exc
        return ClosedBatch(self.partition, tuple(items), self.reason)


class SpillArea:
    def __init__(self, directory: Path, max_bytes: int) -> None:
        self.directory = directory
        self.max_bytes = max_bytes
        self.used = 0
        self._serial = 0

    def reset(self) -> None:
        """Start empty: leftovers belong to a run whose batches Kafka will replay."""
        shutil.rmtree(self.directory, ignore_errors=True)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.used = 0

    def fits(self, size: int) -> bool:
        return self.used + size <= self.max_bytes

    def spill(self, batch: ClosedBatch) -> SpilledBatch:
        self._serial += 1
        path = self.directory / f"p{batch.partition}-{batch.last_offset}-{self._serial}.batch"
        chunks = []
        for item in batch.messages:
            encoded = encode_matched(item.message.message())
            chunks.append(_HEADER.pack(item.offset, item.timestamp_ms, item.size, len(encoded)))
            chunks.append(encoded)
        tmp = path.with_suffix(".tmp")
        tmp.write_bytes(b"".join(chunks))
        tmp.rename(path)
        self.used += batch.size
        return SpilledBatch(batch.partition, path, batch.size, batch.last_offset, batch.reason)

    def release(self, spilled: SpilledBatch) -> None:
        spilled.path.unlink(missing_ok=True)
        self.used -= spilled.size
