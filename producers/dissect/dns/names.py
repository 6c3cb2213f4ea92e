"""Domain names on the wire, with compression pointers followed under hard bounds.

A pointer may point anywhere earlier or later in the message, so a hostile message can form a
loop. Each step either consumes a label (at most 255 octets of name in total, RFC 1035 3.1) or
follows a pointer (at most ``MAX_POINTERS``), so any name costs bounded work.
"""

from __future__ import annotations

from producers.dissect.base import DissectError

__all__ = ["MAX_NAME_OCTETS", "MAX_POINTERS", "read_name"]

MAX_NAME_OCTETS = 255
MAX_POINTERS = 64

_PLAIN = frozenset(range(0x21, 0x7F)) - {ord(".")}


def _label_text(label: bytes) -> str:
    """Printable labels as is; anything else as UTF-8, or with \\DDD escapes if not UTF-8."""
    if _PLAIN.issuperset(label):
        return label.decode("ascii")
    try:
        return label.decode("utf-8")
    except UnicodeDecodeError:
        return "".join(chr(b) if b in _PLAIN else f"\\{b:03d}" for b in label)


def read_name(msg: bytes, pos: int) -> tuple[str, int]:
    """The name at ``pos`` (no trailing dot; the root is "") and the offset just after it."""
    labels: list[str] = []
    octets = 1
    jumps = 0
    after = -1
    size = len(msg)
    while True:
        if pos >= size:
            raise DissectError("DNS name runs past the message")
        length = msg[pos]
        if length == 0:
            pos += 1
            break
        kind = length & 0xC0
        if kind == 0xC0:
            if pos + 1 >= size:
                raise DissectError("DNS compression pointer cut short")
            if after < 0:
                after = pos + 2
            jumps += 1
            if jumps > MAX_POINTERS:
                raise DissectError("DNS compression loop")
            pos = ((length & 0x3F) << 8) | msg[pos + 1]
            continue
        if kind:
            raise DissectError(f"DNS label type {kind:#x} not supported")
        end = pos + 1 + length
        if end > size:
            raise DissectError("DNS label runs past the message")
        octets += length + 1
        if octets > MAX_NAME_OCTETS:
            raise DissectError("DNS name longer than 255 octets")
        labels.append(_label_text(msg[pos + 1 : end]))
        pos = end
    return ".".join(labels), after if after >= 0 else pos
