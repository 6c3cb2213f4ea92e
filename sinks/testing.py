"""A test kit for the sink's pure parts: message factories and an in-memory object store.

The store behaves like a versioned Object-Lock bucket in the ways the sink relies on (a PUT on
an existing key adds a version, a locked version cannot be deleted, a delete without a version
adds a delete marker). It is for unit tests only; integration tests use the real SeaweedFS.
"""

from __future__ import annotations

import hashlib
import itertools
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sinks.batch import Consumed
from sinks.store import KeyExistsError, LockState, ObjectVersion, PutOptions, StoredObject
from streamtap.schema import (
    Endpoint,
    MatchedPackets,
    MatchedStream,
    Node,
    RawPacket,
    RuleSettings,
    StreamRecord,
)

__all__ = ["LockedError", "MemoryStore", "consumed", "matched", "packet"]


def packet(ts_ns: int, payload: bytes = b"x", linktype: int = 1, wirelen: int = 0) -> RawPacket:
    return RawPacket(ts_ns=ts_ns, linktype=linktype, wirelen=wirelen or len(payload), data=payload)


def matched(
    stream_id: str,
    packets: list[RawPacket],
    *,
    segment: int = 0,
    rules: dict[str, RuleSettings] | None = None,
    node: str = "node-1",
    entries: tuple[dict[str, Any], ...] = (),
    src: tuple[str, int] = ("10.0.0.1", 40000),
    dst: tuple[str, int] = ("10.0.0.2", 80),
) -> MatchedStream:
    ts = [p.ts_ns for p in packets] or [0]
    record = StreamRecord(
        stream_id=stream_id,
        segment=segment,
        closed=True,
        node=Node(name=node),
        layer4="tcp",
        src=Endpoint(ip=src[0], port=src[1]),
        dst=Endpoint(ip=dst[0], port=dst[1]),
        first_ts_ns=min(ts),
        last_ts_ns=max(ts),
        entries=entries,
        packets=tuple(packets),
    )
    return MatchedStream(record=record, rules=rules or {"web": RuleSettings.model_validate({})})


def consumed(
    offset: int, message: MatchedStream, *, partition: int = 0, timestamp_ms: int = 0
) -> Consumed:
    size = sum(len(p.data) for p in message.record.packets) + 100
    ts = timestamp_ms or 1_700_000_000_000 + offset
    return Consumed(partition, offset, ts, size, MatchedPackets.of(message))


class LockedError(Exception):
    """What the fake raises where S3 would answer AccessDenied for a locked version."""


@dataclass
class _Version:
    version_id: str
    data: bytes | None  # None: delete marker
    options: PutOptions


@dataclass
class MemoryStore:
    bucket: str = "test-bucket"
    now: datetime = field(default_factory=lambda: datetime(2026, 1, 1, tzinfo=UTC))
    objects: dict[str, list[_Version]] = field(default_factory=dict)
    puts: int = 0
    _ids: Iterator[int] = field(default_factory=itertools.count)

    def _latest(self, key: str) -> _Version | None:
        versions = self.objects.get(key)
        if not versions or versions[-1].data is None:
            return None
        return versions[-1]

    def head(self, key: str) -> StoredObject | None:
        latest = self._latest(key)
        if latest is None or latest.data is None:
            return None
        return StoredObject(key, len(latest.data), latest.options.sha256, latest.version_id)

    def get(self, key: str, version_id: str | None = None) -> bytes:
        for version in reversed(self.objects.get(key, [])):
            if version_id is None or version.version_id == version_id:
                if version.data is None:
                    break
                return version.data
        raise KeyError(key)

    def put(self, key: str, data: bytes, options: PutOptions) -> StoredObject:
        if options.if_absent and self._latest(key) is not None:
            raise KeyExistsError(key)
        self.puts += 1
        version = _Version(str(next(self._ids)), bytes(data), options)
        self.objects.setdefault(key, []).append(version)
        return StoredObject(key, len(data), options.sha256, version.version_id)

    def tamper(self, key: str, data: bytes) -> None:
        """A new version under ``key``, as anyone with PutObject rights could add."""
        sha = hashlib.sha256(data).hexdigest()
        self.put(key, data, PutOptions(sha256=sha))

    def list_keys(self, prefix: str) -> Iterator[str]:
        for key in sorted(self.objects):
            if key.startswith(prefix) and self._latest(key) is not None:
                yield key

    def list_versions(self, prefix: str) -> Iterator[ObjectVersion]:
        for key in sorted(self.objects):
            if not key.startswith(prefix):
                continue
            versions = self.objects[key]
            for i, v in enumerate(versions):
                yield ObjectVersion(
                    key=key,
                    version_id=v.version_id,
                    size=len(v.data or b""),
                    etag=hashlib.md5(v.data or b"").hexdigest(),
                    is_latest=i == len(versions) - 1,
                    is_delete_marker=v.data is None,
                )

    def lock_state(self, key: str, version_id: str | None) -> LockState:
        for v in self.objects.get(key, []):
            if version_id is None or v.version_id == version_id:
                until = v.options.retain_until_ms
                return LockState(
                    v.options.lock_mode,
                    datetime.fromtimestamp(until / 1000, tz=UTC) if until else None,
                    v.options.legal_hold,
                )
        raise KeyError(key)

    def delete(self, key: str, version_id: str | None = None) -> None:
        if version_id is None:
            self.objects.setdefault(key, []).append(
                _Version(str(next(self._ids)), None, PutOptions())
            )
            return
        versions = self.objects.get(key, [])
        for v in versions:
            if v.version_id == version_id:
                state = self.lock_state(key, version_id)
                if state.legal_hold or (state.retain_until and state.retain_until > self.now):
                    raise LockedError(f"{key}@{version_id} is locked")
                versions.remove(v)
                return
        raise KeyError(key)

    def drop(self, key: str) -> None:
        """Remove every version outright: what a bucket without Object Lock would allow."""
        del self.objects[key]
