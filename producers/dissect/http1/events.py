"""What the per-direction HTTP/1.x reader reports: value events, h11 style.

The reader turns bytes into these; the dissector pairs them into items. Keeping them as plain
values (not callbacks) is what lets the reader be fed any split of the stream. Nothing changes
an event after it is made, but they are not ``frozen`` dataclasses and each has a hand-written
``__init__``: mypyc compiles this module (``producers._native``) but not the methods the
dataclass decorator generates, and an interpreted frozen ``__init__`` was ~15% of the
compiled dissector's time. The decorator still supplies ``__eq__`` and ``__repr__``.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Body", "EndOfMessage", "Event", "Head", "Opaque"]


@dataclass(slots=True)
class Head:
    """A request or response line plus its header section.

    ``first``/``second``/``third`` are the start line's three fields as sent: for a request
    method, target, version; for a response version, status, reason. ``headers`` keeps every
    line in order (cookies need them one by one); ``fields``/``index`` are built once here.
    """

    is_request: bool
    first: str
    second: str
    third: str
    headers: tuple[tuple[str, str], ...]
    size: int
    ts_ns: int
    #: name as first sent -> value, repeats (any case) joined with ", " (the entry's headers)
    fields: dict[str, str]
    #: the same keyed by lower-cased name, for framing and lookups
    index: dict[str, str]

    def __init__(
        self,
        is_request: bool,
        first: str,
        second: str,
        third: str,
        headers: tuple[tuple[str, str], ...],
        size: int,
        ts_ns: int,
        fields: dict[str, str],
        index: dict[str, str],
    ) -> None:
        self.is_request = is_request
        self.first = first
        self.second = second
        self.third = third
        self.headers = headers
        self.size = size
        self.ts_ns = ts_ns
        self.fields = fields
        self.index = index

    @property
    def status(self) -> int:
        return int(self.second) if not self.is_request else 0


@dataclass(slots=True)
class Body:
    """De-chunked body bytes (``data``), or ``skipped`` bytes lost to a capture gap."""

    data: bytes
    wire: int
    skipped: int

    def __init__(self, data: bytes, wire: int, skipped: int = 0) -> None:
        self.data = data
        self.wire = wire
        self.skipped = skipped


@dataclass(slots=True)
class EndOfMessage:
    """The message is over. ``complete`` is False when the stream ended or a gap cut it short."""

    wire: int
    trailers: tuple[tuple[str, str], ...]
    complete: bool

    def __init__(
        self, wire: int, trailers: tuple[tuple[str, str], ...] = (), complete: bool = True
    ) -> None:
        self.wire = wire
        self.trailers = trailers
        self.complete = complete


@dataclass(frozen=True, slots=True)
class Opaque:
    """From here on the direction is not HTTP/1.x (after 101 or a CONNECT tunnel)."""


Event = Head | Body | EndOfMessage | Opaque
