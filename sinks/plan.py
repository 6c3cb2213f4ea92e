"""From a closed batch to the objects it becomes: one per (prefix, rule, node), bytes and all.

A message that matched two rules goes into both rules' objects, because each rule has its own
prefix and retention. Within one object, stream segments are deduplicated by
``(stream_id, segment)`` keeping the first delivery: upstream is at-least-once, and a duplicate
is the same segment again. Packets of all streams are merged by capture time; ties go to the
lower Kafka offset, then to the order inside the record, so the order never depends on dict or
set iteration.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable
from collections.abc import Set as AbstractSet
from dataclasses import dataclass
from typing import Literal

from sinks.batch import ClosedBatch, Consumed
from sinks.keys import ObjectKey, WriterId, safe_segment
from sinks.pcap import PCAP_EXTENSION, PCAPNG_EXTENSION, write_pcap, write_pcapng
from streamtap.schema import MatchedPackets, Packet, RuleSettings

__all__ = ["PlanOptions", "PlannedObject", "StreamPart", "merge_settings", "plan_batch"]

DAY_MS = 86_400_000
_EMPTY_LINKTYPE = 1  # Ethernet: what an object with no packets claims, for readers' sake

Format = Literal["pcap", "pcapng"]
LockMode = Literal["GOVERNANCE", "COMPLIANCE"]


@dataclass(frozen=True)
class PlanOptions:
    default_prefix: str = "recordings"
    format: Format = "pcap"
    #: retention for rules that leave it to "the bucket default", when the sink sets one
    default_retention_days: int | None = None
    default_lock_mode: LockMode = "GOVERNANCE"


@dataclass(frozen=True)
class StreamPart:
    """One stream segment's share of one object."""

    offset: int
    timestamp_ms: int
    message: MatchedPackets
    packets: int
    captured_bytes: int
    wire_bytes: int


@dataclass(frozen=True)
class PlannedObject:
    key: ObjectKey
    size: int
    sha256: str
    rule: str
    settings: RuleSettings
    retain_until_ms: int | None
    streams: tuple[StreamPart, ...]
    format: Format
    linktypes: tuple[int, ...]
    data: bytes = b""

    @property
    def writer(self) -> WriterId:
        return self.key.writer


def merge_settings(settings: Iterable[RuleSettings]) -> RuleSettings:
    """If a rule changed within one batch, keep the strictest of its settings."""
    items = list(settings)
    days = [s.retention_days for s in items if s.retention_days is not None]
    modes = {s.lock_mode for s in items}
    mode: LockMode | None = None
    if "COMPLIANCE" in modes:
        mode = "COMPLIANCE"
    elif "GOVERNANCE" in modes:
        mode = "GOVERNANCE"
    return RuleSettings(
        retention_days=max(days) if days else None,
        lock_mode=mode,
        legal_hold=any(s.legal_hold for s in items),
        prefix=items[0].prefix if items else "",
    )


SeenBefore = Callable[[WriterId], AbstractSet[tuple[str, int]]]


def _nothing_before(writer: WriterId) -> AbstractSet[tuple[str, int]]:
    return frozenset()


def _groups(
    batch: ClosedBatch, options: PlanOptions, seen_before: SeenBefore
) -> dict[WriterId, tuple[str, list[Consumed], list[RuleSettings]]]:
    groups: dict[WriterId, tuple[str, list[Consumed], list[RuleSettings]]] = {}
    seen: dict[WriterId, set[tuple[str, int]]] = {}
    for item in batch.messages:
        message = item.message
        header = message.header
        node = safe_segment(header.record.node.name)
        for rule in sorted(header.rules):
            settings = header.rules[rule]
            writer = WriterId(
                prefix=(settings.prefix or options.default_prefix).strip("/"),
                rule=safe_segment(rule),
                node=node,
                partition=batch.partition,
            )
            if writer not in seen:
                seen[writer] = set(seen_before(writer))
            dupes = seen[writer]
            if message.dedupe_key in dupes:
                continue
            dupes.add(message.dedupe_key)
            group = groups.setdefault(writer, (rule, [], []))
            group[1].append(item)
            group[2].append(settings)
    return groups


def _part(item: Consumed, packets: list[Packet]) -> StreamPart:
    return StreamPart(
        offset=item.offset,
        timestamp_ms=item.timestamp_ms,
        message=item.message,
        packets=len(packets),
        captured_bytes=sum(len(p.data) for p in packets),
        wire_bytes=sum(max(p.wirelen, len(p.data)) for p in packets),
    )


def _build(
    writer: WriterId,
    rule: str,
    settings: RuleSettings,
    items: list[Consumed],
    linktype: int | None,
    options: PlanOptions,
) -> PlannedObject:
    ordered: list[tuple[int, int, int, Packet]] = []
    parts: list[StreamPart] = []
    for item in items:
        mine = [p for p in item.message.packets if linktype is None or p.linktype == linktype]
        parts.append(_part(item, mine))
        ordered.extend(
            (p.ts_ns, item.offset, i, p)
            for i, p in enumerate(item.message.packets)
            if linktype is None or p.linktype == linktype
        )
    ordered.sort(key=lambda t: (t[0], t[1], t[2]))
    packets = [t[3] for t in ordered]
    if packets:
        first_ts, last_ts = packets[0].ts_ns, packets[-1].ts_ns
    else:
        first_ts = min(i.message.header.record.first_ts_ns for i in items)
        last_ts = max(i.message.header.record.last_ts_ns for i in items)
    linktypes = tuple(sorted({p.linktype for p in packets})) or (linktype or _EMPTY_LINKTYPE,)
    if options.format == "pcapng":
        data = write_pcapng(packets)
        ext = PCAPNG_EXTENSION
    else:
        data = write_pcap(packets, linktypes[0])
        ext = PCAP_EXTENSION
    key = ObjectKey(
        writer=writer,
        first_ts_ns=first_ts,
        last_ts_ns=last_ts,
        first_offset=min(i.offset for i in items),
        last_offset=max(i.offset for i in items),
        linktype=linktype,
        ext=ext,
    )
    retain_until = None
    if settings.retention_days is not None:
        # From the newest message's Kafka timestamp, not the clock: a rebuilt batch must ask
        # for the same date, or its manifest would differ. Rounded up to whole seconds, as S3
        # keeps them.
        newest = max(i.timestamp_ms for i in items)
        retain_until = -(-(newest + settings.retention_days * DAY_MS) // 1000) * 1000
    return PlannedObject(
        key=key,
        size=len(data),
        sha256=hashlib.sha256(data).hexdigest(),
        rule=rule,
        settings=settings,
        retain_until_ms=retain_until,
        streams=tuple(parts),
        format=options.format,
        linktypes=linktypes,
        data=data,
    )


def plan_batch(
    batch: ClosedBatch, options: PlanOptions, seen_before: SeenBefore = _nothing_before
) -> list[PlannedObject]:
    """Every object a closed batch becomes, in chain order per writer (by key order).

    ``seen_before(writer)`` gives the segments the writer's recent objects already hold
    (see ``sinks.history``); they are left out, so a late duplicate is not stored twice.
    """
    planned: list[PlannedObject] = []
    groups = _groups(batch, options, seen_before)
    for writer, (rule, items, settings_seen) in sorted(groups.items()):
        settings = merge_settings(settings_seen)
        if settings.retention_days is None and options.default_retention_days is not None:
            settings = settings.model_copy(
                update={
                    "retention_days": options.default_retention_days,
                    "lock_mode": settings.lock_mode or options.default_lock_mode,
                }
            )
        linktypes = sorted({p.linktype for i in items for p in i.message.packets})
        if options.format == "pcapng" or len(linktypes) <= 1:
            planned.append(_build(writer, rule, settings, items, None, options))
            continue
        split = []
        for n, linktype in enumerate(linktypes):
            # A stream without packets is listed once, in the first link type's object.
            chosen = [
                i
                for i in items
                if any(p.linktype == linktype for p in i.message.packets)
                or (n == 0 and not i.message.packets)
            ]
            split.append(_build(writer, rule, settings, chosen, linktype, options))
        # The chain follows key order (offsets, then link type), as verify walks it.
        planned.extend(sorted(split, key=lambda o: o.key.order))
    return planned
