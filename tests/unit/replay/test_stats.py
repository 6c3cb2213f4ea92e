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


def test_split_tallies_give_the_figures_of_one_ordered_pass(tmp_path: Path) -> None:
    """Worker pieces merged (label numbers remapped, ties broken by name) == one scan."""
    from replay.aggregate import COLUMNS, figures, tally
    from replay.scan import ParallelScan

    store = EntryStore(tmp_path / "s.db")
    records = list(population(500, seed=5))
    store.add_records(records[250:])  # rowid order is not time order
    store.add_records(records[:250])
    hi = store.total()
    scan = ParallelScan(2, min_rows=1)
    try:
        for text in ("", "dns", 'http and request.path.startsWith("/api")', "not http"):
            query = compile_query(text)
            one_pass = figures(tally(store.matching(query, COLUMNS)), text)
            merged = scan.tally(store.path, text, 1, hi)
            assert merged is not None
            assert figures(merged, text) == one_pass, text
    finally:
        scan.close()


def test_statistics_use_the_workers_on_a_large_store(tmp_path: Path) -> None:
    store = EntryStore(tmp_path / "s.db", scan_workers=2)
    store._scan_pool.min_rows = 1  # what counts as "large" for this test
    records = list(population(300, seed=2))
    store.add_records(records)
    entries = [e for r in records for e in r.entries]
    try:
        for text in ("", "not dns"):
            q = kfl_compile(text)
            assert store.parallel_tally(compile_query(text)) is not None
            s = statistics(store, compile_query(text))
            assert s["total"] == sum(1 for e in entries if q(e))
        assert store.parallel_tally(compile_query("http and limit(5)")) is None
        assert statistics(store, compile_query("http and limit(5)"))["total"] == 5
    finally:
        store.close()
