"""`streamtap sensor --pcap` against the real local stack, run as a user runs it.

The records a consumer reads back from Kafka must be exactly the records the engine makes of
the same capture in-process, even when the broker is stopped and restarted mid-run.
"""

from __future__ import annotations

import asyncio
import os
import struct
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from aiokafka.admin import NewTopic

from producers.capture import open_capture, write_pcap
from producers.decode.synth import ACK, FIN, PSH, SYN, tcp_frame, udp_frame
from producers.engine import Engine
from stack import LocalStack
from streamtap.kafka import make_admin, make_consumer
from streamtap.schema import StreamRecord, decode_record

pytestmark = pytest.mark.e2e

CORPUS = Path(__file__).parents[2] / "data" / "corpus"
STREAMTAP = [str(Path(sys.executable).parent / "streamtap")]


def _dns_query(ident: int, name: str) -> bytes:
    qname = b"".join(bytes([len(p)]) + p.encode() for p in name.split(".")) + b"\0"
    return struct.pack("!HHHHHH", ident, 0x0100, 1, 0, 0, 0) + qname + struct.pack("!HH", 1, 1)


def _synthetic_capture(path: Path, seconds: int, per_second: int) -> None:
    """DNS lookups and small HTTP exchanges spread evenly over ``seconds`` of packet time."""
    frames = []
    t0 = 1_790_000_000 * 10**9
    n = 0
    for s in range(seconds):
        for i in range(per_second):
            n += 1
            ts = t0 + s * 10**9 + i * (10**9 // per_second)
            port = 10000 + n % 50000
            frames.append(
                udp_frame(
                    ts, "10.1.0.2", port, "10.1.0.53", 53, _dns_query(n & 0xFFFF, f"h{n}.test")
                )
            )
            if i % 4 == 0:
                req = f"GET /item/{n} HTTP/1.1\r\nHost: shop.test\r\n\r\n".encode()
                resp = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
                c, srv = ("10.1.0.2", port), ("10.1.0.80", 80)
                frames += [
                    tcp_frame(ts + 1, *c, *srv, 100, 0, SYN),
                    tcp_frame(ts + 2, *srv, *c, 500, 101, SYN | ACK),
                    tcp_frame(ts + 3, *c, *srv, 101, 501, ACK | PSH, req),
                    tcp_frame(ts + 4, *srv, *c, 501, 101 + len(req), ACK | PSH, resp),
                    tcp_frame(ts + 5, *c, *srv, 101 + len(req), 501 + len(resp), FIN | ACK),
                    tcp_frame(ts + 6, *srv, *c, 501 + len(resp), 102 + len(req), FIN | ACK),
                ]
    with path.open("wb") as out:
        write_pcap(out, frames, 1)


def _expected(path: Path, node: str) -> dict[tuple[str, int], StreamRecord]:
    records = Engine(node).feed_all(open_capture(path))
    return {(r.stream_id, r.segment): r for r in records}


async def _make_topic(stack: LocalStack, name: str) -> None:
    admin = make_admin(stack.settings)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(name, num_partitions=3, replication_factor=1)])
    finally:
        await admin.close()


async def _consume(stack: LocalStack, topic: str, want: int, idle_s: float = 15.0) -> list[bytes]:
    """Every value on the topic, until ``want`` arrived and nothing more came for a while."""
    consumer = make_consumer(stack.settings, topic, group_id=None)
    await consumer.start()
    values: list[bytes] = []
    last = time.monotonic()
    try:
        while time.monotonic() - last < (2.0 if len(values) >= want else idle_s):
            batch = await consumer.getmany(timeout_ms=500)
            for messages in batch.values():
                for message in messages:
                    assert message.key is not None and message.value is not None
                    values.append(message.value)
                    last = time.monotonic()
    finally:
        await consumer.stop()
    return values


def _env(stack: LocalStack, topic: str) -> dict[str, str]:
    return os.environ | stack.env() | {"STREAMS_TOPIC": topic, "NODE_NAME": "e2e-node"}


def _check_exact(values: list[bytes], expected: dict[tuple[str, int], StreamRecord]) -> None:
    seen: dict[tuple[str, int], StreamRecord] = {}
    for value in values:
        record = decode_record(value)
        key = (record.stream_id, record.segment)
        if key in seen:
            assert seen[key] == record, f"duplicate of {key} differs"
        seen[key] = record
    assert set(seen) == set(expected)
    for key, record in expected.items():
        assert seen[key].packets == record.packets, f"packets of {key} differ"
        assert seen[key].entries == record.entries, f"entries of {key} differ"


def test_sensor_publishes_a_corpus_capture(stack: LocalStack) -> None:
    capture = CORPUS / "mixed-http-dns-204-304.pcap"
    topic = f"streams-{uuid.uuid4().hex[:8]}"
    asyncio.run(_make_topic(stack, topic))
    run = subprocess.run(
        [*STREAMTAP, "sensor", "--pcap", str(capture)],
        env=_env(stack, topic),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 0, run.stderr
    assert "records" in run.stderr  # the summary says what was done
    expected = _expected(capture, "e2e-node")
    values = asyncio.run(_consume(stack, topic, len(expected)))
    _check_exact(values, expected)


def test_broker_restart_mid_run_loses_nothing(stack: LocalStack, tmp_path: Path) -> None:
    capture = tmp_path / "paced.pcap"
    _synthetic_capture(capture, seconds=20, per_second=40)
    topic = f"streams-{uuid.uuid4().hex[:8]}"
    asyncio.run(_make_topic(stack, topic))
    sensor = subprocess.Popen(
        [*STREAMTAP, "sensor", "--pcap", str(capture), "--speed", "2", "--report-every", "1"],
        env=_env(stack, topic),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        time.sleep(3)  # the sensor is publishing at capture pace (20 s of packets in 10 s)
        assert sensor.poll() is None, "the sensor finished before the broker could be stopped"
        assert stack.kafka.stop()
        time.sleep(6)  # broker away; the sensor must wait, not drop
        assert stack.kafka.start() is not None
        asyncio.run(stack.kafka.wait_ready(120))
        _, stderr = sensor.communicate(timeout=400)
    finally:
        if sensor.poll() is None:
            sensor.kill()
    assert sensor.returncode == 0, stderr
    assert "DROPPED" not in stderr
    # The outage must have reached the sensor: either our publisher retried a failed send or
    # aiokafka rode it out inside its request timeout (it logs the refused connections).
    outage_seen = "retrying" in stderr or "Connect call failed" in stderr
    assert outage_seen, "the outage never reached the sensor: " + stderr[-2000:]
    expected = _expected(capture, "e2e-node")
    values = asyncio.run(_consume(stack, topic, len(expected)))
    _check_exact(values, expected)
