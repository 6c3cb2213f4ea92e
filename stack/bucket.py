"""The recording bucket, created with Object Lock so recorded PCAPs can be made immutable.

Object Lock can only be switched on when a bucket is created, so an existing bucket without
it is an error to fix by hand, not something to paper over.
"""

from __future__ import annotations

import asyncio

import urllib3
from minio import Minio
from minio.error import MinioException, S3Error

from stack.errors import StackError
from streamtap.objectstore import make_minio
from streamtap.settings import Settings

__all__ = ["bucket_lock_config", "ensure_bucket"]

NO_LOCK_CODES = {"ObjectLockConfigurationNotFoundError", "InvalidRequest"}


def _lock_config(client: Minio, bucket: str) -> str | None:
    """'Enabled' plus any default retention, or None when the bucket has no Object Lock."""
    try:
        config = client.get_object_lock_config(bucket)
    except S3Error as exc:
        if exc.code in NO_LOCK_CODES:
            return None
        raise
    if config.mode and config.duration:
        return f"Enabled (default retention {config.mode} {config.duration} {config.duration_unit})"
    return "Enabled (no default retention; retention is set per object)"


def _ensure(client: Minio, settings: Settings) -> bool:
    bucket = settings.s3_bucket
    created = False
    if not client.bucket_exists(bucket):
        try:
            client.make_bucket(bucket, location=settings.aws_region, object_lock=True)
            created = True
        except S3Error as exc:
            if exc.code not in {"BucketAlreadyOwnedByYou", "BucketAlreadyExists"}:
                raise
    if _lock_config(client, bucket) is None:
        raise StackError(
            f"bucket {bucket!r} exists without Object Lock, which can only be enabled at "
            "creation: delete it or set S3_BUCKET to a new name"
        )
    return created


async def ensure_bucket(settings: Settings) -> bool:
    """Create the Object-Lock bucket if missing; True when it was created now."""
    client = make_minio(settings)
    try:
        return await asyncio.to_thread(_ensure, client, settings)
    except (MinioException, urllib3.exceptions.HTTPError) as exc:
        raise StackError(f"bucket {settings.s3_bucket!r} on {settings.s3_endpoint}: {exc}") from exc


async def bucket_lock_config(settings: Settings) -> str:
    """A one-line description of the bucket's lock configuration, for `stack status`."""
    client = make_minio(settings)

    def describe() -> str:
        if not client.bucket_exists(settings.s3_bucket):
            return "bucket missing"
        return _lock_config(client, settings.s3_bucket) or "Object Lock NOT enabled"

    return await asyncio.to_thread(describe)
