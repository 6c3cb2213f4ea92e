"""README command 1's main job, `streamtap demo`, run as a user runs it on a private stack."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from pipeline.kfl import compile as compile_kfl
from producers.capture import open_capture
from producers.engine import Engine
from stack import LocalStack
from streamtap.objectstore import make_minio

pytestmark = pytest.mark.e2e

STREAMTAP = str(Path(sys.executable).parent / "streamtap")
SAMPLE = Path(__file__).parents[2] / "streamtap" / "samples" / "demo.pcap"


def _expected_stream_ids() -> set[str]:
    """Computed in-process from the same capture: streams with any `http or dns` entry."""
    query = compile_kfl("http or dns")
    records = Engine("demo-node").feed_all(open_capture(SAMPLE))
    return {r.stream_id for r in records if any(query(e) for e in r.entries)}


def test_demo_records_the_sample_and_verifies_it(stack: LocalStack) -> None:
    prefix = f"demo-{uuid.uuid4().hex[:8]}"
    env = os.environ | stack.env() | {"SINK_PREFIX": prefix, "NODE_NAME": "demo-node"}
    run = subprocess.run([STREAMTAP, "demo"], env=env, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stdout + run.stderr
    assert f"tap --pcap s3://{stack.settings.s3_bucket}/{prefix}/" in run.stdout
    assert "OK:" in run.stdout

    client = make_minio(stack.settings)
    names = [
        o.object_name
        for o in client.list_objects(stack.settings.s3_bucket, prefix=prefix + "/", recursive=True)
    ]
    pcaps = [n for n in names if n.endswith(".pcap")]
    assert pcaps and all(f"{n}.manifest.json" in names for n in pcaps)
    assert all("/recording/demo-node/" in n for n in pcaps)
