"""Which protocol a stream speaks, judged from its first payload (ports only break ties).

Detection errs on the side of claiming: a wrongly claimed stream raises DissectError on the
first bytes that do not fit, and the engine falls back to a bare entry anyway.
"""

from __future__ import annotations

import re
import struct

__all__ = [
    "DNS_PORTS",
    "HTTP_METHODS",
    "looks_like_dns",
    "looks_like_dns_length_only",
    "looks_like_dns_tcp",
    "looks_like_http",
]

#: methods tshark recognises (RFC 9110, WebDAV, UPnP, RTSP-ish and friends). With one of these
#: the start line may be sloppy, as it is in the corpus's malformed-method captures; any other
#: token must be followed by a well-formed target and version.
HTTP_METHODS = frozenset(
    b"""GET POST HEAD PUT DELETE OPTIONS TRACE CONNECT PATCH PROPFIND PROPPATCH MKCOL COPY MOVE
    LOCK UNLOCK SEARCH REPORT CHECKOUT CHECKIN UNCHECKOUT MKWORKSPACE UPDATE LABEL MERGE
    BASELINE-CONTROL MKACTIVITY ORDERPATCH ACL MKREDIRECTREF UPDATEREDIRECTREF MKCALENDAR BIND
    UNBIND REBIND NOTIFY SUBSCRIBE UNSUBSCRIBE M-SEARCH PURGE POLL BMOVE BCOPY BDELETE BPROPFIND
    BPROPPATCH CCM_POST RPC_IN_DATA RPC_OUT_DATA RPC_CONNECT VERSION-CONTROL""".split()
)
DNS_PORTS = frozenset((53, 5353, 5355))

_STRICT_REQUEST = re.compile(rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]{1,32} [\x21-\x7e]+ HTTP/1\.[019]\r?\n")
_PRINTABLE_LINE = re.compile(rb"[\x20-\x7e\t]*\r?\n")
_METHOD = re.compile(rb"([!#$%&'*+\-.^_`|~0-9A-Za-z]{1,32})[ \r\n]")


def looks_like_http(payload: bytes) -> bool:
    """A request line (client first) or ``HTTP/1.`` (server first, e.g. data before handshake)."""
    if payload.startswith(b"HTTP/1."):
        return True
    head = payload[:8192]
    m = _METHOD.match(head)
    if m is not None and m.group(1) in HTTP_METHODS:
        line_end = head.find(b"\n")
        line = head[: line_end + 1] if line_end >= 0 else head + b"\n"
        return _PRINTABLE_LINE.fullmatch(line) is not None
    return _STRICT_REQUEST.match(head) is not None


def _dns_header_plausible(msg: bytes) -> bool:
    if len(msg) < 12:
        return False
    _id, flags, qd, an, ns, ar = struct.unpack_from("!HHHHHH", msg)
    opcode = (flags >> 11) & 0xF
    if opcode not in (0, 1, 2, 4, 5, 6) or flags & 0x0040:  # Z bit must be zero
        return False
    if qd > 16 or an > 512 or ns > 512 or ar > 512:
        return False
    if qd == 0:
        # only responses/updates without questions are plausible (mDNS announcements)
        return bool(flags & 0x8000) and an + ns + ar > 0 and len(msg) > 12
    # the first question's name must be well-formed labels (a pointer cannot appear first)
    pos = 12
    for _ in range(128):
        if pos >= len(msg):
            return False
        length = msg[pos]
        if length == 0:
            return pos + 5 <= len(msg)
        if length & 0xC0:
            return False
        pos += 1 + length
    return False


def looks_like_dns(payload: bytes) -> bool:
    """One UDP datagram that parses as a plausible DNS header and first question."""
    return _dns_header_plausible(payload)


def looks_like_dns_tcp(payload: bytes) -> bool:
    """A 2-byte length prefix followed by a plausible DNS header.

    A first segment cut inside the question is judged on the header alone.
    """
    if len(payload) < 14:
        return False
    (length,) = struct.unpack_from("!H", payload)
    if length < 12:
        return False
    body = payload[2 : 2 + length]
    if not _dns_header_plausible(body):
        return len(body) < length and _dns_header_only(body)
    return True


def looks_like_dns_length_only(payload: bytes) -> bool:
    """Some resolvers write the length prefix in a segment of its own: two bytes that can
    only be told from noise by the port (the caller's tie-break)."""
    return len(payload) == 2 and struct.unpack("!H", payload)[0] >= 12


def _dns_header_only(msg: bytes) -> bool:
    flags, qd = struct.unpack_from("!HH", msg, 2)
    return (flags >> 11) & 0xF in (0, 1, 2, 4, 5) and not flags & 0x40 and 0 < qd <= 16
