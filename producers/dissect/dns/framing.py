"""DNS over TCP framing (RFC 1035 4.2.2): a 2-byte length before each message.

Messages may span segments and a segment may hold several messages. The buffer never holds
more than one unfinished message (at most 65,537 bytes), because whole messages are taken out
as soon as they are complete.
"""

from __future__ import annotations

__all__ = ["LengthPrefixed"]


class LengthPrefixed:
    """Bytes of one direction in, whole messages (with their wire size) out."""

    __slots__ = ("_buf",)

    def __init__(self) -> None:
        self._buf = bytearray()

    def __len__(self) -> int:
        return len(self._buf)

    def feed(self, data: bytes) -> None:
        self._buf += data

    def next_message(self) -> bytes | None:
        buf = self._buf
        if len(buf) < 2:
            return None
        length = (buf[0] << 8) | buf[1]
        if len(buf) < 2 + length:
            return None
        msg = bytes(buf[2 : 2 + length])
        del buf[: 2 + length]
        return msg

    def clear(self) -> None:
        self._buf.clear()
