"""Capture bytes -> stream records, with the sensor's own engine.

Replay must give the entries the sensor gave, so it runs the very same pure core (capture
readers, decoding, reassembly, dissectors, record building) on the bytes read back; nothing in
replay re-implements any of it.
"""

from __future__ import annotations

import io
from collections.abc import Iterator

from producers.capture import CaptureReader
from producers.engine import Engine
from replay.errors import ReplayError
from streamtap.schema import StreamRecord

__all__ = ["dissect_capture"]


def dissect_capture(data: bytes, node: str) -> Iterator[StreamRecord]:
    """Every stream record of one capture file's bytes (pcap, pcapng, gzip of either).

    A damaged capture yields the records of the frames before the damage, then raises
    ReplayError naming the byte offset, so the job counts the object as failed.
    """
    reader = CaptureReader(io.BytesIO(data), "<object>")
    engine = Engine(node)
    feed = engine.feed
    for frame in reader:
        out = feed(frame)
        if out:
            yield from out
    yield from engine.flush()
    if reader.error is not None:
        raise ReplayError(str(reader.error))
