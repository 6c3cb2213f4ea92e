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
    "request.path": ("path", "str"),
    "request.questions[0].name": ("qname", "str"),
    "stream": ("stream_id", "str"),
}

_PATH = r"[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*|\[0\])*"
_LIT = r"-?\d+|\"[^\"\\]*\"|'[^'\\]*'"
_CMP = re.compile(rf"^({_PATH})\s*(==|!=|<=|>=|<|>)\s*({_LIT})$")
_ALWAYS_TRUE = re.compile(
    r"^(?:limit\(\s*\d+\s*\)|redact\((?:\s*(?:\"[^\"\\]*\"|'[^'\\]*')\s*,?)*\))$"
)
_WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_METHOD = re.compile(
    rf"^({_PATH})\.(startsWith|endsWith|contains)\(\s*(\"[^\"\\]*\"|'[^'\\]*')\s*\)$"
)
#: how deep parenthesised groups are taken apart (deeper ones are left to Python)
_MAX_DEPTH = 8


@dataclass(frozen=True)
class SqlPlan:
    """``where`` (with ``params``) keeps a superset of the matches; ``exact`` means no more."""

    where: str = ""
    params: tuple[object, ...] = ()
    exact: bool = False
    conjuncts: tuple[str, ...] = field(default=())
    #: ``column == value`` conditions among them (what manifest pruning can test)
    equals: tuple[tuple[str, object], ...] = ()


def _split_top(text: str, word: str, symbol: str) -> list[str] | None:
    """``text`` split on ``word``/``symbol`` at parenthesis depth 0 (outside strings), or None
    when it has a comment or an empty part (a syntax error; KFL will say where)."""
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
            if text.startswith(symbol, i):
                parts.append(text[start:i])
                i += 2
                start = i
                continue
            if c.isalpha() or c == "_":
                m = _WORD.match(text, i)
                assert m is not None
                prev = text[i - 1] if i else " "
                if m.group(0) == word and not (prev == "." or prev.isalnum() or prev == "_"):
                    parts.append(text[start:i])
                    start = m.end()
                i = m.end()
                continue
        i += 1
    parts.append(text[start:])
    parts = [p.strip() for p in parts]
    if any(not p for p in parts):
        return None
    return parts


def _method(text: str) -> tuple[str, tuple[object, ...]] | None:
    """``path.startsWith/endsWith/contains("literal")`` on a text column, exactly.

    Case-sensitive on purpose (``substr``/``instr``, not ``LIKE``, which folds ASCII case), and
    a missing field is false, as in KFL. The literal has no escapes (``_LIT`` refuses them), so
    its text is its value.
    """
    m = _METHOD.match(text)
    if not m or m.group(1) not in _FIELDS:
        return None
    column, kind = _FIELDS[m.group(1)]
    if kind != "str":
        return None  # KFL runs these on the text of a number; leave that to it
    method, value = m.group(2), m.group(3)[1:-1]
    if method == "startsWith":
        return f"({column} IS NOT NULL AND substr({column}, 1, ?) = ?)", (len(value), value)
    if method == "endsWith":
        if not value:
            return f"{column} IS NOT NULL", ()
        return f"({column} IS NOT NULL AND substr({column}, ?) = ?)", (-len(value), value)
    return f"instr({column}, ?) > 0", (value,)


def _conjunct(text: str) -> tuple[str, tuple[object, ...]] | None:
    if text in _WORDS:
        word_column, word_value = _WORDS[text]
        return f"{word_column} = ?", (word_value,)

    if _ALWAYS_TRUE.match(text):
        return "", ()
    m = _CMP.match(text)
    if not m:
        return _method(text)
    if m.group(1) not in _FIELDS:
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


def _group(text: str) -> str | None:
    """The inside of ``( ... )`` when one pair of parentheses wraps the whole text."""
    if not (text.startswith("(") and text.endswith(")")):
        return None
    depth = 0
    quote = ""
    i = 0
    while i < len(text):
        c = text[i]
        if quote:
            if c == "\\":
                i += 1
            elif c == quote:
                quote = ""
        elif c in "\"'":
            quote = c
        elif c in "([":
            depth += 1
        elif c in ")]":
            depth -= 1
            if depth == 0 and i != len(text) - 1:
                return None  # "(a) and (b)": the first group closes early
        i += 1
    return text[1:-1].strip() if depth == 0 and not quote else None


def _translate(text: str, depth: int = 0) -> SqlPlan:
    """Disjunctive form, one level of nesting per parenthesised group: ``a and b or c`` is
    ``(a and b) or c`` in KFL (and binds tighter), which is the order the splits go in."""
    disjuncts = _split_top(text, "or", "||")
    if disjuncts is None or depth > _MAX_DEPTH:
        return SqlPlan()
    if len(disjuncts) > 1:
        subs = [_translate(d, depth + 1) for d in disjuncts]
        if any(not s.where for s in subs):
            # one side can match anything the SQL could say, so nothing can be pushed
            return SqlPlan()
        where = " OR ".join(f"({s.where})" for s in subs)
        values = tuple(p for s in subs for p in s.params)
        return SqlPlan(f"({where})", values, all(s.exact for s in subs))
    conjuncts = _split_top(text, "and", "&&")
    if conjuncts is None:
        return SqlPlan()
    clauses: list[str] = []
    params: list[object] = []
    equals: list[tuple[str, object]] = []
    exact = True
    for part in conjuncts:
        inner = _group(part)
        if inner is not None:
            sub = _translate(inner, depth + 1)
            exact = exact and sub.exact
            if sub.where:
                clauses.append(sub.where)
                params.extend(sub.params)
            equals.extend(sub.equals)
            continue
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
    return SqlPlan(" AND ".join(clauses), tuple(params), exact, tuple(conjuncts), tuple(equals))


def plan(text: str) -> SqlPlan:
    """The SQL pushdown for a KFL query (which must already have compiled)."""
    if not text.strip():
        return SqlPlan(exact=True)
    return _translate(text.strip())
