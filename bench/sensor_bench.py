"""Sensor benchmark, one command: ``.venv/bin/python bench/sensor_bench.py [--packets N]``.

Generates a large mixed capture (HTTP/1.1 keep-alive sessions, DNS over UDP, noise: ARP, ICMP,
bare TCP and UDP; some responses out of order or retransmitted; seed 7, so every run gets the
same file) into a temp pcap, then measures in one run, in CPU time of this process (one core):

  (a) reading only (pcap -> frames)
  (b) reading + decode + reassembly + dissection into StreamRecords (the Engine)
      (b-core: the same without reading, frames already in memory;
       b-bare: b-core with every stream left bare, i.e. what dissection costs on top)
  (c) (b) plus publishing to a real Kafka broker: the sensor service (``run_sensor`` with a
      ``KafkaOutlet`` and the sensor's producer) against a private local stack started for the
      run; CPU of this process (all threads) and wall time until every record is acknowledged
  (d) tshark dissecting the same file, ``-o tcp.reassemble_out_of_order:TRUE`` (child CPU)

and prints packets/s and MB/s of each, our rates as ratios to tshark's, and whether (b) meets
the 150,000 packets/s goal. (a), (b) are the best of ``--repeat`` runs, (c) of
``--kafka-repeat``. (b) and (c) run with the GC settings ``streamtap sensor`` uses
(``producers.service.tune_gc``). Nothing is cached across runs: each builds a fresh Engine.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import logging
import os
import random
import resource
import shutil
import struct
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import producers.dissect as dissect
from producers.capture import Frame, open_capture, write_pcap
from producers.decode.synth import (
    ACK,
    FIN,
    PSH,
    SYN,
    ether,
    ipv4,
    tcp_frame,
    udp_frame,
)
from producers.engine import Engine, EngineConfig
from producers.service import tune_gc

MS = 1_000_000
SEC = 1_000_000_000
MSS = 1448


def _http_session(rnd: random.Random, t: int, n: int) -> list[Frame]:
    client = f"10.{rnd.randrange(1, 250)}.{rnd.randrange(256)}.{rnd.randrange(1, 255)}"
    server = f"10.200.{rnd.randrange(256)}.{rnd.randrange(1, 255)}"
    cport, sport = rnd.randrange(32768, 61000), rnd.choice((80, 8080, 3000))
    cseq, sseq = rnd.getrandbits(32), rnd.getrandbits(32)
    out = [
        tcp_frame(t, client, cport, server, sport, cseq, 0, SYN),
        tcp_frame(t + MS, server, sport, client, cport, sseq, cseq + 1, SYN | ACK),
        tcp_frame(t + 2 * MS, client, cport, server, sport, cseq + 1, sseq + 1, ACK),
    ]
    cseq, sseq, t = cseq + 1, sseq + 1, t + 2 * MS
    for i in range(n):
        t += rnd.randrange(1, 200) * MS
        req = (
            f"GET /api/v1/items/{rnd.randrange(10**6)}?page={i} HTTP/1.1\r\n"
            f"Host: shop-{sport}.example\r\nUser-Agent: bench/1.0\r\nAccept: */*\r\n\r\n"
        ).encode()
        out.append(tcp_frame(t, client, cport, server, sport, cseq, sseq, PSH | ACK, req))
        cseq = (cseq + len(req)) & 0xFFFFFFFF
        body = b"{" + b'"k": "v", ' * rnd.randrange(20, 600) + b"}"
        resp = (
            b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
            b"Content-Length: %d\r\n\r\n" % len(body)
        ) + body
        segs = []
        for off in range(0, len(resp), MSS):
            t += 200_000
            chunk = resp[off : off + MSS]
            segs.append(
                tcp_frame(
                    t,
                    server,
                    sport,
                    client,
                    cport,
                    (sseq + off) & 0xFFFFFFFF,
                    cseq,
                    ACK | (PSH if off + MSS >= len(resp) else 0),
                    chunk,
                )
            )
        if len(segs) >= 3 and rnd.random() < 0.1:  # out of order (times stay ascending)
            (t1, k1, w1, d1), (t2, k2, w2, d2) = segs[1], segs[2]
            segs[1], segs[2] = (t1, k2, w2, d2), (t2, k1, w1, d1)
        if rnd.random() < 0.05:  # a retransmission
            segs.append(segs[rnd.randrange(len(segs))])
        out.extend(segs)
        sseq = (sseq + len(resp)) & 0xFFFFFFFF
        t += MS
        out.append(tcp_frame(t, client, cport, server, sport, cseq, sseq, ACK))
    t += MS
    out.append(tcp_frame(t, client, cport, server, sport, cseq, sseq, FIN | ACK))
    out.append(tcp_frame(t + MS, server, sport, client, cport, sseq, cseq + 1, FIN | ACK))
    out.append(tcp_frame(t + 2 * MS, client, cport, server, sport, cseq + 1, sseq + 1, ACK))
    return out


def _dns_name(name: str) -> bytes:
    return b"".join(bytes([len(p)]) + p.encode() for p in name.split(".")) + b"\x00"


def _dns_pair(rnd: random.Random, t: int) -> list[Frame]:
    client, resolver = f"10.1.{rnd.randrange(256)}.{rnd.randrange(1, 255)}", "10.0.0.53"
    port, qid = rnd.randrange(1024, 65535), rnd.getrandbits(16)
    qname = _dns_name(f"svc{rnd.randrange(5000)}.shop.example")
    question = qname + struct.pack("!HH", 1, 1)
    query = struct.pack("!HHHHHH", qid, 0x0100, 1, 0, 0, 0) + question
    answer = struct.pack("!HHIH4s", 1, 1, 300, 4, bytes([10, 200, rnd.randrange(256), 7]))
    reply = struct.pack("!HHHHHH", qid, 0x8180, 1, 1, 0, 0) + question + b"\xc0\x0c" + answer
    return [
        udp_frame(t, client, port, resolver, 53, query),
        udp_frame(t + rnd.randrange(1, 30) * MS, resolver, 53, client, port, reply),
    ]


def _noise(rnd: random.Random, t: int) -> list[Frame]:
    kind = rnd.randrange(4)
    if kind == 0:  # ARP
        data = ether(b"\x00\x01\x08\x00\x06\x04\x00\x01" + bytes(20), 0x0806)
    elif kind == 1:  # ICMP echo
        data = ether(ipv4("10.9.9.9", "10.9.9.1", 1, b"\x08\x00" + bytes(62)))
    elif kind == 2:  # a bare UDP datagram to some port
        return [
            udp_frame(
                t,
                "10.7.0.1",
                rnd.randrange(1024, 65535),
                "10.7.0.2",
                4789,
                rnd.randbytes(rnd.randrange(20, 400)),
            )
        ]
    else:  # a bare TCP stream (ssh-like), mid-stream, no handshake
        a, b = rnd.randrange(40000, 60000), 22
        seq = rnd.getrandbits(31)
        return [
            tcp_frame(
                t + i * MS, "10.8.0.1", a, "10.8.0.2", b, seq + i * 100, 1, ACK, rnd.randbytes(100)
            )
            for i in range(rnd.randrange(2, 8))
        ]
    return [(t, 1, len(data), data)]


def generate(path: Path, target_packets: int, seed: int = 7) -> int:
    rnd = random.Random(seed)
    frames: list[Frame] = []
    duration = max(60, target_packets // 500) * SEC
    t0 = 1_750_000_000 * SEC
    while len(frames) < target_packets:
        t = t0 + rnd.randrange(duration)
        roll = rnd.random()
        if roll < 0.6:
            frames.extend(_http_session(rnd, t, rnd.randrange(1, 12)))
        elif roll < 0.9:
            frames.extend(_dns_pair(rnd, t))
        else:
            frames.extend(_noise(rnd, t))
    frames.sort(key=lambda f: f[0])
    with path.open("wb") as fh:
        return write_pcap(fh, frames, 1, nano=False)


def _cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def _children_cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def measure(fn: Callable[[], Any], repeat: int) -> tuple[float, Any]:
    """Best CPU time of ``repeat`` runs (least disturbed by the machine's other work)."""
    best, result = float("inf"), None
    for _ in range(repeat):
        start = _cpu()
        result = fn()
        best = min(best, _cpu() - start)
    return best, result


def read_only(path: Path) -> int:
    return sum(1 for _ in open_capture(path))


def engine_from_file(path: Path) -> dict[str, Any]:
    engine = Engine("bench")
    feed = engine.feed
    records = 0
    for frame in open_capture(path):
        records += len(feed(frame))
    records += len(engine.flush())
    return {"records": records, "stats": engine.stats_dict()}


def engine_in_memory(frames: list[Frame]) -> int:
    engine = Engine("bench")
    feed = engine.feed
    records = 0
    for frame in frames:
        records += len(feed(frame))
    return records + len(engine.flush())


def engine_bare(frames: list[Frame]) -> int:
    """(b-core) with every stream left bare: what decode + reassembly + records cost alone."""
    original = dissect.select_dissector
    dissect.select_dissector = lambda *args, **kwargs: None
    try:
        return engine_in_memory(frames)
    finally:
        dissect.select_dissector = original


@dataclass
class PublishRun:
    """What stage (c) measured: this process's CPU (every thread: engine, reader, aiokafka's
    batching and compression) and the wall time, from the first frame until every record is
    acknowledged by the broker."""

    cpu_s: float
    wall_s: float
    records: int
    published: int
    published_bytes: int
    dropped: int
    retries: int


async def _publish_once(path: Path, settings: Any) -> PublishRun:
    """One run of the real sensor service (``run_sensor`` + ``KafkaOutlet``) on ``path``,
    built the way ``streamtap sensor`` builds it (same engine config, same producer:
    ``producers.cli.streams_producer``)."""
    from producers.cli import streams_producer
    from producers.publisher import RecordPublisher
    from producers.service import KafkaOutlet, run_sensor

    engine = Engine(
        "bench",
        EngineConfig(max_record_bytes=max(64 * 1024, settings.max_message_bytes - 64 * 1024)),
    )
    publisher = RecordPublisher(streams_producer(settings), settings.streams_topic)
    await publisher.start()
    outlet = KafkaOutlet(publisher)
    cpu0, wall0 = _cpu(), time.perf_counter()
    report = await run_sensor(open_capture(path), engine, outlet, source=str(path))
    cpu, wall = _cpu() - cpu0, time.perf_counter() - wall0  # run_sensor closed the outlet
    stats = publisher.stats
    return PublishRun(
        cpu,
        wall,
        report.engine["records"],
        stats.published,
        stats.published_bytes,
        stats.dropped,
        stats.retries,
    )


def publish_to_kafka(path: Path, repeat: int) -> PublishRun | None:
    """(c) Engine + publishing to a real Kafka broker: a private ``LocalStack`` (free ports,
    temp home) is started for the run and stopped after it. Best of ``repeat`` runs by CPU.
    Returns None when the stack cannot start here (no java/mvn), with the reason printed."""
    from stack import LocalStack, StackError

    # retried sends are counted and printed in the summary, not logged one by one
    logging.getLogger("streamtap.publisher").setLevel(logging.ERROR)
    logging.getLogger("aiokafka").setLevel(logging.ERROR)
    with tempfile.TemporaryDirectory(prefix="sensor-bench-stack-") as home:
        local = LocalStack.isolated(Path(home))
        guard = local.guard(os.getpid())  # stops the stack should this process be killed
        try:
            try:
                asyncio.run(local.up())
            except StackError as exc:
                print(f"(c) skipped: local stack did not start: {exc}")
                return None
            best: PublishRun | None = None
            for _ in range(repeat):
                run = asyncio.run(_publish_once(path, local.settings))
                if best is None or run.cpu_s < best.cpu_s:
                    best = run
            return best
        finally:
            asyncio.run(local.down())
            guard.terminate()
            guard.wait()


def tshark(path: Path) -> float | None:
    exe = shutil.which("tshark")
    if exe is None:
        return None
    before = _children_cpu()
    subprocess.run(
        [
            exe,
            "-r",
            str(path),
            "-o",
            "tcp.reassemble_out_of_order:TRUE",
            "-T",
            "fields",
            "-e",
            "frame.number",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        check=True,
    )
    return _children_cpu() - before


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--packets", type=int, default=300_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument(
        "--kafka-repeat", type=int, default=2, help="runs of (c), best kept; 0 skips it"
    )
    parser.add_argument("--keep", type=Path, help="also copy the generated pcap here")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "mixed.pcap"
        t = time.perf_counter()
        n = generate(path, args.packets)
        if args.keep:
            shutil.copy(path, args.keep)
        data_mb = sum(len(f[3]) for f in open_capture(path)) / 1e6
        print(
            f"generated {n} packets, {data_mb:.1f} MB of frames, {path.stat().st_size / 1e6:.1f} "
            f"MB file, in {time.perf_counter() - t:.1f}s"
        )
        # the GC settings `streamtap sensor` runs with (freeze + gen0 threshold), so (b) and
        # (c) measure the engine as the sensor runs it
        tune_gc()
        print(f"GC as in the sensor (producers.service.tune_gc): thresholds {gc.get_threshold()}")

        rows: list[tuple[str, float | None, float | None]] = []
        cpu_a, _ = measure(lambda: read_only(path), args.repeat)
        rows.append(("(a) read only", cpu_a, None))
        cpu_b, result = measure(lambda: engine_from_file(path), args.repeat)
        rows.append(("(b) read+decode+reassemble+dissect->records", cpu_b, None))
        frames = list(open_capture(path))  # loaded after (b), so (b) runs on a sensor's heap
        cpu_core, _ = measure(lambda: engine_in_memory(frames), args.repeat)
        rows.append(("(b-core) same, frames already in memory", cpu_core, None))
        cpu_bare, _ = measure(lambda: engine_bare(frames), args.repeat)
        rows.append(("(b-bare) b-core, no dissectors (all bare)", cpu_bare, None))
        frames.clear()  # (c) and (d) read the file themselves
        # tshark before (c): nothing of ours (the broker starting or stopping) runs beside it
        cpu_d = tshark(path)
        pub = publish_to_kafka(path, args.kafka_repeat) if args.kafka_repeat > 0 else None
        if pub is None:
            rows.append(("(c) (b) + publish to Kafka", None, None))
        else:
            rows.append(("(c) (b) + publish to Kafka, CPU of this process", pub.cpu_s, None))
            rows.append(("(c) same, wall time until all acknowledged", None, pub.wall_s))
        rows.append(("(d) tshark -o tcp.reassemble_out_of_order:TRUE", cpu_d, None))

        print(f"{'stage':52} {'seconds':>8} {'packets/s':>12} {'MB/s':>8}")
        for label, cpu, wall in rows:
            secs = cpu if cpu is not None else wall
            if secs is None:
                note = "Kafka stack not available" if "(c)" in label else "not installed"
                print(f"{label:52} {'-':>8} {'skipped: ' + note}")
                continue
            print(f"{label:52} {secs:8.3f} {n / secs:12,.0f} {data_mb / secs:8.1f}")
        stats = result["stats"]
        print(
            f"records {result['records']}, entries {stats['entries']}, streams "
            f"{stats['streams']}, reassembly {stats['reassembly']}, "
            f"not recorded {stats['frames_not_recorded']}"
        )
        if pub is not None:
            print(
                f"(c) published {pub.published} of {pub.records} records, "
                f"{pub.published_bytes / 1e6:.1f} MB of record JSON "
                f"({pub.published_bytes / 1e6 / pub.wall_s:.1f} MB/s wall), dropped {pub.dropped}, "
                f"sends retried {pub.retries}"
            )
        if cpu_d:
            line = (
                f"ours (b) / tshark (d): {cpu_d / cpu_b:.1f}x   "
                f"(b-core / tshark: {cpu_d / cpu_core:.1f}x"
            )
            if pub is not None:
                line += f", (c) CPU / tshark: {cpu_d / pub.cpu_s:.1f}x"
            print(line + ")")
        else:
            print("tshark not installed: no ratio (install the tshark package to compare)")
        met = "met" if n / cpu_b >= 150_000 else "NOT met"
        print(f"goal: (b) >= 150,000 packets/s of CPU time: {met}")


if __name__ == "__main__":
    main()
