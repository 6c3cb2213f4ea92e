"""The sink's object store on minio: integrity headers, Object Lock, SSE and addressing.

Two integrity details matter for a locked bucket. AWS refuses an object-lock PUT (and each
UploadPart of one) without ``Content-MD5`` or an ``x-amz-checksum-*`` header; minio-py adds
``Content-MD5`` only over HTTPS. Single-part PUTs here carry ``x-amz-checksum-sha256`` (the
hash the manifest records), so the server itself refuses bytes damaged on the way (SeaweedFS
answers ``BadDigest``); every other PUT, the parts of a multipart upload included, gets
``Content-MD5`` from ``_LockSafeMinio``, whatever the scheme.

Single-part PUTs are also conditional (``If-None-Match: *``, honoured by AWS, MinIO and
SeaweedFS), so storing a key that exists is refused by the server in the same request.
"""

from __future__ import annotations

import base64
import hashlib
import io
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any, Literal

from minio import Minio
from minio.commonconfig import COMPLIANCE, GOVERNANCE
from minio.error import S3Error
from minio.helpers import genheaders
from minio.retention import Retention
from minio.sse import Sse, SseKMS, SseS3

from sinks.store import (
    SHA256_META,
    KeyExistsError,
    LockState,
    ObjectVersion,
    PutOptions,
    StoredObject,
)
from streamtap.objectstore import parse_endpoint
from streamtap.settings import Settings

__all__ = ["MIN_PART_SIZE", "MinioStore", "make_sse", "make_store_client"]

MIN_PART_SIZE = 5 * 1024 * 1024
_CHECKSUM_SHA256 = "x-amz-checksum-sha256"
_NOT_FOUND = {"NoSuchKey", "NoSuchVersion", "NoSuchObject"}
_NO_LOCK = {"NoSuchObjectLockConfiguration", "ObjectLockConfigurationNotFoundError", "NoSuchKey"}

Addressing = Literal["auto", "path", "virtual"]


class _LockSafeMinio(Minio):
    """minio with an integrity header on every PUT and UploadPart (see the module docstring):
    ``Content-MD5``, unless the request already carries an ``x-amz-checksum-*``."""

    def _put_object(
        self,
        bucket_name: str,
        object_name: str,
        data: bytes,
        headers: dict[str, Any] | None = None,
        query_params: dict[str, Any] | None = None,
    ) -> Any:
        headers = dict(headers or {})
        names = {k.lower() for k in headers}
        if "content-md5" not in names and not any(n.startswith("x-amz-checksum-") for n in names):
            headers["Content-MD5"] = base64.b64encode(hashlib.md5(data).digest()).decode()
        return super()._put_object(bucket_name, object_name, data, headers, query_params)

    def _build_headers(
        self,
        host: str,
        headers: dict[str, Any] | None = None,
        body: bytes | None = None,
        creds: Any = None,
    ) -> tuple[dict[str, Any], Any]:
        """Over plain HTTP minio signs the payload's SHA-256, hashing the body again; a PUT
        that carries ``x-amz-checksum-sha256`` already has that hash (the manifest's), so it
        is reused. The server checks both against the bytes it receives, as before."""
        checksum = (headers or {}).get(_CHECKSUM_SHA256)
        if checksum is None or not body or creds is None or self._base_url.is_https:
            return super()._build_headers(host, headers, body, creds)
        built, date = super()._build_headers(host, headers, None, creds)
        built["Content-Length"] = str(len(body))
        built["x-amz-content-sha256"] = base64.b64decode(checksum).hex()
        return built, date


def make_store_client(settings: Settings, addressing: Addressing = "auto") -> Minio:
    """A minio client for the sink; ``addressing`` forces path-style or virtual-host URLs."""
    netloc, secure = parse_endpoint(settings.s3_endpoint)
    client = _LockSafeMinio(
        netloc,
        access_key=settings.aws_access_key_id,
        secret_key=settings.aws_secret_access_key,
        secure=secure,
        region=settings.aws_region,
    )
    if addressing == "virtual":
        client.enable_virtual_style_endpoint()
    elif addressing == "path":
        client.disable_virtual_style_endpoint()
    return client


def make_sse(
    kind: str, kms_key_id: str = "", kms_context: dict[str, str] | None = None
) -> Sse | None:
    """SSE-S3 (``"SSE-S3"``), SSE-KMS (``"SSE-KMS"`` with a key id) or none (``""``)."""
    if not kind:
        return None
    if kind == "SSE-S3":
        return SseS3()
    if kind == "SSE-KMS":
        if not kms_key_id:
            raise ValueError("SSE-KMS needs a KMS key id (SINK_SSE_KMS_KEY_ID)")
        return SseKMS(kms_key_id, kms_context or {})
    raise ValueError(f"unknown server-side encryption {kind!r}: use SSE-S3 or SSE-KMS")


class MinioStore:
    """ObjectStore on one bucket; blocking, so async callers use ``asyncio.to_thread``."""

    def __init__(
        self,
        client: Minio,
        bucket: str,
        *,
        part_size: int = 16 * 1024 * 1024,
        parallel_parts: int = 3,
        sse: Sse | None = None,
    ) -> None:
        self.client = client
        self.bucket = bucket
        self.part_size = max(part_size, MIN_PART_SIZE)
        self.parallel_parts = parallel_parts
        self.sse = sse

    def head(self, key: str) -> StoredObject | None:
        try:
            stat = self.client.stat_object(self.bucket, key)
        except S3Error as exc:
            if exc.code in _NOT_FOUND:
                return None
            raise
        meta = stat.metadata or {}
        sha = meta.get(f"x-amz-meta-{SHA256_META}") or meta.get(f"X-Amz-Meta-{SHA256_META}")
        return StoredObject(key, stat.size or 0, sha, stat.version_id)

    def get(self, key: str, version_id: str | None = None) -> bytes:
        response = self.client.get_object(self.bucket, key, version_id=version_id)
        try:
            return response.read()
        finally:
            response.close()
            response.release_conn()

    def put(self, key: str, data: bytes, options: PutOptions) -> StoredObject:
        sha = options.sha256 or hashlib.sha256(data).hexdigest()
        metadata: dict[str, Any] = {SHA256_META: sha}
        retention = None
        if options.retain_until_ms is not None:
            mode = COMPLIANCE if options.lock_mode == "COMPLIANCE" else GOVERNANCE
            until = datetime.fromtimestamp(options.retain_until_ms / 1000, tz=UTC)
            retention = Retention(mode, until)
        if len(data) <= self.part_size:
            # One request: the server checks the SHA-256, and with If-None-Match refuses a
            # key that exists instead of stacking a version on it.
            metadata[_CHECKSUM_SHA256] = base64.b64encode(bytes.fromhex(sha)).decode()
            headers = genheaders(metadata, self.sse, None, retention, options.legal_hold)
            headers["Content-Type"] = options.content_type
            if options.if_absent:
                headers["If-None-Match"] = "*"
            try:
                result = self.client._put_object(self.bucket, key, data, headers)
            except S3Error as exc:
                if exc.code == "PreconditionFailed":
                    raise KeyExistsError(key) from exc
                raise
            return StoredObject(key, len(data), sha, result.version_id)
        # Multipart: minio takes no conditional header here, so ask first.
        if options.if_absent and self.head(key) is not None:
            raise KeyExistsError(key)
        result = self.client.put_object(
            self.bucket,
            key,
            io.BytesIO(data),
            len(data),
            content_type=options.content_type,
            metadata=metadata,
            sse=self.sse,
            part_size=self.part_size,
            num_parallel_uploads=self.parallel_parts,
            retention=retention,
            legal_hold=options.legal_hold,
        )
        return StoredObject(key, len(data), sha, result.version_id)

    def list_keys(self, prefix: str) -> Iterator[str]:
        for obj in self.client.list_objects(self.bucket, prefix=prefix, recursive=True):
            if obj.object_name and not obj.is_dir:
                yield obj.object_name

    def list_versions(self, prefix: str) -> Iterator[ObjectVersion]:
        found = self.client.list_objects(
            self.bucket, prefix=prefix, recursive=True, include_version=True
        )
        for obj in found:
            if not obj.object_name or obj.is_dir:
                continue
            yield ObjectVersion(
                key=obj.object_name,
                version_id=obj.version_id,
                size=obj.size or 0,
                etag=obj.etag or "",
                # minio-py passes IsLatest through as the XML text
                is_latest=str(obj.is_latest).lower() == "true",
                is_delete_marker=bool(obj.is_delete_marker),
            )

    def lock_state(self, key: str, version_id: str | None) -> LockState:
        mode: str | None = None
        until: datetime | None = None
        try:
            retention = self.client.get_object_retention(self.bucket, key, version_id=version_id)
            if retention is not None:
                mode, until = retention.mode, retention.retain_until_date
        except S3Error as exc:
            # SeaweedFS answers NoSuchKey for "no retention on this (existing) version".
            if exc.code not in _NO_LOCK:
                raise
        try:
            hold = self.client.is_object_legal_hold_enabled(self.bucket, key, version_id=version_id)
        except S3Error as exc:
            if exc.code not in _NO_LOCK | {"NoSuchObjectLegalHold"}:
                raise
            hold = False
        return LockState(mode, until, bool(hold))

    def delete(self, key: str, version_id: str | None = None) -> None:
        self.client.remove_object(self.bucket, key, version_id=version_id)
