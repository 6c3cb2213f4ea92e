"""Capture bytes -> stream records, with the sensor's own engine.

Replay must give the entries the sensor gave, so it runs the very same pure core (capture
readers, decoding, reassembly, dissectors, record building) on the bytes read back; nothing in
replay re-implements any of it.
"""

from __future__ import annotations

import gc
import io
from collections.abc import Iterator

from producers.capture import CaptureReader
from producers.engine import Engine
from producers.service import GC_GEN0_THRESHOLD
from replay.errors import ReplayError
from streamtap.schema import StreamRecord

__all__ = ["dissect_capture", "young_collections_rarer"]


def young_collections_rarer() -> None:
    """Give this process the sensor's gen0 GC threshold (``producers.service.tune_gc``).

    With CPython's default of 700 the cyclic collector runs every few packets and its older
    generations rescan every record the job holds: about half of a replay's CPU (27 against
    53 MB/s on the replay benchmark). Unlike the sensor there is no ``gc.freeze()``: this may be
    a long-running server (``streamtap tap``), whose heap must stay collectable. Raising the
    threshold is process-wide and permanent; it is only ever raised, and a threshold of 0
    (collection turned off by the application) is left alone.
    """
    gen0, gen1, gen2 = gc.get_threshold()
    if 0 < gen0 < GC_GEN0_THRESHOLD:
        gc.set_threshold(GC_GEN0_THRESHOLD, gen1, gen2)


def dissect_capture(data: bytes, node: str) -> Iterator[StreamRecord]:
    """Every stream record of one capture file's bytes (pcap, pcapng, gzip of either).

    A damaged capture yields the records of the frames before the damage, then raises
    ReplayError naming the byte offset, so the job counts the object as failed.
    """
    young_collections_rarer()
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
