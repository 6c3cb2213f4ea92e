"""S3 on the test stack: credentials enforced, put/get/list, Object Lock holds."""

from __future__ import annotations

import io
import urllib.error
import urllib.request
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from minio.commonconfig import COMPLIANCE, GOVERNANCE
from minio.error import S3Error
from minio.retention import Retention

from stack import LocalStack
from streamtap.objectstore import MinioObjectStore, make_minio

pytestmark = pytest.mark.integration


def _key(prefix: str) -> str:
    return f"test/{prefix}-{uuid.uuid4().hex[:8]}"


def test_unsigned_requests_are_refused(stack: LocalStack) -> None:
    url = f"{stack.settings.s3_endpoint}/{stack.settings.s3_bucket}/"
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(url, timeout=10)
    assert refused.value.code == 403


def test_a_wrong_secret_is_refused(stack: LocalStack) -> None:
    wrong = make_minio(stack.settings.model_copy(update={"aws_secret_access_key": "not-it"}))
    with pytest.raises(S3Error) as refused:
        wrong.list_buckets()
    assert refused.value.code == "SignatureDoesNotMatch"


async def test_put_get_list_round_trip(stack: LocalStack) -> None:
    store = MinioObjectStore.from_settings(stack.settings)
    prefix = _key("roundtrip")
    keys = [f"{prefix}/{i}.pcap" for i in range(3)]
    for i, key in enumerate(keys):
        await store.put(key, f"payload-{i}".encode(), metadata={"stream-id": str(i)})

    listed = await store.list_objects(prefix)

    assert sorted(o.key for o in listed) == keys
    assert await store.get(keys[1]) == b"payload-1"


def test_bucket_has_object_lock(stack: LocalStack) -> None:
    client = make_minio(stack.settings)
    assert client.get_bucket_versioning(stack.settings.s3_bucket).status == "Enabled"
    client.get_object_lock_config(stack.settings.s3_bucket)  # raises when lock is off


@pytest.mark.parametrize("mode", [GOVERNANCE, COMPLIANCE])
def test_a_locked_version_cannot_be_deleted(stack: LocalStack, mode: str) -> None:
    client, bucket, key = make_minio(stack.settings), stack.settings.s3_bucket, _key("locked")
    until = datetime.now(UTC) + timedelta(days=1)
    put = client.put_object(
        bucket, key, io.BytesIO(b"evidence"), 8, retention=Retention(mode, until)
    )

    with pytest.raises(S3Error) as refused:
        client.remove_object(bucket, key, version_id=put.version_id)

    assert refused.value.code == "AccessDenied"
    kept = client.get_object(bucket, key, version_id=put.version_id)
    assert kept.read() == b"evidence"
    kept.close()
    kept.release_conn()


def test_a_bucket_with_objects_cannot_be_deleted(stack: LocalStack) -> None:
    client = make_minio(stack.settings)
    bucket = f"nonempty-{uuid.uuid4().hex[:8]}"
    client.make_bucket(bucket)
    client.put_object(bucket, "kept", io.BytesIO(b"x"), 1)

    with pytest.raises(S3Error) as refused:
        client.remove_bucket(bucket)

    assert refused.value.code == "BucketNotEmpty"
    assert client.bucket_exists(bucket)


async def test_object_store_put_locks_the_version_it_writes(stack: LocalStack) -> None:
    store = MinioObjectStore.from_settings(stack.settings)
    until = (datetime.now(UTC) + timedelta(days=2)).replace(microsecond=0)
    key = _key("store-locked")

    put = await store.put(key, b"pcap bytes", retain_until=until, lock_mode="COMPLIANCE")

    retention = store.client.get_object_retention(store.bucket, key, version_id=put.version_id)
    assert retention is not None
    assert (retention.mode, retention.retain_until_date) == (COMPLIANCE, until)
    with pytest.raises(S3Error):
        store.client.remove_object(store.bucket, key, version_id=put.version_id)
