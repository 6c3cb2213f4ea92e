"""How long a message's body is: RFC 9112 section 6.3 as a small table of rules.

All framing decisions live here so the reader and the dissector never guess. A response's
framing depends on the request it answers (HEAD, CONNECT), which is why the dissector, which
pairs them, asks this module once per head.
"""

from __future__ import annotations

import enum
from typing import Final

from producers.dissect.base import DissectError

__all__ = ["Framing", "request_framing", "response_framing"]

#: more digits than this cannot be a real body length (and keeps int() cheap)
_MAX_LENGTH_DIGITS: Final = 18


class Framing(enum.Enum):
    NONE = "none"  # no body at all
    LENGTH = "length"  # Content-Length bytes
    CHUNKED = "chunked"  # chunked transfer coding
    CLOSE = "close"  # until the stream ends
    TUNNEL = "tunnel"  # not HTTP any more after this head (101, CONNECT 2xx)


# enum members as module constants: an Enum attribute lookup costs ~65 ns in 3.11, and these
# are read several times per HTTP message
_NONE: Final = Framing.NONE
_LENGTH: Final = Framing.LENGTH
_CHUNKED: Final = Framing.CHUNKED
_CLOSE: Final = Framing.CLOSE
_TUNNEL: Final = Framing.TUNNEL


def _is_chunked(index: dict[str, str]) -> bool:
    te = index.get("transfer-encoding")
    if te is None:
        return False
    return te.rsplit(",", 1)[-1].strip().lower() == "chunked"


def _content_length(index: dict[str, str]) -> int | None:
    value = index.get("content-length")
    if value is None:
        return None
    if "," in value:
        values = {v.strip() for v in value.split(",")}
        if len(values) != 1:
            raise DissectError(f"conflicting Content-Length {value[:40]!r}")
        text = values.pop()
    else:
        text = value.strip()
    if not text.isdigit() or not text.isascii() or len(text) > _MAX_LENGTH_DIGITS:
        raise DissectError(f"bad Content-Length {text[:40]!r}")
    return int(text)


def request_framing(index: dict[str, str]) -> tuple[Framing, int]:
    """A request has a body only if it says so (chunked wins over Content-Length)."""
    if _is_chunked(index):
        return _CHUNKED, 0
    length = _content_length(index)
    if length:
        return _LENGTH, length
    return _NONE, 0


def response_framing(method: str | None, status: int, index: dict[str, str]) -> tuple[Framing, int]:
    """Framing of a response to ``method`` (None when the request was never seen)."""
    if status == 101 or (method == "CONNECT" and 200 <= status < 300):
        return _TUNNEL, 0
    if status < 200 or status in (204, 304) or method == "HEAD":
        return _NONE, 0
    if _is_chunked(index):
        return _CHUNKED, 0
    length = _content_length(index)
    if length is not None:
        return (_LENGTH, length) if length else (_NONE, 0)
    return _CLOSE, 0
