"""Counting matches of a query SQL cannot answer, on every core.

When the KFL predicate has to see each document, a count is one ``orjson.loads`` and one
predicate call per candidate row: CPU-bound Python, so threads do not help. The rowid range is
cut into chunks that worker processes count on their own read-only connections (SQLite readers
never block each other in WAL mode). Order does not matter for a count, so chunks are read in
rowid order, which is the order the documents are stored in.

Each worker compiles the query itself; a query using ``now()`` is compiled a few milliseconds
later there than in the caller, which moves a relative time window by as much.
"""

from __future__ import annotations

import multiprocessing
import sqlite3
from concurrent.futures import Executor, ProcessPoolExecutor
from pathlib import Path

import orjson

from replay.query import compile_query

__all__ = ["ParallelCounter", "count_range"]

#: chunks per worker: enough for an even finish when some chunks are denser than others
_CHUNKS_PER_WORKER = 4
#: below this many rows a pool costs more than it saves
_MIN_ROWS = 50_000


def count_range(path: str, text: str, lo: int, hi: int) -> int:
    """Matches of ``text`` among entries with ``lo <= rowid <= hi`` (runs in a worker)."""
    query = compile_query(text)
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=30)
    try:
        where = f" AND {query.plan.where}" if query.plan.where else ""
        if where:
            sql = (
                "SELECT d.doc FROM entries e JOIN docs d ON d.id = e.id "
                f"WHERE e.id BETWEEN ? AND ?{where}"
            )
        else:
            sql = "SELECT doc FROM docs WHERE id BETWEEN ? AND ?"
        cur = db.execute(sql, (lo, hi, *query.plan.params))
        match, loads = query.match, orjson.loads
        n = 0
        while batch := cur.fetchmany(1024):
            for (doc,) in batch:
                if match(loads(doc)):
                    n += 1
        return n
    finally:
        db.close()


def _ready() -> None:
    """Import and warm the KFL compiler in a worker (its result must pickle: return None)."""
    compile_query("http")


class ParallelCounter:
    """A lazily started process pool shared by every count of one store."""

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

    def count(self, path: Path, text: str, lo: int, hi: int) -> int | None:
        """The count, or None when the range is too small to be worth the pool."""
        if self.workers < 2 or hi - lo + 1 < self.min_rows:
            return None
        chunks = self.workers * _CHUNKS_PER_WORKER
        step = (hi - lo + 1 + chunks - 1) // chunks
        bounds = [(start, min(start + step - 1, hi)) for start in range(lo, hi + 1, step)]
        pool = self._executor()
        futures = [pool.submit(count_range, str(path), text, a, b) for a, b in bounds]
        return sum(f.result() for f in futures)

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None
