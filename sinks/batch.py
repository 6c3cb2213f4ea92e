"""Cutting one partition's message sequence into batches, with no clock inside.

A batch is a contiguous run of offsets of one partition of ``matched-streams``. It closes when
its bytes reach a limit, when a message arrives whose timestamp is ``max_age`` past the first
one, when the caller says time is up (``due(now)``, with the caller's clock), or on shutdown.

Only the first two are a function of the messages themselves, so a service records every close
(the last offset of the batch) in its Kafka commit metadata *before* uploading; a sink that
restarts from the committed offset passes those planned closes back in and rebuilds exactly the
same batches, whatever the reason they closed the first time. That is what makes a rebuilt
batch get the same object keys and the same bytes.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from streamtap.schema import MatchedPackets

__all__ = ["BatchLimits", "ClosedBatch", "Consumed", "PartitionBatcher"]


@dataclass(frozen=True)
class Consumed:
    """One message as the batcher needs it: where it came from, when, and how big.

    The message is kept as ``MatchedPackets`` (packets as plain tuples, not models): the sink
    only writes packets out, and building a model per packet was most of its decoding time."""

    partition: int
    offset: int
    timestamp_ms: int
    size: int
    message: MatchedPackets


@dataclass(frozen=True)
class BatchLimits:
    max_bytes: int = 64 * 1024 * 1024
    max_age_ms: int = 60_000
    max_messages: int = 100_000


@dataclass(frozen=True)
class ClosedBatch:
    partition: int
    messages: tuple[Consumed, ...]
    reason: str

    @property
    def first_offset(self) -> int:
        return self.messages[0].offset

    @property
    def last_offset(self) -> int:
        return self.messages[-1].offset

    @property
    def size(self) -> int:
        return sum(m.size for m in self.messages)


@dataclass
class PartitionBatcher:
    """The open batch of one partition plus the closes a previous run already decided."""

    partition: int
    limits: BatchLimits
    planned_closes: list[int] = field(default_factory=list)
    _open: list[Consumed] = field(default_factory=list)
    _bytes: int = 0

    @property
    def open_bytes(self) -> int:
        return self._bytes

    @property
    def open_messages(self) -> int:
        return len(self._open)

    @property
    def first_offset(self) -> int | None:
        return self._open[0].offset if self._open else None

    def add(self, item: Consumed) -> list[ClosedBatch]:
        """Take the next message of the partition (offsets must increase); return closed batches."""
        if self._open and item.offset <= self._open[-1].offset:
            return []  # a re-delivery of something already in the batch
        closed: list[ClosedBatch] = []
        if self.planned_closes:
            # A previous run decided where this batch ends; limits do not apply.
            while self.planned_closes and item.offset > self.planned_closes[0]:
                self.planned_closes.pop(0)
                if self._open:
                    closed.append(self._close("planned"))
            self._append(item)
            if self.planned_closes and item.offset == self.planned_closes[0]:
                self.planned_closes.pop(0)
                closed.append(self._close("planned"))
            return closed
        if self._open and item.timestamp_ms - self._open[0].timestamp_ms >= self.limits.max_age_ms:
            closed.append(self._close("age"))
        self._append(item)
        if self._bytes >= self.limits.max_bytes:
            closed.append(self._close("size"))
        elif len(self._open) >= self.limits.max_messages:
            closed.append(self._close("count"))
        return closed

    def skip(self, offset: int) -> list[ClosedBatch]:
        """An offset was read but holds no usable message (bad input): it belongs to no batch,
        yet a planned close may sit on it, and that close must still happen here."""
        closed: list[ClosedBatch] = []
        while self.planned_closes and offset >= self.planned_closes[0]:
            self.planned_closes.pop(0)
            if self._open:
                closed.append(self._close("planned"))
        return closed

    def due(self, now_ms: int) -> ClosedBatch | None:
        """Close the open batch if it is ``max_age`` old by the caller's clock.

        Planned closes are left alone: they will be met by messages still to be re-read.
        """
        if (
            self._open
            and not self.planned_closes
            and now_ms - self._open[0].timestamp_ms >= self.limits.max_age_ms
        ):
            return self._close("age")
        return None

    def flush(self) -> ClosedBatch | None:
        """Shutdown: close whatever is open."""
        return self._close("shutdown") if self._open else None

    def _append(self, item: Consumed) -> None:
        self._open.append(item)
        self._bytes += item.size

    def _close(self, reason: str) -> ClosedBatch:
        batch = ClosedBatch(self.partition, tuple(self._open), reason)
        self._open = []
        self._bytes = 0
        return batch
