"""Storing planned objects and their manifests so that a retry or a rebuild is harmless.

The order per object is: object, then manifest. The manifest is the commit mark: a batch whose
manifests all exist is done, and its Kafka offsets may be committed. A key that already holds
the same bytes counts as written (a rebuilt batch, or a second sink after a rebalance); a key
that holds different bytes is refused with ``ObjectConflictError`` and never overwritten.

Chain heads are looked up in the bucket the first time a writer is seen (so a restarted or
rebalanced sink continues the chain it did not start) and then kept in memory.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass, replace

from sinks.errors import ObjectConflictError, SinkError
from sinks.keys import MANIFEST_SUFFIX, WriterId, manifest_key, parse_key
from sinks.manifest import ChainLink, build_manifest, parse_manifest
from sinks.plan import PlannedObject
from sinks.store import KeyExistsError, ObjectStore, PutOptions

__all__ = ["BatchWriter", "WriteOutcome", "find_chain_head", "put_immutable"]

log = logging.getLogger("streamtap.sink")

PCAP_CONTENT_TYPE = "application/vnd.tcpdump.pcap"
MANIFEST_CONTENT_TYPE = "application/json"


@dataclass(frozen=True)
class WriteOutcome:
    key: str
    manifest_key: str
    bytes_written: int
    already_stored: bool


def put_immutable(store: ObjectStore, key: str, data: bytes, options: PutOptions) -> bool:
    """Store ``data`` at ``key`` unless it is already there; True if it was already there.

    The PUT is conditional (``If-None-Match: *``), so a retry never makes a second version and
    different bytes are never layered on top (in a versioned bucket a plain PUT would succeed
    and hide the original behind a new version). When the key is taken, the stored bytes are
    compared: the same bytes are a harmless repeat, different bytes a conflict.
    """
    sha = options.sha256 or hashlib.sha256(data).hexdigest()
    try:
        store.put(key, data, replace(options, sha256=sha, if_absent=True))
        return False
    except KeyExistsError:
        pass
    existing = store.head(key)
    if existing is not None and existing.size == len(data):
        stored_sha = existing.sha256 or hashlib.sha256(store.get(key)).hexdigest()
        if stored_sha == sha:
            return True
    raise ObjectConflictError(
        f"{key} already holds different bytes "
        f"(sha256 {existing.sha256 if existing else '?'}); refusing to overwrite"
    )


def find_chain_head(
    store: ObjectStore, writer: WriterId, before: tuple[int, int, int]
) -> ChainLink | None:
    """The writer's newest manifest ordered before ``before`` (None: chain start)."""
    best: tuple[tuple[int, int, int], str] | None = None
    for key in store.list_keys(writer.directory):
        if not key.endswith(MANIFEST_SUFFIX):
            continue
        try:
            parsed = parse_key(key[: -len(MANIFEST_SUFFIX)])
        except SinkError:
            continue
        if parsed.writer != writer or parsed.order >= before:
            continue
        if best is None or parsed.order > best[0]:
            best = (parsed.order, key)
    if best is None:
        return None
    data = store.get(best[1])
    return ChainLink(best[1], hashlib.sha256(data).hexdigest(), best[0])


class BatchWriter:
    """Writes one batch's objects in chain order; keeps each writer's chain head."""

    def __init__(self, store: ObjectStore) -> None:
        self._store = store
        self._heads: dict[WriterId, ChainLink | None] = {}

    def forget(self, partitions: set[int]) -> None:
        """Drop cached heads of partitions this sink no longer owns: another sink moves them."""
        for writer in [w for w in self._heads if w.partition in partitions]:
            del self._heads[writer]

    def _head(self, obj: PlannedObject) -> ChainLink | None:
        writer = obj.writer
        cached = self._heads.get(writer)
        if writer not in self._heads or (cached is not None and cached.order >= obj.key.order):
            # Unknown writer, or a batch being rebuilt behind the head we remember.
            return find_chain_head(self._store, writer, obj.key.order)
        return cached

    def write(self, obj: PlannedObject) -> WriteOutcome:
        """Object, then manifest. In the common case that is two conditional PUTs; only a
        key that is already taken (a rebuilt batch) costs the extra reads."""
        return self.put_manifest(obj, self.put_object(obj))

    def put_object(self, obj: PlannedObject) -> bool:
        """Store the object's bytes (locked); True if the key already held them.

        Split from ``put_manifest`` so a caller can send the next batch's objects while the
        previous batch's manifests are still going up: objects may be stored in any order,
        only manifests (the chain and the commit mark) must follow chain order.
        """
        return put_immutable(
            self._store,
            str(obj.key),
            obj.data,
            replace(self._lock(obj), content_type=PCAP_CONTENT_TYPE, sha256=obj.sha256),
        )

    def put_manifest(self, obj: PlannedObject, existed: bool) -> WriteOutcome:
        """Store the manifest of an object already stored (``existed``: it was there before).

        Call in chain order per writer, after the writer's previous manifest is stored: the
        manifest names that one's SHA-256.
        """
        key = str(obj.key)
        mkey = manifest_key(key)
        if existed and self._store.head(mkey) is not None:
            # Stored before a crash or by the partition's previous owner: check the manifest
            # is this object's, then carry the chain on from it.
            data = self._store.get(mkey)
            stored = parse_manifest(data)
            if stored["sha256"] != obj.sha256 or stored["size"] != obj.size:
                raise ObjectConflictError(f"{mkey} describes different bytes than {key} has now")
            self._heads[obj.writer] = ChainLink(
                mkey, hashlib.sha256(data).hexdigest(), obj.key.order
            )
            return WriteOutcome(key, mkey, 0, already_stored=True)
        manifest = build_manifest(obj, self._head(obj))
        put_immutable(
            self._store,
            mkey,
            manifest,
            replace(self._lock(obj), content_type=MANIFEST_CONTENT_TYPE),
        )
        self._heads[obj.writer] = ChainLink(
            mkey, hashlib.sha256(manifest).hexdigest(), obj.key.order
        )
        written = (0 if existed else obj.size) + len(manifest)
        return WriteOutcome(key, mkey, written, already_stored=existed)

    @staticmethod
    def _lock(obj: PlannedObject) -> PutOptions:
        return PutOptions(
            lock_mode=(obj.settings.lock_mode or "GOVERNANCE") if obj.retain_until_ms else None,
            retain_until_ms=obj.retain_until_ms,
            legal_hold=obj.settings.legal_hold,
        )
