"""Server-side encryption as the sink asks for it (``SINK_SSE``), on the real SeaweedFS.

SeaweedFS (4.48, ``weed mini``) implements SSE-S3: it answers with the encryption header and
keeps the bytes encrypted in its volume files. SSE-KMS needs a KMS provider configured in the
server, which the local stack does not run, so it is not tested here (see docs/sink.md).
"""

from __future__ import annotations

import os
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from sinks.store import PutOptions
from sinks.testing import matched, packet
from sinks.verify import verify_prefix
from streamtap.schema import RuleSettings

pytestmark = pytest.mark.integration

SSE_HEADER = "X-Amz-Server-Side-Encryption"


def _at_rest(data_dir: Path, needle: bytes) -> bool:
    """True if any file of the S3 server's data directory holds ``needle`` as is."""
    return any(needle in path.read_bytes() for path in data_dir.rglob("*") if path.is_file())


async def test_sse_s3_objects_and_manifests_are_encrypted_at_rest(
    harness: Any, helpers: Any
) -> None:
    # Random payloads: bytes that can only be in the volume files if they were stored in clear.
    payloads = [os.urandom(1200) for _ in range(6)]
    rules = {"web": RuleSettings(retention_days=1, lock_mode="GOVERNANCE")}
    messages = [
        matched(
            f"sse-{harness.tag}-{n}", [packet(1_795_773_600_000_000_000 + n, data)], rules=rules
        )
        for n, data in enumerate(payloads)
    ]
    await harness.produce(messages)

    stop, task = await harness.run_inprocess(sse="SSE-S3")
    await harness.wait_for(helpers.expected_segments(messages))
    stop.set()
    await task

    keys = list(harness.store.list_keys(harness.prefix + "/"))
    assert keys and any(k.endswith(".pcap") for k in keys)
    for key in keys:
        stat = harness.store.client.stat_object(harness.store.bucket, key)
        assert stat.metadata.get(SSE_HEADER) == "AES256", key
    # Reads decrypt transparently: the packets come back byte for byte, and verify's hashes,
    # chains and locks hold.
    expected = Counter((p.ts_ns, p.data) for m in messages for p in m.record.packets)
    assert harness.stored_packets("web") == expected
    report = verify_prefix(harness.store, harness.prefix + "/", datetime.now(UTC))
    assert report.ok, report.problems

    data_dir = harness.stack.layout.seaweed_data
    control = os.urandom(1200)
    harness.store.put(f"{harness.prefix}-control/clear.bin", control, PutOptions())
    assert _at_rest(data_dir, control), "the search cannot see unencrypted bytes"
    for data in payloads:
        assert not _at_rest(data_dir, data), "a packet was stored in clear"
