"""Hypothesis strategies: grammar-shaped queries, random JSON and mutated sample entries."""

from __future__ import annotations

import copy
import json
from typing import Any

from hypothesis import strategies as st

from tests.unit.kfl.conftest import load_entries

ENTRIES = load_entries()

ROOTS = ["request", "response", "src", "dst", "protocol", "timestamp", "x", "AND", "_k9", "dns"]
KEYS = ["status", "headers", "path", "method", "port", "ip", "name", "abbr", "text", "content"]
STEPS = st.one_of(
    st.sampled_from(KEYS).map(lambda k: "." + k),
    st.sampled_from(["[*]", ".*", "[0]", "[-1]", "[2]", "..id", "..name", ".json()"]),
    st.sampled_from(["Content-Type", "user-agent", "x y", ":path", 'q"'])
    .map(json.dumps)
    .map(lambda s: f"[{s}]"),
)
PATHS = st.builds(lambda r, s: r + "".join(s), st.sampled_from(ROOTS), st.lists(STEPS, max_size=4))


def _quoted(text: str, single: bool) -> str:
    body = json.dumps(text)[1:-1]
    if single:
        return "'" + body.replace('\\"', '"').replace("'", "\\'") + "'"
    return '"' + body + '"'


STRINGS = st.builds(_quoted, st.text(max_size=6), st.booleans())
NUMBERS = st.one_of(
    st.integers(-(10**6), 10**6).map(str),
    st.floats(-1e6, 1e6, allow_nan=False).map(repr),
    st.sampled_from(["1e3", "3.14", "-7", "0", "500", "80"]),
)
REGEXES = st.sampled_from(['r"^5"', 'r"4.*"', 'r"(?i)curl"', 'r"a\\"b"', 'r"\\d+$"', 'r"x\\\\"'])
WORDS = st.sampled_from(["http", "http2", "grpc", "dns", "tcp", "udp", "tls", "kafka", "redis"])
CALLS = st.sampled_from(
    [
        "now()",
        "minutes(-5)",
        "years(10)",
        "hours(1.5)",
        'datetime("2026-11-27T10:00:00Z")',
        'datetime("11/27/2026, 9:59:59 AM")',
        "limit(3)",
        'redact("request.headers.authorization")',
        'redact("..session", "x[*]")',
        "foo(1)",
        "limit(0)",
        "now(1)",
    ]
)
METHODS = st.builds(
    lambda p, m: p + m,
    PATHS,
    st.sampled_from(
        [
            '.startsWith("/a")',
            ".contains(src.ip)",
            '.matches("^a")',
            ".endsWith(1)",
            '.matches(r"x$")',
            ".shout()",
            ".contains()",
        ]
    ),
)
OPERANDS = st.one_of(PATHS, STRINGS, NUMBERS, REGEXES, WORDS, CALLS, METHODS) | st.sampled_from(
    ["true", "false", "nil", "null", "-x.y"]
)
OPS = st.sampled_from(["==", "!=", "<", "<=", ">", ">="])
COMPARISONS = OPERANDS | st.builds(lambda a, o, b: f"{a} {o} {b}", OPERANDS, OPS, OPERANDS)
JOINERS = st.sampled_from([" and ", " or ", " && ", " || ", " /* c */ and\n"])


def _extend(sub: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    return st.one_of(
        st.builds(lambda a, j, b: a + j + b, sub, JOINERS, sub),
        sub.map(lambda a: f"not {a}"),
        sub.map(lambda a: f"!{a}"),
        sub.map(lambda a: f"({a})"),
    )


QUERIES = st.recursive(COMPARISONS, _extend, max_leaves=8)
NOISY_QUERIES = st.builds(
    lambda q, junk, at: q[:at] + junk + q[at:],
    QUERIES,
    st.sampled_from(["", "", "", "(", ")", "==", ",", "'", "]", "..", "r"]),
    st.integers(0, 60),
)

SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(),
    st.text(max_size=8),
    st.sampled_from(["80", "500", "-1.5e3", "HTTP", "DNS", "tcp", "eyJhIjogMX0=", '{"id": 7}']),
)
JSON = st.recursive(
    SCALARS,
    lambda sub: st.lists(sub, max_size=4) | st.dictionaries(st.sampled_from(ROOTS + KEYS), sub),
    max_leaves=20,
)
PROTOCOLS = st.fixed_dictionaries(
    {
        "abbr": st.sampled_from(["HTTP", "DNS", "gRPC", "TCP", "UDP", "HTTP/2"]) | JSON,
        "name": st.sampled_from(["http", "dns", "tcp", "udp", "redis"]) | JSON,
    }
)
SHAPED = st.builds(
    lambda p, rest: {**rest, "protocol": p},
    PROTOCOLS,
    st.dictionaries(st.sampled_from(ROOTS + KEYS), JSON, max_size=6),
)


def _positions(doc: Any, trail: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    found = [trail]
    if isinstance(doc, dict):
        for k, v in doc.items():
            found.extend(_positions(v, (*trail, k)))
    elif isinstance(doc, list):
        for i, v in enumerate(doc):
            found.extend(_positions(v, (*trail, i)))
    return found


@st.composite
def mutated_entries(draw: st.DrawFn) -> Any:
    """A sample entry with a few values replaced by random JSON or removed."""
    entry = copy.deepcopy(ENTRIES[draw(st.sampled_from(sorted(ENTRIES)))])
    for _ in range(draw(st.integers(1, 4))):
        spots = [p for p in _positions(entry) if p]
        if not spots:
            break
        where = draw(st.sampled_from(spots))
        parent = entry
        for k in where[:-1]:
            parent = parent[k]
        if isinstance(parent, dict) and draw(st.booleans()):
            del parent[where[-1]]
        else:
            parent[where[-1]] = draw(JSON)
    return entry


ANY_ENTRY = st.one_of(JSON, SHAPED, mutated_entries(), st.sampled_from(list(ENTRIES.values())))
