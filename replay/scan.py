"""Counts and statistics over a large store, on every core.

When the KFL predicate has to see each document, a count is one ``orjson.loads`` and one
predicate call per candidate row, and a statistics refresh is a Python loop over every matching
row either way: CPU-bound Python, so threads do not help. The rowid range is cut into chunks
that worker processes scan on their own read-only connections (SQLite readers never block each
other in WAL mode). Order matters for neither a count nor a tally, so chunks are read in rowid
order, which is the order the documents are stored in.

Each worker compiles the query itself; a query using ``now()`` is compiled a few milliseconds
later there than in the caller, which moves a relative time window by as much.
"""

from __future__ import annotations

import multiprocessing
import sqlite3
from collections.abc import Callable, Iterator
from concurrent.futures import Executor, ProcessPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

import orjson

from replay.aggregate import COLUMNS, Tally, tally
from replay.query import Query, compile_query

T = TypeVar("T")

__all__ = ["ParallelScan", "count_range", "tally_range"]

#: chunks per worker: enough for an even finish when some chunks are denser than others
_CHUNKS_PER_WORKER = 4
#: below this many rows a pool costs more than it saves
_MIN_ROWS = 50_000


def _rows(
    db: sqlite3.Connection, query: Query, columns: str | None, lo: int, hi: int
) -> Iterator[Any]:
    """Rows (``columns`` of the entries table) with ``lo <= rowid <= hi`` that match
    ``query``; with ``columns`` None, rows to count (of whatever shape is cheapest)."""
    where = f" AND {query.plan.where}" if query.plan.where else ""
    if columns is None and not where and not query.plan.exact:
        # the narrow table has nothing to filter on: read the documents alone, no join
        sql = "SELECT id, doc FROM docs WHERE id BETWEEN ? AND ?"
    elif query.plan.exact:
        sql = f"SELECT {columns or 'e.id'} FROM entries e WHERE e.id BETWEEN ? AND ?{where}"
    else:
        sql = (
            f"SELECT {columns or 'e.id'}, d.doc FROM entries e JOIN docs d ON d.id = e.id "
            f"WHERE e.id BETWEEN ? AND ?{where}"
        )
    cur = db.execute(sql, (lo, hi, *query.plan.params))
    match, loads, exact = query.match, orjson.loads, query.plan.exact
    while batch := cur.fetchmany(1024):
        for row in batch:
            if exact or match(loads(row[-1])):
                yield row


def _connect(path: str) -> sqlite3.Connection:
    return sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=30)


def count_range(path: str, text: str, lo: int, hi: int) -> int:
    """Matches of ``text`` among entries with ``lo <= rowid <= hi`` (runs in a worker)."""
    query = compile_query(text)
    db = _connect(path)
    try:
        return sum(1 for _ in _rows(db, query, None, lo, hi))
    finally:
        db.close()


def tally_range(path: str, text: str, lo: int, hi: int) -> Tally:
    """The statistics tally of ``text``'s matches with ``lo <= rowid <= hi`` (in a worker)."""
    query = compile_query(text)
    db = _connect(path)
    try:
        return tally(_rows(db, query, COLUMNS, lo, hi))
    finally:
        db.close()


def _ready() -> None:
    """Import and warm the KFL compiler in a worker (its result must pickle: return None)."""
    compile_query("http")


class ParallelScan:
    """A lazily started process pool shared by every count and statistics scan of one store."""

    def __init__(self, workers: int, min_rows: int = _MIN_ROWS) -> None:
        self.workers = workers
        self.min_rows = min_rows
        self._pool: Executor | None = None

    def _executor(self) -> Executor:
        if self._pool is None:
            # spawn, not fork: the parent runs threads (uvicorn, replay jobs) and SQLite handles.
            context = multiprocessing.get_context("spawn")
            self._pool = ProcessPoolExecutor(self.workers, mp_context=context)
        return self._pool

    def warm(self, wait: bool = False) -> None:
        """Start the workers now (a service does this at start-up), so the first count a user
        asks for does not also pay for starting Python and importing the KFL compiler."""
        if self.workers >= 2:
            pool = self._executor()
            started = [pool.submit(_ready) for _ in range(self.workers)]
            for future in started if wait else ():
                future.result()

    def _chunks(self, lo: int, hi: int) -> list[tuple[int, int]] | None:
        if self.workers < 2 or hi - lo + 1 < self.min_rows:
            return None
        chunks = self.workers * _CHUNKS_PER_WORKER
        step = (hi - lo + 1 + chunks - 1) // chunks
        return [(start, min(start + step - 1, hi)) for start in range(lo, hi + 1, step)]

    def _map(
        self, fn: Callable[[str, str, int, int], T], path: Path, text: str, lo: int, hi: int
    ) -> list[T] | None:
        bounds = self._chunks(lo, hi)
        if bounds is None:
            return None
        pool = self._executor()
        futures = [pool.submit(fn, str(path), text, a, b) for a, b in bounds]
        return [f.result() for f in futures]

    def count(self, path: Path, text: str, lo: int, hi: int) -> int | None:
        """The count, or None when the range is too small to be worth the pool."""
        parts = self._map(count_range, path, text, lo, hi)
        return None if parts is None else sum(parts)

    def tally(self, path: Path, text: str, lo: int, hi: int) -> Tally | None:
        """The merged statistics tally, or None when the range is too small for the pool."""
        parts = self._map(tally_range, path, text, lo, hi)
        if parts is None:
            return None
        whole = Tally()
        for part in parts:
            whole.merge(part)
        return whole

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None
