"""Turn the easy parts of a KFL query into SQL, so SQLite's indexes do most of the filtering.

The compiled KFL predicate stays the judge of every entry: the SQL made here is only ever a
*necessary* condition (it keeps every entry the query can match). When every top-level conjunct
of the query was translated exactly, the plan says so and the store can skip the Python
predicate (and count with ``COUNT(*)``), which is what keeps a full count over a million entries
cheap for the common dashboard filters (``http and response.status >= 500``, a time range, an
endpoint).

Only a flat ``a and b and c`` is taken apart; any top-level ``or``, a comment or a construct not
listed below leaves that conjunct to Python. This is text-level on purpose: the KFL package's
API is ``compile(text)`` and nothing more, and the few shapes recognised here are unambiguous
in the grammar (``docs/kfl.md``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

__all__ = ["SqlPlan", "plan"]

#: protocol word -> (column, value): SPEC section 5.
_WORDS: dict[str, tuple[str, str]] = {
    "http": ("abbr", "HTTP"),
    "http2": ("abbr", "HTTP/2"),
    "grpc": ("abbr", "gRPC"),
    "gql": ("abbr", "GQL"),
    "dns": ("abbr", "DNS"),
    "tls": ("abbr", "TLS"),
    "amqp": ("proto", "amqp"),
    "kafka": ("proto", "kafka"),
    "redis": ("proto", "redis"),
    "tcp": ("proto", "tcp"),
    "udp": ("proto", "udp"),
}

#: KFL path -> (column, kind) for comparisons with a literal.
_FIELDS: dict[str, tuple[str, str]] = {
    "timestamp": ("ts", "int"),
    "elapsedTime": ("elapsed", "int"),
    "response.status": ("status", "int"),
    "response.rcode": ("rcode", "int"),
    "src.port": ("src_port", "int"),
    "dst.port": ("dst_port", "int"),
    "src.ip": ("src_ip", "str"),
    "dst.ip": ("dst_ip", "str"),
    "src.name": ("src_name", "str"),
    "dst.name": ("dst_name", "str"),
    "protocol.name": ("proto", "str"),
    "protocol.abbr": ("abbr", "str"),
    "request.method": ("method", "str"),
    "stream": ("stream_id", "str"),
}

_PATH = r"[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)?"
_LIT = r"-?\d+|\"[^\"\\]*\"|'[^'\\]*'"
_CMP = re.compile(rf"^({_PATH})\s*(==|!=|<=|>=|<|>)\s*({_LIT})$")
_ALWAYS_TRUE = re.compile(
    r"^(?:limit\(\s*\d+\s*\)|redact\((?:\s*(?:\"[^\"\\]*\"|'[^'\\]*')\s*,?)*\))$"
)
_WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


@dataclass(frozen=True)
class SqlPlan:
    """``where`` (with ``params``) keeps a superset of the matches; ``exact`` means no more."""

    where: str = ""
    params: tuple[object, ...] = ()
    exact: bool = False
    conjuncts: tuple[str, ...] = field(default=())
    #: ``column == value`` conditions among them (what manifest pruning can test)
    equals: tuple[tuple[str, object], ...] = ()


def _split_and(text: str) -> list[str] | None:
    """Top-level conjuncts, or None when the query has a top-level ``or`` or a comment."""
    parts: list[str] = []
    depth = 0
    start = 0
    i = 0
    n = len(text)
    while i < n:
        c = text[i]
        if c in "\"'":
            j = i + 1
            while j < n and text[j] != c:
                j += 2 if text[j] == "\\" else 1
            i = j + 1
            continue
        if c == "/" and i + 1 < n and text[i + 1] in "/*":
            return None
        if c in "([":
            depth += 1
        elif c in ")]":
            depth -= 1
        elif depth == 0:
            if text.startswith("||", i):
                return None
            if text.startswith("&&", i):
                parts.append(text[start:i])
                i += 2
                start = i
                continue
            if c.isalpha() or c == "_":
                m = _WORD.match(text, i)
                assert m is not None
                word = m.group(0)
                prev = text[i - 1] if i else " "
                if prev == "." or prev.isalnum() or prev == "_":
                    i = m.end()
                    continue
                if word == "or":
                    return None
                if word == "and":
                    parts.append(text[start:i])
                    start = m.end()
                i = m.end()
                continue
        i += 1
    parts.append(text[start:])
    parts = [p.strip() for p in parts]
    if any(not p for p in parts):
        return None  # a syntax error; KFL will say where
    return parts


def _conjunct(text: str) -> tuple[str, tuple[object, ...]] | None:
    if text in _WORDS:
        word_column, word_value = _WORDS[text]
        return f"{word_column} = ?", (word_value,)

    if _ALWAYS_TRUE.match(text):
        return "", ()
    m = _CMP.match(text)
    if not m or m.group(1) not in _FIELDS:
        return None
    column, kind = _FIELDS[m.group(1)]
    op, lit = m.group(2), m.group(3)
    value: object
    if lit[0] in "\"'":
        value = lit[1:-1]
        if kind == "int":
            if not re.fullmatch(r"-?\d+", str(value)):
                return None
            value = int(str(value))
    else:
        if kind == "str":
            return None  # a number against a text column: leave the rules to KFL
        value = int(lit)
    if kind == "str" and op != "==" and op != "!=":
        return None
    if op == "!=":
        # KFL: missing != x is false, so NULL columns must not match either.
        return f"({column} IS NOT NULL AND {column} != ?)", (value,)
    return f"{column} {'=' if op == '==' else op} ?", (value,)


def plan(text: str) -> SqlPlan:
    """The SQL pushdown for a KFL query (which must already have compiled)."""
    if not text.strip():
        return SqlPlan(exact=True)
    parts = _split_and(text)
    if parts is None:
        return SqlPlan()
    clauses: list[str] = []
    params: list[object] = []
    equals: list[tuple[str, object]] = []
    exact = True
    for part in parts:
        got = _conjunct(part)
        if got is None:
            exact = False
            continue
        clause, values = got
        if clause:
            clauses.append(clause)
            params.extend(values)
            if clause.endswith(" = ?"):
                equals.append((clause.split(" ", 1)[0], values[0]))
    return SqlPlan(" AND ".join(clauses), tuple(params), exact, tuple(parts), tuple(equals))
