"""Statistics agree with a direct count over the same entries."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from pipeline.kfl import compile as kfl_compile
from replay.query import compile_query
from replay.stats import statistics
from replay.store import EntryStore
from replay.testing import population


def test_figures_match_a_direct_count(tmp_path: Path) -> None:
    store = EntryStore(tmp_path / "s.db")
    records = list(population(400, seed=11))
    store.add_records(records)
    entries = [e for r in records for e in r.entries]
    for text in ("", "http", 'http and request.path.startsWith("/api")'):
        q = kfl_compile(text)
        chosen = [e for e in entries if q(e)]
        s = statistics(store, compile_query(text))
        assert s["total"] == len(chosen)
        assert s["protocols"] == dict(Counter(e["protocol"]["abbr"] for e in chosen))
        assert sum(sum(v) for v in s["timeline"].values()) == len(chosen)
        assert sum(edge["entries"] for edge in s["service_map"]) == len(chosen)
        statuses = Counter(
            f"{e['response']['status'] // 100}xx"
            for e in chosen
            if e["protocol"]["abbr"] == "HTTP" and "response" in e
        )
        got = {k: sum(v) for k, v in s["status_over_time"].items() if k.endswith("xx")}
        assert got == dict(statuses)
        http_lat = sorted(e["elapsedTime"] for e in chosen if e["protocol"]["abbr"] == "HTTP")
        if http_lat:
            assert s["latency_ms"]["HTTP"]["max"] == http_lat[-1]
            assert s["latency_ms"]["HTTP"]["p50"] == http_lat[(len(http_lat) + 1) // 2 - 1]
        top = s["top_talkers"][0]
        names = Counter(e["src"]["name"] or e["src"]["ip"] for e in chosen)
        assert top["entries"] == names.most_common(1)[0][1]


def test_empty_selection_gives_empty_figures(tmp_path: Path) -> None:
    store = EntryStore(tmp_path / "s.db")
    s = statistics(store, compile_query("http"))
    assert s["total"] == 0 and s["timeline"] == {} and s["service_map"] == []
