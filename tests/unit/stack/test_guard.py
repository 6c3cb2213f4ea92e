"""The watchdog stops a stack whose owner died, and only then."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from stack.guard import owner_alive, start_time
from stack.kafka import kafka_process
from stack.layout import Layout
from stack.seaweed import seaweed_process

SLEEP = "/bin/sleep"
NAP = "import time; time.sleep(300)"


def test_this_process_is_alive_and_a_recycled_pid_is_not() -> None:
    started = start_time(os.getpid())
    assert owner_alive(os.getpid(), started)
    assert not owner_alive(os.getpid(), "0")
    assert not owner_alive(2**22 + 12345, started)


def test_the_guard_stops_the_servers_when_the_owner_exits(tmp_path: Path) -> None:
    layout = Layout(tmp_path)
    # Stand-ins whose command lines carry the servers' markers, so the guard recognises them.
    servers = [kafka_process(layout), seaweed_process(layout)]
    for proc in servers:
        proc.start([sys.executable, "-c", NAP, proc.marker], cwd=tmp_path)
    owner = subprocess.Popen([SLEEP, "300"])
    guard = subprocess.Popen(
        [sys.executable, "-m", "stack.guard", str(owner.pid), str(tmp_path)],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert all(proc.pid() is not None for proc in servers)
        owner.kill()
        owner.wait()
        out, _ = guard.communicate(timeout=120)
    finally:
        for proc in servers:
            proc.stop()
        guard.kill()

    assert guard.returncode == 0
    assert "stopped kafka" in out and "stopped seaweedfs" in out
    assert all(proc.pid() is None for proc in servers)
