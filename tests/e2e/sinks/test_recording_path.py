"""The whole recording path as users run it: sensor -> pipeline -> sink -> SeaweedFS.

For a corpus capture and the rule ``dns``, the bucket must hold exactly the packets of the
capture's DNS flows (port 53, and 5353 for multicast DNS, which is DNS on the wire; found
here with scapy, not with streamtap's own decoder), each byte for byte; tshark (when
installed) must open every object, and ``verify`` must pass.
"""

from __future__ import annotations

import asyncio
import io
import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from collections import Counter
from pathlib import Path

import orjson
import pytest
from scapy.layers.inet import TCP, UDP
from scapy.layers.l2 import Ether
from scapy.utils import RawPcapReader

from sinks.keys import MANIFEST_SUFFIX
from sinks.s3 import MinioStore, make_store_client
from stack import LocalStack, settings_env
from stack.ports import free_port
from stack.topics import TopicSpec, ensure_topics

pytestmark = pytest.mark.e2e

CAPTURE = Path(__file__).parents[2] / "data" / "corpus" / "mixed-http-dns-204-304.pcap"
STREAMTAP = str(Path(sys.executable).parent / "streamtap")
BOUND_S = 300.0  # only so a broken stage fails instead of hanging


def _dns_frames() -> Counter[tuple[int, bytes]]:
    frames: Counter[tuple[int, bytes]] = Counter()
    reader = RawPcapReader(str(CAPTURE))
    scale = 1 if reader.nano else 1000
    for data, meta in reader:
        l4 = Ether(data).getlayer(UDP) or Ether(data).getlayer(TCP)
        if l4 is not None and {53, 5353} & {l4.sport, l4.dport}:
            frames[(meta.sec * 1_000_000_000 + meta.usec * scale, data)] += 1
    return frames


def _stored(store: MinioStore, prefix: str) -> tuple[Counter[tuple[int, bytes]], list[str]]:
    frames: Counter[tuple[int, bytes]] = Counter()
    keys = []
    for key in store.list_keys(prefix):
        if key.endswith(MANIFEST_SUFFIX):
            manifest = orjson.loads(store.get(key))
            keys.append(manifest["key"])
            reader = RawPcapReader(io.BytesIO(store.get(manifest["key"])))
            frames.update((m.sec * 1_000_000_000 + m.usec, d) for d, m in reader)
    return frames, keys


async def test_sensor_pipeline_sink_records_exactly_the_matching_packets(
    stack: LocalStack, tmp_path: Path
) -> None:
    tag = uuid.uuid4().hex[:10]
    settings = stack.settings.model_copy(
        update={"streams_topic": f"streams-{tag}", "matched_topic": f"matched-{tag}"}
    )
    await ensure_topics(
        settings, [TopicSpec(settings.streams_topic, 3), TopicSpec(settings.matched_topic, 3)]
    )
    prefix = f"e2e-{tag}"
    env = {
        **os.environ,
        **settings_env(settings),
        "RECORDING_KFL": "dns",
        "NODE_NAME": "e2e-node",
        "SINK_GROUP": f"e2e-sink-{tag}",
        "SINK_PREFIX": prefix,
        "SINK_MAX_BATCH_AGE_S": "1",
        "SINK_DEFAULT_RETENTION_DAYS": "1",
        "SINK_SPILL_DIR": str(tmp_path / "spill"),
    }
    expected = _dns_frames()
    assert expected, "the capture should hold DNS traffic"
    store = MinioStore(make_store_client(settings), settings.s3_bucket)

    logs = {name: open(tmp_path / f"{name}.log", "wb") for name in ("pipeline", "sink")}  # noqa: SIM115
    procs = {
        "pipeline": subprocess.Popen(
            [STREAMTAP, "pipeline", "--app-id", f"e2e-{tag}", "--web-port", str(free_port())],
            env=env,
            stdout=logs["pipeline"],
            stderr=subprocess.STDOUT,
        ),
        "sink": subprocess.Popen(
            [STREAMTAP, "sink"], env=env, stdout=logs["sink"], stderr=subprocess.STDOUT
        ),
    }
    try:
        sensor = subprocess.run(
            [STREAMTAP, "sensor", "--pcap", str(CAPTURE)],
            env=env,
            capture_output=True,
            text=True,
            timeout=BOUND_S,
            check=False,
        )
        assert sensor.returncode == 0, sensor.stderr[-2000:]
        deadline = time.monotonic() + BOUND_S
        stored, keys = await asyncio.to_thread(_stored, store, prefix + "/")
        while stored != expected and time.monotonic() < deadline:
            assert all(p.poll() is None for p in procs.values()), "a service died"
            await asyncio.sleep(1)
            stored, keys = await asyncio.to_thread(_stored, store, prefix + "/")
    finally:
        for proc in procs.values():
            proc.send_signal(signal.SIGTERM)
        codes = {name: proc.wait(timeout=120) for name, proc in procs.items()}
        for log in logs.values():
            log.close()
    assert codes["sink"] == 0, (tmp_path / "sink.log").read_text()[-3000:]
    assert stored == expected  # exactly the DNS flows' frames, byte for byte, each once

    if shutil.which("tshark"):
        for key in keys:
            path = tmp_path / "object.pcap"
            path.write_bytes(store.get(key))
            done = subprocess.run(["tshark", "-r", str(path)], capture_output=True, check=False)
            assert done.returncode == 0, done.stderr

    verify = subprocess.run(
        [STREAMTAP, "verify", f"s3://{settings.s3_bucket}/{prefix}/"],
        env=env,
        capture_output=True,
        text=True,
        timeout=BOUND_S,
        check=False,
    )
    assert verify.returncode == 0, verify.stdout + verify.stderr
