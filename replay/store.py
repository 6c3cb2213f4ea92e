"""The embedded store behind ``streamtap tap``: one SQLite file of entries, streams and packets.

SQLite because an investigation should be a file you can copy to a laptop, open with any tool
and keep next to the incident report, with no server to run. Entries are kept as JSON (what KFL
sees) next to indexed columns (time, protocol, endpoints, status) that the SQL pushdown of a
query uses; the raw frames of every stream segment are kept too (one blob per segment: a row
per frame would cost SQLite more than the frames), so a stream's PCAP comes back byte for
byte. WAL mode lets the dashboard read while a replay is still writing.

The JSON lives in its own table, keyed by the entry's rowid: the indexed columns then fill a
narrow table (about a tenth of the bytes), so counts, statistics and pushed-down scans read
little, and a document is fetched only for the rows the KFL predicate must see.

Listings are ordered by ``(timestamp, id)``, a key that never changes once written, so a cursor
(the last key of a page) stays valid while more entries arrive.
"""

from __future__ import annotations

import copy
import os
import sqlite3
import struct
import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from replay.aggregate import Tally
from replay.pcapout import PcapFrame, write_capture
from replay.query import Query
from replay.scan import ParallelScan
from replay.summary import Row, index_terms, summarize
from streamtap.schema import StreamRecord

__all__ = ["EntryStore", "Page", "StoreError"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS entries (
  id INTEGER PRIMARY KEY,
  entry_id TEXT NOT NULL UNIQUE,
  stream_id TEXT NOT NULL,
  ts INTEGER NOT NULL,
  proto TEXT NOT NULL,
  abbr TEXT NOT NULL,
  src_ip TEXT, src_port INTEGER, src_name TEXT,
  dst_ip TEXT, dst_port INTEGER, dst_name TEXT,
  method TEXT, summary TEXT NOT NULL, status INTEGER, rcode INTEGER, status_text TEXT NOT NULL,
  elapsed INTEGER NOT NULL, size INTEGER NOT NULL,
  path TEXT, qname TEXT
);
CREATE TABLE IF NOT EXISTS docs (
  id INTEGER PRIMARY KEY,
  doc BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS entries_ts ON entries(ts, id);
CREATE INDEX IF NOT EXISTS entries_abbr ON entries(abbr, ts, id);
CREATE INDEX IF NOT EXISTS entries_proto ON entries(proto, ts, id);
CREATE INDEX IF NOT EXISTS entries_src ON entries(src_ip, ts, id);
CREATE INDEX IF NOT EXISTS entries_dst ON entries(dst_ip, ts, id);
CREATE INDEX IF NOT EXISTS entries_status ON entries(status, ts, id);
CREATE INDEX IF NOT EXISTS entries_stream ON entries(stream_id);
CREATE TABLE IF NOT EXISTS streams (
  stream_id TEXT NOT NULL,
  segment INTEGER NOT NULL,
  node TEXT NOT NULL,
  layer4 TEXT NOT NULL,
  src_ip TEXT NOT NULL, src_port INTEGER NOT NULL,
  dst_ip TEXT NOT NULL, dst_port INTEGER NOT NULL,
  first_ts_ns INTEGER NOT NULL, last_ts_ns INTEGER NOT NULL,
  packets INTEGER NOT NULL,
  frames BLOB NOT NULL,
  PRIMARY KEY (stream_id, segment)
);
"""

#: one frame in a segment's ``frames`` blob: ts_ns, linktype, wirelen, caplen, then the bytes
_FRAME = struct.Struct("<qHII")

_ROW_COLUMNS = (
    "entry_id, stream_id, ts, proto, abbr, src_ip, src_port, src_name, dst_ip, dst_port, "
    "dst_name, method, summary, status, rcode, status_text, elapsed, size"
)
_SCAN_BATCH = 512
#: bumped whenever _SCHEMA changes shape; a store file of another version is refused
SCHEMA_VERSION = 4


class StoreError(Exception):
    """A store file that cannot be opened or a cursor that this store did not make."""


@dataclass
class Page:
    """One page of a listing; ``cursor`` is None when nothing follows."""

    rows: list[Row]
    cursor: str | None
    #: the key of the last row returned: where to look for entries that arrive later
    last: str | None = None
    scanned: int = 0
    limited: bool = False
    extra: dict[str, Any] = field(default_factory=dict)


def _row_from_columns(values: tuple[Any, ...]) -> Row:
    (eid, sid, ts, proto, abbr, sip, sport, sname, dip, dport, dname, method, summary, status,
     rcode, status_text, elapsed, size) = values  # fmt: skip
    return Row(
        id=eid, stream=sid, timestamp=ts, protocol=proto, abbr=abbr, src_ip=sip, src_port=sport,
        src_name=sname, dst_ip=dip, dst_port=dport, dst_name=dname, method=method,
        summary=summary, status=status, rcode=rcode, status_text=status_text, elapsed=elapsed,
        size=size,
    )  # fmt: skip


def _parse_cursor(cursor: str | None) -> tuple[int, int] | None:
    if not cursor:
        return None
    ts, _, rowid = cursor.partition(".")
    try:
        return int(ts), int(rowid)
    except ValueError:
        raise StoreError(f"not a cursor of this store: {cursor!r}") from None


def redacted(query: Query, entry: dict[str, Any]) -> dict[str, Any]:
    """The entry as the query allows it to be shown (``redact()`` paths replaced)."""
    work = copy.deepcopy(entry)
    out = query.redact(work)
    return out if isinstance(out, dict) else work


class EntryStore:
    """Entries, streams and packets in one SQLite file; safe to share between threads.

    Each thread gets its own connection (SQLite connections are not to be shared); writes are
    serialised by a lock so a replay writer and API readers can run side by side.
    """

    def __init__(
        self,
        path: str | Path,
        scan_workers: int | None = None,
        max_pcap_bytes: int = 512 * 1024 * 1024,
    ) -> None:
        self.path = Path(path)
        self.max_pcap_bytes = max_pcap_bytes
        self._scan_pool = ParallelScan(scan_workers or os.cpu_count() or 1)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._local = threading.local()
        self._write_lock = threading.Lock()
        try:
            db = self._db()
            (version,) = db.execute("PRAGMA user_version").fetchone()
            tables = db.execute("SELECT COUNT(*) FROM sqlite_master").fetchone()[0]
            if tables and version != SCHEMA_VERSION:
                raise StoreError(
                    f"{self.path}: a store of schema version {version}, this streamtap reads "
                    f"{SCHEMA_VERSION}; replay into a new file (--db) or delete this one"
                )
            db.executescript(_SCHEMA)
            db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
        except sqlite3.DatabaseError as exc:
            raise StoreError(f"{self.path}: {exc}") from exc

    def _db(self) -> sqlite3.Connection:
        db: sqlite3.Connection | None = getattr(self._local, "db", None)
        if db is None:
            db = sqlite3.connect(self.path, timeout=30, isolation_level=None)
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")
            db.execute("PRAGMA cache_size=-65536")
            self._local.db = db
        return db

    def warm(self, wait: bool = False) -> None:
        """Start the scan workers (counts, statistics) before the first query (``replay.scan``)."""
        self._scan_pool.warm(wait)

    def close(self) -> None:
        self._scan_pool.close()
        db = getattr(self._local, "db", None)
        if db is not None:
            db.close()
            self._local.db = None

    # -- writing ------------------------------------------------------------------------

    def add_records(self, records: Iterable[StreamRecord]) -> int:
        """Store records (entries, stream, packets) in one transaction; returns entries added.

        Adding a record twice changes nothing (keys are the entry and segment ids), so a
        resumed replay can overlap what it already stored.
        """
        entry_rows: list[tuple[Any, ...]] = []
        doc_rows: list[bytes] = []
        stream_rows: list[tuple[Any, ...]] = []
        pack = _FRAME.pack
        for rec in records:
            frames = b"".join(
                pack(p.ts_ns, p.linktype, p.wirelen, len(p.data)) + p.data for p in rec.packets
            )
            stream_rows.append(
                (rec.stream_id, rec.segment, rec.node.name, rec.layer4, rec.src.ip, rec.src.port,
                 rec.dst.ip, rec.dst.port, rec.first_ts_ns, rec.last_ts_ns, len(rec.packets),
                 frames)
            )  # fmt: skip
            for entry in rec.entries:
                r = summarize(entry)
                path, qname = index_terms(entry)
                doc_rows.append(orjson.dumps(entry))
                entry_rows.append(
                    (r["id"] or f"{rec.stream_id}-{r['timestamp']}", r["stream"] or rec.stream_id,
                     r["timestamp"], r["protocol"], r["abbr"], r["src_ip"], r["src_port"],
                     r["src_name"], r["dst_ip"], r["dst_port"], r["dst_name"], r["method"],
                     r["summary"], r["status"], r["rcode"], r["status_text"], r["elapsed"],
                     r["size"], path, qname)
                )  # fmt: skip
        with self._write_lock:
            db = self._db()
            db.execute("BEGIN")
            try:
                db.executemany(
                    "INSERT OR IGNORE INTO streams VALUES (?,?,?,?,?,?,?,?,?,?,?,?)", stream_rows
                )
                added = 0
                insert = (
                    f"INSERT OR IGNORE INTO entries ({_ROW_COLUMNS}, path, qname) "
                    "VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)"
                )
                docs: list[tuple[int, bytes]] = []
                for values, doc in zip(entry_rows, doc_rows, strict=True):
                    cur = db.execute(insert, values)
                    if cur.rowcount == 1:
                        added += 1
                        docs.append((cur.lastrowid or 0, doc))
                db.executemany("INSERT INTO docs VALUES (?, ?)", docs)
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise
        return added

    # -- reading ------------------------------------------------------------------------

    def _scan(
        self, query: Query, after: tuple[int, int] | None, columns: str
    ) -> Iterator[tuple[Any, ...]]:
        """Rows in (ts, id) order that pass the SQL pushdown; the last two values are the rowid
        and the JSON document (None when the plan is exact: nobody needs to read it)."""
        where = [query.plan.where] if query.plan.where else []
        params: list[Any] = list(query.plan.params)
        if after is not None:
            where.append("(e.ts, e.id) > (?, ?)")
            params.extend(after)
        if query.plan.exact and not query.redacts:
            sql = f"SELECT {columns}, e.id, NULL FROM entries e"
        else:
            sql = f"SELECT {columns}, e.id, d.doc FROM entries e JOIN docs d ON d.id = e.id"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY e.ts, e.id"
        cur = self._db().execute(sql, params)
        while batch := cur.fetchmany(_SCAN_BATCH):
            yield from batch

    def page(self, query: Query, cursor: str | None = None, size: int = 100) -> Page:
        """Up to ``size`` matching entries after ``cursor`` (and within the query's ``limit``)."""
        after = _parse_cursor(cursor)
        already = 0
        if query.limit is not None and after is not None:
            already = self._count_until(query, after)
            size = min(size, max(query.limit - already, 0))
        rows: list[Row] = []
        scanned = 0
        last: tuple[int, int] | None = None
        more = False
        if size > 0:
            for values in self._scan(query, after, _ROW_COLUMNS):
                scanned += 1
                if len(rows) == size:
                    more = True
                    break
                doc = values[-1]
                if not query.plan.exact and not query.match(orjson.loads(doc)):
                    continue
                if query.redacts:
                    row = summarize(redacted(query, orjson.loads(doc)))
                else:
                    row = _row_from_columns(values[:-2])
                rows.append(row)
                last = (values[2], values[-2])
        limited = query.limit is not None and already + len(rows) >= query.limit
        next_cursor = f"{last[0]}.{last[1]}" if (more and last and not limited) else None
        last_key = f"{last[0]}.{last[1]}" if last else cursor
        return Page(rows, next_cursor, last_key, scanned=scanned, limited=limited)

    def _count_until(self, query: Query, until: tuple[int, int]) -> int:
        n = 0
        for values in self._scan(query, None, "ts"):
            if (values[0], values[-2]) > until:
                break
            if query.plan.exact or query.match(orjson.loads(values[-1])):
                n += 1
        return n

    def count(self, query: Query) -> int:
        """How many entries match (at most the query's ``limit``)."""
        if query.plan.exact:
            sql = "SELECT COUNT(*) FROM entries"
            if query.plan.where:
                sql += " WHERE " + query.plan.where
            (n,) = self._db().execute(sql, query.plan.params).fetchone()
        else:
            n = self._parallel_count(query)
            if n is None:
                n = sum(1 for _ in self.matching(query))
        return min(n, query.limit) if query.limit is not None else int(n)

    def _parallel_count(self, query: Query) -> int | None:
        if query.limit is not None:
            return None  # "the first n" needs the (ts, id) order, which chunks do not keep
        lo, hi = self._db().execute("SELECT MIN(id), MAX(id) FROM entries").fetchone()
        if lo is None:
            return 0
        return self._scan_pool.count(self.path, query.text, lo, hi)

    def parallel_tally(self, query: Query) -> Tally | None:
        """The statistics tally from the worker processes, or None when the store is too small
        for them or the query has a ``limit`` (the first n need the (ts, id) order)."""
        if query.limit is not None:
            return None
        lo, hi = self._db().execute("SELECT MIN(id), MAX(id) FROM entries").fetchone()
        if lo is None:
            return None
        return self._scan_pool.tally(self.path, query.text, lo, hi)

    def matching(self, query: Query, columns: str = "ts") -> Iterator[tuple[Any, ...]]:
        """Every matching row (``columns`` + rowid + doc), in order, honouring ``limit``."""
        n = 0
        for values in self._scan(query, None, columns):
            if query.plan.exact or query.match(orjson.loads(values[-1])):
                yield values
                n += 1
                if query.limit is not None and n >= query.limit:
                    return

    def entry(self, entry_id: str, query: Query | None = None) -> dict[str, Any] | None:
        """One entry as stored (redacted by ``query`` when given)."""
        got = self._db().execute(
            "SELECT d.doc FROM entries e JOIN docs d ON d.id = e.id WHERE e.entry_id = ?",
            (entry_id,),
        )
        row = got.fetchone()
        if row is None:
            return None
        entry: dict[str, Any] = orjson.loads(row[0])
        return redacted(query, entry) if query is not None else entry

    def stream_frames(self, stream_id: str) -> list[PcapFrame]:
        """Every frame of a stream, all segments, in the order the sensor read them."""
        cur = self._db().execute(
            "SELECT frames FROM streams WHERE stream_id = ? ORDER BY segment", (stream_id,)
        )
        out: list[PcapFrame] = []
        unpack, size = _FRAME.unpack_from, _FRAME.size
        for (blob,) in cur:
            pos = 0
            while pos < len(blob):
                ts, lt, wl, caplen = unpack(blob, pos)
                pos += size
                out.append((ts, lt, wl, bytes(blob[pos : pos + caplen])))
                pos += caplen
        return out

    def stream_pcap(self, stream_id: str) -> bytes | None:
        """The stream's capture file, or None when the store has no such stream."""
        frames = self.stream_frames(stream_id)
        if not frames:
            return None
        return b"".join(write_capture(frames))

    def matching_pcap(self, query: Query) -> Iterator[bytes]:
        """One capture of every stream with a matching entry, frames merged in time order.

        The frames are merged in memory, so the capture is capped (``max_pcap_bytes``); past
        the cap this raises StoreError, which asks for a narrower filter, rather than
        exhausting the machine the dashboard runs on.
        """
        streams: list[str] = []
        seen: set[str] = set()
        size = 0
        for values in self.matching(query, "stream_id"):
            sid = values[0]
            if sid not in seen:
                seen.add(sid)
                streams.append(sid)
                (got,) = (
                    self._db()
                    .execute(
                        "SELECT COALESCE(SUM(length(frames)), 0) FROM streams WHERE stream_id = ?",
                        (sid,),
                    )
                    .fetchone()
                )
                size += int(got)
                if size > self.max_pcap_bytes:
                    raise StoreError(
                        f"the streams matching this filter hold more than "
                        f"{self.max_pcap_bytes:,} bytes of packets; narrow the filter"
                    )
        frames: list[tuple[int, int, int, PcapFrame]] = []
        for order, sid in enumerate(streams):
            for seq, frame in enumerate(self.stream_frames(sid)):
                frames.append((frame[0], order, seq, frame))
        frames.sort(key=lambda f: f[:3])
        return write_capture(f[3] for f in frames)

    def streams(self) -> int:
        (n,) = self._db().execute("SELECT COUNT(DISTINCT stream_id) FROM streams").fetchone()
        return int(n)

    def total(self) -> int:
        (n,) = self._db().execute("SELECT COUNT(*) FROM entries").fetchone()
        return int(n)
