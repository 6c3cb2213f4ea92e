"""Link layers: where the network header starts in a frame, its EtherType, and the VLAN tags.

Returns ``(ethertype, offset, vlan)``; ``ethertype`` is 0x0800 or 0x86DD for IP, something else
for frames that carry no IP, and -1 when the link header itself is cut short. Ethernet is the
hot case and the decoder inlines it; this module serves every link type, Ethernet included.
"""

from __future__ import annotations

from typing import Final

__all__ = [
    "ETH_IPV4",
    "ETH_IPV6",
    "LINKTYPE_ETHERNET",
    "LINKTYPE_NAMES",
    "VLAN_ETHERTYPES",
    "link_header",
]

ETH_IPV4: Final = 0x0800
ETH_IPV6: Final = 0x86DD
VLAN_ETHERTYPES: Final = frozenset((0x8100, 0x88A8, 0x9100))
MAX_VLAN_TAGS: Final = 4  # QinQ is 2; more is a loop in hostile input

LINKTYPE_NULL: Final = 0
LINKTYPE_ETHERNET: Final = 1
LINKTYPE_LOOP: Final = 108
LINKTYPE_SLL: Final = 113
LINKTYPE_SLL2: Final = 276
LINKTYPE_RAW: Final = frozenset((101, 12, 14))
LINKTYPE_IPV4: Final = 228
LINKTYPE_IPV6: Final = 229

LINKTYPE_NAMES: Final = {
    0: "null",
    1: "ethernet",
    12: "raw",
    14: "raw",
    101: "raw",
    108: "loop",
    113: "linux-sll",
    228: "ipv4",
    229: "ipv6",
    276: "linux-sll2",
}

# BSD address families in the NULL/LOOP header: AF_INET is 2 everywhere, AF_INET6 differs by OS
# (10 Linux, 24 NetBSD/OpenBSD, 28 FreeBSD, 30 macOS).
_AF_INET6: Final = frozenset((10, 24, 28, 30))


def _vlan_tags(data: bytes, etype: int, off: int) -> tuple[int, int, tuple[int, ...]]:
    vlan: tuple[int, ...] = ()
    while etype in VLAN_ETHERTYPES:
        if len(data) < off + 4 or len(vlan) >= MAX_VLAN_TAGS:
            return -1, off, vlan
        vlan += (((data[off] << 8) | data[off + 1]) & 0x0FFF,)
        etype = (data[off + 2] << 8) | data[off + 3]
        off += 4
    return etype, off, vlan


def _by_version(data: bytes, off: int) -> int:
    if len(data) <= off:
        return -1
    version = data[off] >> 4
    return ETH_IPV4 if version == 4 else ETH_IPV6 if version == 6 else 0


def link_header(linktype: int, data: bytes) -> tuple[int, int, tuple[int, ...]]:
    """``(ethertype, offset of the network header, VLAN ids outermost first)``.

    Raises KeyError for a link type this decoder does not know.
    """
    if linktype == LINKTYPE_ETHERNET:
        if len(data) < 14:
            return -1, 0, ()
        return _vlan_tags(data, (data[12] << 8) | data[13], 14)
    if linktype == LINKTYPE_SLL:
        if len(data) < 16:
            return -1, 0, ()
        return _vlan_tags(data, (data[14] << 8) | data[15], 16)
    if linktype == LINKTYPE_SLL2:
        if len(data) < 20:
            return -1, 0, ()
        return _vlan_tags(data, (data[0] << 8) | data[1], 20)
    if linktype in LINKTYPE_RAW:
        return _by_version(data, 0), 0, ()
    if linktype == LINKTYPE_IPV4:
        return (ETH_IPV4 if data else -1), 0, ()
    if linktype == LINKTYPE_IPV6:
        return (ETH_IPV6 if data else -1), 0, ()
    if linktype in (LINKTYPE_NULL, LINKTYPE_LOOP):
        if len(data) < 4:
            return -1, 0, ()
        if linktype == LINKTYPE_LOOP or (data[0] == 0 and data[1] == 0):
            family = int.from_bytes(data[:4], "big")
        else:  # NULL is in the capturing host's byte order, which is nearly always little
            family = int.from_bytes(data[:4], "little")
        if family == 2:
            return ETH_IPV4, 4, ()
        if family in _AF_INET6:
            return ETH_IPV6, 4, ()
        return 0, 4, ()
    raise KeyError(linktype)
