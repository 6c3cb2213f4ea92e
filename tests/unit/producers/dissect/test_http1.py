"""HTTP/1.x dissector behaviour, one rule per test, on hand-made conversations."""

from __future__ import annotations

import base64
import gzip
import random
import zlib
from collections.abc import Iterable

import brotli
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from producers.dissect import Direction, DissectLimits, Http1Dissector, Item
from streamtap.schema import HttpEntry

C, S = Direction.CLIENT, Direction.SERVER
Script = list[tuple[Direction, bytes]]


def run(
    script: Script,
    *,
    split: int | random.Random | None = None,
    limits: DissectLimits | None = None,
    end: bool = True,
) -> list[Item]:
    """Feed a conversation (whole, in ``split``-byte pieces, or at random cuts)."""
    d = Http1Dissector(limits) if limits else Http1Dissector()
    items: list[Item] = []
    for ts, (direction, data) in enumerate(script, start=1):
        for part in _pieces(data, split):
            d.feed(direction, part, ts * 1_000_000)
            while (item := d.next_item()) is not None:
                items.append(item)
    if end:
        d.end(10**12)
        while (item := d.next_item()) is not None:
            items.append(item)
    return items


def _pieces(data: bytes, split: int | random.Random | None) -> Iterable[bytes]:
    if split is None:
        yield data
    elif isinstance(split, int):
        for i in range(0, len(data), split):
            yield data[i : i + split]
    else:
        i = 0
        while i < len(data):
            n = split.randint(1, 40)
            yield data[i : i + n]
            i += n


def req(
    method: str = "GET", target: str = "/", headers: str = "Host: a\r\n", body: bytes = b""
) -> bytes:
    return f"{method} {target} HTTP/1.1\r\n{headers}\r\n".encode() + body


def resp(status: int = 200, headers: str = "", body: bytes = b"", reason: str = "OK") -> bytes:
    if body and "Content-Length" not in headers and "chunked" not in headers:
        headers += f"Content-Length: {len(body)}\r\n"
    return f"HTTP/1.1 {status} {reason}\r\n{headers}\r\n".encode() + body


def validate(item: Item) -> None:
    entry = {
        "id": "s-0",
        "stream": "s",
        "index": 0,
        "node": {"name": "n"},
        "protocol": {
            "name": "http",
            "abbr": "HTTP",
            "version": item.protocol.version,
            "layer4": "tcp",
        },
        "src": {"ip": "10.0.0.1", "port": 1},
        "dst": {"ip": "10.0.0.2", "port": 80},
        "timestamp": 0,
    }
    if item.request is not None:
        entry["request"] = item.request
    if item.response is not None:
        entry["response"] = item.response
    HttpEntry.model_validate(entry)


KEEPALIVE: Script = [
    (C, req(target="/a?x=1")),
    (S, resp(body=b"first")),
    (
        C,
        req(
            "POST",
            "/b",
            "Host: a\r\nContent-Type: application/json\r\nContent-Length: 7\r\n",
            b'{"k":1}',
        ),
    ),
    (
        S,
        resp(
            201,
            "Transfer-Encoding: chunked\r\n",
            b"3;ext=1\r\nabc\r\n2\r\nde\r\n0\r\nX-Sum: 5\r\n\r\n",
            "Created",
        ),
    ),
    (C, req("HEAD", "/c")),
    (S, resp(200, "Content-Length: 999\r\n")),
    (C, req(target="/d")),
    (S, resp(304, "ETag: x\r\n", reason="Not Modified")),
    (C, req(target="/e")),
    (S, resp(204, reason="No Content")),
]


def test_keepalive_exchanges_pair_in_order() -> None:
    items = run(KEEPALIVE)
    assert [(i.request["url"], i.response["status"]) for i in items] == [
        ("/a?x=1", 200),
        ("/b", 201),
        ("/c", 200),
        ("/d", 304),
        ("/e", 204),
    ]
    for item in items:
        validate(item)
    assert items[0].response["content"]["text"] == "first"
    assert items[1].request["postData"] == {"mimeType": "application/json", "text": '{"k":1}'}
    assert items[1].response["content"]["text"] == "abcde"
    assert items[1].response["bodySize"] == 5
    assert items[1].extra["response_trailers"] == {"X-Sum": "5"}
    assert items[2].response["bodySize"] == 0  # HEAD: Content-Length 999 but no body


def test_sizes_are_bytes_on_the_wire() -> None:
    items = run(KEEPALIVE)
    for item, i in zip(items, range(0, len(KEEPALIVE), 2), strict=True):
        assert item.request_size == len(KEEPALIVE[i][1])
        assert item.response_size == len(KEEPALIVE[i + 1][1])
        assert item.request["headersSize"] == KEEPALIVE[i][1].index(b"\r\n\r\n") + 4


@pytest.mark.parametrize("split", [None, 1, 2, 7, 64])
def test_any_fixed_split_gives_the_same_items(split: int | None) -> None:
    assert run(KEEPALIVE, split=split) == run(KEEPALIVE)


@settings(max_examples=60, deadline=None)
@given(st.randoms(use_true_random=False))
def test_random_splits_give_the_same_items(rnd: random.Random) -> None:
    assert run(KEEPALIVE, split=rnd) == run(KEEPALIVE)


def test_trailing_partial_message_makes_no_item() -> None:
    whole = run(KEEPALIVE)
    for tail in (b"GET /x HT", b"GET /x HTTP/1.1\r\nHost: a\r\n", b"\r\n", b"G"):
        script = [*KEEPALIVE, (C, tail)]
        assert run(script, end=False) == whole
        assert run(script, split=1, end=False) == whole


def test_pipelined_requests_pair_fifo() -> None:
    script: Script = [
        (C, req(target="/1") + req(target="/2") + req(target="/3")),
        (S, resp(body=b"one") + resp(404, body=b"two", reason="Not Found") + resp(body=b"three")),
    ]
    items = run(script)
    assert [
        (i.request["url"], i.response["status"], i.response["content"]["text"]) for i in items
    ] == [
        ("/1", 200, "one"),
        ("/2", 404, "two"),
        ("/3", 200, "three"),
    ]


def test_request_without_response_is_emitted_at_end() -> None:
    items = run([(C, req(target="/slow"))])
    (item,) = items
    assert item.response is None and item.response_ts_ns is None
    assert run([(C, req(target="/slow"))], end=False) == []


def test_close_delimited_body_ends_at_end() -> None:
    script: Script = [
        (C, req()),
        (S, b"HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\nall of "),
        (S, b"it"),
    ]
    assert run(script, end=False) == []
    (item,) = run(script)
    assert item.response["content"]["text"] == "all of it"
    assert item.response["bodySize"] == 9
    assert "response_incomplete" not in item.extra


def test_http10_version() -> None:
    script: Script = [
        (C, b"GET / HTTP/1.0\r\n\r\n"),
        (S, b"HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n"),
    ]
    (item,) = run(script)
    assert item.protocol.version == "1.0"
    assert item.request["httpVersion"] == "HTTP/1.0"


def test_100_continue_pairs_with_final_response() -> None:
    """One entry per exchange: the 100 is kept in extra, the 200 is the response."""
    script: Script = [
        (C, req("POST", "/up", "Host: a\r\nExpect: 100-continue\r\nContent-Length: 4\r\n")),
        (S, b"HTTP/1.1 100 Continue\r\n\r\n"),
        (C, b"data"),
        (S, resp(200, body=b"ok")),
    ]
    (item,) = run(script)
    assert item.response["status"] == 200
    assert [i["status"] for i in item.extra["informational"]] == [100]
    assert item.response_size == len(script[1][1]) + len(script[3][1])
    assert item.request["bodySize"] == 4


def test_101_switches_both_directions_to_opaque() -> None:
    script: Script = [
        (C, req(target="/ws", headers="Host: a\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n")),
        (C, b"\x81\x05hello"),  # the client may talk before the 101 is seen
        (S, b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n\x81\x02hi"),
        (C, b"\x88\x00 not http at all"),
        (S, b"\x00\x01\x02"),
    ]
    (item,) = run(script)
    assert item.response["status"] == 101
    assert item.extra["tunnel"] is True


def test_upgrade_refused_keeps_parsing() -> None:
    script: Script = [
        (C, req(target="/ws", headers="Host: a\r\nUpgrade: h2c\r\n") + req(target="/next")),
        (S, resp(200, body=b"no upgrade") + resp(200, body=b"next")),
    ]
    assert [i.request["url"] for i in run(script)] == ["/ws", "/next"]


def test_connect_2xx_is_a_tunnel() -> None:
    script: Script = [
        (C, b"CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n"),
        (S, b"HTTP/1.1 200 Connection established\r\n\r\n"),
        (C, b"\x16\x03\x01\x02\x00"),
        (S, b"\x16\x03\x03\x00\x4a"),
    ]
    (item,) = run(script)
    assert item.request["method"] == "CONNECT" and item.response["status"] == 200


def test_response_before_request_is_unmatched() -> None:
    script: Script = [(S, resp(body=b"early")), (C, req(target="/late"))]
    items = run(script)
    assert [(i.request is None, i.response is None) for i in items] == [
        (True, False),
        (False, True),
    ]
    assert items[0].extra["unmatched_response"] is True


def test_headers_as_sent_and_repeats_joined() -> None:
    script: Script = [
        (C, req(headers="Host: a\r\nX-Tag: 1\r\nx-tag: 2\r\nCookie: a=1; b=2\r\nCookie: c=3\r\n")),
        (S, resp(headers="Set-Cookie: s=1; Path=/\r\nSet-Cookie: t=2\r\n")),
    ]
    (item,) = run(script)
    assert item.request["headers"]["X-Tag"] == "1, 2"
    assert "x-tag" not in item.request["headers"]
    assert item.request["cookies"] == {"a": "1", "b": "2", "c": "3"}
    assert item.response["cookies"] == {"s": "1", "t": "2"}
    assert item.response["headers"]["Set-Cookie"] == "s=1; Path=/, t=2"


def test_url_parts() -> None:
    script: Script = [(C, req(target="/a//b%20c/?q=1&q=2&e=&plus=a+b")), (S, resp())]
    (item,) = run(script)
    r = item.request
    assert r["path"] == "/a//b%20c/"
    assert r["pathSegments"] == ["a", "b%20c"]  # split as sent (ENTRY.md), not decoded
    assert r["queryString"] == {"q": ["1", "2"], "e": "", "plus": "a b"}
    script = [(C, req(target="http://h.test/p/q?x=1")), (S, resp())]
    (item,) = run(script)
    assert (item.request["path"], item.request["queryString"]) == ("/p/q", {"x": "1"})


@pytest.mark.parametrize(
    ("coding", "encode"),
    [
        ("gzip", gzip.compress),
        ("deflate", zlib.compress),
        ("deflate", lambda b: zlib.compress(b)[2:-4]),  # raw deflate, as some servers send
        ("br", brotli.compress),
    ],
)
def test_content_decoding(coding: str, encode) -> None:
    body = b'{"hello": "world"}' * 50
    wire = encode(body)
    script: Script = [
        (C, req()),
        (
            S,
            resp(
                headers=f"Content-Type: application/json\r\nContent-Encoding: {coding}\r\n",
                body=wire,
            ),
        ),
    ]
    (item,) = run(script)
    content = item.response["content"]
    assert content["text"] == body.decode()
    assert content["size"] == len(body)
    assert item.response["bodySize"] == len(wire)


def test_zip_bomb_stops_at_decoded_cap() -> None:
    bomb = gzip.compress(b"\0" * (8 << 20))
    limits = DissectLimits(max_decoded_bytes=1 << 20, max_body_text=1024)
    script: Script = [(C, req()), (S, resp(headers="Content-Encoding: gzip\r\n", body=bomb))]
    (item,) = run(script, limits=limits)
    assert item.response["content"]["size"] <= 1 << 20
    assert item.extra["response_decoded_capped"] is True
    assert item.response["bodySize"] == len(bomb)


def test_text_cap_and_binary_base64() -> None:
    limits = DissectLimits(max_body_text=10)
    script: Script = [
        (C, req()),
        (S, resp(headers="Content-Type: text/plain\r\n", body=b"x" * 100)),
    ]
    (item,) = run(script, limits=limits)
    assert item.response["content"]["text"] == "x" * 10
    assert item.response["content"]["size"] == 100
    assert item.extra["response_text_truncated"] is True
    png = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR"
    script = [(C, req()), (S, resp(headers="Content-Type: image/png\r\n", body=png))]
    (item,) = run(script)
    content = item.response["content"]
    assert content["encoding"] == "base64"
    assert base64.b64decode(content["text"]) == png


def test_gap_inside_body_is_skipped_and_marked() -> None:
    d = Http1Dissector()
    d.feed(C, req(), 1)
    d.feed(S, b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc", 2)
    d.gap(S, 4, 3)
    d.feed(S, b"hij", 4)
    d.feed(C, req(target="/after"), 5)
    d.feed(S, resp(body=b"fine"), 6)
    first, second = d.next_item(), d.next_item()
    assert first is not None and second is not None
    assert first.extra["gap"] is True
    assert first.response["bodySize"] == 10
    assert second.request["url"] == "/after" and second.response["content"]["text"] == "fine"


def test_gap_in_server_heads_resynchronises_and_repairs_pairing() -> None:
    """A gap that swallowed a whole response: the next response answers the newest request
    (as tshark pairs it), and the older one is emitted without a response."""
    d = Http1Dissector()
    d.feed(C, req(target="/1"), 1)
    d.gap(S, 120, 2)
    d.feed(C, req(target="/2"), 3)
    d.feed(S, b"ody tail of a lost response\r\n" + resp(body=b"two"), 4)
    d.end(5)
    items = [d.next_item(), d.next_item()]
    assert [(i.request["url"], i.response and i.response["status"]) for i in items if i] == [
        ("/1", None),
        ("/2", 200),
    ]


def test_gap_in_client_head_resynchronises() -> None:
    d = Http1Dissector()
    d.feed(C, b"GET /lost HTTP/1.1\r\nHo", 1)
    d.gap(C, 50, 2)
    d.feed(C, b"st: a\r\n\r\n" + req(target="/found"), 3)
    d.feed(S, resp(body=b"x"), 4)
    d.end(5)
    item = d.next_item()
    assert item is not None and item.request["url"] == "/found"
