"""Object keys: built only from batch content, and parsed back by ``verify`` and chain lookups.

``<prefix>/<rule>/<node>/YYYY/MM/DD/HH/<first-ts>_<last-ts>_<partition>-<first>-<last>[_lt<N>].pcap``

The hour path comes from the first packet's capture time (UTC); timestamps are integer
nanoseconds, 19 digits for any date this century, so keys in one hour sort by capture start.
Offsets are the Kafka offsets of the first and last message in the object, so a batch rebuilt
after a crash from the same messages lands on the same key. ``_lt<N>`` appears only when one
batch held several link types and classic PCAP had to split it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime

from sinks.errors import SinkError

__all__ = [
    "MANIFEST_SUFFIX",
    "ObjectKey",
    "WriterId",
    "manifest_key",
    "object_key_of_manifest",
    "parse_key",
    "safe_segment",
]

MANIFEST_SUFFIX = ".manifest.json"
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]")
_NAME = re.compile(
    r"^(?P<first_ts>\d+)_(?P<last_ts>\d+)_(?P<partition>\d+)-(?P<first>\d+)-(?P<last>\d+)"
    r"(?:_lt(?P<linktype>\d+))?\.(?P<ext>pcapng|pcap)$"
)


def safe_segment(name: str) -> str:
    """A rule or node name made safe for one path segment (no '/', no '..', no spaces)."""
    cleaned = _UNSAFE.sub("_", name).strip(".") or "_"
    return cleaned


@dataclass(frozen=True, order=True)
class WriterId:
    """One manifest chain: objects of one rule, from one node, built from one partition.

    That is the unit a single sink owns at a time (it owns the partition), so the chain is
    written strictly in order with no coordination between sinks.
    """

    prefix: str
    rule: str
    node: str
    partition: int

    @property
    def directory(self) -> str:
        parts = [p for p in (self.prefix.strip("/"), self.rule, self.node) if p]
        return "/".join(parts) + "/"

    def __str__(self) -> str:
        return f"{self.directory}p{self.partition}"


@dataclass(frozen=True)
class ObjectKey:
    writer: WriterId
    first_ts_ns: int
    last_ts_ns: int
    first_offset: int
    last_offset: int
    linktype: int | None = None
    ext: str = "pcap"

    def __str__(self) -> str:
        when = datetime.fromtimestamp(self.first_ts_ns // 1_000_000_000, tz=UTC)
        suffix = f"_lt{self.linktype}" if self.linktype is not None else ""
        name = (
            f"{self.first_ts_ns:019d}_{self.last_ts_ns:019d}_{self.writer.partition}-"
            f"{self.first_offset}-{self.last_offset}{suffix}.{self.ext}"
        )
        return f"{self.writer.directory}{when:%Y/%m/%d/%H}/{name}"

    @property
    def order(self) -> tuple[int, int, int]:
        """Position in the writer's chain: offsets first, then the link-type split."""
        return (self.first_offset, self.last_offset, self.linktype or 0)


def manifest_key(object_key: str) -> str:
    return object_key + MANIFEST_SUFFIX


def object_key_of_manifest(key: str) -> str:
    if not key.endswith(MANIFEST_SUFFIX):
        raise SinkError(f"{key!r} is not a manifest key")
    return key[: -len(MANIFEST_SUFFIX)]


def parse_key(key: str) -> ObjectKey:
    """Read an object key back; SinkError if it is not one the sink writes.

    The prefix may itself contain '/', so the fixed tail (rule/node/Y/M/D/H/name) is read
    from the right.
    """
    parts = key.split("/")
    if len(parts) < 7:
        raise SinkError(f"{key!r} is not a sink object key")
    match = _NAME.match(parts[-1])
    if match is None or not all(p.isdigit() for p in parts[-5:-1]):
        raise SinkError(f"{key!r} is not a sink object key")
    writer = WriterId(
        prefix="/".join(parts[:-7]),
        rule=parts[-7],
        node=parts[-6],
        partition=int(match["partition"]),
    )
    linktype = match["linktype"]
    parsed = ObjectKey(
        writer=writer,
        first_ts_ns=int(match["first_ts"]),
        last_ts_ns=int(match["last_ts"]),
        first_offset=int(match["first"]),
        last_offset=int(match["last"]),
        linktype=int(linktype) if linktype is not None else None,
        ext=match["ext"],
    )
    if str(parsed) != key:
        raise SinkError(f"{key!r} does not match its own time path")
    return parsed
