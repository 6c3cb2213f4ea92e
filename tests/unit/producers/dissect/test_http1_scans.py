"""Scans that replaced a regex on the HTTP hot path, against that regex: ``head_end`` (end of
a header section) and ``split_status_line`` (a response's start line)."""

from __future__ import annotations

import random

from hypothesis import given, settings
from hypothesis import strategies as st

from producers.dissect.http1.buffer import ReceiveBuffer, head_end, head_end_regex
from producers.dissect.http1.readers import split_status_line, split_status_line_regex

#: bytes that matter to the search, plus a filler
_ALPHABET = b"\r\n\r\nab: "


def test_head_end_agrees_on_small_edge_cases() -> None:
    cases = [
        b"",
        b"\n",
        b"\n\n",
        b"\r\n\r\n",
        b"\r\n\r",
        b"\n\r",
        b"\n\r\n",
        b"\r\r\n\n",
        b"GET / HTTP/1.1\r\nHost: a\r\n\r\nbody",
        b"HTTP/1.1 200 OK\nA: b\n\nrest",
        b"x\r\n\r\r\n\r\n",
        b"a\n\r\r\n\n",
    ]
    for data in cases:
        for pos in range(len(data) + 2):
            assert head_end(data, pos) == head_end_regex(data, pos), (data, pos)


def test_head_end_agrees_on_random_bytes() -> None:
    rnd = random.Random(5)
    for _ in range(3000):
        data = bytes(rnd.choice(_ALPHABET) for _ in range(rnd.randrange(0, 40)))
        pos = rnd.randrange(0, len(data) + 1)
        assert head_end(data, pos) == head_end_regex(data, pos), (data, pos)
        array = bytearray(data)
        assert head_end(array, pos) == head_end_regex(array, pos), (data, pos)


@settings(max_examples=1000, deadline=None)
@given(st.binary(max_size=64), st.integers(min_value=0, max_value=70))
def test_head_end_agrees_on_any_bytes(data: bytes, pos: int) -> None:
    assert head_end(data, pos) == head_end_regex(data, pos)


def test_take_head_byte_by_byte() -> None:
    head = b"GET / HTTP/1.1\r\nHost: a\r\n\r\n"
    buf = ReceiveBuffer(1024)
    for i in range(len(head) - 1):
        buf.append(head[i : i + 1])
        assert buf.take_head() is None
    buf.append(head[-1:] + b"next")
    assert buf.take_head() == head
    assert bytes(buf.data) == b"next"


_STATUS_PIECES = [
    "HTTP/",
    "1",
    ".",
    "0",
    "9",
    " ",
    "\t",
    "200",
    "404",
    "2000",
    "20",
    "OK",
    "x",
    "\r",
    "\u00b2",
    "HTTP/1.1",
    "http/1.1",
    "Not Found",
    "",
    "  ",
]


def _agree_status(line: str) -> None:
    assert split_status_line(line) == split_status_line_regex(line), repr(line)


def test_split_status_line_agrees_on_common_and_odd_lines() -> None:
    for line in [
        "HTTP/1.1 200 OK",
        "HTTP/1.0 404 Not Found",
        "HTTP/1.1 200",
        "HTTP/1.1 200 ",
        "HTTP/1.1 200\t\tOK \t",
        "HTTP/1.1  200 OK",
        "HTTP/1.1\t200 OK",
        "HTTP/1.1 2000 OK",
        "HTTP/1.1 20 OK",
        "HTTP/1.1 200OK",
        "HTTP/2 200 OK",
        "HTTP/1.\u00b2 200 OK",
        "HTTP/1.1 \u00b200 OK",
        "HTTP/1.1 200 O\rK",
        "http/1.1 200 OK",
        "",
    ]:
        _agree_status(line)


def test_split_status_line_agrees_on_random_lines() -> None:
    rnd = random.Random(9)
    for _ in range(5000):
        line = "".join(rnd.choice(_STATUS_PIECES) for _ in range(rnd.randrange(0, 8)))
        _agree_status(line)
        _agree_status("HTTP/1.1 200" + line)


@settings(max_examples=1000, deadline=None)
@given(st.text(alphabet=st.characters(max_codepoint=255, exclude_characters="\n"), max_size=30))
def test_split_status_line_agrees_on_any_latin1_line(tail: str) -> None:
    _agree_status(tail)
    _agree_status("HTTP/1.1 " + tail)
    _agree_status("HTTP/1.1 200" + tail)
