"""Checking a recording without trusting the sink that wrote it.

Every object is re-hashed against its manifest, every manifest chain is walked, and every
version's lock state is read. What can go wrong in an Object-Lock bucket is narrower than in a
plain one (a locked version cannot be removed or changed), but a key can still get a *new*
version or a delete marker on top, which hides the original from ordinary readers; so every
key's version history is checked too, not just the latest version.

Problems are reported, never repaired: the evidence store is read-only to ``verify``.
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sinks.errors import SinkError
from sinks.keys import MANIFEST_SUFFIX, ObjectKey, WriterId, object_key_of_manifest, parse_key
from sinks.manifest import parse_manifest
from sinks.store import ObjectStore, ObjectVersion

__all__ = ["Problem", "VerifyReport", "verify_prefix"]


@dataclass(frozen=True)
class Problem:
    kind: str  # missing | altered | unlocked | orphan | chain | deleted | invalid
    key: str
    detail: str

    def __str__(self) -> str:
        return f"{self.kind:9} {self.key}: {self.detail}"


@dataclass
class VerifyReport:
    objects: int = 0
    manifests: int = 0
    bytes_hashed: int = 0
    chains: int = 0
    problems: list[Problem] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def add(self, kind: str, key: str, detail: str) -> None:
        self.problems.append(Problem(kind, key, detail))


@dataclass
class _Manifest:
    key: str
    body: dict[str, Any]
    sha256: str
    parsed: ObjectKey


def _histories(versions: Iterable[ObjectVersion]) -> dict[str, list[ObjectVersion]]:
    by_key: dict[str, list[ObjectVersion]] = defaultdict(list)
    for version in versions:
        by_key[version.key].append(version)
    return by_key


def _check_history(key: str, history: list[ObjectVersion], report: VerifyReport) -> bool:
    """Report delete markers and differing versions; True when the key is readable."""
    latest = next((v for v in history if v.is_latest), history[-1])
    contents = {(v.size, v.etag) for v in history if not v.is_delete_marker}
    if len(contents) > 1:
        report.add("altered", key, f"{len(contents)} different versions stored under this key")
    if latest.is_delete_marker:
        report.add("deleted", key, "the latest version is a delete marker")
        return False
    return True


def _check_lock(store: ObjectStore, key: str, now: datetime, report: VerifyReport) -> None:
    state = store.lock_state(key, None)
    if state.legal_hold:
        return
    if state.retain_until is None or state.mode is None:
        report.add("unlocked", key, "no retention and no legal hold")
    elif state.retain_until <= now:
        report.add("unlocked", key, f"retention ended {state.retain_until.isoformat()}")


def _load_manifest(store: ObjectStore, key: str, report: VerifyReport) -> _Manifest | None:
    data = store.get(key)
    try:
        body = parse_manifest(data)
        parsed = parse_key(object_key_of_manifest(key))
    except SinkError as exc:
        report.add("invalid", key, str(exc))
        return None
    if body["key"] != object_key_of_manifest(key):
        report.add("altered", key, f"manifest describes {body['key']}, not its own object")
    return _Manifest(key, body, hashlib.sha256(data).hexdigest(), parsed)


def _check_object(store: ObjectStore, manifest: _Manifest, report: VerifyReport) -> None:
    key = object_key_of_manifest(manifest.key)
    data = store.get(key)
    report.bytes_hashed += len(data)
    sha = hashlib.sha256(data).hexdigest()
    if len(data) != manifest.body["size"] or sha != manifest.body["sha256"]:
        report.add(
            "altered",
            key,
            f"sha256 {sha} / {len(data)} bytes, manifest says "
            f"{manifest.body['sha256']} / {manifest.body['size']} bytes",
        )


def _check_chains(manifests: list[_Manifest], report: VerifyReport) -> None:
    chains: dict[WriterId, list[_Manifest]] = defaultdict(list)
    for manifest in manifests:
        chains[manifest.parsed.writer].append(manifest)
    report.chains = len(chains)
    for chain in chains.values():
        chain.sort(key=lambda m: m.parsed.order)
        before: _Manifest | None = None
        for manifest in chain:
            previous = manifest.body.get("previous")
            if before is None and previous is not None:
                report.add(
                    "chain",
                    manifest.key,
                    f"names previous manifest {previous['key']}, which is not there",
                )
            elif before is not None and previous is None:
                report.add("chain", manifest.key, f"starts a new chain after {before.key}")
            elif before is not None and previous is not None:
                if previous["key"] != before.key:
                    report.add(
                        "chain",
                        manifest.key,
                        f"names previous {previous['key']}, but the one before is {before.key}"
                        " (a manifest in between is missing)",
                    )
                elif previous["sha256"] != before.sha256:
                    report.add(
                        "chain",
                        manifest.key,
                        f"previous manifest {before.key} changed (sha256 {before.sha256}, "
                        f"recorded {previous['sha256']})",
                    )
            before = manifest


def _check_manifest(
    store: ObjectStore,
    key: str,
    readable: set[str],
    histories: dict[str, list[ObjectVersion]],
    now: datetime,
) -> tuple[VerifyReport, _Manifest | None]:
    """Everything about one manifest and its object, as a report of its own (for threads)."""
    part = VerifyReport(manifests=1)
    _check_lock(store, key, now, part)
    manifest = _load_manifest(store, key, part)
    if manifest is None:
        return part, None
    object_key = object_key_of_manifest(key)
    if object_key not in readable:
        if object_key not in histories:
            part.add("missing", object_key, f"listed by {key} but not stored")
        return part, manifest
    part.objects += 1
    _check_object(store, manifest, part)
    _check_lock(store, object_key, now, part)
    return part, manifest


def verify_prefix(store: ObjectStore, prefix: str, now: datetime, workers: int = 1) -> VerifyReport:
    """Check every object and manifest under ``prefix``; ``now`` decides if a lock has expired.

    Give a prefix at or above ``<prefix>/<rule>/<node>/``: below that, chains start outside
    the listing and are reported as broken. ``workers`` > 1 re-hashes objects in that many
    threads; the report is the same, in the same order.
    """
    report = VerifyReport()
    histories = _histories(store.list_versions(prefix))
    readable = {k for k, h in sorted(histories.items()) if _check_history(k, h, report)}
    manifest_keys = sorted(k for k in readable if k.endswith(MANIFEST_SUFFIX))
    described = {object_key_of_manifest(k) for k in manifest_keys}

    def check(key: str) -> tuple[VerifyReport, _Manifest | None]:
        return _check_manifest(store, key, readable, histories, now)

    if workers > 1:
        with ThreadPoolExecutor(max_workers=workers) as pool:
            results = list(pool.map(check, manifest_keys))
    else:
        results = [check(key) for key in manifest_keys]
    manifests: list[_Manifest] = []
    for part, manifest in results:
        report.manifests += part.manifests
        report.objects += part.objects
        report.bytes_hashed += part.bytes_hashed
        report.problems += part.problems
        if manifest is not None:
            manifests.append(manifest)
    for key in sorted(readable - set(manifest_keys) - described):
        report.add("orphan", key, "no manifest describes this object")
    for key in sorted(set(histories) - readable):
        if key.endswith(MANIFEST_SUFFIX) and object_key_of_manifest(key) in readable:
            report.add("orphan", object_key_of_manifest(key), "its manifest was deleted")
    _check_chains(manifests, report)
    return report
