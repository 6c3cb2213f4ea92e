"""A test kit for the store, the API and the benchmark: believable entries without a sensor.

Shipped in the package (as mitmproxy ships ``tflow``) so the unit tests, the browser test and
``bench/replay_bench.py`` build the same population. Entries follow ``ENTRY.md``; a record's
packets are synthetic Ethernet frames, enough for PCAP download round trips.
"""

from __future__ import annotations

import random
import struct
from collections.abc import Iterator
from typing import Any

from streamtap.schema import Endpoint, Node, RawPacket, StreamRecord, make_stream_id

__all__ = ["dns_entry", "http_entry", "make_record", "population", "tcp_entry"]

_SERVICES = [
    ("10.0.1.9", "users.shop", 8080),
    ("10.0.1.20", "checkout.payments", 80),
    ("10.0.1.31", "catalog.shop", 8080),
    ("10.0.1.44", "search.shop", 9200),
    ("10.96.0.10", "kube-dns.kube-system", 53),
]
_CLIENTS = [
    ("10.0.0.5", "frontend.shop"),
    ("10.0.2.7", "web.storefront"),
    ("10.0.0.17", "batch.jobs"),
    ("10.0.3.2", ""),
]
_PATHS = ["/api/v1/users", "/api/v1/orders", "/checkout", "/healthz", "/api/v1/items?id=7"]
_STATUS = [200] * 14 + [201, 204, 301, 304, 404, 500, 503]
_NAMES = ["example.com", "users.shop.svc.cluster.local", "no-such.host", "api.github.com"]


def _common(
    stream: str, index: int, ts_ms: int, proto: tuple[str, str, str, str], src: Any, dst: Any
) -> dict[str, Any]:
    name, abbr, version, l4 = proto
    return {
        "id": f"{stream}-{index}",
        "stream": stream,
        "index": index,
        "node": {"name": "worker-1", "ip": "172.18.0.3"},
        "protocol": {"name": name, "abbr": abbr, "version": version, "layer4": l4},
        "src": {"ip": src[0], "port": src[1], "name": src[2], "namespace": "", "pod": ""},
        "dst": {"ip": dst[0], "port": dst[1], "name": dst[2], "namespace": "", "pod": ""},
        "timestamp": ts_ms,
    }


def http_entry(
    stream: str,
    index: int,
    ts_ms: int,
    *,
    src: tuple[str, int, str] = ("10.0.0.5", 51234, "frontend.shop"),
    dst: tuple[str, int, str] = ("10.0.1.9", 8080, "users.shop"),
    method: str = "GET",
    url: str = "/api/v1/users",
    status: int | None = 200,
    elapsed: int = 12,
    body: str = '{"user": {"id": 7, "name": "Ada"}}',
) -> dict[str, Any]:
    entry = _common(stream, index, ts_ms, ("http", "HTTP", "1.1", "tcp"), src, dst)
    path, _, query = url.partition("?")
    entry.update(
        {
            "elapsedTime": elapsed if status is not None else 0,
            "requestSize": 180,
            "responseSize": 240 if status is not None else 0,
            "request": {
                "method": method,
                "url": url,
                "path": path,
                "pathSegments": [p for p in path.split("/") if p],
                "httpVersion": "HTTP/1.1",
                "headers": {"Host": dst[2] or dst[0], "User-Agent": "curl/8.5.0",
                            "Authorization": "Bearer secret-token"},
                "cookies": {},
                "queryString": dict(kv.split("=", 1) for kv in query.split("&") if "=" in kv),
                "headersSize": 120,
                "bodySize": 0,
            },
        }
    )  # fmt: skip
    if status is not None:
        entry["response"] = {
            "status": status,
            "statusText": {200: "OK", 404: "Not Found", 500: "Internal Server Error"}.get(
                status, ""
            ),
            "httpVersion": "HTTP/1.1",
            "headers": {"Content-Type": "application/json", "Content-Length": str(len(body))},
            "cookies": {},
            "content": {"mimeType": "application/json", "size": len(body), "text": body},
            "headersSize": 80,
            "bodySize": len(body),
        }
    return entry


def dns_entry(
    stream: str,
    index: int,
    ts_ms: int,
    *,
    src: tuple[str, int, str] = ("10.0.0.5", 40000, "frontend.shop"),
    dst: tuple[str, int, str] = ("10.96.0.10", 53, "kube-dns.kube-system"),
    name: str = "example.com",
    rcode: int = 0,
) -> dict[str, Any]:
    entry = _common(stream, index, ts_ms, ("dns", "DNS", "", "udp"), src, dst)
    code = {0: "No Error", 2: "Server Failure", 3: "Non-Existent Domain"}.get(rcode, "No Error")
    answers = [{"name": name, "type": "A", "class": "IN", "ttl": 300, "ip": "93.184.216.34"}]
    entry.update(
        {
            "elapsedTime": 2,
            "requestSize": 45,
            "responseSize": 61,
            "request": {
                "opCode": "Query",
                "id": 4660 + index,
                "questions": [{"name": name, "type": "A", "class": "IN"}],
            },
            "response": {
                "code": code,
                "rcode": rcode,
                "answers": answers if rcode == 0 else [],
                "authorities": [],
                "additionals": [],
            },
        }
    )
    return entry


def tcp_entry(
    stream: str, ts_ms: int, src: tuple[str, int, str], dst: tuple[str, int, str]
) -> dict[str, Any]:
    entry = _common(stream, 0, ts_ms, ("tcp", "TCP", "", "tcp"), src, dst)
    entry.update({"elapsedTime": 0, "requestSize": 1200, "responseSize": 5400})
    return entry


def _frame(src: tuple[str, int], dst: tuple[str, int], l4: str, payload: bytes) -> bytes:
    """A minimal Ethernet/IPv4/TCP-or-UDP frame (checksums zero: nobody validates them here)."""
    proto = 6 if l4 == "tcp" else 17
    if l4 == "tcp":
        l4hdr = struct.pack("!HHIIBBHHH", src[1], dst[1], 1, 0, 0x50, 0x18, 65535, 0, 0)
    else:
        l4hdr = struct.pack("!HHHH", src[1], dst[1], 8 + len(payload), 0)
    body = l4hdr + payload
    ip = struct.pack(
        "!BBHHHBBH4s4s", 0x45, 0, 20 + len(body), 0, 0, 64, proto, 0,
        bytes(map(int, src[0].split("."))), bytes(map(int, dst[0].split("."))),
    )  # fmt: skip
    return b"\x02" * 6 + b"\x04" * 6 + b"\x08\x00" + ip + body


def make_record(
    entries: list[dict[str, Any]],
    *,
    packets: int = 2,
    segment: int = 0,
    stream_id: str | None = None,
) -> StreamRecord:
    """A closed record holding ``entries`` (all of one stream) and ``packets`` frames."""
    first = entries[0]
    src = (first["src"]["ip"], first["src"]["port"])
    dst = (first["dst"]["ip"], first["dst"]["port"])
    l4 = first["protocol"]["layer4"]
    ts_ns = first["timestamp"] * 1_000_000
    sid = stream_id or first["stream"] or make_stream_id("worker-1", l4, src, dst, (), ts_ns)
    raw = []
    for i in range(packets):
        a, b = (src, dst) if i % 2 == 0 else (dst, src)
        data = _frame(a, b, l4, f"{sid} packet {i} ".encode() * 3)
        raw.append(RawPacket(ts_ns=ts_ns + i * 1_000, linktype=1, wirelen=len(data), data=data))
    return StreamRecord(
        stream_id=sid,
        segment=segment,
        closed=True,
        node=Node(name="worker-1", ip="172.18.0.3"),
        layer4=l4,
        src=Endpoint(ip=src[0], port=src[1]),
        dst=Endpoint(ip=dst[0], port=dst[1]),
        first_ts_ns=ts_ns,
        last_ts_ns=ts_ns + max(packets - 1, 0) * 1_000,
        entries=tuple(entries),
        packets=tuple(raw),
    )


def population(
    n: int,
    *,
    seed: int = 7,
    start_ms: int = 1_795_773_600_000,
    packets: int = 2,
    first_id: int = 0,
) -> Iterator[StreamRecord]:
    """``n`` entries of mixed HTTP/DNS/TCP traffic, one record per entry, deterministic.

    Stream ids count up from ``first_id``; give separate calls separate ranges when their
    records go into one store (the store keeps one copy of an id).
    """
    rnd = random.Random(seed)
    ts = start_ms
    for i in range(n):
        ts += rnd.randint(0, 40)
        cip, cname = _CLIENTS[rnd.randrange(len(_CLIENTS))]
        sport = 30000 + i % 30000
        stream = f"{first_id + i:016x}"
        kind = rnd.random()
        if kind < 0.65:
            sip, sname, port = _SERVICES[rnd.randrange(4)]
            status = _STATUS[rnd.randrange(len(_STATUS))]
            method = "POST" if rnd.random() < 0.2 else "GET"
            entry = http_entry(
                stream, 0, ts, src=(cip, sport, cname), dst=(sip, port, sname),
                method=method, url=_PATHS[rnd.randrange(len(_PATHS))], status=status,
                elapsed=int(rnd.lognormvariate(2.5, 1.0)) + 1,
            )  # fmt: skip
        elif kind < 0.95:
            sip, sname, port = _SERVICES[4]
            qname = _NAMES[rnd.randrange(len(_NAMES))]
            entry = dns_entry(
                stream, 0, ts, src=(cip, sport, cname), dst=(sip, port, sname), name=qname,
                rcode=3 if qname == "no-such.host" else 0,
            )  # fmt: skip
        else:
            entry = tcp_entry(stream, ts, (cip, sport, cname), ("10.0.9.9", 22, ""))
        yield make_record([entry], packets=packets)
