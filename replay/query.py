"""A KFL query as the replay side uses it: compiled once, plus its SQL pushdown.

Compiling is cached by text because the dashboard sends the same filter for every page, every
count and every statistics refresh; KFL's ``now()`` is fixed at compile time, so a cached query
keeps one meaning across the pages of one listing (the cache is small and per process).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from pipeline.kfl import KFLError
from pipeline.kfl import compile as kfl_compile
from replay.pushdown import SqlPlan, plan

__all__ = ["KFLError", "Query", "check", "compile_query"]


@dataclass(frozen=True)
class Query:
    """``match(entry)`` never raises; ``plan`` is the SQL the store can run before it."""

    text: str
    match: Callable[[dict[str, Any]], bool]
    limit: int | None
    redact: Callable[[dict[str, Any]], dict[str, Any]]
    plan: SqlPlan
    redacts: bool


@lru_cache(maxsize=256)
def compile_query(text: str) -> Query:
    """Compile ``text`` (raises KFLError with line, column and caret)."""
    q = kfl_compile(text)
    limit = q.limit
    return Query(
        text=text,
        match=q.predicate,
        limit=limit if isinstance(limit, int) and limit > 0 else None,
        redact=q.redact,
        plan=plan(text),
        redacts=bool(q.redactions),
    )


def check(text: str) -> KFLError | None:
    """The compile error of ``text``, or None when it compiles."""
    try:
        compile_query(text)
    except KFLError as exc:
        return exc
    return None
