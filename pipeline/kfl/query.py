"""``compile()``: text to a ``Query``, with a cache so a rule text is compiled once per process."""

from __future__ import annotations

import time
from functools import lru_cache
from typing import Any

from pipeline.kfl.compiler import Compiled, Compiler
from pipeline.kfl.errors import KFLError
from pipeline.kfl.printer import normal_form
from pipeline.kfl.redact import redact
from pipeline.kfl.syntax import Call, Node, Parsed, parse, walk

__all__ = ["Query", "compile", "parse_cached", "uses_clock"]

_TIME_FUNCTIONS = frozenset(
    {"now", "seconds", "minutes", "hours", "days", "weeks", "months", "years"}
)


class Query:
    """A compiled query: call it on an entry for a bool; it never raises on JSON-shaped input."""

    __slots__ = (
        "_redactions",
        "limit",
        "normalized",
        "now_ms",
        "predicate",
        "text",
        "tree",
        "warnings",
    )

    def __init__(self, parsed: Parsed, now_ms: int | None, compiled: Compiled) -> None:
        self.text = parsed.text
        self.now_ms = now_ms  # None when the query does not depend on the time
        self.tree: Node = parsed.tree
        self.predicate = compiled.predicate  # the bare closure, without the method-call overhead
        self.warnings: list[str] = list(parsed.warnings)
        self.limit = compiled.limit
        self.normalized = normal_form(parsed.tree)
        self._redactions = tuple(compiled.redactions)

    def __call__(self, entry: Any) -> bool:
        return self.predicate(entry)

    def redact(self, entry: Any) -> Any:
        """A copy of ``entry`` with every ``redact()`` path replaced by ``"[REDACTED]"``."""
        return redact(entry, list(self._redactions))

    @property
    def redactions(self) -> list[str]:
        from pipeline.kfl.printer import path_text

        return [path_text(p) for p in self._redactions]

    def __str__(self) -> str:
        return self.normalized

    def __repr__(self) -> str:
        return f"<kfl.Query {self.normalized!r}>"


@lru_cache(maxsize=1024)
def parse_cached(text: str) -> Parsed:
    return parse(text)


def compile(query: str, now_ms: int | None = None) -> Query:
    """Compile once, evaluate many times; raises ``KFLError`` for anything wrong.

    ``now_ms`` fixes ``now()`` and the relative-time functions; the clock is read here, at compile
    time, only when the query uses them and no ``now_ms`` is given, never during evaluation.
    """
    if not isinstance(query, str):
        raise KFLError(f"a query is text, not {type(query).__name__}")
    parsed = parse_cached(query)
    if not uses_clock(parsed.tree):
        return _compiled(query, None)
    if now_ms is None:
        now_ms = time.time_ns() // 1_000_000
    return _compiled(query, now_ms)


@lru_cache(maxsize=1024)
def _compiled(query: str, now_ms: int | None) -> Query:
    parsed = parse_cached(query)
    return _bind(parsed, now_ms, Compiler(query, now_ms).run(parsed.tree))


def _bind(parsed: Parsed, now_ms: int | None, compiled: Compiled) -> Query:
    """A ``Query`` whose class has the closure itself as ``__call__``.

    A Python ``__call__`` method adds a frame per evaluation (about 60 ns, a third of a simple
    rule); a static ``__call__`` on a one-off subclass costs a C-level lookup instead. The compile
    cache bounds how many such classes exist.
    """
    body = {"__slots__": (), "__call__": staticmethod(compiled.predicate)}
    cls = type("Query", (Query,), body)
    query: Query = cls(parsed, now_ms, compiled)
    return query


def uses_clock(tree: Node) -> bool:
    """Whether the result depends on ``now``, which decides whether the cache may share it."""
    return any(isinstance(n, Call) and n.name in _TIME_FUNCTIONS for n in walk(tree))
