"""`LocalStack`: the Kafka broker, the S3 server, the topics and the bucket as one object.

The CLI and the test session use the same object: the CLI with the user's settings, the tests
with `LocalStack.isolated()` (free ports, a temp home), so what tests exercise is what users run.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from collections.abc import Awaitable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import urllib3
from aiokafka.errors import KafkaError
from minio.error import MinioException

from stack.bucket import bucket_lock_config, ensure_bucket
from stack.errors import StackError
from stack.install import install_kafka, is_installed
from stack.kafka import KafkaBroker
from stack.layout import Layout
from stack.ports import GRPC_OFFSET, free_port
from stack.seaweed import SeaweedServer
from stack.topics import describe_topics, ensure_topics, topic_specs
from streamtap.settings import Settings, load_settings

__all__ = [
    "LocalStack",
    "ServerStatus",
    "StackStatus",
    "UpReport",
    "init_resources",
    "settings_env",
]

READY_TIMEOUT_S = 180.0
T = TypeVar("T")


@dataclass
class ServerStatus:
    """One server as `stack status` reports it."""

    name: str
    version: str | None
    port: int
    pid: int | None
    log: Path
    extra: dict[str, str] = field(default_factory=dict)


@dataclass
class StackStatus:
    """Everything `stack status` prints, gathered once so rendering stays pure."""

    kafka: ServerStatus
    s3: ServerStatus
    topics: dict[str, int] | None
    expected_topics: dict[str, int]
    bucket: str
    bucket_lock: str | None
    client_env: dict[str, str]

    @property
    def running(self) -> bool:
        return self.kafka.pid is not None and self.s3.pid is not None


@dataclass
class UpReport:
    """What `up` did, for the CLI to print."""

    started: list[str]
    already_running: list[str]
    topics_created: list[str]
    bucket_created: bool
    seconds: float


def settings_env(settings: Settings) -> dict[str, str]:
    """Env vars that reproduce these settings in a child process (e.g. the `streamtap` CLI)."""
    env: dict[str, str] = {}
    for name, info in Settings.model_fields.items():
        alias = info.validation_alias
        if isinstance(alias, str):
            env[alias] = str(getattr(settings, name))
    return env


class LocalStack:
    """The whole local stack under one home directory."""

    def __init__(self, settings: Settings | None = None, ready_timeout: float = READY_TIMEOUT_S):
        base = settings or load_settings()
        # The stack's own clients always talk to the ports it binds, whatever KAFKA_BOOTSTRAP
        # and S3_ENDPOINT say (those may point at another deployment).
        self.settings = base.model_copy(
            update={
                "kafka_bootstrap": f"127.0.0.1:{base.kafka_port}",
                "s3_endpoint": f"http://127.0.0.1:{base.s3_port}",
            }
        )
        self.layout = Layout(self.settings.home)
        self.kafka = KafkaBroker(self.settings, self.layout)
        self.s3 = SeaweedServer(self.settings, self.layout)
        self.ready_timeout = ready_timeout

    @classmethod
    def isolated(cls, home: Path, **overrides: Any) -> LocalStack:
        """A stack on free loopback ports under `home`, for tests and side-by-side runs."""
        kafka_port = free_port()
        controller_port = free_port(avoid=frozenset({kafka_port}))
        s3_port = free_port(with_grpc=True, avoid=frozenset({kafka_port, controller_port}))
        values: dict[str, Any] = {
            "home": home,
            "kafka_port": kafka_port,
            "kafka_controller_port": controller_port,
            "s3_port": s3_port,
            "kafka_heap": "512m",
        }
        values.update(overrides)
        return cls(load_settings(**values))

    def guard(self, owner_pid: int) -> subprocess.Popen[bytes]:
        """Start a watchdog that stops this stack if `owner_pid` dies without doing so; the
        caller stops the stack and terminates the watchdog on a normal exit."""
        log = self.layout.log("guard")
        log.parent.mkdir(parents=True, exist_ok=True)
        with log.open("ab") as out:
            return subprocess.Popen(
                [sys.executable, "-m", "stack.guard", str(owner_pid), str(self.layout.home)],
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                cwd=Path(__file__).resolve().parent.parent,
            )

    def env(self) -> dict[str, str]:
        """Env vars pointing any streamtap command at this stack."""
        return settings_env(self.settings)

    def install(self, force: bool = False) -> bool:
        """Fetch the jars unless they match the pom; never under a running broker."""
        with self.layout.locked():
            return self._install(force)

    def _install(self, force: bool = False) -> bool:
        if (force or not is_installed(self.layout)) and self.kafka.process.pid() is not None:
            raise StackError(
                f"Kafka is running from {self.layout.kafka_lib}; "
                "run `streamtap stack down` before installing other jars"
            )
        return install_kafka(self.layout, force=force)

    async def up(self) -> UpReport:
        """Start what is not running, wait until both servers answer, then create topics and
        the bucket. Safe to repeat, also from two processes at once (they take turns)."""
        # A blocking lock is fine here: nothing else runs on this event loop meanwhile.
        with self.layout.locked():
            return await self._up()

    async def _up(self) -> UpReport:
        began = time.monotonic()
        await asyncio.to_thread(self._install)
        started: list[str] = []
        running: list[str] = []
        kafka_pid = await asyncio.to_thread(self.kafka.start)
        (started if kafka_pid else running).append(self.kafka.name)
        kafka_ports = frozenset({self.settings.kafka_port, self.settings.kafka_controller_port})
        s3_pid = self.s3.start(avoid=kafka_ports | {p + GRPC_OFFSET for p in kafka_ports})
        (started if s3_pid else running).append(self.s3.name)
        await asyncio.gather(
            self.kafka.wait_ready(self.ready_timeout), self.s3.wait_ready(self.ready_timeout)
        )
        topics, bucket = await self.init()
        return UpReport(started, running, topics, bucket, time.monotonic() - began)

    async def init(self) -> tuple[list[str], bool]:
        """Topics and bucket only, against the settings' endpoints."""
        return await init_resources(self.settings)

    async def down(self) -> list[str]:
        """Stop both servers (SIGTERM, then SIGKILL after a grace period)."""
        with self.layout.locked():
            stopped = await asyncio.gather(
                asyncio.to_thread(self.kafka.stop), asyncio.to_thread(self.s3.stop)
            )
        return [name for name, did in zip(("kafka", "seaweedfs"), stopped, strict=True) if did]

    async def status(self) -> StackStatus:
        kafka_pid, s3_pid = self.kafka.process.pid(), self.s3.process.pid()
        topics = await _or_none(describe_topics(self.settings)) if kafka_pid else None
        lock = await _or_none(bucket_lock_config(self.settings)) if s3_pid else None
        return StackStatus(
            kafka=ServerStatus(
                "Apache Kafka",
                self.kafka.version(),
                self.settings.kafka_port,
                kafka_pid,
                self.kafka.process.log_file,
                {"controller port": str(self.settings.kafka_controller_port), "mode": "KRaft"},
            ),
            s3=ServerStatus(
                self.s3.product,
                await asyncio.to_thread(self.s3.version),
                self.settings.s3_port,
                s3_pid,
                self.s3.process.log_file,
            ),
            topics=topics,
            expected_topics={spec.name: spec.partitions for spec in topic_specs(self.settings)},
            bucket=self.settings.s3_bucket,
            bucket_lock=lock,
            client_env={
                "KAFKA_BOOTSTRAP": self.settings.kafka_bootstrap,
                "S3_ENDPOINT": self.settings.s3_endpoint,
            },
        )


async def _or_none(probe: Awaitable[T]) -> T | None:
    """Status reports what it can: a server that runs but does not answer shows no details."""
    try:
        return await probe
    except (KafkaError, MinioException, urllib3.exceptions.HTTPError, OSError):
        return None


async def init_resources(settings: Settings) -> tuple[list[str], bool]:
    """Create the topics and the Object-Lock bucket on whatever the settings point at."""
    topics, bucket = await asyncio.gather(ensure_topics(settings), ensure_bucket(settings))
    return topics, bucket
