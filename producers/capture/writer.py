"""Write frames back out as classic pcap or pcapng: for tests, benchmarks and PCAP export.

The writers take frames as the readers yield them, so ``read(write(frames)) == frames``.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable
from typing import BinaryIO

from producers.capture.errors import Frame

__all__ = ["pcap_header", "pcap_record", "pcapng_bytes", "write_pcap"]


def pcap_header(
    linktype: int, *, nano: bool = False, big_endian: bool = False, snaplen: int = 262_144
) -> bytes:
    """The 24-byte global header of a classic pcap file."""
    order = ">" if big_endian else "<"
    magic = 0xA1B23C4D if nano else 0xA1B2C3D4
    return struct.pack(order + "IHHiIII", magic, 2, 4, 0, 0, snaplen, linktype)


def pcap_record(frame: Frame, *, nano: bool = False, big_endian: bool = False) -> bytes:
    """One record (16-byte header + data) of a classic pcap file."""
    ts_ns, _linktype, wirelen, data = frame
    sec, rest = divmod(ts_ns, 1_000_000_000)
    frac = rest if nano else rest // 1000
    order = ">" if big_endian else "<"
    return struct.pack(order + "IIII", sec, frac, len(data), wirelen) + data


def write_pcap(
    stream: BinaryIO, frames: Iterable[Frame], linktype: int, *, nano: bool = True
) -> int:
    """Write a classic pcap (one link type, as pcap allows); returns the frame count."""
    stream.write(pcap_header(linktype, nano=nano))
    count = 0
    for frame in frames:
        stream.write(pcap_record(frame, nano=nano))
        count += 1
    return count


def _block(order: str, btype: int, body: bytes) -> bytes:
    body += b"\x00" * (-len(body) % 4)
    total = len(body) + 12
    return struct.pack(order + "II", btype, total) + body + struct.pack(order + "I", total)


def _option(order: str, code: int, value: bytes) -> bytes:
    return struct.pack(order + "HH", code, len(value)) + value + b"\x00" * (-len(value) % 4)


def pcapng_bytes(
    sections: Iterable[tuple[list[tuple[int, int | None]], list[tuple[int, Frame]]]],
    *,
    big_endian: bool = False,
    simple: bool = False,
) -> bytes:
    """A pcapng image: per section, interfaces ``(linktype, tsresol option byte or None)`` and
    frames ``(interface index, frame)`` as Enhanced (or, with ``simple``, Simple) Packet Blocks.
    """
    order = ">" if big_endian else "<"
    out = bytearray()
    for interfaces, frames in sections:
        out += _block(order, 0x0A0D0D0A, struct.pack(order + "IHHq", 0x1A2B3C4D, 1, 0, -1))
        resolutions = []
        for linktype, tsresol in interfaces:
            opts = b""
            if tsresol is not None:
                opts = _option(order, 9, bytes([tsresol])) + _option(order, 0, b"")
            out += _block(order, 1, struct.pack(order + "HHI", linktype, 0, 0) + opts)
            if tsresol is None:
                resolutions.append((1000, 1))
            elif tsresol & 0x80:
                resolutions.append((1_000_000_000, 1 << (tsresol & 0x7F)))
            else:
                resolutions.append((10 ** (9 - tsresol), 1))
        for ifid, (ts_ns, _lt, wirelen, data) in frames:
            if simple:
                out += _block(order, 3, struct.pack(order + "I", wirelen) + data)
                continue
            mul, div = resolutions[ifid]
            units = ts_ns * div // mul
            body = (
                struct.pack(
                    order + "IIIII", ifid, units >> 32, units & 0xFFFFFFFF, len(data), wirelen
                )
                + data
            )
            out += _block(order, 6, body)
    return bytes(out)
