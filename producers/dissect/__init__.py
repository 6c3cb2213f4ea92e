"""Protocol dissectors (sans-I/O) and the choice of one for a stream, by content.

Public API: ``select_dissector`` (what the reassembly engine calls once per stream), the
contract in ``base`` (``Dissector``, ``Item``, ``Direction``, ``DissectError``,
``ProtocolInfo``), ``DissectLimits`` (the caps, built from settings at the edge) and the two
dissectors for direct use in tests and tools.
"""

from __future__ import annotations

from producers.dissect.base import Direction, DissectError, Dissector, Item, ProtocolInfo
from producers.dissect.detect import (
    DNS_PORTS,
    looks_like_dns,
    looks_like_dns_length_only,
    looks_like_dns_tcp,
    looks_like_http,
)
from producers.dissect.dns import DnsDissector
from producers.dissect.http1 import Http1Dissector
from producers.dissect.limits import DEFAULT_LIMITS, DissectLimits

__all__ = [
    "DEFAULT_LIMITS",
    "Direction",
    "DissectError",
    "DissectLimits",
    "Dissector",
    "DnsDissector",
    "Http1Dissector",
    "Item",
    "ProtocolInfo",
    "select_dissector",
]

_VARIANTS = {5353: "mdns", 5355: "llmnr"}
_NETBIOS_PORTS = frozenset((137, 138))


def select_dissector(
    layer4: str,
    direction: Direction,
    first_payload: bytes,
    src_port: int,
    dst_port: int,
    limits: DissectLimits = DEFAULT_LIMITS,
) -> Dissector | None:
    """A fresh dissector for a stream whose first payload is ``first_payload``, or None (bare).

    Called once per stream with the first non-empty payload seen in either direction
    (``direction`` says which side sent it). Detection is by content; ports only break ties:
    a TCP payload that could be both (never seen in practice) goes to DNS only on port 53.
    ``src_port``/``dst_port`` are the stream's client and server ports.
    """
    if layer4 == "udp":
        if _NETBIOS_PORTS & {src_port, dst_port}:
            return None  # NBNS/NBDS reuse the DNS header but are not DNS (tshark agrees)
        if looks_like_dns(first_payload):
            variant = _VARIANTS.get(dst_port) or _VARIANTS.get(src_port) or ""
            return DnsDissector("udp", variant, limits)
        return None
    if layer4 != "tcp":
        return None
    http = looks_like_http(first_payload)
    dns = looks_like_dns_tcp(first_payload)
    on_dns_port = bool(DNS_PORTS & {src_port, dst_port})
    if http and dns:
        dns = on_dns_port
        http = not dns
    elif not http and on_dns_port and looks_like_dns_length_only(first_payload):
        dns = True
    if http:
        return Http1Dissector(limits)
    if dns:
        variant = _VARIANTS.get(dst_port) or _VARIANTS.get(src_port) or ""
        return DnsDissector("tcp", variant, limits)
    return None
