"""The one error type of the capture package, and the frame tuple every reader yields."""

from __future__ import annotations

from typing import Any

__all__ = ["DEFAULT_MAX_CAPLEN", "CaptureError", "Frame", "FrameRef"]

#: ``(ts_ns, linktype, wirelen, data)``: one captured frame exactly as read. A plain tuple, not a
#: class, because hundreds of thousands are made per second and tuples are the cheapest object.
Frame = tuple[int, int, int, bytes]

#: A ``Frame`` as the compiled engine passes it along: the same tuple object, typed so mypyc
#: keeps it one. mypyc holds a value of a fixed-length tuple type such as ``Frame`` unboxed (a C
#: struct of its items) and boxes it again wherever it goes into a list, a tuple or a Python
#: call: a new tuple, and new ints for the timestamp and lengths, per packet and per hop.
FrameRef = tuple[Any, ...]

#: Largest frame a reader accepts. tcpdump's own ceiling is 262144; anything above it in a record
#: header is corruption, and refusing it keeps a bogus length from allocating gigabytes.
DEFAULT_MAX_CAPLEN = 262_144


class CaptureError(Exception):
    """A capture file or stream that cannot be read further: where, and what was wrong.

    Readers do not raise it mid-iteration; they stop cleanly and keep it in ``reader.error`` so
    the frames before the damage are still used.
    """

    def __init__(self, source: str, offset: int, reason: str) -> None:
        super().__init__(f"{source}: at byte offset {offset}: {reason}")
        self.source = source
        self.offset = offset
        self.reason = reason
