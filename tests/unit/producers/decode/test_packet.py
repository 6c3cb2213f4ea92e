"""Decoder: every link type, VLAN/QinQ, IPv4/IPv6 (extension headers), fragments, and junk."""

from __future__ import annotations

import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from producers.decode import TCP, UDP, Decoder, FragmentReassembler
from producers.decode.synth import (
    ACK,
    PSH,
    ether,
    fragment_ipv4,
    ipv4,
    ipv6,
    tcp,
    tcp_frame,
    udp,
    udp_frame,
)

SEG = tcp(40000, 80, 1000, 2000, PSH | ACK, b"GET / HTTP/1.1\r\n\r\n")
IP4 = ipv4("10.0.0.1", "10.0.0.2", 6, SEG)
IP6 = ipv6("fe80::1", "fe80::2", 6, SEG)


def _one(linktype: int, data: bytes) -> object:
    dec = Decoder()
    return dec.decode((5, linktype, len(data), data)), dec


def _check(pkt: object, v6: bool = False) -> None:
    assert pkt is not None
    assert pkt.proto == TCP and pkt.sport == 40000 and pkt.dport == 80
    assert pkt.seq == 1000 and pkt.ack == 2000 and pkt.flags == PSH | ACK
    assert pkt.payload == b"GET / HTTP/1.1\r\n\r\n"
    assert len(pkt.src) == (16 if v6 else 4)


@pytest.mark.parametrize(
    ("linktype", "data", "v6"),
    [
        (1, ether(IP4), False),
        (1, ether(IP6, 0x86DD), True),
        (113, struct.pack("!HHH8sH", 0, 1, 6, b"\0" * 8, 0x0800) + IP4, False),
        (276, struct.pack("!HHIHBB8s", 0x86DD, 0, 1, 1, 0, 6, b"\0" * 8) + IP6, True),
        (101, IP4, False),
        (101, IP6, True),
        (12, IP4, False),
        (14, IP6, True),
        (228, IP4, False),
        (229, IP6, True),
        (0, struct.pack("<I", 2) + IP4, False),  # NULL, little-endian host
        (0, struct.pack(">I", 2) + IP4, False),  # NULL, big-endian host
        (0, struct.pack("<I", 30) + IP6, True),  # macOS AF_INET6
        (0, struct.pack("<I", 24) + IP6, True),  # OpenBSD AF_INET6
        (108, struct.pack(">I", 2) + IP4, False),  # LOOP is always big-endian
    ],
)
def test_link_types(linktype: int, data: bytes, v6: bool) -> None:
    pkt, _ = _one(linktype, data)
    _check(pkt, v6)


@pytest.mark.parametrize("tags", [(7,), (100, 200), (1, 2, 3)])
def test_vlan_tags_kept(tags: tuple[int, ...]) -> None:
    pkt, _ = _one(1, ether(IP4, vlan=tags))
    _check(pkt)
    assert pkt.vlan == tags


def test_a_packet_keeps_the_very_frame_that_carried_it() -> None:
    frame = (5, 1, 60, ether(IP4))
    pkt = Decoder().decode(frame)
    assert pkt is not None
    assert pkt.frame is frame and pkt.fragments is None
    assert pkt.frames == (frame,) and pkt.frames[0] is frame
    assert "sport=40000" in repr(pkt)


def test_tpid_9100() -> None:
    data = ether(b"")[:12] + struct.pack("!HHH", 0x9100, 42, 0x0800) + IP4
    pkt, _ = _one(1, data)
    assert pkt.vlan == (42,)


def test_ethernet_padding_stripped() -> None:
    frame = tcp_frame(1, "10.0.0.1", 1, "10.0.0.2", 2, 0, 0, ACK)
    assert len(frame[3]) == 60  # padded
    pkt, _ = _one(1, frame[3])
    assert pkt.payload == b""


def test_ipv6_extension_headers() -> None:
    hop = bytes([60, 0]) + b"\x01\x04\x00\x00\x00\x00"  # hop-by-hop -> dest opts
    dst_opts = bytes([43, 1]) + b"\x00" * 14  # dest opts (16 bytes) -> routing
    routing = bytes([6, 0]) + b"\x00" * 6  # routing -> TCP
    data = ipv6("::1", "::2", 0, hop + dst_opts + routing + SEG)
    pkt, _ = _one(101, data)
    _check(pkt, v6=True)


def test_ipv6_atomic_fragment() -> None:
    frag = struct.pack("!BBHI", 6, 0, 0, 99)
    pkt, dec = _one(101, ipv6("::1", "::2", 44, frag + SEG))
    _check(pkt, v6=True)
    assert not dec.fragments.counts["fragments"]


def test_ipv6_fragments_reassembled() -> None:
    body = udp(5353, 53, b"x" * 3000)
    dec = Decoder()
    frames = []
    for start in range(0, len(body), 1232):
        more = 1 if start + 1232 < len(body) else 0
        hdr = struct.pack("!BBHI", 17, 0, start | more, 7)
        data = ipv6("::1", "::2", 44, hdr + body[start : start + 1232])
        frames.append((start, 101, len(data), data))
    out = [dec.decode(f) for f in reversed(frames)]
    assert out[:-1] == [None, None]
    pkt = out[-1]
    assert pkt.proto == UDP and pkt.payload == b"x" * 3000
    assert set(pkt.frames) == set(frames)
    assert pkt.fragments == pkt.frames and pkt.frame is frames[0]  # the one that completed it


def test_ipv4_fragments_any_order_and_overlap() -> None:
    body = udp(1000, 53, bytes(range(256)) * 10)
    frames = fragment_ipv4(1, "10.0.0.1", "10.0.0.2", 17, body, 512, ident=9)
    dec = Decoder()
    order = [frames[2], frames[0], frames[0], frames[4], frames[1], frames[3], frames[5]]
    results = [dec.decode(f) for f in order]
    pkt = results[-1]
    assert all(r is None for r in results[:-1])
    assert pkt.payload == bytes(range(256)) * 10
    assert len(pkt.frames) == 7
    assert dec.fragments.counts["overlaps"] == 1
    assert dec.fragments.counts["conflicts"] == 0


def test_conflicting_overlap_first_copy_wins() -> None:
    body = udp(1000, 53, b"A" * 32)
    first = fragment_ipv4(1, "10.0.0.1", "10.0.0.2", 17, body, 16, ident=3)
    forged = ether(ipv4("10.0.0.1", "10.0.0.2", 17, b"B" * 16, 3, 0x2000 | 2))
    dec = Decoder()
    assert dec.decode(first[0]) is None
    assert dec.decode(first[1]) is None
    assert dec.decode((1, 1, len(forged), forged)) is None
    pkt = dec.decode(first[2])
    assert pkt.payload == b"A" * 32
    assert dec.fragments.counts["conflicts"] == 1


def test_fragment_timeout_and_caps() -> None:
    frags = FragmentReassembler(timeout_ns=1000, max_datagrams=2)
    dec = Decoder(frags)
    for ident in range(3):
        f = fragment_ipv4(ident * 10, "10.0.0.1", "10.0.0.2", 17, udp(1, 2, b"z" * 64), 24, ident)
        assert dec.decode(f[0]) is None
    assert frags.counts["evicted"] == 1 and len(frags) == 2
    late = fragment_ipv4(5000, "10.0.0.1", "10.0.0.2", 17, udp(1, 2, b"z" * 64), 24, 77)
    dec.decode(late[0])
    assert frags.counts["expired"] == 2 and len(frags) == 1
    frags.flush()
    assert frags.counts["frames_dropped"] == 4 and frags.pending_bytes == 0


def test_fragment_beyond_64k_refused() -> None:
    data = ether(ipv4("10.0.0.1", "10.0.0.2", 17, b"q" * 100, 1, 0x1FFF))
    pkt, dec = _one(1, data)
    assert pkt is None and dec.fragments.counts["oversize"] == 1


def test_skipped_and_malformed_are_counted() -> None:
    dec = Decoder()
    arp = ether(b"\0" * 28, 0x0806)
    icmp = ether(ipv4("10.0.0.1", "10.0.0.2", 1, b"\x08\0" + b"\0" * 30))
    bad_ihl = ether(b"\x41" + IP4[1:])
    short_tcp = ether(ipv4("10.0.0.1", "10.0.0.2", 6, b"\0" * 10))
    bad_udp = ether(ipv4("10.0.0.1", "10.0.0.2", 17, struct.pack("!HHHH", 1, 2, 3, 0)))
    for data in (arp, icmp, bad_ihl, short_tcp, bad_udp, b"\x00" * 5):
        assert dec.decode((0, 1, len(data), data)) is None
    assert dec.decode((0, 147, 4, b"abcd")) is None
    assert dict(dec.skipped) == {"arp": 1, "icmp": 1, "linktype 147": 1}
    assert dict(dec.malformed) == {
        "ipv4 bad header": 1,
        "tcp header truncated": 1,
        "udp bad length": 1,
        "link header truncated": 1,
    }


def test_snapped_frame_gives_captured_payload() -> None:
    data = ether(IP4)[:-5]
    pkt, dec = _one(1, data)
    assert pkt.payload == b"GET / HTTP/1.1\r\n"[:-3] and dec.snapped == 1


def test_udp_payload_and_ipv6() -> None:
    dec = Decoder()
    pkt = dec.decode(udp_frame(3, "2001:db8::1", 5000, "2001:db8::2", 53, b"dns!"))
    assert pkt.proto == UDP and pkt.payload == b"dns!" and pkt.dport == 53


@settings(max_examples=500, deadline=None)
@given(
    st.sampled_from([0, 1, 12, 101, 108, 113, 228, 229, 276, 9999]),
    st.binary(max_size=200),
    st.sampled_from([b"", ether(b"")[:14], ether(IP4)[:34], IP6[:40], IP4[:20]]),
)
def test_fuzz_decoder_counts_never_raises(linktype: int, tail: bytes, head: bytes) -> None:
    dec = Decoder()
    data = head + tail
    pkt = dec.decode((0, linktype, len(data), data))
    total = sum(dec.malformed.values()) + sum(dec.skipped.values())
    total += dec.fragments.counts["frames_dropped"]
    assert (pkt is not None) + total + len(dec.fragments) <= 1
    if pkt is None and not len(dec.fragments):
        assert total == 1


def test_ipv6_fragments_with_extension_header_inside() -> None:
    dst_opts = bytes([17, 0]) + b"\x01\x04\x00\x00\x00\x00"  # destination options -> UDP
    body = dst_opts + udp(1234, 53, b"y" * 2000)
    dec = Decoder()
    out = []
    for start in range(0, len(body), 1200):
        more = 1 if start + 1200 < len(body) else 0
        hdr = struct.pack("!BBHI", 60, 0, start | more, 8)
        data = ipv6("::1", "::2", 44, hdr + body[start : start + 1200])
        out.append(dec.decode((start, 101, len(data), data)))
    pkt = out[-1]
    assert out[0] is None and pkt.proto == UDP and pkt.payload == b"y" * 2000
