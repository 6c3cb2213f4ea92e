"""Frame -> TCP/UDP packet: link layer, IPv4/IPv6 (extension headers, fragments), TCP/UDP.

The hot path of the sensor. Headers are read with ``struct`` and byte indexing straight from
the frame's bytes (no per-layer objects, no scapy: scapy dissects ~3,600 frames/s, this does
hundreds of thousands). A frame that is not TCP/UDP is *skipped* and a frame that cannot be
parsed is *malformed*; both are counted by reason and never raise.
"""

from __future__ import annotations

import struct
from collections import Counter
from typing import Final

from producers.capture import FrameRef
from producers.decode.fragments import FragmentReassembler
from producers.decode.link import ETH_IPV4, ETH_IPV6, VLAN_ETHERTYPES, link_header

__all__ = ["TCP", "UDP", "Decoder", "Packet"]

TCP: Final = 6
UDP: Final = 17

_IPV6_EXT: Final = frozenset((0, 43, 60))  # hop-by-hop, routing, destination options: (len+1)*8
_AH: Final = 51
_FRAG6: Final = 44
_MAX_EXT_HEADERS: Final = 8

_u16: Final = struct.Struct("!H").unpack_from


class Packet:
    """One TCP segment or UDP datagram, with the raw frame(s) that carried it.

    Addresses stay packed (4 or 16 bytes) on the hot path; flows turn them into text once.
    ``frame`` is the frame that carried it; ``fragments`` is None, or every fragment's frame
    for a reassembled datagram (then ``frame`` is the one that completed it).

    A plain class rather than a NamedTuple: compiled, it is one native object whose integer
    fields are stored unboxed, where the tuple was built from a temporary 12-tuple (through
    ``tuple.__new__``) holding a boxed int per port and sequence number, a 1-tuple of the frame
    besides, and unpacked again by the flow table; ~2-3% of the sensor's CPU.
    """

    __slots__ = (
        "ack",
        "dport",
        "dst",
        "flags",
        "fragments",
        "frame",
        "payload",
        "proto",
        "seq",
        "sport",
        "src",
        "ts_ns",
        "vlan",
    )

    def __init__(
        self,
        ts_ns: int,
        proto: int,
        vlan: tuple[int, ...],
        src: bytes,
        sport: int,
        dst: bytes,
        dport: int,
        flags: int,
        seq: int,
        ack: int,
        payload: bytes,
        frame: FrameRef,
        fragments: tuple[FrameRef, ...] | None = None,
    ) -> None:
        self.ts_ns = ts_ns
        self.proto = proto  # TCP or UDP
        self.vlan = vlan
        self.src = src
        self.sport = sport
        self.dst = dst
        self.dport = dport
        self.flags = flags  # TCP flags byte (FIN 1, SYN 2, RST 4, PSH 8, ACK 16); 0 for UDP
        self.seq = seq
        self.ack = ack
        self.payload = payload
        self.frame = frame
        self.fragments = fragments

    @property
    def frames(self) -> tuple[FrameRef, ...]:
        """Every frame that carried the packet: one, or each fragment's."""
        if self.fragments is None:
            return (self.frame,)
        return self.fragments

    def __repr__(self) -> str:
        return (
            f"Packet(ts_ns={self.ts_ns}, proto={self.proto}, vlan={self.vlan}, src={self.src!r}, "
            f"sport={self.sport}, dst={self.dst!r}, dport={self.dport}, flags={self.flags}, "
            f"seq={self.seq}, ack={self.ack}, payload={self.payload!r}, frames={self.frames})"
        )


class Decoder:
    """Decode frames into Packets; count what is skipped or malformed, by reason.

    ``malformed`` and ``skipped`` count *frames*; ``fragments.counts`` has the reassembler's
    counters (its ``frames_dropped`` are frames of datagrams that never completed).
    """

    def __init__(self, fragments: FragmentReassembler | None = None) -> None:
        self.fragments = fragments if fragments is not None else FragmentReassembler()
        self.malformed: Counter[str] = Counter()
        self.skipped: Counter[str] = Counter()
        self.snapped = 0  # frames whose IP payload was cut short by the snap length

    def decode(self, frame: FrameRef) -> Packet | None:
        """The TCP/UDP packet in ``frame`` (a ``Frame``), or None (skipped, malformed, or a held
        fragment)."""
        ts: int = frame[0]
        linktype: int = frame[1]
        data: bytes = frame[3]
        if linktype == 1 and len(data) >= 14:
            etype = (data[12] << 8) | data[13]
            off = 14
            vlan: tuple[int, ...] = ()
            if etype in VLAN_ETHERTYPES:
                etype, off, vlan = link_header(1, data)
        else:
            try:
                etype, off, vlan = link_header(linktype, data)
            except KeyError:
                self.skipped[f"linktype {linktype}"] += 1
                return None
        if etype == ETH_IPV4:
            return self._ipv4(frame, ts, data, off, vlan)
        if etype == ETH_IPV6:
            return self._ipv6(frame, ts, data, off, vlan)
        if etype == -1:
            self.malformed["link header truncated"] += 1
        elif etype == 0x0806:
            self.skipped["arp"] += 1
        elif etype < 0x0600:
            self.skipped["802.3 llc"] += 1
        else:
            self.skipped[f"ethertype {etype:#06x}"] += 1
        return None

    def _ipv4(
        self, frame: FrameRef, ts: int, data: bytes, off: int, vlan: tuple[int, ...]
    ) -> Packet | None:
        size = len(data)
        if size < off + 20:
            self.malformed["ipv4 header truncated"] += 1
            return None
        b0 = data[off]
        ihl = (b0 & 0x0F) << 2
        if b0 >> 4 != 4 or ihl < 20 or size < off + ihl:
            self.malformed["ipv4 bad header"] += 1
            return None
        total = (data[off + 2] << 8) | data[off + 3]
        if total < ihl:
            self.malformed["ipv4 bad total length"] += 1
            return None
        end = off + total
        if end > size:
            self.snapped += 1
            end = size
        proto = data[off + 9]
        src = data[off + 12 : off + 16]
        dst = data[off + 16 : off + 20]
        frag = ((data[off + 6] << 8) | data[off + 7]) & 0x3FFF
        if frag:
            key = (4, vlan, src, dst, proto, data[off + 4 : off + 6])
            done = self.fragments.add(
                key, ts, (frag & 0x1FFF) << 3, bool(frag & 0x2000), data[off + ihl : end], frame
            )
            if done is None:
                return None
            payload, frames = done
            return self._transport(
                ts, vlan, proto, src, dst, payload, 0, len(payload), frame, frames
            )
        return self._transport(ts, vlan, proto, src, dst, data, off + ihl, end, frame, None)

    def _ipv6(
        self, frame: FrameRef, ts: int, data: bytes, off: int, vlan: tuple[int, ...]
    ) -> Packet | None:
        size = len(data)
        if size < off + 40 or data[off] >> 4 != 6:
            self.malformed["ipv6 header truncated" if size < off + 40 else "ipv6 bad version"] += 1
            return None
        plen = (data[off + 4] << 8) | data[off + 5]
        nh = data[off + 6]
        src = data[off + 8 : off + 24]
        dst = data[off + 24 : off + 40]
        pos = off + 40
        end = pos + plen if plen else size  # 0: a jumbogram (RFC 2675); take what was captured
        if end > size:
            self.snapped += 1
            end = size
        for _ in range(_MAX_EXT_HEADERS):
            if nh in _IPV6_EXT or nh == _AH:
                if end < pos + 8:
                    self.malformed["ipv6 extension header truncated"] += 1
                    return None
                hlen = (data[pos + 1] + 1) << 3 if nh != _AH else (data[pos + 1] + 2) << 2
                nh = data[pos]
                pos += hlen
            elif nh == _FRAG6:
                if end < pos + 8:
                    self.malformed["ipv6 fragment header truncated"] += 1
                    return None
                word = _u16(data, pos + 2)[0]
                key = (6, vlan, src, dst, data[pos + 4 : pos + 8])
                inner = data[pos]
                if word & 0xFFF9 == 0:  # atomic fragment (offset 0, no more): nothing to join
                    nh = inner
                    pos += 8
                    continue
                # Shift every piece by one byte and put the next-header byte in front of the
                # first, so the joined payload starts with the first fragment's next header.
                start = word & 0xFFF8
                piece = data[pos + 8 : end]
                done = self.fragments.add(
                    key,
                    ts,
                    start + 1 if start else 0,
                    bool(word & 1),
                    piece if start else bytes((inner,)) + piece,
                    frame,
                )
                if done is None:
                    return None
                joined, frames = done
                # The fragmentable part may itself start with extension headers.
                nh, pos, end = joined[0], 1, len(joined)
                for _ in range(_MAX_EXT_HEADERS):
                    if (nh not in _IPV6_EXT and nh != _AH) or end < pos + 8:
                        break
                    hlen = (joined[pos + 1] + 1) << 3 if nh != _AH else (joined[pos + 1] + 2) << 2
                    nh = joined[pos]
                    pos += hlen
                if pos > end:
                    self.malformed["ipv6 extension header truncated"] += len(frames)
                    return None
                return self._transport(ts, vlan, nh, src, dst, joined, pos, end, frame, frames)
            else:
                break
        else:
            self.malformed["ipv6 too many extension headers"] += 1
            return None
        if pos > end:
            self.malformed["ipv6 extension header truncated"] += 1
            return None
        return self._transport(ts, vlan, nh, src, dst, data, pos, end, frame, None)

    def _transport(
        self,
        ts: int,
        vlan: tuple[int, ...],
        proto: int,
        src: bytes,
        dst: bytes,
        buf: bytes,
        pos: int,
        end: int,
        frame: FrameRef,
        fragments: tuple[FrameRef, ...] | None,
    ) -> Packet | None:
        """The TCP/UDP header at ``buf[pos:end]``; ``fragments``: see ``Packet``."""
        nframes = 1 if fragments is None else len(fragments)
        if proto == TCP:
            if end - pos < 20:
                self.malformed["tcp header truncated"] += nframes
                return None
            # read by index, not ``struct``: compiled, these are native byte loads, where an
            # ``unpack_from`` is a Python call building a tuple of boxed ints per packet
            sport = (buf[pos] << 8) | buf[pos + 1]
            dport = (buf[pos + 2] << 8) | buf[pos + 3]
            seq = (buf[pos + 4] << 24) | (buf[pos + 5] << 16) | (buf[pos + 6] << 8) | buf[pos + 7]
            ack = (buf[pos + 8] << 24) | (buf[pos + 9] << 16) | (buf[pos + 10] << 8) | buf[pos + 11]
            doff = (buf[pos + 12] >> 4) << 2
            flags = buf[pos + 13]
            if doff < 20 or pos + doff > end:
                self.malformed["tcp bad data offset"] += nframes
                return None
            return Packet(
                ts,
                TCP,
                vlan,
                src,
                sport,
                dst,
                dport,
                flags,
                seq,
                ack,
                buf[pos + doff : end],
                frame,
                fragments,
            )
        if proto == UDP:
            if end - pos < 8:
                self.malformed["udp header truncated"] += nframes
                return None
            sport = (buf[pos] << 8) | buf[pos + 1]
            dport = (buf[pos + 2] << 8) | buf[pos + 3]
            ulen = (buf[pos + 4] << 8) | buf[pos + 5]
            if ulen < 8:
                self.malformed["udp bad length"] += nframes
                return None
            if pos + ulen < end:
                end = pos + ulen
            return Packet(
                ts, UDP, vlan, src, sport, dst, dport, 0, 0, 0, buf[pos + 8 : end], frame, fragments
            )
        self.skipped[_PROTO_NAMES.get(proto, f"ip proto {proto}")] += nframes
        return None


_PROTO_NAMES: Final = {
    1: "icmp",
    2: "igmp",
    47: "gre",
    50: "esp",
    58: "icmpv6",
    59: "ipv6 no next",
    132: "sctp",
}
