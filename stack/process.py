"""Detached server processes tracked by pid files, so separate CLI runs can share them.

`up` and `down` are usually different processes, so a server's identity lives on disk: a pid
file plus a marker (a path only that server's command line contains) that guards against a
recycled pid being mistaken for ours.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from stack.errors import StackError

__all__ = ["ManagedProcess", "tail", "wait_for"]

TAIL_LINES = 40


def tail(path: Path, lines: int = TAIL_LINES) -> str:
    """The end of a log, for error messages; reads only the last 64 KiB of big files."""
    try:
        with path.open("rb") as handle:
            handle.seek(0, os.SEEK_END)
            size = handle.tell()
            handle.seek(max(0, size - 65536))
            data = handle.read().decode("utf-8", "replace")
    except OSError:
        return "(no log yet)"
    return "\n".join(data.splitlines()[-lines:])


def _reap(pid: int) -> None:
    # A server we spawned in this process turns into a zombie when it exits; os.kill(pid, 0)
    # still succeeds on zombies, so collect it first. Not our child: nothing to collect.
    with contextlib.suppress(ChildProcessError, OSError):
        os.waitpid(pid, os.WNOHANG)


def _cmdline(pid: int) -> str:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return ""
    return raw.replace(b"\0", b" ").decode("utf-8", "replace")


def _is_zombie(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rpartition(")")[2].split()[:1] == ["Z"]


@dataclass(frozen=True)
class ManagedProcess:
    """One long-running server: how to find it, where it logs, how to stop it."""

    name: str
    pid_file: Path
    log_file: Path
    marker: str

    def pid(self) -> int | None:
        """The pid of the running server, or None (stale pid files are removed)."""
        try:
            pid = int(self.pid_file.read_text().strip())
        except (OSError, ValueError):
            return None
        if self._alive(pid):
            return pid
        self.pid_file.unlink(missing_ok=True)
        return None

    def _alive(self, pid: int) -> bool:
        _reap(pid)
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            pass
        return not _is_zombie(pid) and self.marker in _cmdline(pid)

    def start(self, argv: Sequence[str], cwd: Path, env: dict[str, str] | None = None) -> int:
        """Spawn the server in its own session so it outlives the command that started it."""
        self.pid_file.parent.mkdir(parents=True, exist_ok=True)
        self.log_file.parent.mkdir(parents=True, exist_ok=True)
        with self.log_file.open("ab") as log:
            log.write(f"\n--- streamtap: starting {self.name}: {' '.join(argv)}\n".encode())
            log.flush()
            proc = subprocess.Popen(
                list(argv),
                cwd=cwd,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self._wait_exec(proc)
        self.pid_file.write_text(f"{proc.pid}\n")
        return proc.pid

    def _wait_exec(self, proc: subprocess.Popen[bytes]) -> None:
        # Right after spawning, /proc/<pid>/cmdline can still be empty; until it shows the
        # marker, pid() would report the new server as not running.
        deadline = time.monotonic() + 10.0
        while proc.poll() is None and self.marker not in _cmdline(proc.pid):
            if time.monotonic() > deadline:
                return
            time.sleep(0.01)

    def stop(self, grace_seconds: float = 30.0) -> bool:
        """SIGTERM, wait for a clean shutdown, then SIGKILL. True if something was stopped."""
        pid = self.pid()
        if pid is None:
            return False
        self._signal(pid, signal.SIGTERM)
        if not _wait_gone(lambda: self._alive(pid), grace_seconds):
            self._signal(pid, signal.SIGKILL)
            _wait_gone(lambda: self._alive(pid), 10.0)
        self.pid_file.unlink(missing_ok=True)
        return True

    @staticmethod
    def _signal(pid: int, sig: signal.Signals) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, sig)

    def failure(self, what: str) -> StackError:
        """An error that carries the end of this server's log, since that is where the cause is."""
        return StackError(
            f"{self.name}: {what}\n--- last lines of {self.log_file} ---\n{tail(self.log_file)}"
        )


def _wait_gone(alive: Callable[[], bool], seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while alive():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.1)
    return True


async def wait_for(
    check: Callable[[], Awaitable[bool]],
    proc: ManagedProcess,
    what: str,
    timeout: float,
    interval: float = 0.25,
) -> None:
    """Poll `check` until it passes; fail early if the server died, late if it never came up."""
    deadline = time.monotonic() + timeout
    while not await check():
        if proc.pid() is None:
            raise proc.failure(f"exited while waiting for {what}")
        if time.monotonic() > deadline:
            raise proc.failure(f"not {what} after {timeout:.0f}s")
        await asyncio.sleep(interval)
