"""The contract between reassembly and the protocol dissectors (sans-I/O, h11 style).

A dissector is fed one stream's payload, in order, per direction, and hands back *items*: one
request/response exchange each. It never sees sockets, Kafka, clocks or packets; timestamps come
in with the data. Reassembly owns ordering and gaps; the record builder owns the common entry
fields (ids, endpoints, node), so a dissector only fills in what its protocol knows.
"""

from __future__ import annotations

import enum
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any, ClassVar

from mypy_extensions import mypyc_attr

__all__ = ["Direction", "DissectError", "Dissector", "Item", "ProtocolInfo"]


class Direction(enum.IntEnum):
    """Who sent the bytes: the side that opened the stream (client) or the other (server)."""

    CLIENT = 0
    SERVER = 1


class DissectError(Exception):
    """The bytes are not the protocol this dissector speaks (or are hostile beyond repair).

    The stream then falls back to a bare tcp/udp entry; items already returned are kept.
    """


@dataclass(frozen=True, slots=True)
class ProtocolInfo:
    """The ``protocol.*`` fields of an entry (see ENTRY.md)."""

    name: str
    abbr: str
    version: str
    layer4: str


@dataclass(slots=True)
class Item:
    """One dissected exchange; becomes one entry once the common fields are added.

    ``request`` and ``response`` are already in the JSON shape ENTRY.md gives for the protocol.
    ``__init__`` is written out so that mypyc compiles it (one Item per exchange).
    """

    protocol: ProtocolInfo
    ts_ns: int
    request: dict[str, Any] | None
    response: dict[str, Any] | None
    response_ts_ns: int | None
    request_size: int
    response_size: int
    extra: dict[str, Any]

    def __init__(
        self,
        protocol: ProtocolInfo,
        ts_ns: int,
        request: dict[str, Any] | None,
        response: dict[str, Any] | None = None,
        response_ts_ns: int | None = None,
        request_size: int = 0,
        response_size: int = 0,
        extra: dict[str, Any] | None = None,
    ) -> None:
        self.protocol = protocol
        self.ts_ns = ts_ns
        self.request = request
        self.response = response
        self.response_ts_ns = response_ts_ns
        self.request_size = request_size
        self.response_size = response_size
        self.extra = {} if extra is None else extra


@mypyc_attr(allow_interpreted_subclasses=True)  # dissectors of tests (and plugins) extend it
class Dissector(ABC):
    """Bytes in, items out. One instance per stream.

    For TCP, ``feed`` gets contiguous reassembled payload of one direction (any split: the
    dissector buffers, with a byte cap). For UDP, each ``feed`` call is exactly one datagram.
    """

    #: short protocol name, e.g. "http" or "dns"
    name: ClassVar[str] = ""

    @abstractmethod
    def feed(self, direction: Direction, data: bytes, ts_ns: int) -> None:
        """Take more payload; raise DissectError if it cannot be this protocol."""

    @abstractmethod
    def gap(self, direction: Direction, length: int, ts_ns: int) -> None:
        """``length`` bytes of this direction were never captured; resynchronise if possible."""

    @abstractmethod
    def end(self, ts_ns: int) -> None:
        """The stream is over (FIN, RST, idle, end of capture): flush partial exchanges."""

    @abstractmethod
    def next_item(self) -> Item | None:
        """The next finished item, or None when nothing is ready yet."""
