"""Decoding: link layers, IPv4/IPv6 with fragment reassembly, TCP/UDP headers (pure)."""

from producers.decode.fragments import FragmentReassembler
from producers.decode.link import LINKTYPE_NAMES, link_header
from producers.decode.packet import TCP, UDP, Decoder, Packet

__all__ = [
    "LINKTYPE_NAMES",
    "TCP",
    "UDP",
    "Decoder",
    "FragmentReassembler",
    "Packet",
    "link_header",
]
