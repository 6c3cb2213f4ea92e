"""Locked objects stay put, and verify notices every way around the lock (real SeaweedFS)."""

from __future__ import annotations

import io
from datetime import UTC, datetime
from typing import Any

import orjson
import pytest
from minio.error import S3Error

from sinks.batch import ClosedBatch, Consumed
from sinks.errors import ObjectConflictError
from sinks.keys import manifest_key
from sinks.plan import PlanOptions, plan_batch
from sinks.s3 import MIN_PART_SIZE, MinioStore, make_sse
from sinks.store import PutOptions
from sinks.verify import verify_prefix
from sinks.writer import BatchWriter, put_immutable
from streamtap.schema import (
    Endpoint,
    MatchedPackets,
    MatchedStream,
    Node,
    RawPacket,
    RuleSettings,
    StreamRecord,
)

pytestmark = pytest.mark.integration

BASE_NS = 1_795_773_600_000_000_000


def _rules(mode: str) -> Any:
    def rules(proto: str, a: Any, b: Any) -> dict[str, RuleSettings]:
        return {"evidence": RuleSettings(retention_days=1, lock_mode=mode)}  # type: ignore[arg-type]

    return rules


def _problems(harness: Any) -> set[tuple[str, str]]:
    report = verify_prefix(harness.store, harness.prefix + "/", datetime.now(UTC))
    return {(p.kind, p.key) for p in report.problems}


def _versions(harness: Any, key: str) -> list[Any]:
    return [v for v in harness.store.list_versions(key) if v.key == key]


@pytest.mark.parametrize("mode", ["GOVERNANCE", "COMPLIANCE"])
def test_locked_object_cannot_be_deleted_or_overwritten(
    harness: Any, corpus_http_dns: list[Any], helpers: Any, mode: str
) -> None:
    messages = helpers.build_messages(corpus_http_dns, "node-a", _rules(mode))
    [obj, *_] = harness.write_directly(messages, batches=1)
    key = str(obj.key)
    original = harness.store.get(key)
    [version] = _versions(harness, key)
    assert harness.store.lock_state(key, None).mode == mode

    # Through the project: the writer refuses different bytes under an existing key.
    with pytest.raises(ObjectConflictError):
        put_immutable(harness.store, key, b"forged", PutOptions())
    assert len(_versions(harness, key)) == 1

    # Through the S3 API: deleting the locked version is refused ...
    client, bucket = harness.store.client, harness.store.bucket
    with pytest.raises(S3Error):
        client.remove_object(bucket, key, version_id=version.version_id)
    # ... and an overwrite can only stack a new version on top, which verify reports,
    # while the locked original stays byte for byte and still cannot be deleted.
    client.put_object(bucket, key, io.BytesIO(b"forged"), 6)
    assert harness.store.get(key, version.version_id) == original
    with pytest.raises(S3Error):
        client.remove_object(bucket, key, version_id=version.version_id)
    assert ("altered", key) in _problems(harness)

    # A delete without a version id only adds a delete marker on top.
    client.remove_object(bucket, key)
    assert harness.store.get(key, version.version_id) == original
    assert ("deleted", key) in _problems(harness)


def test_verify_passes_then_catches_an_altered_object(
    harness: Any, corpus_http_dns: list[Any], helpers: Any
) -> None:
    messages = helpers.build_messages(corpus_http_dns, "node-a", _rules("GOVERNANCE"))
    objects = harness.write_directly(messages, batches=3)
    assert _problems(harness) == set()
    key = str(objects[1].key)
    data = bytearray(harness.store.get(key))
    data[-1] ^= 0xFF  # flip one bit of the last packet
    harness.store.client.put_object(harness.store.bucket, key, io.BytesIO(bytes(data)), len(data))
    assert ("altered", key) in _problems(harness)


def test_verify_catches_a_deleted_manifest(
    harness: Any, corpus_http_dns: list[Any], helpers: Any
) -> None:
    messages = helpers.build_messages(corpus_http_dns, "node-a", _rules("GOVERNANCE"))
    objects = harness.write_directly(messages, batches=3)
    middle = manifest_key(str(objects[1].key))
    harness.store.client.remove_object(harness.store.bucket, middle)
    problems = _problems(harness)
    assert ("deleted", middle) in problems
    assert ("orphan", str(objects[1].key)) in problems
    assert ("chain", manifest_key(str(objects[2].key))) in problems


def test_verify_catches_a_broken_chain(
    harness: Any, corpus_http_dns: list[Any], helpers: Any
) -> None:
    messages = helpers.build_messages(corpus_http_dns, "node-a", _rules("GOVERNANCE"))
    objects = harness.write_directly(messages, batches=3)
    first = manifest_key(str(objects[0].key))
    body = orjson.loads(harness.store.get(first))
    body["streams"] = body["streams"][1:]  # hide a stream from investigators
    forged = orjson.dumps(body, option=orjson.OPT_SORT_KEYS | orjson.OPT_INDENT_2) + b"\n"
    harness.store.client.put_object(harness.store.bucket, first, io.BytesIO(forged), len(forged))
    problems = _problems(harness)
    assert ("chain", manifest_key(str(objects[1].key))) in problems
    assert ("altered", first) in problems


def test_unlocked_and_orphan_objects_are_reported(
    harness: Any, corpus_http_dns: list[Any], helpers: Any
) -> None:
    no_retention = lambda proto, a, b: {"loose": RuleSettings()}  # noqa: E731
    messages = helpers.build_messages(corpus_http_dns, "node-a", no_retention)
    [obj] = harness.write_directly(messages, batches=1, default_retention=None)
    # a stray object without a manifest, as a misconfigured writer would leave
    stray = str(obj.key).replace(".pcap", "-stray.pcap")
    harness.store.put(stray, b"x", PutOptions())
    assert _problems(harness) == {
        ("unlocked", str(obj.key)),
        ("unlocked", manifest_key(str(obj.key))),
        ("orphan", stray),
    }


def test_large_objects_go_multipart_and_stay_locked(harness: Any) -> None:
    """Above part_size minio uploads in parts; the lock and the hash must hold all the same."""
    store = MinioStore(harness.store.client, harness.store.bucket, part_size=MIN_PART_SIZE)
    payload = bytes(range(256)) * 5000  # 1.28 MB frames: six of them need two 5 MiB parts
    packets = tuple(
        RawPacket(
            ts_ns=1_795_773_600_000_000_000 + i, linktype=1, wirelen=len(payload), data=payload
        )
        for i in range(6)
    )
    record = StreamRecord(
        stream_id="big-1",
        closed=True,
        node=Node(name="node-a"),
        layer4="tcp",
        src=Endpoint(ip="10.0.0.1", port=1),
        dst=Endpoint(ip="10.0.0.2", port=2),
        first_ts_ns=packets[0].ts_ns,
        last_ts_ns=packets[-1].ts_ns,
        packets=packets,
    )
    message = MatchedPackets.of(
        MatchedStream(record=record, rules={"big": RuleSettings(retention_days=1)})
    )
    batch = ClosedBatch(0, (Consumed(0, 0, 1_800_000_000_000, 1, message),), "size")
    [obj] = plan_batch(batch, PlanOptions(default_prefix=harness.prefix))
    assert obj.size > MIN_PART_SIZE
    BatchWriter(store).write(obj)
    [version] = _versions(harness, str(obj.key))
    assert version.etag.endswith("-2"), "expected a two-part upload"
    assert store.lock_state(str(obj.key), None).mode == "GOVERNANCE"
    assert _problems(harness) == set()


def test_server_side_encryption_is_requested_when_configured(
    harness: Any, corpus_http_dns: list[Any], helpers: Any
) -> None:
    store = MinioStore(harness.store.client, harness.store.bucket, sse=make_sse("SSE-S3"))
    key = f"{harness.prefix}/sse-probe.bin"
    store.put(key, b"secret", PutOptions())
    stat = store.client.stat_object(store.bucket, key)
    assert stat.metadata.get("X-Amz-Server-Side-Encryption") == "AES256"
