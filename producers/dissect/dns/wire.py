"""One DNS message (RFC 1035 4.1) -> header values and ENTRY.md-shaped questions and records.

Hand-written rather than dnspython: measured in bench/dissect_bench.py on
the corpus's DNS messages, parsing straight into entry dicts is ~13x faster than dnspython's
``from_wire``, which builds rich objects we would only convert again, and it lets us bound
compression pointers and keep going on record types dnspython rejects. Correctness comes
first for DNS, so the parser is strict about bounds: any length that runs past the message is
a DissectError, never a silent truncation.
"""

from __future__ import annotations

import socket
import struct
from dataclasses import dataclass
from typing import Any, Final

from producers.dissect.base import DissectError
from producers.dissect.dns.codes import class_name, opcode_name, rcode_name, type_name
from producers.dissect.dns.names import NameCache, read_name

__all__ = ["Message", "parse_message"]

_HEADER: Final = struct.Struct("!HHHHHH")
_RR_FIXED: Final = struct.Struct("!HHIH")
_SOA_FIXED: Final = struct.Struct("!IIIII")
_SRV_FIXED: Final = struct.Struct("!HHH")
#: more records than could fit in a 64 KiB message are a lie
_MAX_RECORDS: Final = 65535 // 11


@dataclass(slots=True)
class Message:
    """One parsed DNS message. Never changed once made; not ``frozen`` and with a written-out
    ``__init__`` because mypyc compiles this module but not dataclass-generated methods (see
    ``producers.dissect.http1.events``)."""

    id: int
    is_response: bool
    opcode: int
    rcode: int
    truncated: bool
    questions: list[dict[str, Any]]
    answers: list[dict[str, Any]]
    authorities: list[dict[str, Any]]
    additionals: list[dict[str, Any]]
    size: int

    def __init__(
        self,
        id: int,
        is_response: bool,
        opcode: int,
        rcode: int,
        truncated: bool,
        questions: list[dict[str, Any]],
        answers: list[dict[str, Any]],
        authorities: list[dict[str, Any]],
        additionals: list[dict[str, Any]],
        size: int,
    ) -> None:
        self.id = id
        self.is_response = is_response
        self.opcode = opcode
        self.rcode = rcode
        self.truncated = truncated
        self.questions = questions
        self.answers = answers
        self.authorities = authorities
        self.additionals = additionals
        self.size = size

    @property
    def question_key(self) -> tuple[str, str, str] | None:
        if not self.questions:
            return None
        q = self.questions[0]
        return q["name"].lower(), q["type"], q["class"]

    def request_object(self) -> dict[str, Any]:
        return {"opCode": opcode_name(self.opcode), "id": self.id, "questions": self.questions}

    def response_object(self) -> dict[str, Any]:
        return {
            "code": rcode_name(self.rcode),
            "rcode": self.rcode,
            "answers": self.answers,
            "authorities": self.authorities,
            "additionals": self.additionals,
        }


def _rdata(
    msg: bytes, rtype: int, start: int, end: int, rec: dict[str, Any], cache: NameCache
) -> None:
    """Add the type's fields to ``rec``; unknown or odd-sized rdata is kept as hex."""
    rdata = msg[start:end]
    if rtype == 1 and len(rdata) == 4:
        rec["ip"] = f"{rdata[0]}.{rdata[1]}.{rdata[2]}.{rdata[3]}"
    elif rtype == 28 and len(rdata) == 16:
        rec["ip"] = socket.inet_ntop(socket.AF_INET6, rdata)
    elif rtype in (2, 5, 12, 39):
        name, after = read_name(msg, start, cache)
        _inside(after, end)
        rec[{2: "ns", 5: "cname", 12: "ptr", 39: "dname"}[rtype]] = name
    elif rtype == 15 and len(rdata) >= 3:
        exchange, after = read_name(msg, start + 2, cache)
        _inside(after, end)
        rec["mx"] = {"preference": (rdata[0] << 8) | rdata[1], "exchange": exchange}
    elif rtype in (16, 99):
        rec["txts"] = _strings(rdata)
    elif rtype == 6:
        mname, pos = read_name(msg, start, cache)
        rname, pos = read_name(msg, pos, cache)
        if pos + 20 > end:
            raise DissectError("SOA record cut short")
        serial, refresh, retry, expire, minimum = _SOA_FIXED.unpack_from(msg, pos)
        rec["soa"] = {
            "mname": mname,
            "rname": rname,
            "serial": serial,
            "refresh": refresh,
            "retry": retry,
            "expire": expire,
            "minimum": minimum,
        }
    elif rtype == 33 and len(rdata) >= 7:
        priority, weight, port = _SRV_FIXED.unpack_from(rdata)
        target, after = read_name(msg, start + 6, cache)
        _inside(after, end)
        rec["srv"] = {"priority": priority, "weight": weight, "port": port, "target": target}
    elif rdata:
        rec["rdata"] = rdata.hex()


def _inside(pos: int, end: int) -> None:
    if pos > end:
        raise DissectError("DNS record data runs past its length")


def _strings(rdata: bytes) -> list[str]:
    out = []
    pos = 0
    while pos < len(rdata):
        n = rdata[pos]
        chunk = rdata[pos + 1 : pos + 1 + n]
        if len(chunk) < n:
            raise DissectError("TXT string runs past its record")
        out.append(chunk.decode("utf-8", errors="replace"))
        pos += 1 + n
    return out


def _opt(msg: bytes, start: int, end: int, rclass: int, ttl: int, rec: dict[str, Any]) -> int:
    """EDNS(0) OPT pseudo-record: its class and TTL are not a class and a TTL."""
    options = []
    pos = start
    while pos + 4 <= end:
        code, length = struct.unpack_from("!HH", msg, pos)
        options.append({"code": code, "data": msg[pos + 4 : pos + 4 + length].hex()})
        pos += 4 + length
    rec["class"] = ""
    rec["ttl"] = 0
    rec["opt"] = {
        "udpPayloadSize": rclass,
        "extendedRcode": ttl >> 24,
        "version": (ttl >> 16) & 0xFF,
        "do": bool(ttl & 0x8000),
        "options": options,
    }
    return ttl >> 24


def parse_message(msg: bytes, mdns: bool = False) -> Message:
    """Parse one whole message. mDNS reuses the top class bit (cache-flush / unicast-response),
    so for mDNS it is masked off before naming the class."""
    if len(msg) < 12:
        raise DissectError("DNS message shorter than its header")
    ident, flags, qd, an, ns, ar = _HEADER.unpack_from(msg)
    if an + ns + ar > _MAX_RECORDS or qd > _MAX_RECORDS:
        raise DissectError("DNS record counts larger than the message")
    class_mask = 0x7FFF if mdns else 0xFFFF
    pos = 12
    size = len(msg)
    cache: NameCache = {}
    questions = []
    for _ in range(qd):
        name, pos = read_name(msg, pos, cache)
        if pos + 4 > size:
            raise DissectError("DNS question cut short")
        qtype, qclass = struct.unpack_from("!HH", msg, pos)
        pos += 4
        questions.append(
            {"name": name, "type": type_name(qtype), "class": class_name(qclass & class_mask)}
        )
    sections: list[list[dict[str, Any]]] = [[], [], []]
    ext_rcode = 0
    for section, count in zip(sections, (an, ns, ar), strict=True):
        for _ in range(count):
            name, pos = read_name(msg, pos, cache)
            if pos + 10 > size:
                raise DissectError("DNS record header cut short")
            rtype, rclass, ttl, rdlen = _RR_FIXED.unpack_from(msg, pos)
            start = pos + 10
            end = start + rdlen
            if end > size:
                raise DissectError("DNS record data runs past the message")
            rec: dict[str, Any] = {
                "name": name,
                "type": type_name(rtype),
                "class": class_name(rclass & class_mask),
                "ttl": ttl,
            }
            if rtype == 41:
                ext_rcode = _opt(msg, start, end, rclass, ttl, rec)
            else:
                _rdata(msg, rtype, start, end, rec, cache)
            section.append(rec)
            pos = end
    return Message(
        id=ident,
        is_response=bool(flags & 0x8000),
        opcode=(flags >> 11) & 0xF,
        rcode=(ext_rcode << 4) | (flags & 0xF),
        truncated=bool(flags & 0x0200),
        questions=questions,
        answers=sections[0],
        authorities=sections[1],
        additionals=sections[2],
        size=size,
    )
