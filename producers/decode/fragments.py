"""IP fragment reassembly (IPv4 and IPv6), bounded in time and memory.

Fragments are rare but hostile input loves them, so everything is capped: a datagram waits at
most ``timeout_ns`` of *packet* time, at most ``max_datagrams`` wait at once, their bytes are
capped in total, and no datagram may exceed 64 KiB. Overlapping fragments are allowed; the
first copy of a byte wins (what tshark and most stacks keep), and differing copies are counted
as conflicts. The raw frames of every fragment travel with the datagram so the record that gets
it holds them all, byte for byte.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Hashable
from dataclasses import dataclass, field
from typing import Final

from producers.capture import FrameRef

__all__ = ["FragmentReassembler"]

_MAX_DATAGRAM: Final = 65_535


@dataclass(slots=True)
class _Datagram:
    first_ts: int
    total: int | None = None  # payload length, known once the last fragment arrived
    nbytes: int = 0
    pieces: list[tuple[int, bytes]] = field(default_factory=list)
    frames: list[FrameRef] = field(default_factory=list)


class FragmentReassembler:
    """Collect fragments per ``key`` until a datagram's payload is whole.

    ``counts`` holds: ``fragments``, ``reassembled``, ``overlaps``, ``conflicts``, ``expired``,
    ``evicted``, ``oversize``, and ``frames_dropped`` (frames of datagrams given up on).
    """

    def __init__(
        self,
        timeout_ns: int = 30_000_000_000,
        max_datagrams: int = 1024,
        max_bytes: int = 8 * 1024 * 1024,
    ) -> None:
        self.timeout_ns = timeout_ns
        self.max_datagrams = max_datagrams
        self.max_bytes = max_bytes
        self.counts: Counter[str] = Counter()
        self.pending_bytes = 0
        self._pending: dict[Hashable, _Datagram] = {}

    def __len__(self) -> int:
        return len(self._pending)

    @property
    def pending_frames(self) -> int:
        return sum(len(d.frames) for d in self._pending.values())

    def add(
        self, key: Hashable, ts_ns: int, offset: int, more: bool, data: bytes, frame: FrameRef
    ) -> tuple[bytes, tuple[FrameRef, ...]] | None:
        """Add one fragment; return ``(payload, frames)`` when its datagram is complete."""
        counts = self.counts
        counts["fragments"] += 1
        self.expire(ts_ns)
        end = offset + len(data)
        dgram = self._pending.get(key)
        if end > _MAX_DATAGRAM:
            counts["oversize"] += 1
            counts["frames_dropped"] += 1
            if dgram is not None:
                self._drop(key, "oversize")
            return None
        if dgram is None:
            while self._pending and len(self._pending) >= self.max_datagrams:
                self._drop(next(iter(self._pending)), "evicted")
            dgram = self._pending[key] = _Datagram(ts_ns)
        dgram.pieces.append((offset, data))
        dgram.frames.append(frame)
        dgram.nbytes += len(data)
        self.pending_bytes += len(data)
        if not more:
            if dgram.total is not None and dgram.total != end:
                counts["conflicts"] += 1
            if dgram.total is None:
                dgram.total = end
        while self.pending_bytes > self.max_bytes and self._pending:
            oldest = next(iter(self._pending))
            self._drop(oldest, "evicted")
            if oldest == key:
                return None
        if dgram.total is None or not self._covered(dgram.pieces, dgram.total):
            return None
        del self._pending[key]
        self.pending_bytes -= dgram.nbytes
        counts["reassembled"] += 1
        return self._assemble(dgram.pieces, dgram.total), tuple(dgram.frames)

    def expire(self, now_ns: int) -> None:
        """Give up on datagrams older than the timeout (by packet time)."""
        pending = self._pending
        limit = now_ns - self.timeout_ns
        while pending:
            key = next(iter(pending))
            if pending[key].first_ts >= limit:
                break
            self._drop(key, "expired")

    def flush(self) -> None:
        """End of capture: every incomplete datagram is given up on."""
        while self._pending:
            self._drop(next(iter(self._pending)), "expired")

    def _drop(self, key: Hashable, why: str) -> None:
        dgram = self._pending.pop(key)
        self.pending_bytes -= dgram.nbytes
        self.counts[why] += 1
        self.counts["frames_dropped"] += len(dgram.frames)

    @staticmethod
    def _covered(pieces: list[tuple[int, bytes]], total: int) -> bool:
        reach = 0
        for start, data in sorted(pieces, key=lambda p: p[0]):
            if start > reach:
                return False
            reach = max(reach, start + len(data))
        return reach >= total

    def _assemble(self, pieces: list[tuple[int, bytes]], total: int) -> bytes:
        buf = bytearray(total)
        # Write in reverse arrival order so the first-seen copy of each byte is written last.
        for start, data in reversed(pieces):
            chunk = data[: max(0, total - start)]
            buf[start : start + len(chunk)] = chunk
        if sum(len(d) for _, d in pieces) > total:
            self.counts["overlaps"] += 1
            for start, data in pieces:
                chunk = data[: max(0, total - start)]
                if buf[start : start + len(chunk)] != chunk:
                    self.counts["conflicts"] += 1
                    break
        return bytes(buf[:total])
