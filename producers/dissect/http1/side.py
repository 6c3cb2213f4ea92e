"""One direction of an HTTP/1.x stream: buffer + state + the current body reader -> events.

A direction is in one of four states. ``HEAD``: waiting for a start line and headers. ``BODY``:
a reader chosen by ``state.py`` owns the bytes. ``TUNNEL``: not HTTP any more (after 101 or
CONNECT), bytes are dropped. ``RESYNC``: a gap hit the framing, so bytes are dropped until a
line that looks like the start of a message (or until ``max_resync_bytes``, then ``TUNNEL``).
"""

from __future__ import annotations

import enum
import re
from collections.abc import Callable
from typing import Final

from producers.dissect.http1.buffer import ReceiveBuffer
from producers.dissect.http1.events import Body, EndOfMessage, Head
from producers.dissect.http1.readers import (
    BodyReader,
    ChunkedReader,
    CloseDelimitedReader,
    ContentLengthReader,
)
from producers.dissect.http1.readers import parse_head as _parse_head
from producers.dissect.http1.state import Framing
from producers.dissect.limits import DissectLimits

#: A module variable rather than the imported function: compiled code calls an imported
#: function directly, and the fast-path differential tests swap in the careful parser here.
parse_head: Callable[[bytes, bool, int, int], Head] = _parse_head

__all__ = ["Side", "SideState"]

_REQUEST_START: Final = re.compile(rb"(?m)^[A-Z][A-Z_\-]{1,19} [^ \r\n]+ HTTP/1\.[019]\r?\n")
_RESPONSE_START: Final = re.compile(rb"(?m)^HTTP/1\.[019] [1-5][0-9][0-9][ \r\n]")


#: the reader of a message without a body; ``ContentLengthReader(0)`` never changes, so one
#: instance serves every side
_NO_BODY: Final = ContentLengthReader(0)
_CR_LF: Final = b"\r\n"


class SideState(enum.Enum):
    HEAD = "head"
    BODY = "body"
    TUNNEL = "tunnel"
    RESYNC = "resync"


# enum members as module constants: an Enum attribute lookup costs ~65 ns in 3.11, and these
# are read several times per HTTP message
_HEAD: Final = SideState.HEAD
_BODY: Final = SideState.BODY
_TUNNEL: Final = SideState.TUNNEL
_RESYNC: Final = SideState.RESYNC
_F_TUNNEL: Final = Framing.TUNNEL
_F_LENGTH: Final = Framing.LENGTH
_F_CHUNKED: Final = Framing.CHUNKED
_F_CLOSE: Final = Framing.CLOSE


class Side:
    """Events of one direction; the dissector tells it how each message body is framed."""

    __slots__ = (
        "_limits",
        "_line_start",
        "_reader",
        "_resync_dropped",
        "buf",
        "head_ts",
        "hold",
        "is_request",
        "state",
    )

    def __init__(self, is_request: bool, limits: DissectLimits) -> None:
        self.is_request = is_request
        self.buf = ReceiveBuffer(limits.max_head_bytes)
        self.state = _HEAD
        self.head_ts = 0
        #: True while a request asked to switch protocols and the answer is not in yet
        self.hold = False
        self._reader: BodyReader | None = None
        self._limits = limits
        self._resync_dropped = 0
        self._line_start = True

    def feed(self, data: bytes, ts_ns: int) -> None:
        if self.state is _TUNNEL:
            return
        if not self.buf:
            self.head_ts = ts_ns
        self.buf.append(data)
        if self.hold and len(self.buf) > self._limits.max_head_bytes:
            # no answer to the upgrade in sight and the client keeps talking: not HTTP now
            self.tunnel()

    def next_event(self, ts_ns: int) -> Head | Body | EndOfMessage | None:
        if self.state is _BODY:
            assert self._reader is not None
            event = self._reader.read(self.buf)
            if isinstance(event, EndOfMessage):
                self.state = _HEAD
                self._reader = None
                if self.buf:
                    self.head_ts = ts_ns
            return event
        if self.state is _RESYNC and not self._resync():
            return None
        if self.state is not _HEAD or self.hold:
            return None
        buf = self.buf
        data = buf.data
        if not data:
            return None  # what take_head would say, without its search
        if data[0] in _CR_LF and buf.skip_blank_lines() and buf:
            self.head_ts = ts_ns
        raw = buf.take_head()
        if raw is None:
            return None
        head = parse_head(raw, self.is_request, self.head_ts, self._limits.max_headers)
        self.head_ts = ts_ns
        return head

    def set_framing(self, framing: Framing, length: int) -> None:
        """Called right after a Head: how its body is delimited."""
        if framing is _F_TUNNEL:
            self.tunnel()
            return
        if framing is _F_LENGTH:
            self._reader = ContentLengthReader(length)
        elif framing is _F_CHUNKED:
            self._reader = ChunkedReader(self._limits.max_chunk_line, self._limits.max_headers)
        elif framing is _F_CLOSE:
            self._reader = CloseDelimitedReader()
        else:
            self._reader = _NO_BODY
        self.state = _BODY

    def tunnel(self) -> None:
        self.state = _TUNNEL
        self.hold = False
        self._reader = None
        self.buf.clear()

    def gap(self, length: int) -> tuple[int, int]:
        """Lost bytes: (how many fell inside the current body, how many beyond it).

        Bytes beyond the body (or any lost bytes outside a body) mean we no longer know where
        messages start, so the direction resynchronises.
        """
        if self.state is _TUNNEL:
            return 0, 0
        if self.state is _BODY and not self.buf:
            assert self._reader is not None
            leftover = self._reader.skip(length)
            if leftover == 0:
                return length, 0
            self._start_resync()
            return length - leftover, leftover
        self._start_resync()
        return 0, length

    def at_end(self) -> EndOfMessage | None:
        """The stream ended: the end of the body being read, if one was (None otherwise)."""
        if self.state is not _BODY or self._reader is None:
            return None
        event = self._reader.at_end()
        self.state = _HEAD
        self._reader = None
        return event

    def _start_resync(self) -> None:
        self.state = _RESYNC
        self._line_start = True
        self._reader = None
        self.buf.clear()
        self._resync_dropped = 0

    def _resync(self) -> bool:
        """Look for a start line, only at true line starts, so any split finds the same one.

        The bytes right after a gap may begin a message, so the buffer's first byte counts as
        a line start until bytes are dropped without a newline in them.
        """
        data = self.buf.data
        start = 0 if self._line_start else data.find(b"\n") + 1
        if start or self._line_start:
            pattern = _REQUEST_START if self.is_request else _RESPONSE_START
            m = pattern.search(data, start)
            if m is not None:
                self._resync_dropped += m.start()
                self.buf.skip(m.start())
                self.state = _HEAD
                return True
        # keep the last, unfinished line: it may still become a start line
        newline = data.rfind(b"\n")
        if newline >= 0:
            keep_from, self._line_start = newline + 1, True
        elif self._line_start:
            keep_from = 0
        else:
            keep_from = len(data)
        if len(data) - keep_from > self._limits.max_head_bytes:
            keep_from, self._line_start = len(data), False
        self._resync_dropped += keep_from
        self.buf.skip(keep_from)
        if self._resync_dropped + len(self.buf) > self._limits.max_resync_bytes:
            self.tunnel()
        return False
