"""One ``streamtap pipeline`` worker against the real stack: stream semantics across segments and
restarts, hot reload of the rules file and the control topic, dead letters, ``/stats``."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import orjson
import pytest

from pipeline.control import publish_rules
from pipeline.rules import RuleSpec
from pipeline.testing import (
    WorkerProcess,
    make_record,
    produce,
    produce_raw,
    read_topic,
    wait_until_processed,
)
from streamtap.schema import decode_matched
from streamtap.schema.testing import bare_entry, dns_entry, http_entry

pytestmark = pytest.mark.integration


def stream(tag: str, kinds: str, closed_last: bool = True) -> list[Any]:
    """Segments of one stream; ``kinds`` has one letter per segment: h(ttp), d(ns), t(cp)."""
    sid = uuid.uuid4().hex[:16]
    entries = {"h": http_entry(url=f"/{tag}"), "d": dns_entry(), "t": bare_entry()}
    return [
        make_record(
            stream=sid,
            segment=i,
            closed=closed_last and i == len(kinds) - 1,
            entries=(entries[k],),
        )
        for i, k in enumerate(kinds)
    ]


async def matched(settings: Any) -> list[Any]:
    """Matched streams, first copy of each; a redelivered copy must be byte-identical."""
    seen: dict[tuple[str, int], bytes] = {}
    out = []
    for raw in await read_topic(settings, settings.matched_topic):
        message = decode_matched(raw.value)
        key = (message.record.stream_id, message.record.segment)
        assert raw.key == message.record.stream_id.encode()
        if key in seen:
            assert seen[key] == raw.value, f"redelivered {key} differs"
            continue
        seen[key] = raw.value
        out.append(message)
    return out


def segments(messages: list[Any], sid: str) -> list[int]:
    return [m.record.segment for m in messages if m.record.stream_id == sid]


def start(workers: list[WorkerProcess], settings: Any, tmp: Path, **kw: Any) -> WorkerProcess:
    worker = WorkerProcess(settings, tmp, **kw).start()
    workers.append(worker)
    return worker


async def test_earlier_segments_are_published_when_a_later_one_matches(
    settings: Any, workers: list[WorkerProcess], tmp_path: Path
) -> None:
    app_id = f"p-{uuid.uuid4().hex[:8]}"
    worker = start(workers, settings, tmp_path, app_id=app_id, recording_kfl="http")
    late = stream("late", "ttthtt")  # matches at segment 3
    never = stream("never", "tttt")
    first = stream("first", "httt")
    await produce(settings, late + never + first)
    await wait_until_processed(settings, app_id, check=worker.alive)

    out = await matched(settings)
    assert segments(out, late[0].stream_id) == [0, 1, 2, 3, 4, 5]  # in order on its partition
    assert segments(out, never[0].stream_id) == []
    assert segments(out, first[0].stream_id) == [0, 1, 2, 3]
    by_seg = {m.record.segment: m for m in out if m.record.stream_id == late[0].stream_id}
    assert by_seg[3].matched_entries == {"recording": (0,)}
    assert all(by_seg[s].matched_entries == {"recording": ()} for s in (0, 1, 2, 4, 5))
    stats = worker.stats()
    assert stats is not None and stats["earlier_segments_published"] == 3


async def test_a_restarted_worker_remembers_matched_and_pending_streams(
    settings: Any, workers: list[WorkerProcess], tmp_path: Path
) -> None:
    """The stream memory is a Faust table: a new worker process recovers it from Kafka."""
    app_id = f"p-{uuid.uuid4().hex[:8]}"
    matched_early = stream("early", "httt")
    matched_late = stream("late", "ttht")
    worker = start(workers, settings, tmp_path, app_id=app_id, recording_kfl="http")
    await produce(settings, matched_early[:2] + matched_late[:2])
    await wait_until_processed(settings, app_id, check=worker.alive)
    worker.kill()

    again = start(workers, settings, tmp_path, app_id=app_id, recording_kfl="http")
    await produce(settings, matched_early[2:] + matched_late[2:])
    await wait_until_processed(settings, app_id, check=again.alive, workers=[again])

    out = await matched(settings)
    assert segments(out, matched_early[0].stream_id) == [0, 1, 2, 3]
    assert segments(out, matched_late[0].stream_id) == [0, 1, 2, 3]


async def test_hot_reload_of_the_rules_file(
    settings: Any, workers: list[WorkerProcess], tmp_path: Path
) -> None:
    rules = tmp_path / "rules.yaml"
    rules.write_text("rules:\n  web: http\n")
    app_id = f"p-{uuid.uuid4().hex[:8]}"
    worker = start(workers, settings, tmp_path, app_id=app_id, rules_file=rules)

    async def run(tag: str) -> set[str]:
        """Produce one http and one dns stream; return the kinds that were recorded."""
        h, d = stream(tag, "h"), stream(tag, "d")
        await produce(settings, h + d)
        await wait_until_processed(settings, app_id, check=worker.alive)
        ids = {m.record.stream_id for m in await matched(settings)}
        return {kind for kind, s in (("http", h), ("dns", d)) if s[0].stream_id in ids}

    def reloads(n: int) -> Any:
        return lambda s: len(s["reloads"]) >= n

    await worker.wait_stats(reloads(1))
    assert await run("one") == {"http"}

    rules.write_text("rules:\n  names: dns\n")
    stats = await worker.wait_stats(reloads(2))
    assert stats["reloads"][-1]["ok"] and stats["reloads"][-1]["rules"] == ["names"]
    assert await run("two") == {"dns"}

    rules.write_text("rules:\n  names: 'dns and ('\n")  # does not compile
    stats = await worker.wait_stats(reloads(3))
    last = stats["reloads"][-1]
    assert not last["ok"] and "names" in last["problems"][0] and "^" in last["problems"][0]
    assert "previous version kept" in last["problems"][0]
    assert "column" in last["problems"][0]
    assert await run("three") == {"dns"}

    rules.write_text("rules: [not, a, mapping\n")  # not YAML
    stats = await worker.wait_stats(reloads(4))
    assert not stats["reloads"][-1]["ok"] and stats["rules"]["rules"] == {"names": "dns"}
    assert stats["last_error"] is not None
    assert await run("four") == {"dns"}

    rules.unlink()
    stats = await worker.wait_stats(reloads(5))
    assert stats["recording"] is False
    assert await run("five") == set()
    assert "rules rejected from rules file" in worker.log


async def test_control_topic_changes_the_rules_of_every_worker(
    settings: Any, workers: list[WorkerProcess], tmp_path: Path
) -> None:
    app_id = f"p-{uuid.uuid4().hex[:8]}"
    a = start(workers, settings, tmp_path, app_id=app_id, recording_kfl="http")
    b = start(workers, settings, tmp_path, app_id=app_id, recording_kfl="http")
    await publish_rules(
        settings.kafka_bootstrap, settings.control_topic, {"names": RuleSpec(kfl="dns")}
    )
    for w in (a, b):
        stats = await w.wait_stats(lambda s: "names" in s["rules"]["rules"])
        assert stats["reloads"][-1]["source"] == "control topic"
    d = stream("ctl", "d")
    await produce(settings, d)
    await wait_until_processed(settings, app_id, check=a.alive)
    out = [m for m in await matched(settings) if m.record.stream_id == d[0].stream_id]
    assert [set(m.rules) for m in out] == [{"names"}]

    # a worker started later reads the latest control rules before it evaluates anything
    c = start(workers, settings, tmp_path, app_id=f"p-{uuid.uuid4().hex[:8]}")
    stats = await c.wait_stats(lambda s: s["rules"]["rules"] != {})
    assert stats["rules"]["rules"] == {"names": "dns"}


async def test_poison_records_go_to_the_dead_letter_topic_and_the_rest_flows(
    settings: Any, workers: list[WorkerProcess], tmp_path: Path
) -> None:
    app_id = f"p-{uuid.uuid4().hex[:8]}"
    worker = start(workers, settings, tmp_path, app_id=app_id, recording_kfl="http")
    good = stream("good", "h")
    wrong_key = stream("key", "h")[0]
    await produce_raw(
        settings,
        [
            (b"k1", b"not json"),
            (b"k2", b'{"schema_version": 99}'),
            (b"wrong", wrong_key.model_dump_json().encode()),
        ],
    )
    await produce(settings, good)
    await wait_until_processed(settings, app_id, check=worker.alive)

    dead = [orjson.loads(m.value) for m in await read_topic(settings, settings.deadletter_topic)]
    assert sorted(d["kind"] for d in dead) == ["decode", "decode", "key"]
    assert {d["key"] for d in dead} == {"k1", "k2", "wrong"}
    assert all(d["reason"] and d["topic"] == settings.streams_topic for d in dead)
    assert [m.record.stream_id for m in await matched(settings)] == [good[0].stream_id]
    stats = worker.stats()
    assert stats is not None and stats["deadlettered"] == 3 and stats["last_error"] is not None


async def test_earlier_segments_from_the_workers_memory_are_the_bytes_kafka_gives(
    settings: Any, workers: list[WorkerProcess], tmp_path: Path
) -> None:
    """Two workers on the same input, one keeping the bytes of remembered segments (the
    default) and one re-reading every earlier segment from Kafka (``--recent-mb 0``), publish
    byte-identical messages. The later segments are produced once the earlier ones are
    processed, so neither worker finds them in the batch being decided."""
    from pipeline.testing import create_topics

    streams = [stream(f"m{i}", kinds) for i, kinds in enumerate(("ttth", "tttht", "tttt"))]
    runs = []
    for mode, extra in (("memory", ()), ("kafka", ("--recent-mb", "0"))):
        own = settings.model_copy(update={"matched_topic": f"{settings.matched_topic}-{mode}"})
        await create_topics(own)
        app_id = f"p-{mode}-{uuid.uuid4().hex[:6]}"
        worker = start(
            workers, own, tmp_path, app_id=app_id, recording_kfl="http", extra_args=extra
        )
        runs.append((own, app_id, worker))
    await produce(settings, [r for s in streams for r in s[:3]])  # none of them matches
    for own, app_id, worker in runs:
        await wait_until_processed(own, app_id, check=worker.alive, workers=[worker])
    await produce(settings, [r for s in streams for r in s[3:]])
    published = []
    for own, app_id, worker in runs:
        await wait_until_processed(own, app_id, check=worker.alive, workers=[worker])
        published.append(sorted({m.value for m in await read_topic(own, own.matched_topic)}))
    assert published[0] == published[1]
    assert sorted(
        (decode_matched(v).record.stream_id, decode_matched(v).record.segment) for v in published[0]
    ) == sorted((r.stream_id, r.segment) for s in streams[:2] for r in s)
    stats = [worker.stats() for _, _, worker in runs]
    assert stats[0] is not None and stats[1] is not None
    assert stats[0]["earlier_segments_published"] == stats[1]["earlier_segments_published"] == 6
    assert stats[0]["earlier_segments_refetched"] == 0  # all six from the worker's memory
    assert stats[1]["earlier_segments_refetched"] == 6  # all six from Kafka
