"""The raw values of the unmatched segments a worker remembered most recently, up to a byte budget.

When a later segment of a stream matches, its earlier unmatched segments are published too, and
the stream memory holds only their positions. Reading them back from Kafka costs a seek and a
fetch round trip each, in turn, while the whole batch waits (~3 ms each on one local broker), and
the segments a match needs were almost always seen by this worker moments before. So the worker
keeps their bytes here and reads Kafka only for what is not here (evicted, or seen before a
restart or by another worker). A value from here is the very bytes Kafka holds at that offset,
so the message built from it is the one a re-read gives; the one difference is a segment that
retention removed from Kafka meanwhile, which is published from here where a re-read would
count it lost.

Pure: no Kafka, no clock. Eviction is oldest first, by the memory held.
"""

from __future__ import annotations

__all__ = ["ENTRY_OVERHEAD", "RecentValues"]

#: memory an entry costs besides its value's bytes (dict slot, key tuple, ints, bytes header),
#: counted so that the budget is what the process holds, not just the payload
ENTRY_OVERHEAD = 200


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
        """Remember ``value``; one that would not fit in the whole budget is not kept."""
        size = len(value) + ENTRY_OVERHEAD
        if size > self.max_bytes:
            return
        self.discard(partition, offset)
        values = self._values
        while values and self.held_bytes + size > self.max_bytes:
            oldest = next(iter(values))
            self.held_bytes -= len(values.pop(oldest)) + ENTRY_OVERHEAD
        values[(partition, offset)] = value
        self.held_bytes += size

    def get(self, partition: int, offset: int) -> bytes | None:
        return self._values.get((partition, offset))

    def discard(self, partition: int, offset: int) -> None:
        """Forget the value at (partition, offset), if held: published, or no longer needed."""
        value = self._values.pop((partition, offset), None)
        if value is not None:
            self.held_bytes -= len(value) + ENTRY_OVERHEAD
