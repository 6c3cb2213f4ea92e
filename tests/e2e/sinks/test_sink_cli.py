"""``streamtap sink`` and ``streamtap verify`` run the way a user runs them, on the real stack."""

from __future__ import annotations

import asyncio
import io
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import orjson
import pytest

from sinks.keys import MANIFEST_SUFFIX
from sinks.s3 import MinioStore, make_store_client
from stack import LocalStack, settings_env
from stack.topics import TopicSpec, ensure_topics
from streamtap.kafka import make_producer
from streamtap.schema import (
    Endpoint,
    MatchedStream,
    Node,
    RawPacket,
    RuleSettings,
    StreamRecord,
    encode_matched,
)

pytestmark = pytest.mark.e2e

STREAMTAP = str(Path(sys.executable).parent / "streamtap")
BOUND_S = 240.0  # only so a broken sink fails instead of hanging


def _message(n: int) -> MatchedStream:
    ts = 1_795_773_600_000_000_000 + n * 1000
    frame = bytes.fromhex("ffffffffffff0200000000010800") + n.to_bytes(4, "big") * 10
    record = StreamRecord(
        stream_id=f"cli-{n}",
        closed=True,
        node=Node(name="cli-node"),
        layer4="udp",
        src=Endpoint(ip="10.1.0.1", port=5000 + n),
        dst=Endpoint(ip="10.1.0.2", port=53),
        first_ts_ns=ts,
        last_ts_ns=ts,
        packets=(RawPacket(ts_ns=ts, linktype=1, wirelen=len(frame), data=frame),),
    )
    return MatchedStream(record=record, rules={"cli": RuleSettings(retention_days=1)})


def _run(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [STREAMTAP, *args], env=env, capture_output=True, text=True, timeout=BOUND_S, check=False
    )


async def test_sink_then_verify_then_tamper(stack: LocalStack, tmp_path: Path) -> None:
    tag = uuid.uuid4().hex[:10]
    settings = stack.settings.model_copy(update={"matched_topic": f"cli-{tag}"})
    env = {
        **os.environ,
        **settings_env(settings),
        "SINK_GROUP": f"cli-{tag}",
        "SINK_PREFIX": f"cli-{tag}",
        "SINK_MAX_BATCH_AGE_S": "1",
        "SINK_SPILL_DIR": str(tmp_path / "spill"),
    }
    await ensure_topics(settings, [TopicSpec(settings.matched_topic, 2)])
    producer = make_producer(settings)
    await producer.start()
    try:
        for n in range(20):
            message = _message(n)
            await producer.send(settings.matched_topic, encode_matched(message), key=message.key)
        await producer.flush()
    finally:
        await producer.stop()

    log = open(tmp_path / "sink.log", "wb")  # noqa: SIM115 - closed below
    proc = subprocess.Popen([STREAMTAP, "sink"], env=env, stdout=log, stderr=subprocess.STDOUT)
    store = MinioStore(make_store_client(settings), settings.s3_bucket)
    try:
        deadline = time.monotonic() + BOUND_S
        ids: set[str] = set()
        while len(ids) < 20 and time.monotonic() < deadline:
            await asyncio.sleep(0.5)
            ids = set()
            for key in store.list_keys(f"cli-{tag}/"):
                if key.endswith(MANIFEST_SUFFIX):
                    ids |= {s["id"] for s in orjson.loads(store.get(key))["streams"]}
        assert ids == {f"cli-{n}" for n in range(20)}
    finally:
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(timeout=BOUND_S)
        log.close()
    assert code == 0, (tmp_path / "sink.log").read_text()[-2000:]
    assert "sink stopped: batches=" in (tmp_path / "sink.log").read_text()

    url = f"s3://{settings.s3_bucket}/cli-{tag}/"
    done = _run(["verify", url], env)
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.startswith("OK: ")

    victim = next(k for k in store.list_keys(f"cli-{tag}/") if k.endswith(".pcap"))
    store.client.put_object(settings.s3_bucket, victim, io.BytesIO(b"forged"), 6)
    done = _run(["verify", "--json", url], env)
    assert done.returncode == 1
    report = orjson.loads(done.stdout)
    assert {"kind": "altered", "key": victim} in [
        {"kind": p["kind"], "key": p["key"]} for p in report["problems"]
    ]


def test_verify_refuses_a_non_s3_url(stack: LocalStack) -> None:
    done = _run(["verify", "http://example/bucket"], {**os.environ, **settings_env(stack.settings)})
    assert done.returncode == 2 and "s3://bucket" in done.stderr
