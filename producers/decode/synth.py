"""Build frames from scratch: the test kit for decoders and reassembly, and the benchmark's
traffic generator. Checksums are left zero (nothing here verifies them)."""

from __future__ import annotations

import ipaddress
import struct

from producers.capture import Frame

__all__ = [
    "ACK",
    "FIN",
    "PSH",
    "RST",
    "SYN",
    "ether",
    "fragment_ipv4",
    "ipv4",
    "ipv6",
    "tcp",
    "tcp_frame",
    "udp",
    "udp_frame",
]

FIN, SYN, RST, PSH, ACK = 0x01, 0x02, 0x04, 0x08, 0x10


def _addr(text: str) -> bytes:
    return ipaddress.ip_address(text).packed


def tcp(sport: int, dport: int, seq: int, ack: int, flags: int, payload: bytes = b"") -> bytes:
    return struct.pack("!HHIIBBHHH", sport, dport, seq, ack, 5 << 4, flags, 65535, 0, 0) + payload


def udp(sport: int, dport: int, payload: bytes) -> bytes:
    return struct.pack("!HHHH", sport, dport, 8 + len(payload), 0) + payload


def ipv4(src: str, dst: str, proto: int, payload: bytes, ident: int = 0, frag: int = 0) -> bytes:
    """``frag`` is the raw flags+offset word (0x2000 = more fragments, offset in 8-byte units)."""
    header = struct.pack(
        "!BBHHHBBH4s4s",
        0x45,
        0,
        20 + len(payload),
        ident,
        frag,
        64,
        proto,
        0,
        _addr(src),
        _addr(dst),
    )
    return header + payload


def ipv6(src: str, dst: str, nh: int, payload: bytes) -> bytes:
    return struct.pack("!IHBB16s16s", 6 << 28, len(payload), nh, 64, _addr(src), _addr(dst)) + (
        payload
    )


def ether(payload: bytes, ethertype: int = 0x0800, vlan: tuple[int, ...] = ()) -> bytes:
    # outer tags use 0x88a8 when stacked, the innermost 0x8100, as switches do for QinQ
    out = b"\x02\x00\x00\x00\x00\x02\x02\x00\x00\x00\x00\x01"
    for i, vid in enumerate(vlan):
        tpid = 0x88A8 if i < len(vlan) - 1 else 0x8100
        out += struct.pack("!HH", tpid, vid)
    out += struct.pack("!H", ethertype) + payload
    return out + b"\x00" * max(0, 60 - len(out))  # short frames are padded on the wire


def tcp_frame(
    ts_ns: int,
    src: str,
    sport: int,
    dst: str,
    dport: int,
    seq: int,
    ack: int,
    flags: int,
    payload: bytes = b"",
    vlan: tuple[int, ...] = (),
) -> Frame:
    """An Ethernet frame holding one TCP segment (IPv6 when the addresses are IPv6)."""
    seg = tcp(sport, dport, seq, ack, flags, payload)
    if ":" in src:
        data = ether(ipv6(src, dst, 6, seg), 0x86DD, vlan)
    else:
        data = ether(ipv4(src, dst, 6, seg), 0x0800, vlan)
    return (ts_ns, 1, len(data), data)


def udp_frame(ts_ns: int, src: str, sport: int, dst: str, dport: int, payload: bytes) -> Frame:
    dgram = udp(sport, dport, payload)
    if ":" in src:
        data = ether(ipv6(src, dst, 17, dgram), 0x86DD)
    else:
        data = ether(ipv4(src, dst, 17, dgram), 0x0800)
    return (ts_ns, 1, len(data), data)


def fragment_ipv4(
    ts_ns: int, src: str, dst: str, proto: int, payload: bytes, size: int, ident: int
) -> list[Frame]:
    """Ethernet frames carrying ``payload`` as IPv4 fragments of ``size`` bytes (multiple of 8)."""
    frames = []
    for start in range(0, len(payload), size):
        more = 0x2000 if start + size < len(payload) else 0
        data = ether(ipv4(src, dst, proto, payload[start : start + size], ident, more | start // 8))
        frames.append((ts_ns, 1, len(data), data))
    return frames
