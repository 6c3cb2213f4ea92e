"""Capture bytes -> stream records, with the sensor's own engine.

Replay must give the entries the sensor gave, so it runs the very same pure core (capture
readers, decoding, reassembly, dissectors, record building) on the bytes read back; nothing in
replay re-implements any of it.
"""

from __future__ import annotations

import io
from collections.abc import Iterator

from replay.errors import ReplayError
from streamtap.schema import StreamRecord

__all__ = ["dissect_capture"]


def dissect_capture(data: bytes, node: str) -> Iterator[StreamRecord]:
    """Every stream record of one capture file's bytes (pcap, pcapng, gzip of either)."""
    try:
        from producers import Engine  # type: ignore[attr-defined]
        from producers.capture import CaptureReader
    except ImportError as exc:
        raise ReplayError(f"the sensor engine is not available: {exc}") from exc
    reader = CaptureReader(io.BytesIO(data), "<object>")
    engine = Engine(node=node)
    for frame in reader:
        yield from engine.feed(frame)
    yield from engine.close()
