"""One direction of a TCP connection: put segments back in order, once, and say where holes are.

Policy (the same as tshark's follow-stream and zeek): the first copy of a byte wins; a
retransmission that disagrees with what was already delivered is counted as a *conflict* and
dropped. Out-of-order segments wait in a small sorted buffer. A hole is given up on, and
reported as a gap, when the peer acknowledges data beyond it (the receiver got bytes the
capture missed) or when the buffer's byte or segment cap bites; delivery then resumes after it.
Sequence numbers are compared modulo 2**32, and offsets are 64-bit, so streams may exceed 4 GiB.
"""

from __future__ import annotations

from bisect import insort
from collections import Counter, deque
from typing import Any, Final

from mypy_extensions import mypyc_attr

__all__ = ["Budget", "HalfStream", "StreamSink"]

_HALF: Final = 0x80000000
_MASK: Final = 0xFFFFFFFF


@mypyc_attr(allow_interpreted_subclasses=True)  # tests' listeners are interpreted
class StreamSink:
    """Where reassembled bytes and gaps go (the flow table's listener): subclass it.

    A base class rather than a ``Protocol``: compiled, a call on a ``Protocol``-typed object
    is a Python method call (attribute lookup, boxed arguments), and ``on_data`` is called
    for every in-order TCP segment; on a native base class it is a direct vtable call.
    """

    def on_data(self, conn: Any, direction: int, data: bytes, ts_ns: int) -> None:
        raise NotImplementedError

    def on_gap(self, conn: Any, direction: int, offset: int, length: int, ts_ns: int) -> None:
        raise NotImplementedError


class Budget:
    """Out-of-order bytes buffered by all streams together, against one cap."""

    __slots__ = ("cap", "used")

    def __init__(self, cap: int) -> None:
        self.cap = cap
        self.used = 0


class HalfStream:
    """Reassemble one direction. ``nxt`` is the next expected sequence number (mod 2**32) and
    ``offset`` the stream offset it stands for (bytes delivered plus bytes lost in gaps)."""

    __slots__ = (
        "_budget",
        "_counts",
        "_max_bytes",
        "_max_segments",
        "_owner",
        "_sink",
        "delivered",
        "direction",
        "fin",
        "isn",
        "nxt",
        "offset",
        "pending",
        "pending_bytes",
        "recent",
        "started",
    )

    def __init__(
        self,
        owner: Any,
        direction: int,
        sink: StreamSink,
        counts: Counter[str],
        budget: Budget,
        max_bytes: int,
        max_segments: int,
    ) -> None:
        self._owner = owner
        self.direction = direction
        self._sink = sink
        self._counts = counts
        self._budget = budget
        self._max_bytes = max_bytes
        self._max_segments = max_segments
        self.started = False
        self.isn: int | None = None
        self.nxt = 0
        self.offset = 0
        self.delivered = 0
        self.fin = False
        self.pending: list[tuple[int, int, bytes]] = []  # (offset, ts_ns, data), sorted
        self.pending_bytes = 0
        # The last few delivered segments, to tell an honest retransmission from a conflict.
        # Few, because they pin payload memory for as long as the stream lives.
        self.recent: deque[tuple[int, bytes]] = deque(maxlen=4)

    def start(self, seq: int) -> None:
        """First sight of this direction without a SYN: trust its sequence number."""
        self.started = True
        self.nxt = seq

    def syn(self, seq: int) -> None:
        """A SYN (or SYN-ACK) at ``seq``: data starts at ``seq + 1``."""
        if self.isn == seq:
            return
        if self.started and self.delivered:
            self._counts["syn_after_data"] += 1
            return
        self.isn = seq
        self.started = True
        self.nxt = (seq + 1) & _MASK

    def segment(self, seq: int, data: bytes, ts_ns: int) -> None:
        """Take one segment's payload (non-empty)."""
        if not self.started:
            self.start(seq)
        diff = ((seq - self.nxt + _HALF) & _MASK) - _HALF
        if diff == 0:  # the common case, so _deliver is inlined
            size = len(data)
            self.recent.append((self.offset, data))
            self.offset += size
            self.delivered += size
            self.nxt = (seq + size) & _MASK
            self._sink.on_data(self._owner, self.direction, data, ts_ns)
            if self.pending:
                self._drain(ts_ns)
            return
        if diff < 0:
            self._old(diff, data, ts_ns)
            return
        # Ahead of the next expected byte: park it.
        self._counts["out_of_order"] += 1
        size = len(data)
        insort(self.pending, (self.offset + diff, ts_ns, data), key=lambda p: p[0])
        self.pending_bytes += size
        self._budget.used += size
        if len(self.pending) > self._max_segments or self.pending_bytes > self._max_bytes:
            self._counts["cap_stream_buffer"] += 1
            self.skip_hole(ts_ns)
        elif self._budget.used > self._budget.cap:
            self._counts["cap_total_buffer"] += 1
            self.skip_hole(ts_ns)

    def acked(self, ack: int, ts_ns: int) -> None:
        """The peer acknowledged up to ``ack``: a hole it has acked past will never be filled."""
        if not self.pending or not self.started:
            return
        ahead = ((ack - self.nxt + _HALF) & _MASK) - _HALF
        if ahead > 0 and self.offset + ahead >= self.pending[0][0]:
            self.skip_hole(ts_ns)

    def skip_hole(self, ts_ns: int) -> None:
        """Declare the hole before the first parked segment lost, and deliver what follows."""
        if not self.pending:
            return
        start = self.pending[0][0]
        if start > self.offset:
            length = start - self.offset
            self._sink.on_gap(self._owner, self.direction, self.offset, length, ts_ns)
            self.offset = start
            self.nxt = (self.nxt + length) & _MASK
        self._drain(ts_ns)

    def flush(self, ts_ns: int) -> None:
        """The stream is over: everything parked is delivered, holes become gaps."""
        while self.pending:
            self.skip_hole(ts_ns)

    def _deliver(self, data: bytes, ts_ns: int) -> None:
        self.recent.append((self.offset, data))
        size = len(data)
        self.offset += size
        self.delivered += size
        self.nxt = (self.nxt + size) & _MASK
        self._sink.on_data(self._owner, self.direction, data, ts_ns)

    def _drain(self, ts_ns: int) -> None:
        pending = self.pending
        while pending and pending[0][0] <= self.offset:
            start, seg_ts, data = pending.pop(0)
            self.pending_bytes -= len(data)
            self._budget.used -= len(data)
            behind = self.offset - start
            if behind:
                self._check_overlap(start, data[:behind])
                data = data[behind:]
            if data:
                self._deliver(data, seg_ts)

    def _old(self, diff: int, data: bytes, ts_ns: int) -> None:
        behind = -diff
        start = self.offset - behind
        if behind >= len(data):
            self._counts["retransmitted"] += 1
            self._check_overlap(start, data)
            return
        self._counts["overlapping"] += 1
        self._check_overlap(start, data[:behind])
        self._deliver(data[behind:], ts_ns)
        if self.pending:
            self._drain(ts_ns)

    def _check_overlap(self, start: int, old: bytes) -> None:
        """Compare bytes seen again with the copy delivered (when still remembered)."""
        end = start + len(old)
        for seg_start, seg in self.recent:
            seg_end = seg_start + len(seg)
            lo, hi = max(start, seg_start), min(end, seg_end)
            if lo < hi and old[lo - start : hi - start] != seg[lo - seg_start : hi - seg_start]:
                self._counts["conflicts"] += 1
                return
