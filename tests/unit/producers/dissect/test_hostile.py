"""Hostile and random input: DissectError or bounded behaviour, never a crash or a big buffer."""

from __future__ import annotations

import base64
import gzip
import tracemalloc

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from producers.dissect import (
    Direction,
    DissectError,
    DissectLimits,
    DnsDissector,
    Http1Dissector,
    select_dissector,
)

C, S = Direction.CLIENT, Direction.SERVER
GET = b"GET / HTTP/1.1\r\nHost: a\r\n\r\n"


def drain(d) -> list:
    out = []
    while (item := d.next_item()) is not None:
        out.append(item)
    return out


def test_2gb_content_length_allocates_nothing() -> None:
    d = Http1Dissector()
    d.feed(C, GET, 1)
    d.feed(S, b"HTTP/1.1 200 OK\r\nContent-Length: 2000000000\r\n\r\n", 2)
    chunk = b"z" * 65536
    tracemalloc.start()
    for _ in range(160):  # 10 MiB of body
        d.feed(S, chunk, 3)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert peak < 1 << 20
    d.end(4)
    (item,) = drain(d)
    assert item.response["bodySize"] == 160 * 65536
    assert item.extra["response_incomplete"] is True
    assert len(item.response["content"]["text"]) == DissectLimits().max_body_text


def test_huge_but_valid_chunk_size_is_streamed() -> None:
    d = Http1Dissector()
    d.feed(C, GET, 1)
    d.feed(S, b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n7fffffffffffffff\r\n", 2)
    tracemalloc.start()
    for _ in range(64):
        d.feed(S, b"y" * 65536, 3)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert peak < 1 << 20
    d.end(4)
    (item,) = drain(d)
    assert item.response["bodySize"] == 64 * 65536


@pytest.mark.parametrize(
    "server",
    [
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nfffffffffffffffffffff\r\n",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" + b"1" * 10_000,
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabcXX",
        b"HTTP/1.1 200 OK\r\nContent-Length: 5, 6\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: -5\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: 99999999999999999999999\r\n\r\n",
        b"HTTP/1.1 2000 OK\r\n\r\n",
        b"HTTP/1.1 200 OK\r\n" + b"X-Flood: 1\r\n" * 300 + b"\r\n",
        b"HTTP/1.1 200 OK\r\nX-Big: " + b"a" * 70_000,
    ],
    ids=[
        "chunk size over 16 hex digits",
        "chunk size not hex",
        "chunk size line over cap",
        "chunk not followed by CRLF",
        "conflicting Content-Length",
        "negative Content-Length",
        "absurd Content-Length",
        "bad status",
        "header flood",
        "header section over cap",
    ],
)
def test_hostile_responses_raise_dissect_error(server: bytes) -> None:
    for step in (len(server), 1):
        d = Http1Dissector()
        d.feed(C, GET, 1)
        with pytest.raises(DissectError):
            for i in range(0, len(server), step):
                d.feed(S, server[i : i + step], 2)


def test_non_token_method_mid_stream_raises() -> None:
    d = Http1Dissector()
    d.feed(C, GET, 1)
    with pytest.raises(DissectError):
        d.feed(C, b"\xff\xfe / HTTP/1.1\r\n\r\n", 2)


def test_pipelined_flood_is_bounded() -> None:
    d = Http1Dissector(DissectLimits(max_pending=8))
    for _ in range(50):
        d.feed(C, GET, 1)
    items = drain(d)
    assert len(items) == 42 and all(i.extra.get("evicted") for i in items)
    d.end(2)
    assert len(drain(d)) == 8


def test_resync_gives_up_after_its_byte_cap() -> None:
    d = Http1Dissector(DissectLimits(max_resync_bytes=4096))
    d.feed(C, GET, 1)
    d.gap(S, 100, 2)
    for _ in range(10):
        d.feed(S, b"\x00" * 1024, 3)
    d.feed(S, b"\nHTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", 4)  # too late: tunnel now
    d.end(5)
    (item,) = drain(d)
    assert item.response is None


def test_gzip_bomb_in_request_body_is_capped() -> None:
    bomb = gzip.compress(b"\0" * (4 << 20))
    d = Http1Dissector(DissectLimits(max_decoded_bytes=64 * 1024))
    head = f"POST / HTTP/1.1\r\nContent-Encoding: gzip\r\nContent-Length: {len(bomb)}\r\n\r\n"
    d.feed(C, head.encode() + bomb, 1)
    d.end(2)
    (item,) = drain(d)
    assert item.extra["request_decoded_capped"] is True
    assert item.request["bodySize"] == len(bomb)


def test_corrupt_gzip_keeps_raw_body() -> None:
    body = b"\x1f\x8b\x08\x00garbage-not-deflate"
    d = Http1Dissector()
    d.feed(C, GET, 1)
    head = f"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Length: {len(body)}\r\n\r\n"
    d.feed(S, head.encode() + body, 2)
    (item,) = drain(d)
    assert item.extra["response_decode_error"]
    content = item.response["content"]
    assert content["size"] == len(body)
    assert content["encoding"] == "base64" and base64.b64decode(content["text"]) == body


_events = st.lists(
    st.tuples(st.sampled_from([C, S]), st.one_of(st.binary(max_size=300), st.integers(1, 5000))),
    max_size=12,
)


def _drive(d, events) -> None:
    try:
        for direction, data in events:
            if isinstance(data, int):
                d.gap(direction, data, 1)
            else:
                d.feed(direction, data, 1)
            drain(d)
        d.end(2)
        drain(d)
    except DissectError:
        pass


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_events)
def test_fuzz_random_bytes_only_dissect_error(events) -> None:
    _drive(Http1Dissector(), events)
    _drive(DnsDissector("udp"), events)
    _drive(DnsDissector("tcp"), events)


_PREFIXES = [
    GET,
    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
    b"POST /x HTTP/1.1\r\nContent-Length: 4\r\nContent-Encoding: gzip\r\n\r\n",
    b"\x12\x34\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00\x07example\x03com\x00\x00\x01\x00\x01",
    b"\x00\x1d\x12\x34\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00\x07example\x03com\x00\x00\x01\x00\x01",
]


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(_PREFIXES), st.binary(max_size=400), st.sampled_from(["tcp", "udp"]))
def test_fuzz_plausible_starts_only_dissect_error(prefix: bytes, tail: bytes, layer4: str) -> None:
    """Random bytes after a start that passes detection reach deep into the parsers."""
    payload = prefix + tail
    d = select_dissector(layer4, C, payload, 40000, 80)
    if d is None:
        return
    _drive(d, [(C, payload), (S, tail + prefix), (C, tail)])
