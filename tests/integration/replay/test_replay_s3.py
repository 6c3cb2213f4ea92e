"""Replay against the real stack: objects and manifests written by the sink's own code into
SeaweedFS, downloads counted on a real minio client, records republished to real Kafka."""

from __future__ import annotations

import asyncio
import io
import threading
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from replay.jobs import Job, JobSpec, JobStore
from replay.query import compile_query
from replay.runner import run_job
from replay.service import StoreSink, TopicSink
from replay.sources import list_source
from replay.store import EntryStore
from replay.testing import http_entry, make_record, population
from sinks.batch import ClosedBatch, Consumed
from sinks.plan import PlanOptions, plan_batch
from sinks.s3 import MinioStore, make_store_client
from sinks.writer import BatchWriter
from stack import LocalStack
from streamtap.kafka import make_consumer
from streamtap.objectstore import make_minio
from streamtap.schema import (
    MatchedPackets,
    MatchedStream,
    RuleSettings,
    StreamRecord,
    decode_record,
)

pytestmark = pytest.mark.integration

OBJECTS = 200
TARGET_OBJECTS = (17, 88, 150)
TARGET = ("10.9.9.9", 5555)
HOUR_MS = 3_600_000
START_MS = 1_795_700_000_000


class CountingClient:
    """The real minio client, with a tally of which capture objects were downloaded."""

    def __init__(self, client: Any) -> None:
        self._client = client
        self.downloads: Counter[str] = Counter()
        self._lock = threading.Lock()

    def get_object(self, bucket: str, key: str, *args: Any, **kwargs: Any) -> Any:
        if key.endswith(".pcap"):
            with self._lock:
                self.downloads[key] += 1
        return self._client.get_object(bucket, key, *args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)


def _object_records(i: int) -> list[StreamRecord]:
    """Three streams an hour apart per object; the target 5-tuple in only a few objects."""
    start = START_MS + i * HOUR_MS
    records = [
        r.model_copy(update={"stream_id": f"o{i:03d}s{n}"})
        for n, r in enumerate(population(3, seed=i, start_ms=start, packets=3))
    ]
    if i in TARGET_OBJECTS:
        entry = http_entry(f"t{i:03d}", 0, start + 500, src=(*TARGET, "probe"), status=500)
        records.append(make_record([entry], packets=4, stream_id=f"t{i:03d}"))
    return records


def _write_bucket(stack: LocalStack, prefix: str) -> dict[int, str]:
    """Objects + chained manifests exactly as the sink writes them; index -> object key."""
    store = MinioStore(make_store_client(stack.settings), stack.settings.s3_bucket)
    writer = BatchWriter(store)
    keys: dict[int, str] = {}
    offset = 0
    for i in range(OBJECTS):
        messages = []
        for rec in _object_records(i):
            msg = MatchedPackets.of(MatchedStream(record=rec, rules={"web": RuleSettings()}))
            messages.append(Consumed(0, offset, START_MS + i * HOUR_MS, 1000, msg))
            offset += 1
        (obj,) = plan_batch(ClosedBatch(0, tuple(messages), "age"), PlanOptions(prefix))
        writer.write(obj)
        keys[i] = str(obj.key)
    return keys


@pytest.fixture(scope="module")
def bucket(stack: LocalStack) -> tuple[str, dict[int, str]]:
    prefix = f"replay-it-{uuid.uuid4().hex[:8]}"
    return prefix, _write_bucket(stack, prefix)


def _job(tmp_path: Path, **spec: Any) -> tuple[Job, JobStore]:
    jobs = JobStore(tmp_path / "jobs")
    job = Job(id=f"it-{uuid.uuid4().hex[:6]}", spec=JobSpec(**spec).model_dump(mode="json"))
    jobs.save(job)
    return job, jobs


async def test_one_five_tuple_downloads_only_the_objects_that_hold_it(
    stack: LocalStack, bucket: tuple[str, dict[int, str]], tmp_path: Path
) -> None:
    prefix, keys = bucket
    client = CountingClient(make_minio(stack.settings))
    store = EntryStore(tmp_path / "tap.db")
    query = f'src.ip == "{TARGET[0]}" and src.port == {TARGET[1]} and dst.port == 8080'
    job, jobs = _job(
        tmp_path, source=f"s3://{stack.settings.s3_bucket}/{prefix}/", kfl=query, to_store=True
    )
    done = await run_job(job, jobs, threading.Event(), sink=StoreSink(store), client=client)
    assert done.state == "done", done.error
    assert done.objects_listed == OBJECTS
    assert client.downloads == Counter({keys[i]: 1 for i in TARGET_OBJECTS})
    assert done.objects_pruned == OBJECTS - len(TARGET_OBJECTS)
    # What came back is the target streams, re-dissected from the downloaded PCAPs.
    rows = store.page(compile_query("")).rows
    assert {(r["src_ip"], r["src_port"]) for r in rows} == {TARGET}
    assert len(rows) == len(TARGET_OBJECTS)
    frames = store.stream_frames(rows[0]["stream"])
    original = _object_records(TARGET_OBJECTS[0])[-1]
    assert frames == [(p.ts_ns, p.linktype, p.wirelen, p.data) for p in original.packets]


async def test_time_range_and_rule_prune_and_every_object_is_listed(
    stack: LocalStack, bucket: tuple[str, dict[int, str]], tmp_path: Path
) -> None:
    prefix, _ = bucket
    client = CountingClient(make_minio(stack.settings))
    source = f"s3://{stack.settings.s3_bucket}/{prefix}/"
    listed = list_source(source, client)
    assert len(listed) == OBJECTS and all(o.manifest is not None for o in listed)

    from datetime import UTC, datetime, timedelta

    def at(i: int) -> datetime:
        return datetime.fromtimestamp((START_MS + i * HOUR_MS) / 1000, tz=UTC)

    until = at(59) + timedelta(minutes=30)
    job, jobs = _job(tmp_path, source=source, since=at(50), until=until, to_store=True)
    store = EntryStore(tmp_path / "range.db")
    done = await run_job(job, jobs, threading.Event(), sink=StoreSink(store), client=client)
    assert done.state == "done", done.error
    assert done.objects_selected == 10  # objects 50..59 start inside the range
    assert len(client.downloads) == 10

    job, jobs = _job(tmp_path, source=source, rule="dns-only", to_store=True)
    done = await run_job(job, jobs, threading.Event(), sink=StoreSink(store), client=client)
    assert done.objects_selected == 0 and done.objects_pruned == OBJECTS


async def test_listing_has_no_thousand_object_cap(stack: LocalStack) -> None:
    client = make_minio(stack.settings)
    prefix = f"replay-many-{uuid.uuid4().hex[:8]}/"
    bucket = stack.settings.s3_bucket

    def put(i: int) -> None:
        client.put_object(bucket, f"{prefix}{i:05d}.pcap", io.BytesIO(b"x"), 1)

    await asyncio.gather(*(asyncio.to_thread(put, i) for i in range(1100)))
    assert len(list_source(f"s3://{bucket}/{prefix}", client)) == 1100


async def test_republished_records_land_on_the_replay_topic(
    stack: LocalStack, bucket: tuple[str, dict[int, str]], tmp_path: Path
) -> None:
    prefix, _ = bucket
    topic = f"replay.it-{uuid.uuid4().hex[:6]}"
    job, jobs = _job(
        tmp_path,
        source=f"s3://{stack.settings.s3_bucket}/{prefix}/",
        kfl=f'src.ip == "{TARGET[0]}"',
        to_topic=topic,
    )
    sink = TopicSink(stack.settings, topic)
    client = make_minio(stack.settings)
    done = await run_job(job, jobs, threading.Event(), sink=sink, client=client)
    assert done.state == "done", done.error
    consumer = make_consumer(stack.settings, topic, group_id=None)
    await consumer.start()
    got: list[tuple[bytes, StreamRecord]] = []
    try:
        for _ in range(120):  # a bound, so a broken publish fails instead of hanging
            if len(got) >= len(TARGET_OBJECTS):
                break
            batch = await consumer.getmany(timeout_ms=1000)
            for msgs in batch.values():
                got += [(m.key, decode_record(m.value)) for m in msgs]
    finally:
        await consumer.stop()
    assert len(got) == len(TARGET_OBJECTS)
    for key, record in got:
        assert key == record.stream_id.encode()
        assert (record.src.ip, record.src.port) == TARGET
        assert len(record.packets) == 4


async def test_a_resumed_job_skips_what_it_finished(
    stack: LocalStack, bucket: tuple[str, dict[int, str]], tmp_path: Path
) -> None:
    prefix, keys = bucket
    source = f"s3://{stack.settings.s3_bucket}/{prefix}/"
    job, jobs = _job(tmp_path, source=source, to_store=True, parallel=2)
    store = EntryStore(tmp_path / "resume.db")
    # Pretend the first run died after 120 objects: its state file lists them as done.
    job.done_keys = [keys[i] for i in range(120)]
    jobs.save(job)
    client = CountingClient(make_minio(stack.settings))
    done = await run_job(jobs.load(job.id), jobs, threading.Event(), sink=StoreSink(store),
                         client=client)  # fmt: skip
    assert done.state == "done", done.error
    assert set(client.downloads) == {keys[i] for i in range(120, OBJECTS)}
    assert len(done.done_keys) == OBJECTS
