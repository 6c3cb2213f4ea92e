"""Domain names on the wire, with compression pointers followed under hard bounds.

A pointer may point anywhere earlier or later in the message, so a hostile message can form a
loop. Each step either consumes a label (at most 255 octets of name in total, RFC 1035 3.1) or
follows a pointer (at most ``MAX_POINTERS``), so any name costs bounded work.
"""

from __future__ import annotations

from typing import Final

from producers.dissect.base import DissectError

__all__ = ["MAX_NAME_OCTETS", "MAX_POINTERS", "NameCache", "read_name"]

MAX_NAME_OCTETS: Final = 255
MAX_POINTERS: Final = 64


def _label_text(label: bytes) -> str:
    """Printable ASCII labels as is; anything else as UTF-8, or with \\DDD escapes."""
    if label.isascii():
        text = label.decode("ascii")
        if text.isprintable():
            return text
    else:
        try:
            return label.decode("utf-8")
        except UnicodeDecodeError:
            pass
    return "".join(chr(b) if 0x20 < b < 0x7F else f"\\{b:03d}" for b in label)


NameCache = dict[int, tuple[tuple[str, ...], int]]


def read_name(msg: bytes, pos: int, cache: NameCache | None = None) -> tuple[str, int]:
    """The name at ``pos`` (no trailing dot; the root is "") and the offset just after it.

    ``cache`` (one per message) maps an offset to the labels of the name that starts there,
    (and their wire octets), so names that point back to an earlier name (most answers) cost
    one lookup.
    """
    labels: list[str] = []
    starts: list[tuple[int, int]] = []
    octets = 1
    jumps = 0
    after = -1
    size = len(msg)
    while True:
        if cache is not None and pos in cache:
            suffix, suffix_octets = cache[pos]
            octets += suffix_octets
            labels.extend(suffix)
            if after < 0:
                after = -2  # resolved from the cache at the very start: find the end below
            break
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
        starts.append((pos, octets - length - 1))
        labels.append(_label_text(msg[pos + 1 : end]))
        pos = end
    if octets > MAX_NAME_OCTETS:
        raise DissectError("DNS name longer than 255 octets")
    if cache is not None:
        whole = tuple(labels)
        for index, (offset, before) in enumerate(starts):
            cache[offset] = (whole[index:], octets - before)
    if after == -2:
        after = _skip_cached(msg, pos)
    return ".".join(labels), after if after >= 0 else pos


def _skip_cached(msg: bytes, pos: int) -> int:
    """End of a name whose labels came from the cache: walk its wire form without decoding."""
    size = len(msg)
    while pos < size:
        length = msg[pos]
        if length == 0:
            return pos + 1
        if length & 0xC0 == 0xC0:
            return pos + 2
        pos += 1 + length
    raise DissectError("DNS name runs past the message")
