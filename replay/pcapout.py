"""Write captured frames back out as a capture file, byte for byte as they were read.

A stream's PCAP downloaded from the dashboard must hold exactly the frames the sensor read, so
the writer never re-encodes anything: frame bytes, original lengths and timestamps are copied.
Classic pcap is what every tool opens, so it is used whenever it can say everything; pcapng only
when frames of several link types have to share one file (classic pcap has one per file).
Microsecond pcap is chosen when no timestamp has sub-microsecond digits, so a file written from
frames of a microsecond capture has the same header and records as the original.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Iterator

__all__ = ["PcapFrame", "write_capture"]

#: ``(ts_ns, linktype, wirelen, data)`` — the same shape as ``producers.capture.Frame``.
PcapFrame = tuple[int, int, int, bytes]

_SNAPLEN = 262_144


def _pcap(frames: list[PcapFrame], linktype: int) -> Iterator[bytes]:
    nano = any(ts % 1000 for ts, _, _, _ in frames)
    magic = 0xA1B23C4D if nano else 0xA1B2C3D4
    yield struct.pack("<IHHiIII", magic, 2, 4, 0, 0, _SNAPLEN, linktype)
    div = 1_000_000_000
    unit = 1 if nano else 1000
    record = struct.Struct("<IIII").pack
    for ts, _lt, wirelen, data in frames:
        sec, rem = divmod(ts, div)
        yield record(sec, rem // unit, len(data), wirelen)
        yield data


def _pcapng(frames: list[PcapFrame]) -> Iterator[bytes]:
    shb_body = struct.pack("<IHHq", 0x1A2B3C4D, 1, 0, -1)
    yield (
        struct.pack("<II", 0x0A0D0D0A, 12 + len(shb_body))
        + shb_body
        + struct.pack("<I", 12 + len(shb_body))
    )
    ifaces: dict[int, int] = {}
    for _ts, lt, _w, _d in frames:
        if lt not in ifaces:
            ifaces[lt] = len(ifaces)
            # if_tsresol = 9 (nanoseconds), then opt_endofopt.
            body = struct.pack("<HHI", lt, 0, _SNAPLEN) + struct.pack("<HHB3x", 9, 1, 9) + b"\0" * 4
            yield struct.pack("<II", 1, 12 + len(body)) + body + struct.pack("<I", 12 + len(body))
    for ts, lt, wirelen, data in frames:
        pad = b"\0" * (-len(data) % 4)
        total = 32 + len(data) + len(pad)
        yield struct.pack(
            "<IIIIIII", 6, total, ifaces[lt], ts >> 32, ts & 0xFFFFFFFF, len(data), wirelen
        )
        yield data + pad + struct.pack("<I", total)


def write_capture(frames: Iterable[PcapFrame]) -> Iterator[bytes]:
    """The capture file as chunks: classic pcap for one link type, pcapng for several."""
    items = list(frames)
    linktypes = {lt for _, lt, _, _ in items}
    if len(linktypes) <= 1:
        yield from _pcap(items, next(iter(linktypes), 1))
    else:
        yield from _pcapng(items)
