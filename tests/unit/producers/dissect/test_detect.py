"""Detection by content: what ``select_dissector`` claims, and what it leaves bare."""

from __future__ import annotations

import struct

import dns.message
import pytest

from producers.dissect import Direction, DnsDissector, Http1Dissector, select_dissector
from producers.dissect.detect import looks_like_http

C, S = Direction.CLIENT, Direction.SERVER
QUERY = dns.message.make_query("example.com", "A").to_wire()


@pytest.mark.parametrize(
    ("line", "claimed"),
    [
        # the corpus's malformed-method capture, with what tshark makes of each line
        (b"OPTIONS * HTTP/1.1\n", True),
        (b"OPTIONS HTTP/1.1\n", True),
        (b"OPTIONSHTTP/1.1\n", False),
        (b"OPTIONS\n", True),
        (b"GET / HTTP/1.\n", True),
        (b"GET /HTTP/1.1\n", True),
        (b"GET/ HTTP/1.1\n", False),
        (b"GET/HTTP/1.1\n", False),
        (b"\xc3\x83\xc3\x82\xc3\x83 / HTTP/1.\n", False),
        (b"CCM_POST / HTTP/1.\n", True),
        (b"CCM_POST/ HTTP/1.1\n", False),
        # unknown but well-formed methods need a well-formed line
        (b"FROB /x HTTP/1.1\r\n", True),
        (b"FROB /x\r\n", False),
        (b"HTTP/1.1 200 OK\r\n", True),
        (b"SSH-2.0-OpenSSH_9.6\r\n", False),
        (b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03", False),
        (b"GET / HTTP/1.1\r\nHost: \x00\r\n", True),  # only the request line is judged
        (b"GET /\x00 HTTP/1.1\r\n", False),
    ],
)
def test_http_request_lines(line: bytes, claimed: bool) -> None:
    assert looks_like_http(line) is claimed
    d = select_dissector("tcp", C, line, 40000, 8080)
    assert isinstance(d, Http1Dissector) is claimed


def test_http_detected_on_any_port_and_server_first() -> None:
    assert isinstance(select_dissector("tcp", C, b"GET / HTTP/1.1\r\n", 5555, 6666), Http1Dissector)
    assert isinstance(
        select_dissector("tcp", S, b"HTTP/1.0 200 OK\r\n", 5555, 8089), Http1Dissector
    )


def test_dns_over_udp_by_content() -> None:
    d = select_dissector("udp", C, QUERY, 40000, 9999)
    assert isinstance(d, DnsDissector)
    assert select_dissector("udp", C, b"\x00" * 40, 40000, 53) is None
    assert select_dissector("udp", C, b"random datagram payload", 40000, 53) is None


def test_dns_over_tcp_needs_a_matching_length_prefix() -> None:
    framed = struct.pack("!H", len(QUERY)) + QUERY
    assert isinstance(select_dissector("tcp", C, framed, 40000, 53), DnsDissector)
    assert isinstance(select_dissector("tcp", C, framed[:20], 40000, 53), DnsDissector)
    assert select_dissector("tcp", C, QUERY, 40000, 53) is None  # no prefix


def test_variants_and_netbios() -> None:
    d = select_dissector("udp", C, QUERY, 5353, 5353)
    assert isinstance(d, DnsDissector)
    d.feed(C, QUERY, 1)
    d.end(2)
    item = d.next_item()
    assert item is not None and item.extra["variant"] == "mdns"
    assert select_dissector("udp", C, QUERY, 137, 137) is None


def test_other_layer4_is_bare() -> None:
    assert select_dissector("sctp", C, b"GET / HTTP/1.1\r\n", 1, 2) is None


def test_dns_length_prefix_alone_is_dns_only_on_a_dns_port() -> None:
    framed = struct.pack("!H", len(QUERY)) + QUERY
    d = select_dissector("tcp", C, framed[:2], 40000, 53)
    assert isinstance(d, DnsDissector)
    d.feed(C, framed[:2], 1)
    d.feed(C, framed[2:], 2)
    d.end(3)
    item = d.next_item()
    assert item is not None and item.request["questions"][0]["name"] == "example.com"
    assert select_dissector("tcp", C, framed[:2], 40000, 8080) is None
