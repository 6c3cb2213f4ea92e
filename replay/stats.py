"""Statistics over the entries a KFL query selects: what the dashboard draws.

One pass over the matching rows (indexed columns only; the JSON is parsed only when the query
needs the Python predicate) feeds every figure, so a statistics refresh costs one scan however
many charts there are. Time buckets are chosen from the data's own span so a five-second capture
and a five-day recording both give a readable chart of about sixty bars.
"""

from __future__ import annotations

from array import array
from collections import Counter, defaultdict
from typing import Any

from replay.query import Query
from replay.store import EntryStore

__all__ = ["statistics"]

_COLUMNS = "ts, abbr, status, rcode, status_text, elapsed, size, src_ip, src_name, dst_ip, dst_name"
_NICE_MS = (
    1, 2, 5, 10, 20, 50, 100, 200, 500, 1_000, 2_000, 5_000, 10_000, 15_000, 30_000, 60_000,
    120_000, 300_000, 600_000, 900_000, 1_800_000, 3_600_000, 7_200_000, 10_800_000, 21_600_000,
    43_200_000, 86_400_000,
)  # fmt: skip
_TARGET_BUCKETS = 60
_TOP = 10


def _bucket_ms(span_ms: int) -> int:
    for width in _NICE_MS:
        if span_ms / width <= _TARGET_BUCKETS:
            return width
    return _NICE_MS[-1] * max(1, span_ms // (_NICE_MS[-1] * _TARGET_BUCKETS) + 1)


def _status_class(abbr: str, status: int | None, text: str) -> str | None:
    if status is not None and abbr != "DNS":
        return f"{status // 100}xx"
    if abbr == "DNS" and text:
        return f"DNS {text}"
    return None


def _percentile(values: list[int], p: float) -> int:
    """Nearest-rank percentile: a latency someone actually saw, not an interpolation."""
    if not values:
        return 0
    rank = max(1, -(-len(values) * p // 100))
    return values[int(rank) - 1]


def statistics(store: EntryStore, query: Query) -> dict[str, Any]:
    """Every dashboard figure for the entries ``query`` selects, from one scan."""
    protocols: Counter[str] = Counter()
    talkers: Counter[str] = Counter()
    talker_bytes: Counter[str] = Counter()
    edges: Counter[tuple[str, str]] = Counter()
    edge_errors: Counter[tuple[str, str]] = Counter()
    latencies: dict[str, array[int]] = defaultdict(lambda: array("q"))
    # Every matching entry's time and labels, compactly (the bucket width depends on the whole
    # span, known only at the end): 8 + 2 + 2 bytes an entry instead of a tuple of objects.
    times = array("q")
    abbr_ix, cls_ix = array("H"), array("H")
    labels: dict[str | None, int] = {}
    total = 0
    for values in store.matching(query, _COLUMNS):
        ts, abbr, status, _rcode, text, elapsed, size, sip, sname, dip, dname = values[:11]
        total += 1
        protocols[abbr] += 1
        src = sname or sip or "?"
        dst = dname or dip or "?"
        talkers[src] += 1
        talker_bytes[src] += size
        edges[(src, dst)] += 1
        cls = _status_class(abbr, status, text)
        if (status is not None and status >= 500) or (
            abbr == "DNS" and text not in ("", "No Error")
        ):
            edge_errors[(src, dst)] += 1
        if elapsed > 0:
            latencies[abbr].append(elapsed)
        times.append(ts)
        abbr_ix.append(labels.setdefault(abbr, len(labels)))
        cls_ix.append(labels.setdefault(cls, len(labels)))
    first = min(times, default=0)
    last = max(times, default=0)
    names = {i: label for label, i in labels.items()}
    width = _bucket_ms(max(last - first, 1))
    start = first - first % width if times else 0
    n_buckets = (last - start) // width + 1 if times else 0
    timeline: dict[str, list[int]] = defaultdict(lambda: [0] * n_buckets)
    status_series: dict[str, list[int]] = defaultdict(lambda: [0] * n_buckets)
    for ts, a, c in zip(times, abbr_ix, cls_ix, strict=True):
        cls = names[c]
        i = (ts - start) // width
        timeline[str(names[a])][i] += 1
        if cls is not None:
            status_series[cls][i] += 1
    latency = {}
    for abbr, unsorted in sorted(latencies.items()):
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
        "query": query.text,
        "total": total,
        "protocols": dict(protocols.most_common()),
        "buckets": {"start": start, "width_ms": width, "count": n_buckets},
        "timeline": dict(sorted(timeline.items())),
        "status_over_time": dict(sorted(status_series.items())),
        "top_talkers": [
            {"name": name, "entries": n, "bytes": talker_bytes[name]}
            for name, n in talkers.most_common(_TOP)
        ],
        "latency_ms": latency,
        "service_map": [
            {"src": s, "dst": d, "entries": n, "errors": edge_errors[(s, d)]}
            for (s, d), n in edges.most_common(100)
        ],
    }
