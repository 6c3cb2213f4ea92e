"""Record, then investigate, the way a user does it, on the real stack.

``streamtap sensor --pcap`` -> ``streamtap pipeline`` (RECORDING_KFL="http or dns") ->
``streamtap sink`` -> SeaweedFS, then ``streamtap tap --pcap s3://bucket/prefix/`` and the
dashboard's API: every HTTP and DNS entry of the capture is there with tshark's fields, names
come back from the recording's resolution data, and each stream's PCAP from the dashboard is
byte-identical to that stream's packets in the original capture (read with scapy, not with
anything streamtap wrote).
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from scapy.layers.inet import IP, TCP, UDP
from scapy.layers.inet6 import IPv6
from scapy.layers.l2 import Ether
from scapy.utils import RawPcapReader

from pipeline.kfl import compile as kfl_compile
from pipeline.testing import WorkerProcess, create_topics, isolated_settings, settings_env
from replay.dissect import dissect_capture
from stack import LocalStack
from streamtap.objectstore import make_minio

pytestmark = pytest.mark.e2e

CORPUS = Path(__file__).parents[2] / "data" / "corpus"
CAPTURE = "mixed-wikipedia-http-dns.pcap"
TRUTH = {
    Path(f["file"]).name: f for f in json.loads((CORPUS / "manifest.json").read_text())["files"]
}[CAPTURE]
STREAMTAP = str(Path(sys.executable).parent / "streamtap")
BOUND_S = 240.0  # only so a broken stage fails the test instead of hanging it


def _frames_by_pair(path: Path) -> dict[frozenset[tuple[str, int]], list[tuple[int, bytes]]]:
    """(ts_ns, bytes) of every TCP/UDP frame of the capture, by endpoint pair (scapy)."""
    out: dict[frozenset[tuple[str, int]], list[tuple[int, bytes]]] = {}
    reader = RawPcapReader(str(path))
    for data, meta in reader:
        ts = meta.sec * 1_000_000_000 + meta.usec * (1 if reader.nano else 1000)
        frame = Ether(data)
        ip = frame.getlayer(IP) or frame.getlayer(IPv6)
        l4 = frame.getlayer(TCP) or frame.getlayer(UDP)
        if ip is None or l4 is None:
            continue
        key = frozenset({(ip.src, int(l4.sport)), (ip.dst, int(l4.dport))})
        out.setdefault(key, []).append((ts, bytes(data)))
    reader.close()
    return out


def _pcap_frames(data: bytes, tmp: Path) -> list[tuple[int, bytes]]:
    path = tmp / f"{uuid.uuid4().hex}.pcap"
    path.write_bytes(data)
    reader = RawPcapReader(str(path))
    frames = [
        (meta.sec * 1_000_000_000 + meta.usec * (1 if reader.nano else 1000), bytes(d))
        for d, meta in reader
    ]
    reader.close()
    return frames


def _manifest_streams(settings: Any, prefix: str) -> int:
    client = make_minio(settings)
    total = 0
    for obj in client.list_objects(settings.s3_bucket, prefix=prefix, recursive=True):
        if obj.object_name.endswith(".manifest.json"):
            resp = client.get_object(settings.s3_bucket, obj.object_name)
            try:
                total += len(json.loads(resp.read())["streams"])
            finally:
                resp.close()
                resp.release_conn()
    return total


@pytest.fixture
def recorded(stack: LocalStack, tmp_path: Path) -> Iterator[tuple[Any, str, dict[str, str]]]:
    """The capture recorded into the bucket by the real services; (settings, prefix, env)."""
    tag = uuid.uuid4().hex[:10]
    settings = isolated_settings(stack.settings, tag)
    asyncio.run(create_topics(settings))
    prefix = f"e2e-replay-{tag}"
    env = {**os.environ, **settings_env(settings)}
    env.pop("STREAMTAP_CONFIG", None)
    env.update(
        STREAMTAP_HOME=str(tmp_path / "home"),
        SINK_PREFIX=prefix,
        SINK_GROUP=f"sink-{tag}",
        SINK_MAX_BATCH_AGE_S="1",
        SINK_SPILL_DIR=str(tmp_path / "spill"),
    )
    worker = WorkerProcess(
        settings, tmp_path / "worker", app_id=f"p-{tag}", recording_kfl="http or dns"
    ).start()
    sink_log = open(tmp_path / "sink.log", "ab")  # noqa: SIM115  closed below
    sink = subprocess.Popen([STREAMTAP, "sink"], env=env, stdout=sink_log, stderr=sink_log)
    try:
        subprocess.run(
            [STREAMTAP, "sensor", "--pcap", str(CORPUS / CAPTURE), "--node", "e2e-node"],
            env=env, check=True, capture_output=True, timeout=BOUND_S,
        )  # fmt: skip
        records = list(dissect_capture((CORPUS / CAPTURE).read_bytes(), "e2e-node"))
        q = kfl_compile("http or dns")
        expected = sum(1 for r in records if any(q(e) for e in r.entries))
        deadline = time.monotonic() + BOUND_S
        while _manifest_streams(settings, prefix + "/") < expected:
            worker.alive()
            assert sink.poll() is None, (tmp_path / "sink.log").read_text()[-3000:]
            assert time.monotonic() < deadline, (tmp_path / "sink.log").read_text()[-3000:]
            time.sleep(0.5)
        yield settings, prefix, env
    finally:
        sink.send_signal(signal.SIGTERM)
        try:
            sink.wait(60)
        except subprocess.TimeoutExpired:
            sink.kill()
        sink_log.close()
        worker.stop()


def _start_tap(env: dict[str, str], source: str, db: Path) -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen(
        [STREAMTAP, "tap", "--pcap", source, "--port", "0", "--db", str(db)],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert proc.stdout is not None
    # readline blocks; a timer kills a tap that never prints its URL so the test fails instead
    watchdog = threading.Timer(60, proc.kill)
    watchdog.start()
    try:
        for line in proc.stdout:
            if line.startswith("Dashboard: "):
                return proc, line.split(" ", 1)[1].strip().rstrip("/")
    finally:
        watchdog.cancel()
    proc.kill()
    raise AssertionError(f"tap printed no URL: {proc.stderr.read() if proc.stderr else ''}")


def _entries(api: httpx.Client, q: str) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    params: dict[str, Any] = {"q": q, "size": 50}
    while True:
        page = api.get("/api/entries", params=params).raise_for_status().json()
        rows += page["rows"]
        if not page["cursor"]:
            return rows
        params["cursor"] = page["cursor"]


def test_recorded_capture_opens_in_the_dashboard_as_it_was(
    recorded: tuple[Any, str, dict[str, str]], tmp_path: Path
) -> None:
    settings, prefix, env = recorded
    proc, url = _start_tap(env, f"s3://{settings.s3_bucket}/{prefix}/", tmp_path / "tap.db")
    try:
        with httpx.Client(base_url=url, timeout=30) as api:
            deadline = time.monotonic() + BOUND_S
            while True:
                jobs = api.get("/api/status").json()["jobs"]
                if jobs and jobs[0]["state"] not in ("queued", "running"):
                    break
                assert time.monotonic() < deadline, jobs
                time.sleep(0.2)
            assert jobs[0]["state"] == "done", jobs[0]
            assert jobs[0]["objects_failed"] == 0

            # Every HTTP transaction tshark saw, with its fields.
            http = _entries(api, "http")
            got = sorted((r["src_ip"], r["src_port"], r["method"], r["summary"], r["status"])
                         for r in http)  # fmt: skip
            want = sorted(
                (t["src"], t["sport"], t["method"], f"{t['method']} {t['uri']}", t["status"])
                for t in TRUTH["http_transactions"]
            )
            assert got == want

            # Replayed as the node that recorded it: the sensor's own stream ids come back.
            sensor_ids = {
                r.stream_id for r in dissect_capture((CORPUS / CAPTURE).read_bytes(), "e2e-node")
            }
            assert {r["stream"] for r in http} <= sensor_ids
            assert api.get(f"/api/entries/{http[0]['id']}").json()["node"]["name"] == "e2e-node"

            # Every DNS query tshark saw (by client, port, id, name), and every response.
            dns = [api.get(f"/api/entries/{r['id']}").json() for r in _entries(api, "dns")]
            queries = {
                (e["src"]["ip"], e["src"]["port"], e["request"]["id"],
                 e["request"]["questions"][0]["name"])
                for e in dns if e["request"].get("questions")
            }  # fmt: skip
            truth_q = {
                (m["src"], m["sport"], m["id"], m["qname"])
                for m in TRUTH["dns_messages"]
                if not m["response"]
            }
            assert queries == truth_q
            answered = sum(1 for e in dns if "response" in e)
            assert answered == sum(1 for m in TRUTH["dns_messages"] if m["response"])

            # Names restored from the recording: a server the capture resolved by DNS shows the
            # name it was resolved as (tshark's Host header says which).
            resolved = {
                a["data"]
                for m in TRUTH["dns_messages"]
                for a in m["answers"]
                if a.get("type_name") in ("A", "AAAA")
            }
            named = [r for r in http if r["dst_ip"] in resolved]
            assert named, "the capture resolves some of its HTTP servers"
            for row in named:
                assert row["dst_name"], row

            # Each stream's PCAP is byte-identical to its packets in the original capture.
            original = _frames_by_pair(CORPUS / CAPTURE)
            streams = {r["stream"]: r for r in http + _entries(api, "dns")}
            for stream_id, row in streams.items():
                resp = api.get(f"/api/streams/{stream_id}/pcap").raise_for_status()
                pair = frozenset(
                    {(row["src_ip"], row["src_port"]), (row["dst_ip"], row["dst_port"])}
                )
                assert _pcap_frames(resp.content, tmp_path) == original[pair], stream_id
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
