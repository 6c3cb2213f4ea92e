"""Writing objects and manifests into a fake Object-Lock store, then verifying them.

The fake store is only for these pure tests; the same checks run against SeaweedFS in
tests/integration/sinks.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime

import orjson
import pytest

from sinks.batch import ClosedBatch
from sinks.errors import ObjectConflictError
from sinks.keys import manifest_key
from sinks.manifest import parse_manifest
from sinks.plan import PlannedObject, PlanOptions, plan_batch
from sinks.store import PutOptions
from sinks.testing import MemoryStore, consumed, matched, packet
from sinks.verify import verify_prefix
from sinks.writer import BatchWriter, put_immutable
from streamtap.schema import RuleSettings

BASE = 1_795_773_600_000_000_000
NOW = datetime(2026, 1, 1, tzinfo=UTC)
LOCKED = {"web": RuleSettings(retention_days=3650, lock_mode="GOVERNANCE")}

HTTP_ENTRY = {
    "index": 0,
    "protocol": {"name": "http"},
    "timestamp": 1,
    "src": {"ip": "10.0.0.1", "name": "frontend.shop"},
    "dst": {"ip": "10.0.0.2", "name": "users.shop"},
    "request": {"method": "GET", "path": "/api"},
    "response": {"status": 200},
}
DNS_ENTRY = {
    "index": 0,
    "protocol": {"name": "dns"},
    "timestamp": 2,
    "request": {"questions": [{"name": "example.com", "type": "A"}]},
    "response": {
        "rcode": 0,
        "code": "No Error",
        "answers": [{"name": "example.com", "type": "A", "ip": "93.184.216.34"}],
    },
}


def _batches(count: int, per_batch: int = 3, rules=LOCKED) -> list[ClosedBatch]:  # type: ignore[no-untyped-def]
    out = []
    offset = 0
    for _ in range(count):
        items = []
        for _ in range(per_batch):
            entries = (HTTP_ENTRY,) if offset % 2 else (DNS_ENTRY,)
            msg = matched(
                f"s{offset}", [packet(BASE + offset, b"p%d" % offset)], rules=rules, entries=entries
            )
            items.append(consumed(offset, msg))
            offset += 1
        out.append(ClosedBatch(0, tuple(items), "size"))
    return out


def _write_all(store: MemoryStore, batches: list[ClosedBatch]) -> list[PlannedObject]:
    writer = BatchWriter(store)
    written = []
    for batch in batches:
        for obj in plan_batch(batch, PlanOptions()):
            writer.write(obj)
            written.append(obj)
    return written


def _manifest(store: MemoryStore, obj: PlannedObject) -> dict:  # type: ignore[type-arg]
    return parse_manifest(store.get(manifest_key(str(obj.key))))


def test_manifest_describes_object_streams_and_names() -> None:
    store = MemoryStore()
    [obj] = _write_all(store, _batches(1))
    body = _manifest(store, obj)
    assert body["sha256"] == hashlib.sha256(store.get(str(obj.key))).hexdigest()
    assert body["size"] == obj.size and body["previous"] is None
    assert [s["id"] for s in body["streams"]] == ["s0", "s1", "s2"]
    dns, http = body["streams"][0], body["streams"][1]
    assert dns["entries"][0]["names"] == ["example.com"] and dns["entries"][0]["rcode"] == 0
    summary = http["entries"][0]
    assert (summary["method"], summary["path"], summary["status"]) == ("GET", "/api", 200)
    assert http["src"] == {"ip": "10.0.0.1", "port": 40000} and http["packets"] == 1
    assert body["name_resolution"] == {
        "10.0.0.1": ["frontend.shop"],
        "10.0.0.2": ["users.shop"],
        "93.184.216.34": ["example.com"],
    }
    assert body["retention"]["mode"] == "GOVERNANCE"


def test_manifests_chain_per_writer() -> None:
    store = MemoryStore()
    objs = _write_all(store, _batches(3))
    bodies = [_manifest(store, o) for o in objs]
    assert bodies[0]["previous"] is None
    for before, after, obj in zip(objs, bodies[1:], objs[1:], strict=False):
        mkey = manifest_key(str(before.key))
        assert after["previous"] == {
            "key": mkey,
            "sha256": hashlib.sha256(store.get(mkey)).hexdigest(),
        }
        assert obj.key.first_offset > before.key.last_offset


def test_a_new_writer_instance_continues_the_chain_from_the_bucket() -> None:
    store = MemoryStore()
    batches = _batches(3)
    _write_all(store, batches[:2])
    [last] = _write_all(store, batches[2:])  # fresh BatchWriter: no cached head
    mkey = manifest_key(str(plan_batch(batches[1], PlanOptions())[0].key))
    assert _manifest(store, last)["previous"]["key"] == mkey
    assert verify_prefix(store, "", NOW).ok


def test_rebuilding_a_stored_batch_is_idempotent() -> None:
    store = MemoryStore()
    batches = _batches(2)
    _write_all(store, batches)
    puts, snapshot = store.puts, {k: list(v) for k, v in store.objects.items()}
    _write_all(store, batches)  # a restart re-reads uncommitted offsets
    assert store.puts == puts and store.objects == snapshot


def test_rebuild_after_crash_between_object_and_manifest() -> None:
    store = MemoryStore()
    batches = _batches(2)
    _write_all(store, batches[:1])
    [obj] = plan_batch(batches[1], PlanOptions())
    put_immutable(store, str(obj.key), obj.data, PutOptions(sha256=obj.sha256))  # then SIGKILL
    _write_all(store, batches[1:])
    assert len(store.objects[str(obj.key)]) == 1  # no second version
    # The object put before the crash had no lock options; the rebuild did not touch it.
    problems = verify_prefix(store, "", NOW).problems
    assert [(p.kind, p.key) for p in problems] == [("unlocked", str(obj.key))]


def test_different_bytes_under_an_existing_key_are_refused() -> None:
    store = MemoryStore()
    [obj] = _write_all(store, _batches(1))
    with pytest.raises(ObjectConflictError):
        put_immutable(store, str(obj.key), b"other bytes", PutOptions())
    assert len(store.objects[str(obj.key)]) == 1


def test_verify_passes_on_a_clean_recording() -> None:
    store = MemoryStore()
    _write_all(store, _batches(4))
    report = verify_prefix(store, "recordings/", NOW)
    assert report.ok, report.problems
    assert (report.objects, report.manifests, report.chains) == (4, 4, 1)


def test_verify_catches_an_altered_object() -> None:
    store = MemoryStore()
    objs = _write_all(store, _batches(3))
    store.tamper(str(objs[1].key), b"forged pcap")
    kinds = {(p.kind, p.key) for p in verify_prefix(store, "", NOW).problems}
    assert ("altered", str(objs[1].key)) in kinds


def test_verify_catches_a_deleted_manifest_and_the_orphan_it_leaves() -> None:
    store = MemoryStore()
    objs = _write_all(store, _batches(3))
    mkey = manifest_key(str(objs[1].key))
    store.delete(mkey)  # a delete marker on top of the locked version
    kinds = {(p.kind, p.key) for p in verify_prefix(store, "", NOW).problems}
    assert ("deleted", mkey) in kinds
    assert ("orphan", str(objs[1].key)) in kinds
    assert ("chain", manifest_key(str(objs[2].key))) in kinds


def test_verify_catches_a_broken_chain_from_an_edited_manifest() -> None:
    store = MemoryStore()
    objs = _write_all(store, _batches(3))
    mkey = manifest_key(str(objs[0].key))
    body = parse_manifest(store.get(mkey))
    body["streams"] = body["streams"][:1]  # hide two streams from investigators
    store.tamper(mkey, orjson.dumps(body))
    problems = verify_prefix(store, "", NOW).problems
    assert {(p.kind, p.key) for p in problems} >= {
        ("altered", mkey),
        ("chain", manifest_key(str(objs[1].key))),
    }


def test_verify_catches_a_vanished_manifest_in_an_unlocked_bucket() -> None:
    store = MemoryStore()
    objs = _write_all(store, _batches(3, rules={"web": RuleSettings()}))
    store.drop(manifest_key(str(objs[1].key)))  # gone with its whole history
    kinds = {(p.kind, p.key) for p in verify_prefix(store, "", NOW).problems}
    assert ("orphan", str(objs[1].key)) in kinds
    assert ("chain", manifest_key(str(objs[2].key))) in kinds
    assert ("unlocked", str(objs[0].key)) in kinds


def test_verify_catches_a_missing_object() -> None:
    store = MemoryStore()
    objs = _write_all(store, _batches(2))
    store.drop(str(objs[0].key))
    kinds = {(p.kind, p.key) for p in verify_prefix(store, "", NOW).problems}
    assert kinds == {("missing", str(objs[0].key))}


def test_verify_reports_expired_retention() -> None:
    store = MemoryStore()
    _write_all(store, _batches(1))
    later = datetime(2100, 1, 1, tzinfo=UTC)
    assert {p.kind for p in verify_prefix(store, "", later).problems} == {"unlocked"}


def test_late_duplicates_are_left_out_and_rebuilds_still_match() -> None:
    from sinks.history import SegmentHistory

    store = MemoryStore()
    first, second = _batches(2)
    late = consumed(6, first.messages[1].message.message())  # s1 again, two batches later
    third = ClosedBatch(0, (late, *_batches(3)[2].messages[1:]), "size")
    history = SegmentHistory(store)
    writer = BatchWriter(store)
    planned = []
    for batch in (first, second, third):
        before = (batch.first_offset, 0, 0)
        objs = plan_batch(batch, PlanOptions(), lambda w, b=before: history.seen(w, b))
        history.record(objs)
        for obj in objs:
            writer.write(obj)
        planned.append(objs)
    ids = [s.message.header.record.stream_id for s in planned[2][0].streams]
    assert ids == ["s7", "s8"]

    # A restarted sink reads the window back from the bucket and plans the same object.
    fresh = SegmentHistory(store)
    before = (third.first_offset, 0, 0)
    [again] = plan_batch(third, PlanOptions(), lambda w: fresh.seen(w, before))
    assert (str(again.key), again.sha256) == (str(planned[2][0].key), planned[2][0].sha256)


def test_link_type_split_objects_chain_in_verify_order() -> None:
    store = MemoryStore()
    both = matched(
        "a",
        [packet(BASE, b"eth", linktype=1), packet(BASE + 1, b"sll", linktype=113)],
        rules=LOCKED,
    )
    later = matched("c", [packet(BASE + 2, b"eth", linktype=1)], rules=LOCKED)
    batch = ClosedBatch(0, (consumed(0, both), consumed(2, later)), "size")
    objs = _write_all(store, [batch])
    # offsets 0-0 (link type 113) sort before 0-2 (link type 1): the chain follows key order
    assert [(o.key.first_offset, o.key.last_offset, o.key.linktype) for o in objs] == [
        (0, 0, 113),
        (0, 2, 1),
    ]
    assert verify_prefix(store, "", NOW).ok


def test_an_unreadable_manifest_does_not_stop_dedupe() -> None:
    from sinks.history import SegmentHistory

    store = MemoryStore()
    objs = _write_all(store, _batches(2))
    store.tamper(manifest_key(str(objs[0].key)), b"not json")
    seen = SegmentHistory(store).seen(objs[1].writer, (100, 0, 0))
    assert seen == {(f"s{i}", 0) for i in range(3, 6)}


def test_parallel_verify_reports_the_same() -> None:
    store = MemoryStore()
    objs = _write_all(store, _batches(6))
    store.tamper(str(objs[2].key), b"forged")
    store.delete(manifest_key(str(objs[4].key)))
    one = verify_prefix(store, "", NOW)
    many = verify_prefix(store, "", NOW, workers=4)
    assert one.problems and one == many
