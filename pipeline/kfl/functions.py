"""The one table of KFL functions and methods.

The compiler checks names, arity and argument kinds against it, error messages quote its
signatures, and ``docs/kfl.md`` embeds ``markdown_table()`` (a test keeps them in step), so adding a
function is one entry here rather than edits in four places.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import Enum
from typing import Any

from pipeline.kfl.values import parse_json

__all__ = ["FUNCTIONS", "METHODS", "Arg", "Signature", "markdown_table", "parse_datetime"]


class Arg(Enum):
    """What an argument may be; checked at compile time against the literal or path given."""

    NUMBER = "number literal"
    COUNT = "positive integer literal"
    DATETIME = "date/time string"
    PATH_TEXT = "path string"
    TEXT = "string, number or path"
    PATTERN = "regex or string literal"

    @property
    def placeholder(self) -> str:
        return _PLACEHOLDERS[self]


_PLACEHOLDERS = {
    Arg.NUMBER: "n",
    Arg.COUNT: "n",
    Arg.DATETIME: "text",
    Arg.PATH_TEXT: "path",
    Arg.TEXT: "s",
    Arg.PATTERN: "pattern",
}


class Returns(Enum):
    NUMBER = "number"
    TRUE = "true"
    CONDITION = "true/false"
    VALUE = "value (the path continues)"


@dataclass(frozen=True)
class Signature:
    name: str
    params: tuple[Arg, ...]
    returns: Returns
    summary: str
    example: str
    impl: Callable[..., Any]
    variadic: bool = False  # the last parameter repeats (at least once)

    def shape(self, method: bool) -> str:
        parts = [p.placeholder for p in self.params]
        if self.variadic:
            parts.append("...")
        return f"{'.' if method else ''}{self.name}({', '.join(parts)})"

    def arity_ok(self, n: int) -> bool:
        return n >= len(self.params) if self.variadic else n == len(self.params)


_UNIT_MS = {
    "seconds": 1_000,
    "minutes": 60_000,
    "hours": 3_600_000,
    "days": 86_400_000,
    "weeks": 7 * 86_400_000,
    "months": 30 * 86_400_000,
    "years": 365 * 86_400_000,
}

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_KUBESHARK_LAYOUTS = ("%m/%d/%Y, %I:%M:%S %p", "%m/%d/%Y, %I:%M:%S.%f %p")


def parse_datetime(text: str) -> int | None:
    """Unix ms of ISO-8601 or Kubeshark's ``1/2/2006, 3:04:05[.000] PM`` layout; UTC if naive."""
    stamp: datetime | None = None
    try:
        stamp = datetime.fromisoformat(text.strip())
    except ValueError:
        for layout in _KUBESHARK_LAYOUTS:
            try:
                stamp = datetime.strptime(text.strip(), layout)
                break
            except ValueError:
                continue
    if stamp is None:
        return None
    if stamp.tzinfo is None:
        stamp = stamp.replace(tzinfo=UTC)
    return (stamp - _EPOCH) // timedelta(milliseconds=1)


def _relative(unit: str) -> Callable[[int, float], int | float]:
    ms = _UNIT_MS[unit]

    def at(now_ms: int, n: float) -> int | float:
        value = now_ms + n * ms
        return int(value) if isinstance(value, float) and value.is_integer() else value

    return at


def _matches(text: str, rx: re.Pattern[str]) -> bool:
    return rx.search(text) is not None


def _always(*_: Any) -> bool:
    return True


FUNCTIONS: dict[str, Signature] = {
    "now": Signature(
        "now",
        (),
        Returns.NUMBER,
        "the time the query was compiled, unix milliseconds",
        "timestamp <= now()",
        lambda now_ms: now_ms,
    ),
    **{
        unit: Signature(
            unit,
            (Arg.NUMBER,),
            Returns.NUMBER,
            f"now plus n {unit}{' (30 days)' if unit == 'months' else ''}"
            f"{' (365 days)' if unit == 'years' else ''}, unix milliseconds",
            f"timestamp >= {unit}(-5)",
            _relative(unit),
        )
        for unit in _UNIT_MS
    },
    "datetime": Signature(
        "datetime",
        (Arg.DATETIME,),
        Returns.NUMBER,
        "unix milliseconds of an ISO-8601 text or Kubeshark's `11/27/2026, 10:00:00 AM` "
        "(UTC unless the text has an offset)",
        'timestamp > datetime("2026-11-27T10:00:00Z")',
        lambda now_ms, ms: ms,
    ),
    "limit": Signature(
        "limit",
        (Arg.COUNT,),
        Returns.TRUE,
        "always true; the consumer stops after n matches (`q.limit`)",
        "http and response.status >= 500 and limit(100)",
        _always,
    ),
    "redact": Signature(
        "redact",
        (Arg.PATH_TEXT,),
        Returns.TRUE,
        'always true; the consumer replaces the values at these paths with "[REDACTED]"',
        'http and redact("request.headers.Authorization", "..password")',
        _always,
        variadic=True,
    ),
}

METHODS: dict[str, Signature] = {
    "startsWith": Signature(
        "startsWith",
        (Arg.TEXT,),
        Returns.CONDITION,
        "the text of the value starts with the argument",
        'request.path.startsWith("/api")',
        str.startswith,
    ),
    "endsWith": Signature(
        "endsWith",
        (Arg.TEXT,),
        Returns.CONDITION,
        "the text of the value ends with the argument",
        'dst.name.endsWith(".payments")',
        str.endswith,
    ),
    "contains": Signature(
        "contains",
        (Arg.TEXT,),
        Returns.CONDITION,
        "the text of the value contains the argument",
        'request.url.contains("token=")',
        str.__contains__,
    ),
    "matches": Signature(
        "matches",
        (Arg.PATTERN,),
        Returns.CONDITION,
        "regex search (unanchored) with the pattern",
        'request.path.matches("^/api/v[0-9]+/")',
        _matches,
    ),
    "json": Signature(
        "json",
        (),
        Returns.VALUE,
        "parse the string (or base64 of it) as JSON; unparseable gives missing",
        "response.content.text.json().user.id == 7",
        parse_json,
    ),
}


def markdown_table() -> str:
    """The functions-and-methods table of ``docs/kfl.md``, generated so docs cannot drift."""
    rows = ["| call | arguments | gives | meaning | example |", "|---|---|---|---|---|"]
    for method, table in ((False, FUNCTIONS), (True, METHODS)):
        for sig in table.values():
            kinds = "; ".join(f"{p.placeholder}: {p.value}" for p in sig.params) or "none"
            rows.append(
                f"| `{sig.shape(method)}` | {kinds} | {sig.returns.value} | {sig.summary} | "
                f"`{sig.example}` |"
            )
    return "\n".join(rows)
