"""What the sink and ``verify`` need from object storage, as a protocol.

The service uses the minio implementation in ``sinks.s3``; pure unit tests use a fake. All
methods are blocking (minio is), so async callers run them in ``asyncio.to_thread``.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

__all__ = [
    "KeyExistsError",
    "LockState",
    "ObjectStore",
    "ObjectVersion",
    "PutOptions",
    "StoredObject",
]

SHA256_META = "sha256"


class KeyExistsError(Exception):
    """A put with ``if_absent`` found the key taken; the caller decides if that is fine."""


@dataclass(frozen=True)
class StoredObject:
    """What a HEAD tells: enough to decide whether a key already holds our bytes."""

    key: str
    size: int
    sha256: str | None
    version_id: str | None = None


@dataclass(frozen=True)
class PutOptions:
    content_type: str = "application/octet-stream"
    lock_mode: str | None = None
    retain_until_ms: int | None = None
    legal_hold: bool = False
    sha256: str | None = None
    #: refuse (KeyExistsError) rather than add a version when the key exists
    if_absent: bool = False


@dataclass(frozen=True)
class ObjectVersion:
    key: str
    version_id: str | None
    size: int
    etag: str
    is_latest: bool
    is_delete_marker: bool


@dataclass(frozen=True)
class LockState:
    mode: str | None
    retain_until: datetime | None
    legal_hold: bool


class ObjectStore(Protocol):
    bucket: str

    def head(self, key: str) -> StoredObject | None:
        """The latest version of ``key``, or None when there is none (or a delete marker)."""

    def get(self, key: str, version_id: str | None = None) -> bytes: ...

    def put(self, key: str, data: bytes, options: PutOptions) -> StoredObject: ...

    def list_keys(self, prefix: str) -> Iterator[str]:
        """Every key under ``prefix`` (recursive), latest versions only."""

    def list_versions(self, prefix: str) -> Iterator[ObjectVersion]: ...

    def lock_state(self, key: str, version_id: str | None) -> LockState: ...

    def delete(self, key: str, version_id: str | None = None) -> None: ...
