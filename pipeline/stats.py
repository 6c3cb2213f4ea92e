"""Counters behind the worker's ``/stats`` view.

Rates are computed from the counters at read time over a short sliding window of samples, so the
hot path only increments integers. Time comes in as an argument (the worker passes its clock),
which keeps this testable without sleeping.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Any

__all__ = ["PipelineStats"]


@dataclass
class PipelineStats:
    """What one worker has done since it started."""

    window_s: float = 10.0
    records: int = 0
    record_bytes: int = 0
    published: int = 0
    published_bytes: int = 0
    earlier_published: int = 0
    earlier_lost: int = 0
    #: earlier segments read back from Kafka (the others came from ``recent.RecentValues``)
    earlier_refetched: int = 0
    deadlettered: int = 0
    send_retries: int = 0
    gaps_filled: int = 0
    #: unmatched stream memories dropped after ``idle_records`` without their stream closing
    memories_expired: int = 0
    batches: int = 0
    matches: dict[str, int] = field(default_factory=dict)
    deadletter_reasons: dict[str, int] = field(default_factory=dict)
    last_error: dict[str, Any] | None = None
    #: partition -> (next offset to process, high watermark), for lag
    positions: dict[int, tuple[int, int]] = field(default_factory=dict)
    #: partition -> offset after the last record whose output Kafka has acknowledged
    delivered: dict[int, int] = field(default_factory=dict)
    _samples: deque[tuple[float, int, int]] = field(default_factory=deque)

    def count_match(self, rules: Any) -> None:
        for name in rules:
            self.matches[name] = self.matches.get(name, 0) + 1

    def error(self, now: float, where: str, reason: str) -> None:
        self.last_error = {"at": now, "where": where, "reason": reason}

    def deadletter(self, reason_kind: str) -> None:
        self.deadlettered += 1
        self.deadletter_reasons[reason_kind] = self.deadletter_reasons.get(reason_kind, 0) + 1

    def sample(self, now: float) -> None:
        """Remember the counters now; called once per batch."""
        self._samples.append((now, self.records, self.record_bytes))
        while self._samples and now - self._samples[0][0] > self.window_s:
            self._samples.popleft()

    def rates(self, now: float) -> tuple[float, float]:
        if not self._samples:
            return 0.0, 0.0
        t0, r0, b0 = self._samples[0]
        span = max(now - t0, 1e-9)
        if span < 0.5:
            return 0.0, 0.0
        return (self.records - r0) / span, (self.record_bytes - b0) / span

    @property
    def lag(self) -> dict[int, int]:
        return {p: max(0, high - pos) for p, (pos, high) in sorted(self.positions.items())}

    def as_dict(self, now: float) -> dict[str, Any]:
        rps, bps = self.rates(now)
        lag = self.lag
        return {
            "records": self.records,
            "record_bytes": self.record_bytes,
            "records_per_s": round(rps, 1),
            "mb_per_s": round(bps / 1e6, 3),
            "published": self.published,
            "published_bytes": self.published_bytes,
            "earlier_segments_published": self.earlier_published,
            "earlier_segments_lost": self.earlier_lost,
            "earlier_segments_refetched": self.earlier_refetched,
            "matches_per_rule": dict(sorted(self.matches.items())),
            "deadlettered": self.deadlettered,
            "deadletter_reasons": dict(sorted(self.deadletter_reasons.items())),
            "send_retries": self.send_retries,
            "gaps_filled": self.gaps_filled,
            "stream_memories_expired": self.memories_expired,
            "batches": self.batches,
            "lag": {"total": sum(lag.values()), "partitions": lag},
            "delivered": dict(sorted(self.delivered.items())),
            "last_error": self.last_error,
        }
