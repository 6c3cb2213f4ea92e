"""A test kit for code that uses the pipeline (shipped in the package, as mitmproxy ships tflow).

``TableCompiler`` stands in for the KFL compiler where a test is about rule-set bookkeeping
(reload, errors, stream memory) rather than the language: each known query text maps to a plain
predicate, and anything else fails the way ``KFLError`` does, with a line and column.
``make_record``/``make_entry`` build stream records without a sensor.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

from streamtap.schema import DirectionStats, Endpoint, Node, StreamRecord

__all__ = ["FakeKFLError", "TableCompiler", "make_entry", "make_record"]

Entry = dict[str, Any]


class FakeKFLError(Exception):
    def __init__(self, query: str) -> None:
        super().__init__(f"unknown query\n{query}\n^")
        self.line = 1
        self.column = 1


class _Query:
    def __init__(self, pred: Callable[[Entry], bool], redact_keys: tuple[str, ...]) -> None:
        self.pred = pred
        self.redact_keys = redact_keys
        self.warnings: list[str] = []
        self.limit = None

    def __call__(self, entry: Entry) -> bool:
        return self.pred(entry)

    @property
    def redactions(self) -> list[str]:
        return list(self.redact_keys)

    def redact(self, entry: Entry) -> Entry:
        out = dict(entry)
        for key in self.redact_keys:
            if key in out:
                out[key] = "[REDACTED]"
        return out


def _proto(name: str) -> Callable[[Entry], bool]:
    return lambda e: e.get("protocol", {}).get("name") == name


QUERIES: dict[str, tuple[Callable[[Entry], bool], tuple[str, ...]]] = {
    "http": (_proto("http"), ()),
    "dns": (_proto("dns"), ()),
    "http or dns": (lambda e: _proto("http")(e) or _proto("dns")(e), ()),
    "secret": (lambda e: "secret" in e, ("secret",)),
    "tcp": (_proto("tcp"), ()),
}


class TableCompiler:
    error = FakeKFLError

    def __init__(self) -> None:
        self.compiled: list[str] = []

    def compile(self, query: str) -> _Query:
        """Compile one query; ``compiled`` records each call, so tests see recompiles."""
        self.compiled.append(query)
        return self._compile(query)

    def _compile(self, query: str) -> _Query:
        if query not in QUERIES:
            raise FakeKFLError(query)
        pred, keys = QUERIES[query]
        return _Query(pred, keys)

    def compile_many(self, queries: Mapping[str, str]) -> Callable[[Entry], Iterable[str]]:
        compiled = {name: self._compile(q) for name, q in queries.items()}
        return lambda e: [name for name, q in compiled.items() if q(e)]


def make_entry(protocol: str, **extra: Any) -> Entry:
    return {"protocol": {"name": protocol}, **extra}


def make_record(
    stream: str = "s1",
    segment: int = 0,
    closed: bool = True,
    entries: tuple[Entry, ...] = (),
) -> StreamRecord:
    return StreamRecord(
        stream_id=stream,
        segment=segment,
        closed=closed,
        node=Node(name="n1"),
        layer4="tcp",
        src=Endpoint(ip="10.0.0.1", port=40000),
        dst=Endpoint(ip="10.0.0.2", port=80),
        first_ts_ns=1,
        last_ts_ns=2,
        client=DirectionStats(),
        server=DirectionStats(),
        entries=entries,
    )


# -- Against a real Kafka: worker processes, producing records, reading matched streams -------
#
# Used by tests/integration/pipeline, tests/e2e/pipeline and bench/pipeline_bench.py. Nothing
# here mocks Kafka; workers run as ``streamtap pipeline`` processes, as a user runs them.


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def isolated_settings(base: Any, tag: str, partitions: int | None = None) -> Any:
    """The stack's settings with topic names of their own, so tests never see each other."""
    return base.model_copy(
        update={
            "streams_topic": f"streams-{tag}",
            "matched_topic": f"matched-{tag}",
            "deadletter_topic": f"deadletter-{tag}",
            "control_topic": f"control-{tag}",
            "stats_topic": f"stats-{tag}",
            "recording_kfl": "",
            "topic_partitions": partitions or base.topic_partitions,
        }
    )


async def create_topics(settings: Any) -> None:
    from stack.topics import ensure_topics

    await ensure_topics(settings)


def settings_env(settings: Any) -> dict[str, str]:
    from stack import settings_env as env_of

    return env_of(settings)


def corpus_records(path: Any, node: str = "n1", max_record_bytes: int = 1024 * 1024) -> list[Any]:
    """Records exactly as the sensor makes them from a capture (the producers engine)."""
    from producers.capture import open_capture
    from producers.engine import Engine, EngineConfig

    engine = Engine(node, EngineConfig(max_record_bytes=max_record_bytes))
    return list(engine.feed_all(open_capture(path))) + list(engine.flush())


async def produce(settings: Any, records: Iterable[Any], topic: str | None = None) -> int:
    """Publish records keyed by stream id, as the sensor does; returns how many."""
    from aiokafka import AIOKafkaProducer

    from streamtap.schema import encode_record

    producer = AIOKafkaProducer(
        bootstrap_servers=settings.kafka_bootstrap,
        enable_idempotence=True,
        max_request_size=settings.max_message_bytes,
        linger_ms=5,
    )
    await producer.start()
    count = 0
    try:
        for record in records:
            value = record if isinstance(record, bytes) else encode_record(record)
            key = None if isinstance(record, bytes) else record.key
            await producer.send(topic or settings.streams_topic, value, key=key)
            count += 1
        await producer.flush()
    finally:
        await producer.stop()
    return count


async def produce_raw(settings: Any, items: Iterable[tuple[bytes | None, bytes]]) -> None:
    from aiokafka import AIOKafkaProducer

    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap)
    await producer.start()
    try:
        for key, value in items:
            await producer.send_and_wait(settings.streams_topic, value, key=key)
    finally:
        await producer.stop()


async def _partitions(bootstrap: str, topic: str) -> set[int]:
    """Partition numbers of ``topic`` (a producer's metadata wait is the public way to ask)."""
    from aiokafka import AIOKafkaProducer

    producer = AIOKafkaProducer(bootstrap_servers=bootstrap)
    await producer.start()
    try:
        return set(await producer.partitions_for(topic))
    finally:
        await producer.stop()


async def read_topic(settings: Any, topic: str) -> list[Any]:
    """Every message of ``topic`` up to its end offsets now (no waiting for silence)."""
    from aiokafka import AIOKafkaConsumer

    consumer = AIOKafkaConsumer(
        bootstrap_servers=settings.kafka_bootstrap,
        group_id=None,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        max_partition_fetch_bytes=max(settings.max_message_bytes, 1024 * 1024),
        fetch_max_bytes=max(settings.max_message_bytes, 50 * 1024 * 1024),
    )
    await consumer.start()
    try:
        from aiokafka import TopicPartition

        parts = await _partitions(settings.kafka_bootstrap, topic)
        tps = [TopicPartition(topic, p) for p in sorted(parts)]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        ends = await consumer.end_offsets(tps)
        out: list[Any] = []
        todo = {tp for tp in tps if ends[tp] > 0}
        while todo:
            batch = await consumer.getmany(*todo, timeout_ms=1000)
            for tp, messages in batch.items():
                for message in messages:
                    if message.offset < ends[tp]:
                        out.append(message)
                if await consumer.position(tp) >= ends[tp]:
                    todo.discard(tp)
        return out
    finally:
        await consumer.stop()


async def end_offsets(settings: Any, topic: str) -> dict[int, int]:
    from aiokafka import AIOKafkaConsumer, TopicPartition

    consumer = AIOKafkaConsumer(bootstrap_servers=settings.kafka_bootstrap, group_id=None)
    await consumer.start()
    try:
        parts = await _partitions(settings.kafka_bootstrap, topic)
        tps = [TopicPartition(topic, p) for p in sorted(parts)]
        return {tp.partition: off for tp, off in (await consumer.end_offsets(tps)).items()}
    finally:
        await consumer.stop()


async def committed_offsets(settings: Any, group: str, topic: str) -> dict[int, int]:
    from aiokafka import TopicPartition
    from aiokafka.admin import AIOKafkaAdminClient
    from aiokafka.errors import KafkaError

    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap)
    await admin.start()
    try:
        offsets = await admin.list_consumer_group_offsets(group)
    except KafkaError as exc:
        if exc.retriable:
            return {}  # a fresh broker has no group coordinator yet: nothing committed
        raise
    finally:
        await admin.close()
    out: dict[int, int] = {}
    for tp, meta in offsets.items():
        if isinstance(tp, TopicPartition) and tp.topic == topic and meta.offset >= 0:
            out[tp.partition] = meta.offset
    return out


async def wait_until_processed(
    settings: Any,
    group: str,
    *,
    timeout_s: float = 120.0,
    check: Any = None,
    workers: Any = (),
) -> None:
    """Wait until ``group`` has committed every ``streams`` message produced so far and, when
    ``workers`` are given, until one of them reports the output of each partition's last record
    acknowledged (``/stats/`` ``delivered``). Faust may commit offsets of events it skipped
    after a rebalance before it re-delivers them, so a commit alone can run ahead of the output.
    ``check`` (optional) is called while waiting, e.g. to fail fast when a worker died.
    """
    import asyncio

    ends = await end_offsets(settings, settings.streams_topic)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while True:
        done = await committed_offsets(settings, group, settings.streams_topic)
        delivered: dict[int, int] = {}
        for worker in workers:
            stats = (
                worker.stats() if worker.proc is not None and worker.proc.poll() is None else None
            )
            for p, off in (stats or {}).get("delivered", {}).items():
                delivered[int(p)] = max(delivered.get(int(p), 0), int(off))
        committed_all = all(done.get(p, 0) >= end for p, end in ends.items())
        if committed_all and (
            not workers or all(delivered.get(p, 0) >= end for p, end in ends.items() if end)
        ):
            return
        if check is not None:
            check()
        if loop.time() > deadline:
            raise TimeoutError(f"group {group} committed {done}, streams end at {ends}")
        await asyncio.sleep(0.25)


class WorkerProcess:
    """One ``streamtap pipeline`` process with its own web port and home."""

    def __init__(
        self,
        settings: Any,
        home: Any,
        *,
        app_id: str,
        recording_kfl: str = "",
        rules_file: Any = None,
        extra_args: tuple[str, ...] = (),
        log_path: Any = None,
        extra_env: dict[str, str] | None = None,
    ) -> None:
        import os
        import sys
        from pathlib import Path

        self.web_port = free_port()
        self.app_id = app_id
        env = {**os.environ, **settings_env(settings)}
        env.pop("STREAMTAP_CONFIG", None)
        env["STREAMTAP_HOME"] = str(home)
        env["RECORDING_KFL"] = recording_kfl
        env.update(extra_env or {})  # e.g. PYTHONPATH: another checkout's code (benchmarks)
        self.env = env
        self.argv = [
            str(Path(sys.executable).parent / "streamtap"),
            "pipeline",
            "--app-id",
            app_id,
            "--web-port",
            str(self.web_port),
            *(("--rules", str(rules_file)) if rules_file is not None else ()),
            *extra_args,
        ]
        self.log_path = Path(log_path or Path(home) / f"worker-{self.web_port}.log")
        self.proc: Any = None
        self._log: Any = None

    def start(self) -> WorkerProcess:
        import subprocess

        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log = open(self.log_path, "ab")  # noqa: SIM115  closed in wait()
        self.proc = subprocess.Popen(
            self.argv, env=self.env, stdout=self._log, stderr=subprocess.STDOUT
        )
        return self

    @property
    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def alive(self) -> None:
        """Raise if the process exited (fail fast with its log)."""
        if self.proc is not None and self.proc.poll() is not None:
            raise RuntimeError(f"worker exited with {self.proc.returncode}:\n{self.log[-4000:]}")

    def stats(self) -> dict[str, Any] | None:
        import json
        import urllib.request

        try:
            with urllib.request.urlopen(
                f"http://127.0.0.1:{self.web_port}/stats/", timeout=2
            ) as resp:
                data: dict[str, Any] = json.loads(resp.read())
                return data
        except OSError:
            return None

    async def wait_stats(self, predicate: Any, timeout_s: float = 90.0) -> dict[str, Any]:
        """Poll ``/stats/`` until ``predicate(stats)`` holds."""
        import asyncio

        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        while True:
            self.alive()
            stats = self.stats()
            if stats is not None and predicate(stats):
                return stats
            if loop.time() > deadline:
                raise TimeoutError(
                    f"stats never satisfied the condition: {stats}\n{self.log[-3000:]}"
                )
            await asyncio.sleep(0.2)

    def kill(self) -> None:
        import signal

        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
        self.wait()

    def stop(self) -> None:
        import signal

        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        self.wait()

    def wait(self) -> None:
        import subprocess

        if self.proc is not None:
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if getattr(self, "_log", None) is not None:
            self._log.close()
            self._log = None
