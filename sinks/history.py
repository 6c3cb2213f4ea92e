"""Which stream segments a writer stored recently, so late duplicates are not stored again.

Upstream is at-least-once: a segment can arrive again in a later batch, not only in the same
one. Each writer (rule, node, partition) remembers the segments of its last ``WINDOW`` objects
and a batch leaves those out. The window is counted in objects of the writer's chain, so it is
the same set whether it was kept in memory while planning or read back from the bucket after a
restart, and a rebuilt batch comes out byte for byte the same. That is also why ``WINDOW`` is a
constant and not a setting: changing it between runs would change rebuilt batches.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Set as AbstractSet

import orjson

from sinks.errors import SinkError
from sinks.keys import MANIFEST_SUFFIX, WriterId, parse_key
from sinks.plan import PlannedObject
from sinks.store import ObjectStore

__all__ = ["WINDOW", "SegmentHistory"]

WINDOW = 64

log = logging.getLogger("streamtap.sink")

Segment = tuple[str, int]
Order = tuple[int, int, int]


class SegmentHistory:
    """Per writer, the segments of its last ``WINDOW`` objects, oldest first."""

    def __init__(self, store: ObjectStore) -> None:
        self._store = store
        self._recent: dict[WriterId, deque[tuple[Order, frozenset[Segment]]]] = {}

    def forget(self, partitions: set[int]) -> None:
        for writer in [w for w in self._recent if w.partition in partitions]:
            del self._recent[writer]

    def seen(self, writer: WriterId, before: Order) -> AbstractSet[Segment]:
        """Segments the writer's last WINDOW objects (ordered before ``before``) hold."""
        recent = self._recent.get(writer)
        if recent is None:
            recent = self._recent[writer] = self._load(writer, before)
        out: set[Segment] = set()
        for _, segments in recent:
            out |= segments
        return out

    def record(self, objects: list[PlannedObject]) -> None:
        """Remember planned objects; call in chain order, right after planning."""
        for obj in objects:
            recent = self._recent.setdefault(obj.writer, deque(maxlen=WINDOW))
            segments = frozenset(s.message.dedupe_key for s in obj.streams)
            recent.append((obj.key.order, segments))

    def _load(self, writer: WriterId, before: Order) -> deque[tuple[Order, frozenset[Segment]]]:
        found: list[tuple[Order, str]] = []
        for key in self._store.list_keys(writer.directory):
            if not key.endswith(MANIFEST_SUFFIX):
                continue
            try:
                parsed = parse_key(key[: -len(MANIFEST_SUFFIX)])
            except SinkError:
                continue
            if parsed.writer == writer and parsed.order < before:
                found.append((parsed.order, key))
        recent: deque[tuple[Order, frozenset[Segment]]] = deque(maxlen=WINDOW)
        for order, key in sorted(found)[-WINDOW:]:
            try:
                streams = orjson.loads(self._store.get(key))["streams"]
                segments = frozenset((s["id"], s["segment"]) for s in streams)
            except (orjson.JSONDecodeError, KeyError, TypeError) as exc:
                # A damaged manifest is verify's to report; it must not stop the recording.
                log.warning("ignoring unreadable manifest %s for dedupe: %s", key, exc)
                segments = frozenset()
            recent.append((order, segments))
        return recent
