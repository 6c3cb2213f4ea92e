"""A harness for sink tests on the real stack: its own topic, group, prefix and spill dir.

Matched-stream messages are built from corpus captures (packets as read by scapy's raw
reader, grouped by 5-tuple), so every check can compare stored packets with the capture.
"""

from __future__ import annotations

import asyncio
import io
import os
import signal
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import pytest
from scapy.layers.inet import IP, TCP, UDP
from scapy.layers.inet6 import IPv6
from scapy.layers.l2 import CookedLinux, Ether
from scapy.utils import RawPcapReader

from sinks.batch import ClosedBatch, Consumed
from sinks.cli import run_sink
from sinks.config import SinkSettings, load_sink_settings
from sinks.keys import MANIFEST_SUFFIX
from sinks.plan import PlannedObject, PlanOptions, plan_batch
from sinks.s3 import MinioStore, make_store_client
from sinks.writer import BatchWriter
from stack import LocalStack, settings_env
from stack.topics import TopicSpec, ensure_topics
from streamtap.kafka import make_producer
from streamtap.schema import (
    Endpoint,
    MatchedPackets,
    MatchedStream,
    Node,
    RawPacket,
    RuleSettings,
    StreamRecord,
    encode_matched,
)

CORPUS = Path(__file__).parents[2] / "data" / "corpus"
DATA = Path(__file__).parent / "data"
PARTITIONS = 3
WAIT_BOUND_S = 240.0  # only so a broken sink fails instead of hanging the session


def capture_packets(path: Path) -> list[RawPacket]:
    reader = RawPcapReader(str(path))
    linktype = reader.linktype
    packets = []
    for data, meta in reader:
        ts_ns = meta.sec * 1_000_000_000 + meta.usec * (1 if reader.nano else 1000)
        packets.append(RawPacket(ts_ns=ts_ns, linktype=linktype, wirelen=meta.wirelen, data=data))
    reader.close()
    return packets


def _five_tuple(packet: RawPacket) -> tuple[str, tuple[str, int], tuple[str, int]] | None:
    frame = Ether(packet.data) if packet.linktype == 1 else CookedLinux(packet.data)
    ip = frame.getlayer(IP) or frame.getlayer(IPv6)
    l4 = frame.getlayer(TCP) or frame.getlayer(UDP)
    if ip is None or l4 is None:
        return None
    proto = "tcp" if isinstance(l4, TCP) else "udp"
    a, b = (ip.src, l4.sport), (ip.dst, l4.dport)
    return proto, min(a, b), max(a, b)


def build_messages(
    packets: list[RawPacket], node: str, rules_for: Any, segment_packets: int = 8
) -> list[MatchedStream]:
    """One message per segment of up to ``segment_packets`` packets of each 5-tuple."""
    flows: dict[Any, list[RawPacket]] = {}
    for packet in packets:
        key = _five_tuple(packet)
        if key is not None:
            flows.setdefault(key, []).append(packet)
    messages = []
    for n, ((proto, a, b), flow) in enumerate(sorted(flows.items(), key=lambda kv: str(kv[0]))):
        rules = rules_for(proto, a, b)
        if not rules:
            continue
        client, server = (a, b) if b[1] < a[1] else (b, a)
        segments = [flow[i : i + segment_packets] for i in range(0, len(flow), segment_packets)]
        for index, segment in enumerate(segments):
            record = StreamRecord(
                stream_id=f"{node}-{n:04d}",
                segment=index,
                closed=index == len(segments) - 1,
                node=Node(name=node),
                layer4=proto,
                src=Endpoint(ip=client[0], port=client[1]),
                dst=Endpoint(ip=server[0], port=server[1]),
                first_ts_ns=segment[0].ts_ns,
                last_ts_ns=segment[-1].ts_ns,
                entries=(
                    {
                        "index": 0,
                        "protocol": {"name": "dns" if 53 in (a[1], b[1]) else proto},
                        "src": {"ip": client[0], "name": ""},
                        "dst": {"ip": server[0], "name": f"svc-{server[1]}.test"},
                    },
                ),
                packets=tuple(segment),
            )
            messages.append(
                MatchedStream(record=record, rules=rules, matched_entries={r: (0,) for r in rules})
            )
    return messages


def web_and_dns(proto: str, a: tuple[str, int], b: tuple[str, int]) -> dict[str, RuleSettings]:
    rules: dict[str, RuleSettings] = {}
    ports = {a[1], b[1]}
    if 80 in ports:
        rules["web"] = RuleSettings(retention_days=1, lock_mode="GOVERNANCE")
    if 53 in ports:
        rules["dns"] = RuleSettings(retention_days=1, lock_mode="COMPLIANCE", legal_hold=True)
    return rules


@dataclass
class SinkHarness:
    stack: LocalStack
    tmp: Path
    tag: str = field(default_factory=lambda: uuid.uuid4().hex[:10])
    services: list[Any] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.settings = self.stack.settings.model_copy(
            update={"matched_topic": f"matched-{self.tag}", "node_name": "sink-test"}
        )
        self.prefix = f"t-{self.tag}"
        self.sink_env = {
            "SINK_GROUP": f"sink-{self.tag}",
            "SINK_PREFIX": self.prefix,
            "SINK_MAX_BATCH_BYTES": str(16 * 1024),
            "SINK_MAX_BATCH_AGE_S": "1",
            "SINK_DEFAULT_RETENTION_DAYS": "1",
            "SINK_SPILL_DIR": str(self.tmp / "spill"),
            "SINK_RETRY_BASE_S": "0.2",
            "SINK_RETRY_MAX_S": "2",
            "SINK_STATS_INTERVAL_S": "5",
            "SINK_SHUTDOWN_TIMEOUT_S": "120",
        }
        self.store = MinioStore(make_store_client(self.settings), self.settings.s3_bucket)

    def sink_settings(self, **overrides: Any) -> SinkSettings:
        values = {SinkSettings.model_fields[k].validation_alias: v for k, v in overrides.items()}
        return load_sink_settings(**{**self.sink_env, **values})  # type: ignore[arg-type]

    def env(self) -> dict[str, str]:
        env = {**os.environ, **settings_env(self.settings), **self.sink_env}
        env["PYTHONUNBUFFERED"] = "1"
        return env

    async def create_topic(self) -> None:
        await ensure_topics(self.settings, [TopicSpec(self.settings.matched_topic, PARTITIONS)])

    async def produce(self, messages: list[MatchedStream]) -> None:
        producer = make_producer(self.settings)
        await producer.start()
        try:
            for message in messages:
                await producer.send(
                    self.settings.matched_topic, encode_matched(message), key=message.key
                )
            await producer.flush()
        finally:
            await producer.stop()

    # --- the sink, in-process or as a child process ----------------------------------------

    async def run_inprocess(self, **overrides: Any) -> tuple[asyncio.Event, asyncio.Task[Any]]:
        stop = asyncio.Event()
        settings = self.sink_settings(**overrides)
        task = asyncio.create_task(run_sink(self.settings, settings, stop, self.services.append))
        return stop, task

    def spawn(self, log_name: str) -> subprocess.Popen[bytes]:
        log = open(self.tmp / log_name, "ab")  # noqa: SIM115 - closed with the process
        return subprocess.Popen(
            [str(Path(sys.executable).parent / "streamtap"), "sink"],
            env=self.env(),
            stdout=log,
            stderr=subprocess.STDOUT,
        )

    def write_directly(
        self, messages: list[MatchedStream], batches: int, default_retention: int | None = 1
    ) -> list[PlannedObject]:
        """Store messages as ``batches`` batches of one partition with the sink's writer, no
        Kafka: for tests about what is in the bucket rather than how it got there."""
        writer = BatchWriter(self.store)
        options = PlanOptions(default_prefix=self.prefix, default_retention_days=default_retention)
        per = -(-len(messages) // batches)
        written: list[PlannedObject] = []
        base_ms = int(time.time() * 1000)
        for b in range(batches):
            items = tuple(
                Consumed(0, i, base_ms, 100, MatchedPackets.of(m))
                for i, m in enumerate(messages)
                if b * per <= i < (b + 1) * per
            )
            for obj in plan_batch(ClosedBatch(0, items, "size"), options):
                writer.write(obj)
                written.append(obj)
        return written

    # --- what is in the bucket -------------------------------------------------------------

    def manifests(self) -> list[dict[str, Any]]:
        keys = [k for k in self.store.list_keys(self.prefix + "/") if k.endswith(MANIFEST_SUFFIX)]
        return [orjson.loads(self.store.get(k)) for k in keys]

    def stored_segments(self) -> Counter[tuple[str, str, int]]:
        """(rule, stream id, segment) -> how many objects hold it."""
        found: Counter[tuple[str, str, int]] = Counter()
        for manifest in self.manifests():
            for stream in manifest["streams"]:
                found[(manifest["rule"]["name"], stream["id"], stream["segment"])] += 1
        return found

    async def wait_for(self, expected: set[tuple[str, str, int]]) -> None:
        deadline = time.monotonic() + WAIT_BOUND_S
        while time.monotonic() < deadline:
            found = await asyncio.to_thread(self.stored_segments)
            if expected <= set(found):
                return
            await asyncio.sleep(0.5)
        missing = expected - set(await asyncio.to_thread(self.stored_segments))
        raise AssertionError(f"{len(missing)} segments never stored, e.g. {sorted(missing)[:3]}")

    def stored_packets(self, rule: str) -> Counter[tuple[int, bytes]]:
        packets: Counter[tuple[int, bytes]] = Counter()
        for manifest in self.manifests():
            if manifest["rule"]["name"] != rule:
                continue
            reader = RawPcapReader(io.BytesIO(self.store.get(manifest["key"])))
            for data, meta in reader:
                packets[(meta.sec * 1_000_000_000 + meta.usec, data)] += 1
        return packets


def expected_segments(messages: list[MatchedStream]) -> set[tuple[str, str, int]]:
    return {(r, m.record.stream_id, m.record.segment) for m in messages for r in m.rules}


def stop_process(proc: subprocess.Popen[bytes], sig: signal.Signals) -> int:
    proc.send_signal(sig)
    return proc.wait(timeout=WAIT_BOUND_S)


@pytest.fixture
async def harness(stack: LocalStack, tmp_path: Path) -> AsyncIterator[SinkHarness]:
    h = SinkHarness(stack, tmp_path)
    await h.create_topic()
    yield h


@pytest.fixture
def corpus_http_dns() -> Iterator[list[RawPacket]]:
    yield capture_packets(CORPUS / "mixed-http-dns-204-304.pcap")


@pytest.fixture
def corpus_sll() -> Iterator[list[RawPacket]]:
    yield capture_packets(DATA / "kafka-metadata-produce-sll.pcap")


@pytest.fixture
def helpers() -> Any:
    """Module-level helpers, as a namespace (tests import nothing from conftest)."""
    return sys.modules[__name__]
