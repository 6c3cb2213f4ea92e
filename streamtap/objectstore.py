"""S3 access for every service: a minio client built from Settings and a small async protocol.

Services depend on `ObjectStore`, not on minio, so pure unit tests can pass a fake while every
integration test runs against the real SeaweedFS. minio's calls block, so the implementation
runs them in a worker thread.
"""

from __future__ import annotations

import asyncio
import io
from dataclasses import dataclass
from datetime import datetime
from typing import Literal, Protocol
from urllib.parse import urlsplit

import urllib3
from minio import Minio
from minio.commonconfig import COMPLIANCE, GOVERNANCE
from minio.retention import Retention

from streamtap.settings import Settings

__all__ = [
    "LockMode",
    "MinioObjectStore",
    "ObjectStore",
    "StoredObject",
    "make_minio",
    "parse_endpoint",
]

LockMode = Literal["GOVERNANCE", "COMPLIANCE"]


def parse_endpoint(url: str) -> tuple[str, bool]:
    """minio wants `host:port` plus a secure flag, not a URL: split S3_ENDPOINT accordingly."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"S3_ENDPOINT: expected http(s)://host[:port], got {url!r}")
    if parts.path not in ("", "/"):
        raise ValueError(f"S3_ENDPOINT: a path is not supported, got {url!r}")
    host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
    netloc = f"{host}:{parts.port}" if parts.port else host
    return netloc, parts.scheme == "https"


def make_minio(settings: Settings, http_client: urllib3.PoolManager | None = None) -> Minio:
    """A minio client for S3_ENDPOINT with the configured region and credentials."""
    netloc, secure = parse_endpoint(settings.s3_endpoint)
    return Minio(
        netloc,
        access_key=settings.aws_access_key_id,
        secret_key=settings.aws_secret_access_key,
        secure=secure,
        region=settings.aws_region,
        http_client=http_client,
    )


@dataclass(frozen=True)
class StoredObject:
    """What a put returned or a listing found."""

    key: str
    version_id: str | None
    size: int | None = None


class ObjectStore(Protocol):
    """The S3 operations services use; one bucket per store."""

    bucket: str

    async def put(
        self,
        key: str,
        data: bytes,
        *,
        content_type: str = "application/octet-stream",
        metadata: dict[str, str] | None = None,
        retain_until: datetime | None = None,
        lock_mode: LockMode = "GOVERNANCE",
    ) -> StoredObject: ...

    async def get(self, key: str, version_id: str | None = None) -> bytes: ...

    async def list_objects(self, prefix: str = "") -> list[StoredObject]: ...


class MinioObjectStore:
    """ObjectStore on a minio client; each blocking call runs in a worker thread."""

    def __init__(self, client: Minio, bucket: str) -> None:
        self.client = client
        self.bucket = bucket

    @classmethod
    def from_settings(cls, settings: Settings) -> MinioObjectStore:
        return cls(make_minio(settings), settings.s3_bucket)

    async def put(
        self,
        key: str,
        data: bytes,
        *,
        content_type: str = "application/octet-stream",
        metadata: dict[str, str] | None = None,
        retain_until: datetime | None = None,
        lock_mode: LockMode = "GOVERNANCE",
    ) -> StoredObject:
        retention = None
        if retain_until is not None:
            retention = Retention(
                GOVERNANCE if lock_mode == "GOVERNANCE" else COMPLIANCE, retain_until
            )
        result = await asyncio.to_thread(
            self.client.put_object,
            self.bucket,
            key,
            io.BytesIO(data),
            len(data),
            content_type=content_type,
            metadata=dict(metadata or {}),
            retention=retention,
        )
        return StoredObject(key, result.version_id, len(data))

    async def get(self, key: str, version_id: str | None = None) -> bytes:
        return await asyncio.to_thread(self._get, key, version_id)

    def _get(self, key: str, version_id: str | None) -> bytes:
        response = self.client.get_object(self.bucket, key, version_id=version_id)
        try:
            return response.read()
        finally:
            response.close()
            response.release_conn()

    async def list_objects(self, prefix: str = "") -> list[StoredObject]:
        return await asyncio.to_thread(self._list, prefix)

    def _list(self, prefix: str) -> list[StoredObject]:
        found = self.client.list_objects(self.bucket, prefix=prefix, recursive=True)
        return [StoredObject(o.object_name or "", o.version_id, o.size) for o in found]
