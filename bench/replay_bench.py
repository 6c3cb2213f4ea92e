"""Replay benchmark, one command: ``.venv/bin/python bench/replay_bench.py``.

Measures, in one run, each figure next to a peer that does less of the same work:

  (1) replay from a local capture into records, MB/s on one core
      peer: reading the capture only (pcap -> frames)
  (2) replay from the S3 server (a private local stack started here) into records, MB/s
      peer: a plain loop downloading the same objects with the same parallelism
  (3) dashboard query latency over N stored entries (default 1,000,000), through the API
      in-process: time to the first page and to the full count (and to the statistics view),
      for filters the SQL pushdown handles whole, in part, and not at all
      peer: SQLite alone answering the same count with json_extract over the stored JSON

Options: --packets N (size of the generated capture), --entries N, --skip-s3, --skip-store.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import os
import resource
import sys
import tempfile
import threading
import time
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import httpx  # noqa: E402
from sensor_bench import generate  # noqa: E402

from producers.capture import open_capture, write_pcap  # noqa: E402
from replay.app import create_app  # noqa: E402
from replay.jobs import Job, JobSpec, JobStore  # noqa: E402
from replay.runner import run_job  # noqa: E402
from replay.store import EntryStore  # noqa: E402
from replay.testing import population  # noqa: E402
from streamtap.schema import StreamRecord  # noqa: E402

MB = 1_000_000


def _cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


class NullSink:
    """Counts records; isolates the replay from where its records go."""

    def __init__(self) -> None:
        self.records = 0
        self.entries = 0

    async def write(self, records: list[StreamRecord]) -> None:
        self.records += len(records)
        self.entries += sum(len(r.entries) for r in records)

    async def close(self) -> None:
        return None


def _job(tmp: Path, source: str, parallel: int = 1, workers: int = 1) -> tuple[Job, JobStore]:
    jobs = JobStore(tmp / "jobs")
    spec = JobSpec(source=source, parallel=parallel, workers=workers)  # type: ignore[call-arg]
    job = Job(id=f"bench-{time.time_ns()}", spec=spec.model_dump(mode="json"))
    jobs.save(job)
    return job, jobs


def _replay(
    tmp: Path, source: str, client: Any = None, parallel: int = 1, workers: int = 1
) -> tuple[float, float, Job, NullSink]:
    """(wall s, cpu s of this process, job, sink); with workers the cpu is in the children."""
    job, jobs = _job(tmp, source, parallel, workers)
    sink = NullSink()
    wall0, cpu0 = time.perf_counter(), _cpu()
    done = asyncio.run(run_job(job, jobs, threading.Event(), sink=sink, client=client))
    wall, cpu = time.perf_counter() - wall0, _cpu() - cpu0
    assert done.state == "done", done.error
    return wall, cpu, done, sink


def local_replay(tmp: Path, packets: int) -> dict[str, Any]:
    path = tmp / "mixed.pcap"
    generate(path, packets)
    size = path.stat().st_size
    cpu0 = _cpu()
    frames = sum(1 for _ in open_capture(path))
    read_cpu = _cpu() - cpu0
    wall, cpu, _done, sink = _replay(tmp, str(path))
    store_db = EntryStore(tmp / "local-store.db")
    job, jobs = _job(tmp, str(path))
    from replay.service import StoreSink

    wall0, cpu0 = time.perf_counter(), _cpu()
    asyncio.run(run_job(job, jobs, threading.Event(), sink=StoreSink(store_db)))
    store_wall, store_cpu = time.perf_counter() - wall0, _cpu() - cpu0
    return {
        "capture_mb": size / MB,
        "frames": frames,
        "records": sink.records,
        "entries": sink.entries,
        "read_only_mb_s": size / MB / read_cpu,
        "replay_cpu_mb_s": size / MB / cpu,
        "replay_wall_mb_s": size / MB / wall,
        "replay_store_wall_mb_s": size / MB / store_wall,
        "replay_store_cpu_mb_s": size / MB / store_cpu,
        "path": path,
    }


def _split(path: Path, chunk_bytes: int) -> Iterable[bytes]:
    """The capture as several pcap objects of about ``chunk_bytes`` (like a sink's batches)."""
    batch: list[Any] = []
    size = 0
    for frame in open_capture(path):
        batch.append(frame)
        size += len(frame[3]) + 16
        if size >= chunk_bytes:
            yield _pcap_bytes(batch)
            batch, size = [], 0
    if batch:
        yield _pcap_bytes(batch)


def _pcap_bytes(frames: list[Any]) -> bytes:
    buf = io.BytesIO()
    write_pcap(buf, frames, frames[0][1])
    return buf.getvalue()


def s3_replay(tmp: Path, capture: Path, parallel: int) -> dict[str, Any]:
    from stack import LocalStack
    from streamtap.objectstore import make_minio

    local = LocalStack.isolated(tmp / "stack")
    asyncio.run(local.up())
    try:
        settings = local.settings
        client = make_minio(settings)
        bucket, prefix = settings.s3_bucket, f"bench-{time.time_ns()}/"
        keys = []
        total = 0
        for i, data in enumerate(_split(capture, 8 * 1024 * 1024)):
            key = f"{prefix}{i:04d}.pcap"
            client.put_object(bucket, key, io.BytesIO(data), len(data))
            keys.append(key)
            total += len(data)

        def get(key: str) -> int:
            resp = client.get_object(bucket, key)
            try:
                return len(resp.read())
            finally:
                resp.close()
                resp.release_conn()

        wall0 = time.perf_counter()
        with ThreadPoolExecutor(parallel) as pool:
            got = sum(pool.map(get, keys))
        plain = time.perf_counter() - wall0
        assert got == total
        source = f"s3://{bucket}/{prefix}"
        wall, cpu, _done, sink = _replay(tmp, source, client, parallel)
        workers = os.cpu_count() or 1
        wall_n, _cpu_n, _done, sink_n = _replay(
            tmp, source, client, max(parallel, workers), workers
        )
        assert sink_n.records == sink.records
        return {
            "workers": workers,
            "replay_workers_wall_mb_s": total / MB / wall_n,
            "objects": len(keys),
            "mb": total / MB,
            "plain_download_mb_s": total / MB / plain,
            "replay_wall_mb_s": total / MB / wall,
            "replay_cpu_mb_s": total / MB / cpu,
            "records": sink.records,
        }
    finally:
        asyncio.run(local.down())


def _jx(path: str) -> str:
    return f"json_extract(doc, '$.{path}')"


#: (what the pushdown does with it, KFL, the same condition for SQLite alone)
QUERIES = [
    (
        "pushed down whole",
        "http and response.status >= 500",
        f"{_jx('protocol.abbr')} = 'HTTP' AND {_jx('response.status')} >= 500",
    ),
    (
        "pushed down whole (first DNS question)",
        'dns and request.questions[0].name == "no-such.host"',
        f"{_jx('protocol.abbr')} = 'DNS' AND {_jx('request.questions[0].name')} = 'no-such.host'",
    ),
    (
        "pushed down whole (path prefix)",
        'request.path.startsWith("/api") and elapsedTime > 100',
        f"substr({_jx('request.path')}, 1, 4) = '/api' AND {_jx('elapsedTime')} > 100",
    ),
    (
        "pushed down whole (an or)",
        'request.path.startsWith("/api/v1/orders") or response.status == 404',
        f"substr({_jx('request.path')}, 1, 14) = '/api/v1/orders' "
        f"OR {_jx('response.status')} = 404",
    ),
    (
        "header side in Python: every entry parsed and tested",
        'request.headers["user-agent"].startsWith("curl/8") or response.status == 404',
        f"substr({_jx('request.headers.User-Agent')}, 1, 6) = 'curl/8' "
        f"OR {_jx('response.status')} = 404",
    ),
    ("everything", "", "1"),
]


def _fill(path: Path, n: int) -> tuple[EntryStore, float]:
    store = EntryStore(path)
    have = store.total()
    t0 = time.perf_counter()
    batch: list[StreamRecord] = []
    for rec in population(n, packets=0):
        if have:
            break
        batch.append(rec)
        if len(batch) == 10_000:
            store.add_records(batch)
            batch = []
    if batch:
        store.add_records(batch)
    return store, time.perf_counter() - t0


async def _timed(client: httpx.AsyncClient, path: str, params: dict[str, Any]) -> tuple[float, Any]:
    t0 = time.perf_counter()
    resp = await client.get(path, params=params)
    resp.raise_for_status()
    return time.perf_counter() - t0, resp.json()


def dashboard_latency(path: Path, n: int) -> dict[str, Any]:
    store, fill_s = _fill(path, n)
    total = store.total()
    store.warm(wait=True)  # as `streamtap tap` does when it starts serving
    app = create_app(store)

    async def run() -> list[dict[str, Any]]:
        out = []
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(
            transport=transport, base_url="http://bench", timeout=600
        ) as c:
            for label, q, sql in QUERIES:
                first_s, page = await _timed(c, "/api/entries", {"q": q, "size": 100})
                count_s, count = await _timed(c, "/api/count", {"q": q})
                again_s, _ = await _timed(c, "/api/count", {"q": q})
                stats_s, _ = await _timed(c, "/api/stats", {"q": q})
                t0 = time.perf_counter()
                (peer,) = store._db().execute(f"SELECT COUNT(*) FROM docs WHERE {sql}").fetchone()
                peer_s = time.perf_counter() - t0
                assert peer == count["count"], (label, peer, count)
                out.append(
                    {
                        "label": label,
                        "query": q,
                        "first_page_s": first_s,
                        "count_again_s": again_s,
                        "stats_s": stats_s,
                        "rows": len(page["rows"]),
                        "count_s": count_s,
                        "count": count["count"],
                        "sqlite_json_extract_s": peer_s,
                    }
                )
        return out

    return {
        "entries": total,
        "fill_s": fill_s,
        "db_mb": path.stat().st_size / MB,
        "queries": asyncio.run(run()),
    }


def _print_local(local: dict[str, Any]) -> None:
    print(
        f"\n(1) local capture: {local['capture_mb']:.1f} MB, {local['frames']:,} frames -> "
        f"{local['records']:,} records, {local['entries']:,} entries"
    )
    print(f"    read only (peer)            {local['read_only_mb_s']:8.1f} MB/s cpu")
    print(
        f"    replay into records         {local['replay_cpu_mb_s']:8.1f} MB/s cpu  "
        f"{local['replay_wall_mb_s']:8.1f} MB/s wall"
    )
    print(
        f"    replay into the SQLite store {local['replay_store_cpu_mb_s']:7.1f} MB/s cpu  "
        f"{local['replay_store_wall_mb_s']:8.1f} MB/s wall"
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--packets", type=int, default=400_000)
    parser.add_argument("--entries", type=int, default=1_000_000)
    parser.add_argument("--parallel", type=int, default=4)
    parser.add_argument("--skip-s3", action="store_true")
    parser.add_argument("--skip-local", action="store_true", help="implies --skip-s3")
    parser.add_argument("--skip-store", action="store_true")
    parser.add_argument("--store", type=Path, help="keep/reuse the entry store at this path")
    args = parser.parse_args()
    print(
        f"cpu: {os.cpu_count()} cores; python {sys.version.split()[0]}; "
        f"load average at start {os.getloadavg()[0]:.1f}"
    )
    with tempfile.TemporaryDirectory(prefix="replay-bench-") as tmp_name:
        tmp = Path(tmp_name)
        local: dict[str, Any] = {}
        if args.skip_local:
            args.skip_s3 = True
        else:
            local = local_replay(tmp, args.packets)
            _print_local(local)
        if not args.skip_s3:
            s3 = s3_replay(tmp, local["path"], args.parallel)
            print(f"\n(2) S3: {s3['objects']} objects, {s3['mb']:.1f} MB, parallel {args.parallel}")
            print(f"    plain download (peer)       {s3['plain_download_mb_s']:8.1f} MB/s wall")
            print(
                f"    replay into records         {s3['replay_wall_mb_s']:8.1f} MB/s wall  "
                f"{s3['replay_cpu_mb_s']:8.1f} MB/s cpu"
            )
            print(
                f"    replay, {s3['workers']} worker processes  "
                f"{s3['replay_workers_wall_mb_s']:8.1f} MB/s wall"
            )
        if not args.skip_store:
            path = args.store or tmp / "dashboard.db"
            d = dashboard_latency(path, args.entries)
            print(
                f"\n(3) dashboard over {d['entries']:,} entries ({d['db_mb']:.0f} MB store, "
                f"filled in {d['fill_s']:.0f} s)"
            )
            print(
                f"    {'filter':58} {'first page':>10} {'count':>8} {'again':>7} {'stats':>7}"
                f" {'matches':>9}"
                f" {'sqlite peer':>11}"
            )
            for q in d["queries"]:
                text = q["query"] or "(empty)"
                print(
                    f"    {text:58} {q['first_page_s']:9.3f}s {q['count_s']:7.2f}s "
                    f"{q['count_again_s']:6.2f}s {q['stats_s']:6.2f}s "
                    f"{q['count']:9,} {q['sqlite_json_extract_s']:10.2f}s"
                )


if __name__ == "__main__":
    main()
