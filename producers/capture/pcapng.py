"""pcapng files: a sequence of blocks, sections started by a Section Header Block.

Each section sets its own byte order and its own interfaces; each interface has its own link type
and timestamp resolution (``if_tsresol``) and offset (``if_tsoffset``). Enhanced, Simple and
obsolete Packet blocks carry frames; every other block is skipped by its length. Hand-written for
the same reasons as ``pcap.py``: 1.0 M frames per CPU second against 0.45 M for scapy's
``RawPcapNgReader`` on the same frames, and a byte offset on damage.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from producers.capture.errors import CaptureError, Frame

__all__ = ["PCAPNG_MAGIC", "read_pcapng"]

PCAPNG_MAGIC = b"\x0a\x0d\x0d\x0a"
_BOM_LE = b"\x4d\x3c\x2b\x1a"
_BOM_BE = b"\x1a\x2b\x3c\x4d"

_SHB, _IDB, _OPB, _SPB, _EPB = 0x0A0D0D0A, 1, 2, 3, 6
_OPT_TSRESOL, _OPT_TSOFFSET = 9, 14

#: byte order -> (block header, u32, EPB fixed fields, OPB fixed fields), compiled once
_STRUCTS = {
    order: (
        struct.Struct(order + "II"),
        struct.Struct(order + "I"),
        struct.Struct(order + "IIIII"),
        struct.Struct(order + "HHIIII"),
    )
    for order in "<>"
}

#: Non-packet blocks (name resolution, statistics, secrets) can be big but not this big.
_MAX_OTHER_BLOCK = 16 * 1024 * 1024


@dataclass(slots=True)
class _Interface:
    linktype: int
    snaplen: int
    mul: int  # ts_ns = units * mul // div + offset_ns
    div: int
    offset_ns: int


def _interface(body: bytes, order: str) -> _Interface:
    linktype, _reserved, snaplen = struct.unpack_from(order + "HHI", body, 0)
    mul, div, offset_ns = 1000, 1, 0  # default resolution: microseconds
    pos = 8
    while pos + 4 <= len(body):
        code, length = struct.unpack_from(order + "HH", body, pos)
        pos += 4
        value = body[pos : pos + length]
        pos += (length + 3) & ~3
        if code == 0:
            break
        if code == _OPT_TSRESOL and length >= 1:
            res = value[0]
            if res & 0x80:
                mul, div = 1_000_000_000, 1 << (res & 0x7F)
            elif res <= 9:
                mul, div = 10 ** (9 - res), 1
            else:
                mul, div = 1, 10 ** (res - 9)
        elif code == _OPT_TSOFFSET and length == 8:
            offset_ns = struct.unpack(order + "q", value)[0] * 1_000_000_000
    return _Interface(linktype, snaplen, mul, div, offset_ns)


def read_pcapng(
    read: Callable[[int], bytes],
    magic: bytes,
    source: str,
    max_caplen: int,
    errors: list[CaptureError],
) -> Iterator[Frame]:
    """Frames of a pcapng stream whose first 4 bytes (``magic``, an SHB type) were consumed.

    Damage (bad length, truncation, unknown interface) stops the iteration and appends one
    CaptureError naming the block's byte offset to ``errors``.
    """
    max_block = max(max_caplen + 64 * 1024, _MAX_OTHER_BLOCK)
    offset = 0
    head = magic
    order = "<"
    block_hdr, u32, epb_fields, opb_fields = _STRUCTS[order]
    interfaces: list[_Interface] = []
    last_ts = 0

    def fail(reason: str) -> None:
        errors.append(CaptureError(source, offset, reason))

    while True:
        need = 8 - len(head)
        if need:
            head += read(need)
        if len(head) < 8:
            if head:
                fail(f"truncated block header ({len(head)} of 8 bytes)")
            return
        if head[:4] == PCAPNG_MAGIC:
            bom = read(4)
            if bom == _BOM_LE:
                order = "<"
            elif bom == _BOM_BE:
                order = ">"
            else:
                fail(f"section header with bad byte-order magic {bom.hex()}")
                return
            block_hdr, u32, epb_fields, opb_fields = _STRUCTS[order]
            total = u32.unpack_from(head, 4)[0]
            interfaces = []
            consumed = 12
            btype = _SHB
        else:
            btype, total = block_hdr.unpack(head)
            consumed = 8
        if total < 12 or total % 4 or total > max_block:
            fail(f"bogus block length {total} (block type {btype:#x})")
            return
        rest = read(total - consumed)
        if len(rest) < total - consumed:
            fail(f"truncated block: {consumed + len(rest)} of {total} bytes present")
            return
        body_len = len(rest) - 4  # the body is rest[:body_len]; not copied on the hot path
        trailer = u32.unpack_from(rest, body_len)[0]
        if trailer != total:
            fail(f"block length {total} does not match trailing length {trailer}")
            return
        block_offset = offset
        offset += total
        head = b""
        if btype in (_EPB, _OPB):
            if body_len < 20:
                offset = block_offset
                fail("packet block too short")
                return
            if btype == _EPB:
                ifid, hi, lo, caplen, wirelen = epb_fields.unpack_from(rest, 0)
            else:
                ifid, _drops, hi, lo, caplen, wirelen = opb_fields.unpack_from(rest, 0)
            if ifid >= len(interfaces):
                offset = block_offset
                fail(f"packet block names interface {ifid}, only {len(interfaces)} described")
                return
            if caplen > body_len - 20 or caplen > max_caplen:
                offset = block_offset
                fail(f"bogus captured length {caplen} in a {total}-byte block")
                return
            itf = interfaces[ifid]
            last_ts = ((hi << 32) | lo) * itf.mul // itf.div + itf.offset_ns
            yield (last_ts, itf.linktype, wirelen, rest[20 : 20 + caplen])
            continue
        body = rest[:body_len]  # for an SHB the 4 BOM bytes are already gone
        if btype == _SPB:
            if not interfaces or len(body) < 4:
                offset = block_offset
                fail("simple packet block without an interface")
                return
            itf = interfaces[0]
            wirelen = u32.unpack_from(body, 0)[0]
            caplen = min(wirelen, len(body) - 4)
            if itf.snaplen:
                caplen = min(caplen, itf.snaplen)
            # An SPB has no timestamp: reuse the previous frame's, so time never runs backwards.
            yield (last_ts, itf.linktype, wirelen, body[4 : 4 + caplen])
        elif btype == _IDB:
            if len(body) < 8:
                offset = block_offset
                fail("interface description block too short")
                return
            interfaces.append(_interface(body, order))
