"""The HTTP head fast path (``parse_head``) against the careful reference (``parse_head_careful``).

Both must give the same ``Head`` (every field, including the header tuple and both maps) or
raise ``DissectError`` with the same message, on every head of the corpus, on generated
well-formed heads, and on hypothesis heads built from the sloppy pieces real traffic carries
(bare LF, obs-fold, colon-less lines, odd whitespace, odd start lines). The engine's output on
the whole corpus must also be the same with the fast path switched off.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

import producers._native as native
import producers.dissect.http1.readers as readers_module
import producers.dissect.http1.side as side_module
from producers.capture import open_capture
from producers.dissect import DissectError
from producers.dissect.http1.events import Head
from producers.dissect.http1.readers import parse_head, parse_head_careful
from producers.engine import Engine
from streamtap.schema import encode_record

CORPUS = Path(__file__).resolve().parents[3] / "data" / "corpus"
PCAPS = sorted(p.name for p in CORPUS.glob("*.pcap"))
MAX_HEADERS = 256


def _outcome(
    parse: Callable[[bytes, bool, int, int], Head], raw: bytes, is_request: bool, max_headers: int
) -> Head | str:
    try:
        return parse(raw, is_request, 7, max_headers)
    except DissectError as exc:
        return f"DissectError: {exc}"


def _agree(raw: bytes, is_request: bool, max_headers: int = MAX_HEADERS) -> None:
    fast = _outcome(parse_head, raw, is_request, max_headers)
    careful = _outcome(parse_head_careful, raw, is_request, max_headers)
    assert fast == careful, raw
    if isinstance(fast, Head) and isinstance(careful, Head):
        # dict equality ignores order; the entry's headers keep the order they were sent in
        assert list(fast.fields.items()) == list(careful.fields.items())
        assert list(fast.index.items()) == list(careful.index.items())


def _corpus_heads() -> Iterator[tuple[bytes, bool]]:
    """Every head the engine parses on the corpus, as (raw bytes, is_request)."""
    seen: list[tuple[bytes, bool]] = []
    original = side_module.parse_head

    def record(raw: bytes, is_request: bool, ts_ns: int, max_headers: int) -> Head:
        seen.append((raw, is_request))
        return original(raw, is_request, ts_ns, max_headers)

    side_module.parse_head = record
    try:
        for name in PCAPS:
            Engine("t").feed_all(open_capture(CORPUS / name))
    finally:
        side_module.parse_head = original
    return iter(seen)


def test_fast_and_careful_agree_on_every_corpus_head() -> None:
    heads = list(_corpus_heads())
    assert len(heads) > 500
    sloppy = 0
    for raw, is_request in heads:
        _agree(raw, is_request)
        sloppy += raw.count(b"\n") != raw.count(b"\r\n")
    assert sloppy, "the corpus has bare-LF heads: the careful path must be exercised too"


def test_fast_and_careful_agree_with_a_tight_header_cap() -> None:
    for raw, is_request in list(_corpus_heads())[:300]:
        _agree(raw, is_request, max_headers=3)


def _engine_output(name: str) -> list[bytes]:
    return [encode_record(r) for r in Engine("t").feed_all(open_capture(CORPUS / name))]


@pytest.mark.parametrize("name", [n for n in PCAPS if n.startswith(("http", "mixed", "tcp"))])
def test_engine_output_is_the_same_without_the_fast_path(
    name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    fast = _engine_output(name)
    monkeypatch.setattr(side_module, "parse_head", parse_head_careful)
    assert _engine_output(name) == fast


def _generated_heads(n: int) -> Iterator[tuple[bytes, bool]]:
    """Heads shaped like ``bench/sensor_bench.py``'s traffic and a few well-formed variants."""
    for i in range(n):
        yield (
            (
                f"GET /api/v1/items/{i * 7919}?page={i % 12} HTTP/1.1\r\nHost: shop-80.example\r\n"
                f"User-Agent: bench/1.0\r\nAccept: */*\r\n\r\n"
            ).encode(),
            True,
        )
        yield (
            (
                f"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {i}\r\n\r\n"
            ).encode(),
            False,
        )
        yield (
            (
                f"POST /f HTTP/1.0\r\nCookie: a={i}\r\ncookie: b=2\r\nX-Empty:\r\n"
                f"X-Pad:  \t spaced \t \r\nContent-Length: 0\r\n\r\n"
            ).encode(),
            True,
        )
        yield f"HTTP/1.1 30{i % 10} \r\nLocation: /x\r\nSet-Cookie: s={i}\r\n\r\n".encode(), False


def test_fast_and_careful_agree_on_generated_heads() -> None:
    for raw, is_request in _generated_heads(200):
        _agree(raw, is_request)


_EOL = st.sampled_from(["\r\n", "\r\n", "\r\n", "\n", "\r\r\n"])
_WS = st.sampled_from(["", " ", "\t", "  ", " \t"])
_NAME = st.sampled_from(["Host", "host", "Content-Length", "X-A", "Cookie", "", "A B", "é"])
_VALUE = st.text(
    alphabet=st.sampled_from(list("abc ,:;=\t\r/%+é\x00")), max_size=12
) | st.sampled_from(["0", "12", "1, 1", "1,2", "chunked", "gzip"])
_HEADER_LINE = st.one_of(
    st.tuples(_NAME, _WS, st.just(":"), _WS, _VALUE, _WS).map("".join),
    st.tuples(st.sampled_from([" ", "\t"]), _VALUE).map("".join),  # obs-fold
    _VALUE,  # a line without a colon, or blank
)
_START = st.sampled_from(
    [
        "GET / HTTP/1.1",
        "GET /a?b=c HTTP/1.0",
        "OPTIONS HTTP/1.1",
        "CCM_POST /x HTTP/1.1",
        "GET / HTTP/1.",
        "G(T / HTTP/1.1",
        " GET / HTTP/1.1",
        "HTTP/1.1 200 OK",
        "HTTP/1.0 404",
        "HTTP/1.1 20 OK",
        "HTTP/2 200 OK",
        "HTTP/1.1 200\tOK fine",
    ]
)


@st.composite
def _heads(draw: st.DrawFn) -> bytes:
    lines = [draw(_START), *draw(st.lists(_HEADER_LINE, max_size=8))]
    text = "".join(line + draw(_EOL) for line in lines) + draw(_EOL)
    return text.encode("latin-1", errors="replace")


@settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_heads(), st.booleans(), st.sampled_from([2, MAX_HEADERS]))
@example(b"GET / HTTP/1.1\r\n folded\r\nA: b\r\n\r\n", True, MAX_HEADERS)
@example(b"GET / HTTP/1.1\r\nA: b\n\r\n", True, MAX_HEADERS)
@example(b"HTTP/1.1 200 OK\r\nA:\r\r\n\r\n", False, MAX_HEADERS)
def test_fast_and_careful_agree_on_hypothesis_heads(
    raw: bytes, is_request: bool, max_headers: int
) -> None:
    _agree(raw, is_request, max_headers)


@settings(max_examples=500, deadline=None)
@given(st.binary(max_size=200), st.booleans())
def test_fast_and_careful_agree_on_random_bytes(data: bytes, is_request: bool) -> None:
    _agree(data + b"\r\n\r\n", is_request)


def test_well_formed_heads_take_the_fast_path(monkeypatch: pytest.MonkeyPatch) -> None:
    """The fast path checks a head's shape as it splits it: well-formed heads must not fall
    back to the careful parser, sloppy ones must. Seen as pure Python only (compiled code
    calls the careful parser natively, past the patch)."""
    fallbacks: list[bytes] = []

    def careful(raw: bytes, is_request: bool, ts_ns: int, max_headers: int) -> Head:
        fallbacks.append(raw)
        return parse_head_careful(raw, is_request, ts_ns, max_headers)

    monkeypatch.setattr(readers_module, "parse_head_careful", careful)
    for raw, is_request in _generated_heads(20):
        fast = readers_module.parse_head(raw, is_request, 7, MAX_HEADERS)
        assert fast == parse_head_careful(raw, is_request, 7, MAX_HEADERS)
    sloppy = [
        b"GET / HTTP/1.1\nHost: x\n\n",
        b"GET / HTTP/1.1\r\nA: 1\r\n folded\r\n\r\n",
        b"GET / HTTP/1.1\r\nA: 1\r\n\tfolded\r\n\r\n",
        b"GET / HTTP/1.1\r\nA: 1\n\r\n",
    ]
    for raw in sloppy:
        readers_module.parse_head(raw, True, 7, MAX_HEADERS)
    assert fallbacks == ([] if native.mode() == "compiled" else sloppy)


def test_lower_cased_names_memo_is_bounded() -> None:
    names = [f"X-Name-{i}" for i in range(readers_module._LOWER_MAX + 100)]
    for name in names:
        assert readers_module._lower(name) == name.lower()
    assert 0 < len(readers_module._LOWER) <= readers_module._LOWER_MAX
    assert readers_module._lower("Content-Type") == "content-type"
