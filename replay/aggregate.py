"""The statistics view's figures as a tally that can be built in pieces and merged.

A statistics refresh over a million entries is one Python loop per row, so it is split like a
count (``replay.scan``): worker processes each tally a rowid range, the parent merges the
tallies and turns the result into figures. Everything here is pure (rows in, numbers out) and
picklable, and the figures do not depend on how the rows were split or in what order they came:
ties in the "top" lists are broken by name, not by which row was seen first.
"""

from __future__ import annotations

from array import array
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, TypeVar

__all__ = ["COLUMNS", "Tally", "figures", "tally"]

#: the store columns a tally reads, in this order
COLUMNS = "ts, abbr, status, rcode, status_text, elapsed, size, src_ip, src_name, dst_ip, dst_name"
_NICE_MS = (
    1, 2, 5, 10, 20, 50, 100, 200, 500, 1_000, 2_000, 5_000, 10_000, 15_000, 30_000, 60_000,
    120_000, 300_000, 600_000, 900_000, 1_800_000, 3_600_000, 7_200_000, 10_800_000, 21_600_000,
    43_200_000, 86_400_000,
)  # fmt: skip
_TARGET_BUCKETS = 60
_TOP = 10
_EDGES = 100
K = TypeVar("K", str, tuple[str, str])


@dataclass
class Tally:
    """Counts over some rows, plus each row's time and labels for the charts.

    Time buckets depend on the whole selection's span, known only once every piece is in, so
    each row's time is kept, compactly: 8 + 2 + 2 bytes a row in arrays rather than a tuple of
    objects, with ``labels`` numbering the protocol and status-class strings.
    """

    total: int = 0
    protocols: Counter[str] = field(default_factory=Counter)
    talkers: Counter[str] = field(default_factory=Counter)
    talker_bytes: Counter[str] = field(default_factory=Counter)
    edges: Counter[tuple[str, str]] = field(default_factory=Counter)
    edge_errors: Counter[tuple[str, str]] = field(default_factory=Counter)
    latencies: dict[str, array[int]] = field(default_factory=dict)
    times: array[int] = field(default_factory=lambda: array("q"))
    abbr_ix: array[int] = field(default_factory=lambda: array("H"))
    cls_ix: array[int] = field(default_factory=lambda: array("H"))
    labels: dict[str | None, int] = field(default_factory=dict)

    def merge(self, other: Tally) -> None:
        """Add ``other``'s rows to this tally (its label numbers are mapped onto ours)."""
        self.total += other.total
        self.protocols.update(other.protocols)
        self.talkers.update(other.talkers)
        self.talker_bytes.update(other.talker_bytes)
        self.edges.update(other.edges)
        self.edge_errors.update(other.edge_errors)
        for abbr, values in other.latencies.items():
            self.latencies.setdefault(abbr, array("q")).extend(values)
        remap = {
            i: self.labels.setdefault(label, len(self.labels)) for label, i in other.labels.items()
        }
        self.times.extend(other.times)
        self.abbr_ix.extend(array("H", (remap[i] for i in other.abbr_ix)))
        self.cls_ix.extend(array("H", (remap[i] for i in other.cls_ix)))


def _status_class(abbr: str, status: int | None, text: str) -> str | None:
    if status is not None and abbr != "DNS":
        return f"{status // 100}xx"
    if abbr == "DNS" and text:
        return f"DNS {text}"
    return None


def tally(rows: Iterable[tuple[Any, ...]]) -> Tally:
    """A tally of rows that start with ``COLUMNS`` (anything after them is ignored)."""
    t = Tally()
    protocols, talkers, talker_bytes = t.protocols, t.talkers, t.talker_bytes
    edges, edge_errors, latencies, labels = t.edges, t.edge_errors, t.latencies, t.labels
    times, abbr_ix, cls_ix = t.times, t.abbr_ix, t.cls_ix
    total = 0
    for values in rows:
        ts, abbr, status, _rcode, text, elapsed, size, sip, sname, dip, dname = values[:11]
        total += 1
        protocols[abbr] += 1
        src = sname or sip or "?"
        dst = dname or dip or "?"
        talkers[src] += 1
        talker_bytes[src] += size
        edges[(src, dst)] += 1
        if (status is not None and status >= 500) or (
            abbr == "DNS" and text not in ("", "No Error")
        ):
            edge_errors[(src, dst)] += 1
        if elapsed > 0:
            if abbr not in latencies:
                latencies[abbr] = array("q")
            latencies[abbr].append(elapsed)
        times.append(ts)
        abbr_ix.append(labels.setdefault(abbr, len(labels)))
        cls_ix.append(labels.setdefault(_status_class(abbr, status, text), len(labels)))
    t.total = total
    return t


def _bucket_ms(span_ms: int) -> int:
    for width in _NICE_MS:
        if span_ms / width <= _TARGET_BUCKETS:
            return width
    return _NICE_MS[-1] * max(1, span_ms // (_NICE_MS[-1] * _TARGET_BUCKETS) + 1)


def _percentile(values: list[int], p: float) -> int:
    """Nearest-rank percentile: a latency someone actually saw, not an interpolation."""
    if not values:
        return 0
    rank = max(1, -(-len(values) * p // 100))
    return values[int(rank) - 1]


def _top(counter: Counter[K], n: int | None = None) -> list[tuple[K, int]]:
    """Most common first; equal counts by key, so the order never depends on the scan order."""
    ranked = sorted(counter.items(), key=lambda kv: (-kv[1], kv[0]))
    return ranked if n is None else ranked[:n]


def figures(t: Tally, text: str) -> dict[str, Any]:
    """Every figure of the statistics view, from a (merged) tally."""
    times = t.times
    first = min(times, default=0)
    last = max(times, default=0)
    names = {i: label for label, i in t.labels.items()}
    width = _bucket_ms(max(last - first, 1))
    start = first - first % width if times else 0
    n_buckets = (last - start) // width + 1 if times else 0
    timeline: dict[str, list[int]] = {}
    status_series: dict[str, list[int]] = {}
    for ts, a, c in zip(times, t.abbr_ix, t.cls_ix, strict=True):
        i = (ts - start) // width
        abbr = str(names[a])
        if abbr not in timeline:
            timeline[abbr] = [0] * n_buckets
        timeline[abbr][i] += 1
        cls = names[c]
        if cls is not None:
            if cls not in status_series:
                status_series[cls] = [0] * n_buckets
            status_series[cls][i] += 1
    latency = {}
    for abbr, unsorted in sorted(t.latencies.items()):
        vals = sorted(unsorted)
        latency[abbr] = {
            "count": len(vals),
            "p50": _percentile(vals, 50),
            "p90": _percentile(vals, 90),
            "p95": _percentile(vals, 95),
            "p99": _percentile(vals, 99),
            "max": vals[-1],
        }
    return {
        "query": text,
        "total": t.total,
        "protocols": dict(_top(t.protocols)),
        "buckets": {"start": start, "width_ms": width, "count": n_buckets},
        "timeline": dict(sorted(timeline.items())),
        "status_over_time": dict(sorted(status_series.items())),
        "top_talkers": [
            {"name": name, "entries": n, "bytes": t.talker_bytes[name]}
            for name, n in _top(t.talkers, _TOP)
        ],
        "latency_ms": latency,
        "service_map": [
            {"src": s, "dst": d, "entries": n, "errors": t.edge_errors[(s, d)]}
            for (s, d), n in _top(t.edges, _EDGES)
        ],
    }
