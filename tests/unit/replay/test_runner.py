"""Replay jobs on local captures through the sensor engine (no network): filtering, names,
cancel and resume state."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from pathlib import Path

from pipeline.kfl import compile as kfl_compile
from replay.dissect import dissect_capture
from replay.jobs import Job, JobSpec, JobStore
from replay.query import compile_query
from replay.runner import _FEED_AHEAD, _FEED_CHUNK, Dissect, RecordSink, restore_names, run_job
from replay.service import StoreSink
from replay.store import EntryStore
from replay.testing import http_entry, make_record
from streamtap.schema import StreamRecord

CORPUS = Path(__file__).parents[2] / "data" / "corpus"
FILES = ["mixed-wikipedia-http-dns.pcap", "http11-head-500.pcap", "dns-nxdomain.pcap"]


def _folder(tmp_path: Path) -> Path:
    folder = tmp_path / "captures"
    folder.mkdir()
    for name in FILES:
        (folder / name).write_bytes((CORPUS / name).read_bytes())
    return folder


def _run(
    tmp_path: Path, cancel: threading.Event | None = None, **spec: object
) -> tuple[Job, EntryStore]:
    tmp_path.mkdir(parents=True, exist_ok=True)
    jobs = JobStore(tmp_path / "jobs")
    job = Job(id="j1", spec=JobSpec(**spec).model_dump(mode="json"))  # type: ignore[arg-type]
    store = EntryStore(tmp_path / "t.db")
    done = asyncio.run(
        run_job(job, jobs, cancel or threading.Event(), sink=StoreSink(store), node="n")
    )
    return done, store


def test_folder_replay_stores_what_the_engine_makes_and_kfl_selects(tmp_path: Path) -> None:
    done, store = _run(tmp_path, source=str(_folder(tmp_path)), kfl="http", to_store=True)
    assert done.state == "done" and done.objects_done == len(FILES)
    q = kfl_compile("http")
    expected_streams = set()
    for name in FILES:
        for rec in dissect_capture((CORPUS / name).read_bytes(), "n"):
            if any(q(e) for e in rec.entries):
                expected_streams.add(rec.stream_id)
    assert done.streams_kept == len(expected_streams)
    stored = {r["stream"] for r in store.page(compile_query(""), size=1000).rows}
    assert stored == expected_streams
    assert JobStore(tmp_path / "jobs").load("j1").done_keys == sorted(
        str(tmp_path / "captures" / n) for n in FILES
    )


def test_worker_processes_give_the_same_records(tmp_path: Path) -> None:
    one, store1 = _run(tmp_path / "a", source=str(_folder(tmp_path)), to_store=True)
    two, store2 = _run(tmp_path / "b", source=str(tmp_path / "captures"), to_store=True, workers=2)
    assert two.state == "done" and two.records_out == one.records_out > 0
    rows1 = store1.page(compile_query(""), size=1000).rows
    assert store2.page(compile_query(""), size=1000).rows == rows1


def test_a_cancelled_job_stops_and_says_so(tmp_path: Path) -> None:
    cancel = threading.Event()
    cancel.set()
    done, store = _run(tmp_path, cancel, source=str(_folder(tmp_path)), to_store=True)
    assert done.state == "cancelled"
    assert done.objects_done == 0 and store.total() == 0


def test_a_missing_source_fails_the_job_with_the_reason(tmp_path: Path) -> None:
    done, _ = _run(tmp_path, source=str(tmp_path / "nope.pcap"), to_store=True)
    assert done.state == "failed" and "nope.pcap" in (done.error or "")


def test_a_damaged_capture_counts_as_failed_and_the_rest_goes_on(tmp_path: Path) -> None:
    folder = _folder(tmp_path)
    good = (folder / FILES[0]).read_bytes()
    (folder / "zz-truncated.pcap").write_bytes(good[: len(good) // 2 + 7])
    done, _ = _run(tmp_path, source=str(folder), to_store=True)
    assert done.state == "done"
    assert done.objects_failed == 1 and done.objects_done == len(FILES) + 1
    assert "zz-truncated.pcap" in (done.error or "")


def test_names_are_restored_only_where_missing() -> None:
    rec = make_record(
        [http_entry("n1", 0, 5, src=("10.0.0.1", 1000, ""), dst=("10.0.0.2", 80, "kept.svc"))]
    )
    out = restore_names(rec, {"10.0.0.1": "client.ns", "10.0.0.2": "other.name"})
    assert out.entries[0]["src"]["name"] == "client.ns"
    assert out.entries[0]["dst"]["name"] == "kept.svc"
    assert rec.entries[0]["src"]["name"] == ""  # the input record is not changed


def test_a_cancel_request_from_another_process_stops_the_job(tmp_path: Path) -> None:
    jobs = JobStore(tmp_path / "jobs")
    job = Job(id="j2", spec=JobSpec(source=str(_folder(tmp_path)), to_store=True).model_dump())
    jobs.save(job)
    jobs.request_cancel("j2")  # what `streamtap jobs cancel j2` does
    store = EntryStore(tmp_path / "c.db")
    # A job clears stale requests when it starts, so ask again once it runs: on first progress.
    done = asyncio.run(
        run_job(job, jobs, threading.Event(), sink=StoreSink(store),
                progress=lambda j: jobs.request_cancel(j.id))
    )  # fmt: skip
    assert done.state == "cancelled"
    assert done.objects_done < len(FILES)


class _ListSink:
    """Keeps what is written, and how far the dissector had got at each write."""

    def __init__(self, made: list[int]) -> None:
        self.made = made
        self.batches: list[list[StreamRecord]] = []
        self.made_at_write: list[int] = []

    async def write(self, records: list[StreamRecord]) -> None:
        self.batches.append(records)
        self.made_at_write.append(self.made[0])

    async def close(self) -> None:
        return None


def _counting_dissect(total: int, made: list[int], closed: list[bool]) -> Dissect:
    """Makes ``total`` one-entry records per object, counting them in ``made[0]``; notes in
    ``closed`` when the generator was closed before its end."""

    def dissect(data: bytes, node: str) -> Iterator[StreamRecord]:
        try:
            for i in range(total):
                made[0] += 1
                yield make_record([http_entry(f"s{i}", 0, i)], packets=1)
        except GeneratorExit:
            closed.append(True)
            raise

    return dissect


def _run_with(tmp_path: Path, dissect: Dissect, sink: RecordSink, kfl: str = "") -> Job:
    (tmp_path / "one.pcap").write_bytes(b"")
    jobs = JobStore(tmp_path / "jobs")
    spec = JobSpec(source=str(tmp_path / "one.pcap"), kfl=kfl)
    job = Job(id="j3", spec=spec.model_dump(mode="json"))
    return asyncio.run(run_job(job, jobs, threading.Event(), sink=sink, dissect=dissect))


def test_records_are_written_while_the_object_is_still_being_dissected(tmp_path: Path) -> None:
    total, made, closed = 20 * 256, [0], list[bool]()
    sink = _ListSink(made)
    done = _run_with(tmp_path, _counting_dissect(total, made, closed), sink)
    assert done.state == "done" and done.records_out == total and done.objects_done == 1
    assert [len(b) for b in sink.batches] == [256] * 20
    written = [r.entries[0]["stream"] for b in sink.batches for r in b]
    assert written == [f"s{i}" for i in range(total)]
    # the dissecting thread ran at most the hand-over cap ahead of the first write
    assert sink.made_at_write[0] <= (_FEED_AHEAD + 2) * _FEED_CHUNK < total


def test_a_limit_stops_the_dissecting_thread(tmp_path: Path) -> None:
    total, made, closed = 100 * 256, [0], list[bool]()
    sink = _ListSink(made)
    done = _run_with(tmp_path, _counting_dissect(total, made, closed), sink, "limit(300)")
    assert done.state == "done" and done.records_out == 300
    for t in threading.enumerate():
        if t.name == "replay-dissect":
            t.join(timeout=10)
            assert not t.is_alive()
    assert made[0] < total and closed == [True]


def test_a_bug_in_the_dissector_fails_the_job(tmp_path: Path) -> None:
    def broken(data: bytes, node: str) -> Iterator[StreamRecord]:
        yield make_record([http_entry("s0", 0, 0)], packets=1)
        raise KeyError("oops")

    done = _run_with(tmp_path, broken, _ListSink([0]))
    assert done.state == "failed" and "KeyError" in (done.error or "")
