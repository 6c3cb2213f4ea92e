"""Where the local stack keeps everything under its home directory, and the small state file.

One directory holds jars, data, pids, logs and state, so `rm -rf <home>` is a full reset and
two stacks (the user's and a test session's) never share a file.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["Layout"]


@dataclass(frozen=True)
class Layout:
    """Paths under one stack home."""

    home: Path

    @property
    def kafka_dir(self) -> Path:
        return self.home / "kafka"

    @property
    def kafka_lib(self) -> Path:
        return self.kafka_dir / "lib"

    @property
    def kafka_data(self) -> Path:
        return self.kafka_dir / "data"

    @property
    def server_properties(self) -> Path:
        return self.kafka_dir / "server.properties"

    @property
    def kafka_log_config(self) -> Path:
        return self.kafka_dir / "log4j2.xml"

    @property
    def seaweed_dir(self) -> Path:
        return self.home / "seaweedfs"

    @property
    def seaweed_data(self) -> Path:
        return self.seaweed_dir / "data"

    @property
    def s3_identities(self) -> Path:
        return self.seaweed_dir / "s3-identities.json"

    @property
    def run_dir(self) -> Path:
        return self.home / "run"

    @property
    def logs_dir(self) -> Path:
        return self.home / "logs"

    @property
    def state_file(self) -> Path:
        return self.home / "state.json"

    def log(self, name: str) -> Path:
        return self.logs_dir / f"{name}.log"

    def pid_file(self, name: str) -> Path:
        return self.run_dir / f"{name}.pid"

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        """One `install`/`up`/`down` at a time per home, across processes (a second caller
        waits instead of racing to start a second broker on the same ports)."""
        self.run_dir.mkdir(parents=True, exist_ok=True)
        with (self.run_dir / "stack.lock").open("w") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def read_state(self) -> dict[str, Any]:
        """Values that must survive restarts (cluster id, internal ports); {} before first up."""
        try:
            data = json.loads(self.state_file.read_text())
        except (OSError, ValueError):
            return {}
        return data if isinstance(data, dict) else {}

    def update_state(self, **values: Any) -> None:
        state = self.read_state()
        state.update(values)
        self.home.mkdir(parents=True, exist_ok=True)
        tmp = self.state_file.with_suffix(".tmp")
        tmp.write_text(json.dumps(state, indent=2, sort_keys=True) + "\n")
        tmp.replace(self.state_file)
