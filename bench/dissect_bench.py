"""Dissector benchmark, one command: ``.venv/bin/python bench/dissect_bench.py``.

Dissector throughput on corpus-like input, and the parser choices measured against peers (not
a test: no timing thresholds; figures are compared against peers in the same run). CPU time is
``time.process_time``; input is the corpus's HTTP and DNS flows (``tests/data/corpus``, split
into per-flow payload events by the dissector tests' scapy helper), replayed several times.
"""

from __future__ import annotations

import gc
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests/unit/producers/dissect"))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import dns.message
import h11
import httptools
from corpus_streams import Flow, make_dissector, read_flows

from producers.dissect import Direction, DissectError, Http1Dissector
from producers.dissect.dns import parse_message
from producers.dissect.http1.side import Side
from producers.dissect.http1.state import (
    request_framing,
    response_framing,
)
from producers.dissect.limits import DEFAULT_LIMITS

CORPUS = Path(__file__).resolve().parents[1] / "tests" / "data" / "corpus"


def _flows(kind: str) -> list[Flow]:
    out = []
    for path in sorted(CORPUS.glob("*.pcap")):
        if not path.name.startswith(("http", "dns", "mixed")):
            continue
        for flow in read_flows(path):
            d = make_dissector(flow)
            if d is not None and d.name == kind:
                out.append(flow)
    return out


def run_dissectors(flows: list[Flow], rounds: int) -> tuple[int, int, float]:
    items = size = 0
    t0 = time.process_time()
    for _ in range(rounds):
        for flow in flows:
            d = make_dissector(flow)
            assert d is not None
            try:
                for ev in flow.events:
                    if ev.kind == "gap":
                        d.gap(ev.direction, ev.length, ev.ts_ns)
                    else:
                        d.feed(ev.direction, ev.data, ev.ts_ns)
                        size += len(ev.data)
                    while d.next_item() is not None:
                        items += 1
                d.end(0)
            except DissectError:
                pass
            while d.next_item() is not None:
                items += 1
    return items, size, time.process_time() - t0


def report(label: str, items: int, size: int, cpu: float) -> None:
    print(
        f"{label:34s} {items / cpu:12,.0f} items/s {size / cpu / 1e6:9.1f} MB/s "
        f"cpu {cpu:6.2f}s ({items:,} items, {size / 1e6:.1f} MB)"
    )


# -- HTTP parsers head to head: heads + framing only, same keep-alive input ---------------------


def keepalive_corpus(flows: list[Flow]) -> tuple[bytes, bytes, int]:
    """A keep-alive conversation shaped like the corpus: its real request heads, and responses
    with its real response heads' header counts and body sizes (capped at 64 KiB),
    re-framed with Content-Length so every parser sees the same well-formed bytes."""
    heads: list[tuple[dict, dict]] = []
    for flow in flows:
        d = make_dissector(flow)
        assert d is not None
        try:
            for ev in flow.events:
                if ev.kind == "data":
                    d.feed(ev.direction, ev.data, 0)
            d.end(0)
        except DissectError:
            pass
        while (item := d.next_item()) is not None:
            if item.request and item.response and item.request["method"] == "GET":
                heads.append((item.request, item.response))
    client, server = [], []
    for req, resp in heads * 4:
        rq = {"Host": "corpus.test"} | req["headers"]  # h11 insists on Host
        lines = [f"GET {req['url']} HTTP/1.1"] + [f"{k}: {v}" for k, v in rq.items()]
        client.append(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))
        body = b"x" * min(resp["bodySize"], 65536)
        skip = ("content-length", "transfer-encoding", "connection", "content-encoding")
        rh = {k: v for k, v in resp["headers"].items() if k.lower() not in skip}
        lines = [f"HTTP/1.1 {resp['status']} {resp['statusText']}"] + [
            f"{k}: {v}" for k, v in rh.items()
        ]
        lines.append(f"Content-Length: {len(body)}")
        server.append(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body)
    return b"".join(client), b"".join(server), len(client)


def ours(client: bytes, server: bytes) -> int:
    n = 0
    for data, is_request in ((client, True), (server, False)):
        side = Side(is_request, DEFAULT_LIMITS)
        side.feed(data, 0)
        while (ev := side.next_event(0)) is not None:
            if type(ev).__name__ == "Head":
                n += 1
                index = ev.index
                framing, length = (
                    request_framing(index)
                    if is_request
                    else response_framing("GET", ev.status, index)
                )
                side.set_framing(framing, length)
    return n


class _Collector:
    def __init__(self) -> None:
        self.n = 0
        self.headers: list[tuple[bytes, bytes]] = []

    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers.append((name, value))

    def on_headers_complete(self) -> None:
        self.n += 1
        self.headers = []

    def on_body(self, body: bytes) -> None:
        pass


def with_httptools(client: bytes, server: bytes) -> int:
    req, resp = _Collector(), _Collector()
    httptools.HttpRequestParser(req).feed_data(client)
    httptools.HttpResponseParser(resp).feed_data(server)
    return req.n + resp.n


def with_h11(client: bytes, server: bytes) -> int:
    n = 0
    srv = h11.Connection(h11.SERVER)
    srv.receive_data(client)
    cli = h11.Connection(h11.CLIENT)
    cli.receive_data(server)
    while True:
        ev = srv.next_event()
        if ev is h11.NEED_DATA or ev is h11.PAUSED or isinstance(ev, h11.ConnectionClosed):
            break
        if isinstance(ev, h11.Request):
            n += 1
            cli.send(h11.Request(method=ev.method, target=ev.target, headers=[("Host", "x")]))
            cli.send(h11.EndOfMessage())
        if isinstance(ev, h11.EndOfMessage):
            srv.send(h11.Response(status_code=200, headers=[("Content-Length", "0")]))
            srv.send(h11.EndOfMessage())
            srv.start_next_cycle()
            while True:
                rev = cli.next_event()
                if isinstance(rev, h11.Response):
                    n += 1
                if isinstance(rev, h11.EndOfMessage) or rev is h11.NEED_DATA:
                    break
            if cli.our_state is h11.DONE and cli.their_state is h11.DONE:
                cli.start_next_cycle()
    return n


def compare_http(flows: list[Flow], rounds: int) -> None:
    client, server, pairs = keepalive_corpus(flows)
    size = len(client) + len(server)
    print(
        f"\nHTTP parsers, heads + framing only ({pairs} exchanges, {size / 1e6:.2f} MB per round)"
    )
    t0 = time.process_time()
    for _ in range(rounds):
        d = Http1Dissector()
        for pos in range(0, len(client), 1448):
            d.feed(Direction.CLIENT, client[pos : pos + 1448], 0)
        for pos in range(0, len(server), 1448):
            d.feed(Direction.SERVER, server[pos : pos + 1448], 0)
        while d.next_item() is not None:
            pass
    report(
        "full dissector (items = exchanges)",
        pairs * rounds,
        size * rounds,
        time.process_time() - t0,
    )
    print("heads + framing only (items = heads):")
    for label, fn in (
        ("hand-written (ours)", ours),
        ("httptools (llhttp, C)", with_httptools),
        ("h11", with_h11),
    ):
        t0 = time.process_time()
        for _ in range(rounds):
            heads = fn(client, server)
        cpu = time.process_time() - t0
        report(label, heads * rounds, size * rounds, cpu)


def compare_dns(flows: list[Flow], rounds: int) -> None:
    messages = []
    for flow in flows:
        for ev in flow.events:
            if ev.kind == "data" and flow.layer4 == "udp":
                messages.append(ev.data)
    size = sum(map(len, messages))
    print(f"\nDNS message parsers ({len(messages)} corpus UDP messages per round)")
    for label, fn in (
        ("hand-written (ours)", lambda m: parse_message(m).response_object()),
        ("dnspython from_wire", dns.message.from_wire),
    ):
        t0 = time.process_time()
        n = 0
        for _ in range(rounds):
            for m in messages:
                try:
                    fn(m)
                    n += 1
                except Exception:
                    pass
        cpu = time.process_time() - t0
        report(label, n, size * rounds, cpu)


def main() -> None:
    http_flows, dns_flows = _flows("http"), _flows("dns")
    # the scapy-loaded input is a large, long-lived heap: keep it out of the cyclic GC's scans
    # so they do not bill the dissectors for the harness's objects
    gc.collect()
    gc.freeze()
    print("Full dissectors on the corpus's flows (items = entries' request/response pairs)")
    report("HTTP/1.x dissector", *run_dissectors(http_flows, 20))
    report("DNS dissector", *run_dissectors(dns_flows, 200))
    compare_http(http_flows, 20)
    compare_dns(dns_flows, 200)


if __name__ == "__main__":
    main()
