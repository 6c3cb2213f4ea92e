"""Sensor benchmark, one command: ``.venv/bin/python bench/sensor_bench.py [--packets N]``.

Generates a large mixed capture (HTTP/1.1 keep-alive sessions, DNS over UDP, noise: ARP, ICMP,
bare TCP and UDP; some responses out of order or retransmitted) into a temp pcap, then measures
in one run, in CPU time of one core:

  (a) reading only (pcap -> frames)
  (b) reading + decode + reassembly + dissection into StreamRecords (the Engine)
      (b-core: the same without reading, frames already in memory)
  (c) (b) plus publishing to Kafka: a hook, filled in by the publisher's owner
  (d) tshark dissecting the same file, ``-o tcp.reassemble_out_of_order:TRUE``

and prints packets/s and MB/s of each, and our (b) as a ratio to tshark's (d).
"""

from __future__ import annotations

import argparse
import random
import resource
import shutil
import struct
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
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
from producers.engine import Engine

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
            (t1, *f1), (t2, *f2) = segs[1], segs[2]
            segs[1], segs[2] = (t1, *f2), (t2, *f1)
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


def publish_hook(path: Path) -> float | None:
    """(c) Engine + publishing to Kafka. Returns CPU seconds, or None when not wired yet.

    The publisher's owner fills this in (start the local stack's broker, run the engine's
    records through ``producers.publisher.RecordPublisher``, count CPU of this process).
    """
    return None


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
    parser.add_argument("--keep", type=Path, help="also copy the generated pcap here")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "mixed.pcap"
        t = time.perf_counter()
        n = generate(path, args.packets)
        if args.keep:
            shutil.copy(path, args.keep)
        frames = list(open_capture(path))
        data_mb = sum(len(f[3]) for f in frames) / 1e6
        print(
            f"generated {n} packets, {data_mb:.1f} MB of frames, {path.stat().st_size / 1e6:.1f} "
            f"MB file, in {time.perf_counter() - t:.1f}s"
        )

        rows: list[tuple[str, float | None]] = []
        cpu_a, _ = measure(lambda: read_only(path), args.repeat)
        rows.append(("(a) read only", cpu_a))
        cpu_b, result = measure(lambda: engine_from_file(path), args.repeat)
        rows.append(("(b) read+decode+reassemble+dissect->records", cpu_b))
        cpu_core, _ = measure(lambda: engine_in_memory(frames), args.repeat)
        rows.append(("(b-core) same, frames already in memory", cpu_core))
        cpu_bare, _ = measure(lambda: engine_bare(frames), args.repeat)
        rows.append(("(b-bare) b-core, no dissectors (all bare)", cpu_bare))
        cpu_c = publish_hook(path)
        rows.append(("(c) (b) + publish to Kafka", cpu_c))
        cpu_d = tshark(path)
        rows.append(("(d) tshark -o tcp.reassemble_out_of_order:TRUE", cpu_d))

        print(f"{'stage':48} {'CPU s':>8} {'packets/s':>12} {'MB/s':>8}")
        for label, cpu in rows:
            if cpu is None:
                note = "not wired yet (hook: publish_hook)" if "(c)" in label else "not installed"
                print(f"{label:48} {'-':>8} {'skipped: ' + note}")
                continue
            print(f"{label:48} {cpu:8.3f} {n / cpu:12,.0f} {data_mb / cpu:8.1f}")
        stats = result["stats"]
        print(
            f"records {result['records']}, entries {stats['entries']}, streams "
            f"{stats['streams']}, reassembly {stats['reassembly']}, "
            f"not recorded {stats['frames_not_recorded']}"
        )
        if cpu_d:
            print(
                f"ours (b) / tshark (d): {cpu_d / cpu_b:.1f}x   "
                f"(b-core / tshark: {cpu_d / cpu_core:.1f}x)"
            )
        else:
            print("tshark not installed: no ratio (install the tshark package to compare)")


if __name__ == "__main__":
    main()
