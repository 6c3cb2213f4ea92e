"""Protocol dissectors (sans-I/O) and the choice of one for a stream, by content."""

from __future__ import annotations

from producers.dissect.base import DissectError, Dissector, Direction, Item, ProtocolInfo

__all__ = [
    "Direction",
    "DissectError",
    "Dissector",
    "Item",
    "ProtocolInfo",
    "select_dissector",
]


def select_dissector(
    layer4: str, direction: Direction, first_payload: bytes, src_port: int, dst_port: int
) -> Dissector | None:
    """A fresh dissector for a stream whose first payload is ``first_payload``, or None (bare).

    Called once per stream with the first non-empty payload seen in either direction
    (``direction`` says which side sent it). Detection is by content; ports only break ties.
    """
    return None
