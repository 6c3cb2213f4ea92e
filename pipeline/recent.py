"""The raw values of the unmatched segments a worker remembered most recently, up to a byte budget.

When a later segment of a stream matches, its earlier unmatched segments are published too, and
the stream memory holds only their positions. Reading them back from Kafka costs a seek and a
fetch round trip each (100-150 ms with aiokafka on one broker, docs/benchmarks.md, "Pipeline"),
and the segments a match needs were almost always seen by this worker moments before. So the
worker keeps their bytes here and reads Kafka only for what is not here (evicted, or seen before
a restart or by another worker). A value from here is the very bytes Kafka holds at that offset,
so the output does not depend on where it came from: a replay that re-reads from Kafka gives
identical messages.

Pure: no Kafka, no clock. Eviction is oldest first, by the bytes held.
"""

from __future__ import annotations

__all__ = ["RecentValues"]


class RecentValues:
    """(partition, offset) -> value, oldest evicted first once ``max_bytes`` would be exceeded."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self.held_bytes = 0
        # a dict keeps insertion order: its first key is the oldest
        self._values: dict[tuple[int, int], bytes] = {}

    def __len__(self) -> int:
        return len(self._values)

    def put(self, partition: int, offset: int, value: bytes) -> None:
        """Remember ``value``; a value larger than the whole budget is not kept."""
        size = len(value)
        if size > self.max_bytes:
            return
        key = (partition, offset)
        old = self._values.pop(key, None)
        if old is not None:
            self.held_bytes -= len(old)
        values = self._values
        while values and self.held_bytes + size > self.max_bytes:
            oldest = next(iter(values))
            self.held_bytes -= len(values.pop(oldest))
        values[key] = value
        self.held_bytes += size

    def take(self, partition: int, offset: int) -> bytes | None:
        """The value at (partition, offset), forgotten here (a segment is published once per
        match; a replay that needs it again reads Kafka); ``None`` when not held."""
        value = self._values.pop((partition, offset), None)
        if value is not None:
            self.held_bytes -= len(value)
        return value
