"""A watchdog that stops a stack once the process that owns it is gone.

Test sessions start private stacks; when a session is killed (a CI timeout, Ctrl-C twice) its
fixture teardown never runs and the broker and S3 server would keep running, holding memory
and ports. The guard runs in its own session, so it outlives that kill, notices, and stops them.
Run as: python -m stack.guard OWNER_PID HOME
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

from stack.kafka import kafka_process
from stack.layout import Layout
from stack.seaweed import seaweed_process

__all__ = ["main", "owner_alive", "start_time"]

POLL_S = 1.0


def start_time(pid: int) -> str | None:
    """The process start time from /proc (field 22), which tells a recycled pid apart."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat.rpartition(")")[2].split()
    return fields[19] if len(fields) > 19 else None


def owner_alive(pid: int, started: str | None) -> bool:
    return started is not None and start_time(pid) == started


def main(argv: list[str]) -> int:
    owner, home = int(argv[0]), Path(argv[1])
    started = start_time(owner)
    while owner_alive(owner, started):
        time.sleep(POLL_S)
    layout = Layout(home)
    for proc in (kafka_process(layout), seaweed_process(layout)):
        if proc.stop():
            print(f"guard: owner {owner} is gone; stopped {proc.name}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
