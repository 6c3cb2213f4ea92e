"""Settings, client options, keys and the spill format: the sink's small edges."""

from __future__ import annotations

import base64
import hashlib
from pathlib import Path

import pytest
from minio import Minio
from minio.credentials import Credentials
from minio.sse import SseKMS, SseS3

from sinks.batch import ClosedBatch
from sinks.config import load_sink_settings
from sinks.errors import SinkError
from sinks.keys import ObjectKey, WriterId, parse_key, safe_segment
from sinks.s3 import make_sse, make_store_client
from sinks.spill import SpillArea
from sinks.testing import consumed, matched, packet
from streamtap.settings import SettingsError, load_settings


def test_bad_sink_setting_names_the_variable() -> None:
    with pytest.raises(SettingsError, match="SINK_MAX_BATCH_BYTES"):
        load_sink_settings(SINK_MAX_BATCH_BYTES="lots")
    with pytest.raises(SettingsError, match="SINK_FORMAT"):
        load_sink_settings(SINK_FORMAT="csv")


def test_sse_choices() -> None:
    assert make_sse("") is None
    assert isinstance(make_sse("SSE-S3"), SseS3)
    assert isinstance(make_sse("SSE-KMS", "key-1"), SseKMS)
    with pytest.raises(ValueError, match="KMS key id"):
        make_sse("SSE-KMS")
    with pytest.raises(ValueError, match="unknown"):
        make_sse("ROT13")


@pytest.mark.parametrize(("addressing", "virtual"), [("path", False), ("virtual", True)])
def test_addressing_is_forced_when_asked(addressing: str, virtual: bool) -> None:
    settings = load_settings(S3_ENDPOINT="https://s3.eu-west-1.amazonaws.com")
    client = make_store_client(settings, addressing)  # type: ignore[arg-type]
    assert client._base_url.virtual_style_flag is virtual


def test_keys_round_trip_and_refuse_strangers() -> None:
    key = ObjectKey(
        WriterId("a/b", "web", "n1", 3),
        1_795_773_600_000_000_000,
        1_795_773_600_000_000_009,
        5,
        9,
        113,
    )
    assert parse_key(str(key)) == key
    assert str(key).startswith("a/b/web/n1/2026/11/27/10/")
    for bad in ("x.pcap", "p/r/n/2026/11/27/10/notakey.pcap", str(key).replace("/10/", "/11/")):
        with pytest.raises(SinkError):
            parse_key(bad)
    assert safe_segment("../etc passwd") == "_etc_passwd"


def test_spill_round_trip_and_damage(tmp_path: Path) -> None:
    area = SpillArea(tmp_path / "spill", max_bytes=10_000)
    area.reset()
    items = tuple(consumed(i, matched(f"s{i}", [packet(i, b"frame%d" % i)])) for i in range(3))
    batch = ClosedBatch(0, items, "age")
    spilled = area.spill(batch)
    assert area.used == batch.size and not area.fits(10_000)
    assert spilled.load() == batch
    spilled.path.write_bytes(spilled.path.read_bytes()[:-5])
    with pytest.raises(SinkError):
        spilled.load()
    area.release(spilled)
    assert area.used == 0 and not spilled.path.exists()


def test_package_exports_what_it_lists() -> None:
    import sinks

    assert len(set(sinks.__all__)) == len(sinks.__all__)
    assert all(hasattr(sinks, name) for name in sinks.__all__)


@pytest.mark.parametrize("checksummed", [True, False])
def test_signed_payload_hash_is_the_bodys_whether_reused_or_computed(checksummed: bool) -> None:
    # A PUT with x-amz-checksum-sha256 reuses that hash to sign the payload instead of hashing
    # the body again; either way the signed hash and the rest of the headers are minio's own.
    client = make_store_client(load_settings(None))
    body = b"pcap bytes " * 1000
    digest = hashlib.sha256(body).digest()
    headers = {"x-amz-checksum-sha256": base64.b64encode(digest).decode()} if checksummed else {}
    creds = Credentials("access", "secret")
    built, _ = client._build_headers("s3.local", dict(headers), body, creds)
    reference, _ = Minio._build_headers(client, "s3.local", dict(headers), body, creds)
    assert built["x-amz-content-sha256"] == digest.hex()
    assert {k: v for k, v in built.items() if k != "x-amz-date"} == {
        k: v for k, v in reference.items() if k != "x-amz-date"
    }
