"""A capped receive buffer with linear-time search for the end of a header section."""

from __future__ import annotations

import re
from typing import Final

from producers.dissect.base import DissectError

__all__ = ["ReceiveBuffer", "head_end", "head_end_regex"]

_HEAD_END: Final = re.compile(rb"\r?\n\r?\n")


def head_end_regex(data: bytes | bytearray, pos: int) -> int:
    """Where the first ``\\r?\\n\\r?\\n`` at or after ``pos`` ends, or -1: the reference
    for ``head_end``."""
    m = _HEAD_END.search(data, pos)
    return -1 if m is None else m.end()


def head_end(data: bytes | bytearray, pos: int) -> int:
    """``head_end_regex`` with two ``find`` calls.

    The first match ends right after the first LF (from ``pos``) followed by LF or CRLF: the
    earlier of the first ``\n\r\n`` and the first ``\n\n``, the latter looked for only
    before the former (they cannot start at the same LF). The regex engine tried the pattern
    at every byte of a head (~2 us per head in the compiled engine); hopping from LF to LF
    took a ``find`` call (a Python method call, also when compiled) per header line.
    ``test_http1_scans`` checks both agree with the regex on generated and random input.
    """
    crlf = data.find(b"\n\r\n", pos)
    lf = data.find(b"\n\n", pos, crlf + 2 if crlf >= 0 else len(data))
    if lf >= 0:
        return lf + 2
    if crlf >= 0:
        return crlf + 3
    return -1


_LEADING_BLANK: Final = re.compile(rb"[\r\n]+")


class ReceiveBuffer:
    """Bytes of one direction not yet turned into events.

    Deleting from the front of a ``bytearray`` is cheap in CPython, so consumed bytes are simply
    deleted. ``_scanned`` remembers how far a head search got, so feeding a head one byte at a
    time stays linear instead of rescanning from the start on every byte.
    """

    __slots__ = ("_data", "_scanned", "head_cap")

    def __init__(self, head_cap: int) -> None:
        self._data = bytearray()
        self._scanned = 0
        self.head_cap = head_cap

    def __len__(self) -> int:
        return len(self._data)

    def __bool__(self) -> bool:
        return bool(self._data)

    @property
    def data(self) -> bytearray:
        return self._data

    def append(self, data: bytes) -> None:
        self._data += data

    def take(self, n: int) -> bytes:
        data = self._data
        if n >= len(data):
            # all of it (a body, or a head that came alone): one copy, nothing to move down
            out = bytes(data)
            data.clear()
        else:
            out = bytes(data[:n])
            del data[:n]
        self._scanned = 0
        return out

    def skip(self, n: int) -> None:
        del self._data[:n]
        self._scanned = 0

    def clear(self) -> int:
        n = len(self._data)
        self._data.clear()
        self._scanned = 0
        return n

    def skip_blank_lines(self) -> int:
        """Drop CR/LF between messages (RFC 9112 2.2 allows them); returns how many."""
        m = _LEADING_BLANK.match(self._data)
        if m is None:
            return 0
        n = m.end()
        if n == len(self._data) and self._data.endswith(b"\r"):
            n -= 1  # may be the start of a CRLF that belongs to the next read
        self.skip(n)
        return n

    def take_head(self) -> bytes | None:
        """The next header section including its blank line, or None if it is not all here.

        Raises DissectError once the unfinished section outgrows the cap: nothing legitimate
        needs more, and waiting longer would let a peer make us buffer without bound.
        """
        end = head_end(self._data, max(0, self._scanned - 3))
        if end < 0:
            if len(self._data) > self.head_cap:
                raise DissectError(f"HTTP header section over {self.head_cap} bytes")
            self._scanned = len(self._data)
            return None
        if end > self.head_cap:
            raise DissectError(f"HTTP header section over {self.head_cap} bytes")
        return self.take(end)

    def take_line(self, cap: int) -> bytes | None:
        """One line including its LF, or None if incomplete; DissectError past ``cap``."""
        i = self._data.find(b"\n", 0, cap + 1)
        if i < 0:
            if len(self._data) > cap:
                raise DissectError(f"HTTP line over {cap} bytes")
            return None
        return self.take(i + 1)
