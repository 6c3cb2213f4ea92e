"""The SQLite store: KFL filtering (pushed down or not) agrees with KFL itself, pages are
stable, counts are right, and PCAPs come back byte for byte."""

from __future__ import annotations

import io
from pathlib import Path

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pipeline.kfl import compile as kfl_compile
from producers.capture import CaptureReader
from replay.query import compile_query
from replay.store import EntryStore, StoreError
from replay.testing import dns_entry, http_entry, make_record, population

QUERIES = [
    "",
    "http",
    "dns",
    "tcp",
    "http and response.status >= 500",
    'http and request.path.startsWith("/api")',
    "http or dns",
    'dst.name == "checkout.payments"',
    'src.ip == "10.0.0.5" and dns',
    "response.status != 200",
    "elapsedTime > 20",
    'dns and request.questions[0].name == "no-such.host"',
    "not http",
    'request.path.startsWith("/api/v1/orders") or response.status == 404',
    "(http and response.status >= 500) or dns",
    'request.path.contains("v1") and not dns',
    'dst.name.endsWith(".shop") || src.name.startsWith("")',
    'request.questions[0].name == "no-such.host" or request.path == "/checkout"',
]

#: pushable atoms (and one that is not) for the generated queries below
_ATOMS = [
    "http",
    "dns",
    "tcp",
    "response.status >= 500",
    "response.status == 404",
    "response.status != 200",
    'request.path.startsWith("/api")',
    'request.path.endsWith("s")',
    'request.path.contains("v1/o")',
    'request.path == "/checkout"',
    'request.questions[0].name == "no-such.host"',
    'dst.name.contains("shop")',
    'src.name == ""',
    "elapsedTime > 20",
    'request.method == "POST"',
    'request.url.contains("id=")',
]


@pytest.fixture(scope="module")
def filled(tmp_path_factory: pytest.TempPathFactory) -> tuple[EntryStore, list[dict]]:
    store = EntryStore(tmp_path_factory.mktemp("store") / "entries.db")
    records = list(population(600, seed=3))
    store.add_records(records[:300])
    store.add_records(records[300:])
    entries = [e for r in records for e in r.entries]
    return store, entries


def _ids_by_kfl(entries: list[dict], text: str) -> list[str]:
    q = kfl_compile(text)
    ordered = sorted(entries, key=lambda e: (e["timestamp"], int(e["stream"], 16)))
    return [e["id"] for e in ordered if q(e)]


@pytest.mark.parametrize("text", QUERIES)
def test_paging_returns_exactly_what_kfl_matches_in_order(filled, text: str) -> None:
    store, entries = filled
    query = compile_query(text)
    got: list[str] = []
    cursor = None
    while True:
        page = store.page(query, cursor, size=37)
        got.extend(r["id"] for r in page.rows)
        cursor = page.cursor
        if cursor is None:
            break
    assert got == _ids_by_kfl(entries, text)
    assert store.count(query) == len(got)


def test_pages_stay_stable_while_entries_arrive(tmp_path: Path) -> None:
    store = EntryStore(tmp_path / "e.db")
    records = list(population(100, seed=5))
    store.add_records(records[:50])
    q = compile_query("")
    first = store.page(q, None, size=20)
    store.add_records(records[50:])  # later timestamps arrive after the first page was served
    second = store.page(q, first.cursor, size=20)
    ids = [r["id"] for r in first.rows + second.rows]
    assert ids == [e["id"] for r in records[:40] for e in r.entries]


def test_adding_the_same_records_twice_changes_nothing(tmp_path: Path) -> None:
    store = EntryStore(tmp_path / "e.db")
    records = list(population(20))
    assert store.add_records(records) == 20
    assert store.add_records(records) == 0
    assert store.total() == 20
    assert store.streams() == 20


def test_limit_caps_pages_and_count(filled) -> None:
    store, _ = filled
    q = compile_query("http and limit(25)")
    page1 = store.page(q, None, size=20)
    page2 = store.page(q, page1.cursor, size=20)
    assert len(page1.rows) == 20 and len(page2.rows) == 5
    assert page2.cursor is None and page2.limited
    assert store.count(q) == 25


def test_redact_applies_to_rows_and_entries(tmp_path: Path) -> None:
    store = EntryStore(tmp_path / "e.db")
    store.add_records([make_record([http_entry("aa01", 0, 1_000, url="/secret?token=1")])])
    q = compile_query('redact("request.url", "request.headers.Authorization")')
    row = store.page(q).rows[0]
    assert "secret" not in row["summary"]
    entry = store.entry("aa01-0", q)
    assert entry is not None
    assert entry["request"]["headers"]["Authorization"] == "[REDACTED]"
    assert store.entry("aa01-0")["request"]["headers"]["Authorization"] == "Bearer secret-token"


def test_entry_round_trips_as_stored(filled) -> None:
    store, entries = filled
    for e in entries[:5]:
        assert store.entry(e["id"]) == orjson.loads(orjson.dumps(e))
    assert store.entry("nope-0") is None


def test_rows_carry_the_table_columns(tmp_path: Path) -> None:
    store = EntryStore(tmp_path / "e.db")
    store.add_records(
        [
            make_record([http_entry("b1", 0, 5, method="POST", url="/checkout", status=500)]),
            make_record([dns_entry("b2", 0, 6, name="no-such.host", rcode=3)]),
        ]
    )
    http, dns = store.page(compile_query("")).rows
    assert (http["summary"], http["status"], http["status_text"]) == ("POST /checkout", 500, "500")
    assert (dns["summary"], dns["rcode"], dns["status_text"]) == (
        "A no-such.host",
        3,
        "Non-Existent Domain",
    )
    assert http["dst_name"] == "users.shop" and http["size"] == 420


def test_stream_pcap_holds_the_stream_frames_byte_for_byte(tmp_path: Path) -> None:
    store = EntryStore(tmp_path / "e.db")
    rec = make_record([http_entry("c1", 0, 1_000)], packets=5)
    other = make_record([http_entry("c2", 0, 1_000)], packets=3)
    store.add_records([rec, other])
    data = store.stream_pcap("c1")
    assert data is not None
    frames = list(CaptureReader(io.BytesIO(data)))
    assert frames == [(p.ts_ns, p.linktype, p.wirelen, p.data) for p in rec.packets]
    assert store.stream_pcap("zz") is None


def test_segments_of_one_stream_join_in_order(tmp_path: Path) -> None:
    store = EntryStore(tmp_path / "e.db")
    seg0 = make_record([http_entry("d1", 0, 1_000)], packets=2, segment=0)
    seg1 = make_record([http_entry("d1", 1, 2_000)], packets=2, segment=1)
    store.add_records([seg1, seg0])
    frames = list(CaptureReader(io.BytesIO(store.stream_pcap("d1") or b"")))
    assert frames == [(p.ts_ns, p.linktype, p.wirelen, p.data) for p in seg0.packets + seg1.packets]


def test_matching_pcap_merges_only_matching_streams(filled) -> None:
    store, entries = filled
    q = compile_query('dns and src.ip == "10.0.0.5"')
    frames = list(CaptureReader(io.BytesIO(b"".join(store.matching_pcap(q)))))
    streams = {e["stream"] for e in entries if kfl_compile(q.text)(e)}
    assert len(frames) == 2 * len(streams)
    assert [f[0] for f in frames] == sorted(f[0] for f in frames)


def test_bad_cursor_is_a_store_error(filled) -> None:
    store, _ = filled
    with pytest.raises(StoreError):
        store.page(compile_query(""), "not-a-cursor")


def test_store_is_a_real_file_that_reopens(tmp_path: Path) -> None:
    path = tmp_path / "keep.db"
    store = EntryStore(path)
    store.add_records(list(population(10)))
    store.close()
    assert EntryStore(path).total() == 10


_query_trees = st.recursive(
    st.sampled_from(_ATOMS),
    lambda inner: st.tuples(inner, st.sampled_from([" and ", " or ", " && ", " || "]), inner).map(
        lambda t: f"({t[0]}{t[1]}{t[2]})"
    ),
    max_leaves=6,
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(tree=_query_trees, strip=st.booleans())
def test_generated_and_or_queries_count_what_kfl_matches(filled, tree: str, strip: bool) -> None:
    """Pushed-down SQL (exact or not) never disagrees with KFL, whatever the nesting."""
    store, entries = filled
    text = tree[1:-1] if strip and tree.startswith("(") else tree
    kfl = kfl_compile(text)
    assert store.count(compile_query(text)) == sum(1 for e in entries if kfl(e)), text


def test_parallel_count_agrees_with_kfl(filled) -> None:
    from replay.scan import ParallelScan, count_range

    store, entries = filled
    scan = ParallelScan(2, min_rows=1)
    try:
        for text in ('http and request.path.startsWith("/api")', "http or dns", "not http"):
            expected = len(_ids_by_kfl(entries, text))
            lo, hi = 1, len(entries)
            assert count_range(str(store.path), text, lo, hi) == expected
            assert scan.count(store.path, text, lo, hi) == expected
    finally:
        scan.close()


def test_a_store_of_another_schema_version_is_refused(tmp_path: Path) -> None:
    import sqlite3

    path = tmp_path / "old.db"
    db = sqlite3.connect(path)
    db.execute("CREATE TABLE entries (id INTEGER PRIMARY KEY, doc BLOB)")
    db.commit()
    db.close()
    with pytest.raises(StoreError, match="schema version 0"):
        EntryStore(path)
    garbage = tmp_path / "not-a-db.db"
    garbage.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(StoreError):
        EntryStore(garbage)


def test_matching_pcap_is_capped(tmp_path: Path) -> None:
    store = EntryStore(tmp_path / "cap.db", max_pcap_bytes=1000)
    store.add_records(list(population(50, packets=3)))
    with pytest.raises(StoreError, match="narrow the filter"):
        store.matching_pcap(compile_query(""))
    one = next(iter(population(50, packets=3))).stream_id
    assert b"".join(store.matching_pcap(compile_query(f'stream == "{one}"')))
