"""PCAP bytes from recorded packets, written so that the same packets always give the same bytes.

Classic PCAP is the default because every tool opens it; it uses the nanosecond magic so the
sensor's ``ts_ns`` survives unrounded. A classic file holds one link type, so a caller that has
packets of several link types writes one object per link type (see ``docs/sink.md``). pcapng
is optional and holds them all in one file, one interface (IDB) per link type.

Everything here is pure: packets in, bytes out. No field depends on a clock or on the host.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Sequence
from typing import Protocol

from sinks.errors import SinkError

__all__ = [
    "DEFAULT_SNAPLEN",
    "PCAPNG_EXTENSION",
    "PCAP_EXTENSION",
    "PCAP_MAGIC_NS",
    "CapturedPacket",
    "check_packets",
    "write_pcap",
    "write_pcapng",
]

PCAP_MAGIC_NS = 0xA1B23C4D
PCAP_EXTENSION = "pcap"
PCAPNG_EXTENSION = "pcapng"
# tcpdump's default; raised to the largest captured frame when one is bigger, so readers that
# trust snaplen never truncate.
DEFAULT_SNAPLEN = 262144


class CapturedPacket(Protocol):
    """What a PCAP record needs of a packet: ``streamtap.schema``'s ``Packet`` (what the sink
    decodes) and ``RawPacket`` (the model) both have it."""

    @property
    def ts_ns(self) -> int: ...
    @property
    def linktype(self) -> int: ...
    @property
    def wirelen(self) -> int: ...
    @property
    def data(self) -> bytes: ...


_GLOBAL = struct.Struct("<IHHiIII")
_RECORD = struct.Struct("<IIII")
_NS = 1_000_000_000


def _snaplen(packets: Sequence[CapturedPacket]) -> int:
    return max([DEFAULT_SNAPLEN, *(len(p.data) for p in packets)])


def check_packets(packets: Iterable[CapturedPacket]) -> None:
    """Raise SinkError for a packet no PCAP can hold, before it is batched with good ones."""
    for packet in packets:
        _check(packet)


def _check(packet: CapturedPacket) -> None:
    if packet.ts_ns < 0:
        raise SinkError(f"packet timestamp {packet.ts_ns} is before 1970")
    if packet.ts_ns // _NS > 0xFFFFFFFF:
        raise SinkError(f"packet timestamp {packet.ts_ns} does not fit classic PCAP")


def write_pcap(packets: Iterable[CapturedPacket], linktype: int) -> bytes:
    """A classic little-endian nanosecond PCAP of ``packets`` in the order given.

    Every packet must have ``linktype``: silently writing a frame under the wrong link type
    would make it undecodable, which is worse than refusing.
    """
    items = list(packets)
    parts = [_GLOBAL.pack(PCAP_MAGIC_NS, 2, 4, 0, 0, _snaplen(items), linktype)]
    pack = _RECORD.pack
    for packet in items:
        if packet.linktype != linktype:
            raise SinkError(f"packet of link type {packet.linktype} in a {linktype} PCAP")
        _check(packet)
        data = packet.data
        caplen = len(data)
        sec, nsec = divmod(packet.ts_ns, _NS)
        parts.append(pack(sec, nsec, caplen, max(packet.wirelen, caplen)))
        parts.append(data)
    return b"".join(parts)


# --- pcapng -----------------------------------------------------------------------------------

_BT_SHB = 0x0A0D0D0A
_BT_IDB = 0x00000001
_BT_EPB = 0x00000006
_BYTE_ORDER_MAGIC = 0x1A2B3C4D
_OPT_ENDOFOPT = 0
_OPT_IF_TSRESOL = 9


def _pad4(data: bytes) -> bytes:
    return data + b"\0" * (-len(data) % 4)


def _block(block_type: int, body: bytes) -> bytes:
    length = 12 + len(body)
    return struct.pack("<II", block_type, length) + body + struct.pack("<I", length)


def _option(code: int, value: bytes) -> bytes:
    return struct.pack("<HH", code, len(value)) + _pad4(value)


def write_pcapng(packets: Iterable[CapturedPacket]) -> bytes:
    """A pcapng with one section and one interface per link type, in first-seen order.

    Interfaces say ``if_tsresol = 9`` (nanoseconds), so timestamps are kept exactly.
    """
    items = list(packets)
    linktypes: dict[int, int] = {}
    for packet in items:
        _check(packet)
        linktypes.setdefault(packet.linktype, len(linktypes))
    snaplen = _snaplen(items)
    # Section length -1: "not given", which every reader accepts and which keeps us streaming.
    out = bytearray(_block(_BT_SHB, struct.pack("<IHHq", _BYTE_ORDER_MAGIC, 1, 0, -1)))
    options = _option(_OPT_IF_TSRESOL, bytes([9])) + _option(_OPT_ENDOFOPT, b"")
    for linktype in linktypes:
        out += _block(_BT_IDB, struct.pack("<HHI", linktype, 0, snaplen) + options)
    for packet in items:
        caplen = len(packet.data)
        ts = packet.ts_ns
        body = struct.pack(
            "<IIIII",
            linktypes[packet.linktype],
            ts >> 32,
            ts & 0xFFFFFFFF,
            caplen,
            max(packet.wirelen, caplen),
        )
        out += _block(_BT_EPB, body + _pad4(packet.data))
    return bytes(out)
