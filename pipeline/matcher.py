"""The pipeline's decision for one stream segment, as a pure function.

Input: the segment, the current rule set, and what the pipeline remembers about the segment's
stream (``StreamMemory``: rules that already matched it, and where its earlier unmatched segments
sit in ``streams``). Output: a ``Decision`` saying what to publish, which earlier segments to
re-read and publish first, and what to remember next. The agent carries the decision out; keeping
it here (no Kafka, clock or env) lets every stream-semantics case be unit tested in microseconds.

Stream semantics:

* a stream matches when any of its entries matches any rule;
* once matched, every later segment is published too, tagged with the stream's rules (with an
  empty index list for rules that matched only earlier segments);
* earlier segments that did not match on their own are remembered by source position (bounded by
  ``max_pending``) and re-read when a later segment matches, then published before it;
* a closed segment ends the stream: its memory is dropped (tables do not grow forever), for a
  matched stream once the worker has committed past the closing segment; a stream whose
  closing segment is the first the memory hears of it is never written at all;
* an unmatched stream that stops without a closing segment (its sensor died, the record was
  lost) would keep its memory for good: once no segment of it has come for ``idle_records``
  offsets of its partition its memory has expired (``StreamMemory.idle``; a later segment starts
  afresh, with ``since`` so that a replayed batch ignores what the first pass had forgotten),
  and the worker deletes it when its commit is that far past (``process``); both are counted.

Output: ``Publish`` describes a matched-stream message without holding the record (rule settings,
matched indices, redacted entries when a rule redacts). ``Publish.encode`` writes it for a
``RecordView``, splicing the record's published bytes when no entry changed, so the worker never
decodes or re-encodes packets; ``Publish.message`` builds the ``MatchedStream`` model (tests,
tools); both give the same bytes (``tests/unit/schema``, ``tests/unit/pipeline``).

Determinism: a segment processed twice (a worker killed after publishing, before committing) is
processed against the memory as it was before its batch or as it was after; the message depends
only on the segment, the rule set and, through ``StreamMemory.first``, on which rules had matched
the stream *by that segment*, which is the same in both, so the copy is byte-identical.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from pipeline.rules import RuleSet
from streamtap.schema import (
    MatchedStream,
    RecordView,
    RuleSettings,
    StreamRecord,
    encode_matched_view,
)

__all__ = [
    "Decision",
    "Publish",
    "Segment",
    "SourcePos",
    "StreamMemory",
    "decide",
    "earlier_message",
    "earlier_publish",
    "evaluate",
]


#: a segment to decide on: the full model, or the pipeline's view with packets left as base64
Segment = StreamRecord | RecordView


@dataclass(frozen=True, order=True)
class SourcePos:
    """Where an unmatched segment sits in ``streams``: enough to fetch it again."""

    partition: int
    offset: int
    segment: int


@dataclass(frozen=True)
class StreamMemory:
    """What the pipeline keeps per open stream (the value of the Faust table).

    ``first`` maps each rule that matched the stream to the segment where it first matched.
    Keeping the segment (not just the rule) is what makes a replayed batch give the same bytes:
    a segment carries only the rules that had matched by then (see ``decide``), whether the
    memory it is replayed against is the one before the batch or the one after it.
    """

    first: tuple[tuple[str, int], ...] = ()
    pending: tuple[SourcePos, ...] = ()
    #: unmatched segments not remembered because ``pending`` was full
    overflow: int = 0
    #: (partition, offset) of the segment that closed a matched stream: the memory is kept
    #: until that offset is committed, so a replay of its batch still sees which rules matched
    closed_at: tuple[int, int] | None = None
    #: (partition, offset) of the latest unmatched segment remembered (unmatched memories only):
    #: a memory not touched for more than ``idle_records`` offsets of its partition has expired
    last: tuple[int, int] | None = None
    #: the segment at which an expired memory was started afresh: earlier segments (met again
    #: only when a batch is replayed) are ignored, as the first pass, which had forgotten
    #: them, did; kept for the rest of the stream
    since: int | None = None

    @classmethod
    def matched(cls, **first: int) -> StreamMemory:
        return cls(first=tuple(sorted(first.items())))

    @property
    def rules(self) -> frozenset[str]:
        return frozenset(name for name, _ in self.first)

    @property
    def empty(self) -> bool:
        return not self.first and not self.pending and not self.overflow

    def idle(self, partition: int, offset: int, idle_records: int | None) -> bool:
        """An unmatched memory last touched more than ``idle_records`` offsets before ``offset``
        (a stream that stopped without a closing segment). Depends only on the memory and the
        offset, so a replayed batch sees the same expiry as the first pass did."""
        return (
            idle_records is not None
            and self.last is not None
            and not self.first
            and self.last[0] == partition
            and offset - self.last[1] > idle_records
        )

    def to_json(self) -> dict[str, Any]:
        doc: dict[str, Any] = {
            "rules": dict(self.first),
            "pending": [[p.partition, p.offset, p.segment] for p in self.pending],
            "overflow": self.overflow,
        }
        if self.closed_at is not None:
            doc["closed_at"] = list(self.closed_at)
        if self.last is not None:
            doc["last"] = list(self.last)
        if self.since is not None:
            doc["since"] = self.since
        return doc

    @classmethod
    def from_json(cls, data: Mapping[str, Any] | None) -> StreamMemory:
        if not data:
            return cls()
        rules = data.get("rules") or {}
        return cls(
            first=tuple(sorted((str(n), int(s)) for n, s in dict(rules).items())),
            pending=tuple(
                SourcePos(int(p), int(o), int(s)) for p, o, s in data.get("pending") or ()
            ),
            overflow=int(data.get("overflow") or 0),
            closed_at=tuple(data["closed_at"]) if data.get("closed_at") else None,
            last=(int(data["last"][0]), int(data["last"][1])) if data.get("last") else None,
            since=int(data["since"]) if data.get("since") is not None else None,
        )


@dataclass(frozen=True)
class Publish:
    """One matched-stream message for a segment, minus the segment itself."""

    #: every rule the message carries, sorted by name, with its recording settings
    rules: dict[str, RuleSettings]
    #: per rule (same order), indices of this segment's entries that matched it
    matched_entries: dict[str, tuple[int, ...]]
    #: the entries after ``redact()``; None when no carried rule redacts (the segment's own)
    entries: tuple[dict[str, Any], ...] | None
    source_partition: int | None
    source_offset: int | None

    def encode(self, view: RecordView) -> bytes:
        """The message's bytes for ``view`` (the segment this was decided for)."""
        return encode_matched_view(
            view,
            rules=self.rules,
            matched_entries=self.matched_entries,
            source_partition=self.source_partition,
            source_offset=self.source_offset,
            entries=self.entries,
        )

    def message(self, record: Segment) -> MatchedStream:
        """The message as a model (decodes a view's packets)."""
        if isinstance(record, RecordView):
            record = record.record()
        if self.entries is not None:
            record = record.model_copy(update={"entries": self.entries})
        return MatchedStream(
            record=record,
            rules=self.rules,
            matched_entries=self.matched_entries,
            source_partition=self.source_partition,
            source_offset=self.source_offset,
        )


@dataclass(frozen=True)
class Decision:
    """What to do with one segment, in order: publish ``refetch`` (re-read), then ``publish``."""

    publish: Publish | None
    #: the segment decided on (what ``publish`` is for)
    segment: Segment | None = None
    #: earlier unmatched segments of this stream to re-read and publish before ``message``
    refetch: tuple[SourcePos, ...] = ()
    #: the stream's memory after this segment; ``None`` means forget the stream
    memory: StreamMemory | None = None
    #: true when ``memory`` differs from the input (write the table only then)
    memory_changed: bool = False
    #: earlier segments the memory could not hold (lost from the recording, counted)
    lost_earlier: int = 0
    matched_now: Mapping[str, tuple[int, ...]] = field(default_factory=dict)
    #: the stream's memory had expired (``StreamMemory.idle``) and was started afresh
    expired: bool = False

    @property
    def message(self) -> MatchedStream | None:
        """The message as a model (for tests and tools; the worker encodes ``publish``)."""
        if self.publish is None:
            return None
        assert self.segment is not None
        return self.publish.message(self.segment)


def evaluate(record: Segment, ruleset: RuleSet) -> dict[str, tuple[int, ...]]:
    """Rule name -> indices of this segment's entries that matched it."""
    hits: dict[str, list[int]] = {}
    if not ruleset.enabled:
        return {}
    for index, entry in enumerate(record.entries):
        for name in ruleset.match(entry):
            hits.setdefault(name, []).append(index)
    return {name: tuple(indices) for name, indices in sorted(hits.items())}


def _publish(
    record: Segment,
    ruleset: RuleSet,
    rule_names: frozenset[str],
    matched: Mapping[str, tuple[int, ...]],
    partition: int | None,
    offset: int | None,
) -> Publish:
    names = sorted(rule_names)
    entries = None
    if any(ruleset.rules[name].redacts for name in names):
        entries = tuple(ruleset.redact(dict(entry), rule_names) for entry in record.entries)
    return Publish(
        rules={name: ruleset.rules[name].settings for name in names},
        matched_entries={name: tuple(matched.get(name, ())) for name in names},
        entries=entries,
        source_partition=partition,
        source_offset=offset,
    )


def earlier_publish(
    record: Segment,
    ruleset: RuleSet,
    rule_names: frozenset[str],
    partition: int,
    offset: int,
) -> Publish:
    """The message for an earlier segment re-read because a later one matched.

    Its entries did not match (else it would have been published then), so every rule carries
    an empty index list; redaction still applies.
    """
    names = frozenset(n for n in rule_names if n in ruleset.rules)
    return _publish(record, ruleset, names, {}, partition, offset)


def earlier_message(
    record: StreamRecord,
    ruleset: RuleSet,
    rule_names: frozenset[str],
    partition: int,
    offset: int,
) -> MatchedStream:
    """``earlier_publish`` as a model."""
    return earlier_publish(record, ruleset, rule_names, partition, offset).message(record)


def decide(
    record: Segment,
    ruleset: RuleSet,
    memory: StreamMemory | None,
    *,
    partition: int,
    offset: int,
    max_pending: int,
    idle_records: int | None = None,
) -> Decision:
    """Decide what one segment means for its stream; see the module docstring.

    ``idle_records``: an unmatched memory untouched for more than this many offsets of the
    partition is treated as expired (its stream stopped without a closing segment) and this
    segment starts afresh; ``None`` keeps memories until their stream closes."""
    given = memory or StreamMemory()
    expired = given.idle(partition, offset, idle_records)
    memory = StreamMemory(since=record.segment) if expired else given
    since = memory.since
    if since is not None and record.segment < since:
        # before an expiry: only a replay brings it back, and the first pass ignored it
        return Decision(publish=None, segment=record, memory=given, memory_changed=False)
    matched = evaluate(record, ruleset)
    first = dict(memory.first)
    for name in matched:
        if name not in first or record.segment < first[name]:
            first[name] = record.segment
    rule_names: frozenset[str] = frozenset()
    if first:
        # A segment carries the rules that had matched the stream by the later of itself and
        # the stream's first match (so re-read earlier segments carry the trigger's rules).
        # Rules no longer loaded are dropped: deleting a rule stops its output.
        horizon = max(record.segment, min(first.values()))
        rule_names = frozenset(
            n for n, seg in first.items() if seg <= horizon and n in ruleset.rules
        )

    if rule_names:
        publish: Publish | None = _publish(record, ruleset, rule_names, matched, partition, offset)
        refetch = memory.pending
        lost = memory.overflow
        after = StreamMemory(first=tuple(sorted(first.items())), since=since)
    else:
        publish = None
        refetch = ()
        lost = 0
        after = memory
        if ruleset.enabled and not memory.first:
            # Not matched (yet): remember where this segment is, in case a later one matches.
            # Recording off (no rules) remembers nothing, so the table stays empty.
            known = {p.segment for p in memory.pending}
            if record.segment not in known:
                if len(memory.pending) < max_pending:
                    pos = SourcePos(partition, offset, record.segment)
                    after = StreamMemory(
                        pending=(*memory.pending, pos), last=(partition, offset), since=since
                    )
                else:
                    after = StreamMemory(
                        pending=memory.pending,
                        overflow=memory.overflow + 1,
                        last=(partition, offset),
                        since=since,
                    )

    if record.closed:
        # The stream is over. An unmatched one is forgotten now; a matched one keeps its rules,
        # marked closed, until the worker has committed past this segment (then it is deleted),
        # because a replay of this batch must still know which rules matched before it. A stream
        # with no memory before this segment (most streams: one segment, matched and closed)
        # gets none: a replay decides it from nothing again and gives the same message, so the
        # two changelog writes (marker, then deletion) would buy nothing.
        if first and not memory.empty:
            kept: StreamMemory | None = StreamMemory(
                first=tuple(sorted(first.items())), closed_at=(partition, offset), since=since
            )
            changed = kept != given
        else:
            kept, changed = None, not given.empty
    elif expired and after.empty:
        # expired, and nothing new to remember (recording off): delete the old entry
        kept, changed = None, True
    else:
        kept, changed = after, after != given
    return Decision(
        publish=publish,
        segment=record,
        refetch=refetch,
        memory=kept,
        memory_changed=changed,
        lost_earlier=lost,
        matched_now=matched,
        expired=expired,
    )
