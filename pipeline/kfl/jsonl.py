"""Filtering a JSON-lines stream of entries, the core of ``streamtap kfl eval``.

Kept out of the CLI so the rule (skip and count malformed lines, honour ``limit`` and ``redact``)
is tested as a function and the command stays a thin shell.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import orjson

from pipeline.kfl.query import Query

__all__ = ["Match", "Skipped", "Summary", "filter_lines"]


@dataclass(frozen=True)
class Match:
    line: int
    json: bytes  # the entry (redacted when the query says so), serialised


@dataclass(frozen=True)
class Skipped:
    line: int
    reason: str


@dataclass
class Summary:
    read: int = 0
    matched: int = 0
    malformed: int = 0
    stopped_by_limit: bool = False


def filter_lines(
    query: Query, lines: Iterable[str | bytes], summary: Summary
) -> Iterator[Match | Skipped]:
    """Yield a ``Match`` per matching entry and a ``Skipped`` per unreadable line."""
    redacts = bool(query.redactions)
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            entry = orjson.loads(line)
        except orjson.JSONDecodeError as exc:
            summary.malformed += 1
            yield Skipped(number, f"not JSON: {exc}")
            continue
        summary.read += 1
        if not query(entry):
            continue
        summary.matched += 1
        yield Match(number, orjson.dumps(query.redact(entry) if redacts else entry))
        if query.limit is not None and summary.matched >= query.limit:
            summary.stopped_by_limit = True
            return
