"""Pid-file tracked processes, with a real short-lived child (`sleep`)."""

from __future__ import annotations

import shutil
import sys
import time
from pathlib import Path

import pytest

from stack.process import ManagedProcess, tail


def _sleeper(tmp_path: Path, marker: str = "") -> ManagedProcess:
    return ManagedProcess(
        "sleeper", tmp_path / "run" / "s.pid", tmp_path / "logs" / "s.log", marker
    )


SLEEP = shutil.which("sleep") or "/bin/sleep"


def test_start_then_stop(tmp_path: Path) -> None:
    proc = _sleeper(tmp_path, marker="300")
    pid = proc.start([SLEEP, "300"], cwd=tmp_path)

    assert proc.pid() == pid
    assert proc.stop(grace_seconds=10)
    assert proc.pid() is None
    assert not proc.pid_file.exists()


def test_stop_when_nothing_runs_says_so(tmp_path: Path) -> None:
    assert _sleeper(tmp_path).stop() is False


def test_a_process_that_ignores_sigterm_is_killed(tmp_path: Path) -> None:
    proc = _sleeper(tmp_path, marker="ignore-term")
    script = "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(300)"
    proc.start([sys.executable, "-c", script, "ignore-term"], cwd=tmp_path)

    assert proc.stop(grace_seconds=1)
    assert proc.pid() is None


def test_a_recycled_pid_is_not_taken_for_ours(tmp_path: Path) -> None:
    other = _sleeper(tmp_path / "other", marker="300")
    pid = other.start([SLEEP, "300"], cwd=tmp_path)
    mine = _sleeper(tmp_path, marker="some-other-server-config")
    mine.pid_file.parent.mkdir(parents=True)
    mine.pid_file.write_text(f"{pid}\n")
    try:
        assert mine.pid() is None
        assert not mine.pid_file.exists()
    finally:
        other.stop()


def _state(pid: int) -> str:
    return Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0]


def test_an_exited_child_left_as_zombie_is_not_running(tmp_path: Path) -> None:
    proc = _sleeper(tmp_path, marker="exit")
    pid = proc.start([sys.executable, "-c", "print('bye')", "exit"], cwd=tmp_path)
    while _state(pid) != "Z":  # exited, not yet reaped: os.kill(pid, 0) would still succeed
        time.sleep(0.05)

    assert proc.pid() is None
    assert "bye" in proc.log_file.read_text()


def test_failure_message_has_log_tail_and_path(tmp_path: Path) -> None:
    proc = _sleeper(tmp_path)
    proc.log_file.parent.mkdir(parents=True)
    proc.log_file.write_text("".join(f"line {i}\n" for i in range(100)))

    message = str(proc.failure("did not start"))

    assert str(proc.log_file) in message
    assert "line 99" in message
    assert "line 10\n" not in message


@pytest.mark.parametrize("content", ["", "one line\n"])
def test_tail_of_short_logs(tmp_path: Path, content: str) -> None:
    log = tmp_path / "x.log"
    log.write_text(content)
    assert tail(log) == content.strip()


def test_tail_of_missing_log(tmp_path: Path) -> None:
    assert tail(tmp_path / "nope.log") == "(no log yet)"
