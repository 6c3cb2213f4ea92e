"""``compile_many``: a rule set evaluated per entry with the work rules have in common done once.

Recording runs every rule on every entry, and most rules start with a protocol word. The set reads
``protocol.abbr``/``protocol.name`` once, looks up the rules that can match that protocol (the
lookup is cached per protocol pair), and runs, for a rule such as ``http and X``, only ``X``. Simple
paths used by several rules (``response.status``, ``dst.port``) are read once per entry.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pipeline.kfl.compiler import Compiler, PathMemo, Pred
from pipeline.kfl.errors import KFLError
from pipeline.kfl.query import Query, compile
from pipeline.kfl.syntax import PROTOCOL_WORDS, And, Key, Method, Node, Or, Path, Proto, walk

__all__ = ["RuleSet", "compile_many"]

Requirement = frozenset[tuple[str, str]]
_CACHE_CAP = 4096  # distinct (abbr, name) pairs remembered; dissectors produce a handful


class RuleSet:
    """Callable: ``rules(entry) -> [names that match]``, in the order the rules were given.

    ``stats`` counts rule evaluations run and skipped by protocol dispatch. Not re-entrant across
    threads (shared path values live in the set for the duration of one call).
    """

    def __init__(self, rules: Mapping[str, str], now_ms: int | None = None) -> None:
        self.queries: dict[str, Query] = {n: _compile_named(n, t, now_ms) for n, t in rules.items()}
        trees = {n: q.tree for n, q in self.queries.items()}
        now = {n: self.queries[n].now_ms for n in trees}
        self._memo = PathMemo(_shared_paths(list(trees.values())))
        self._rules: list[tuple[str, Requirement | None, Pred, Pred]] = []
        for name, tree in trees.items():
            req, rest = _requirement(tree)
            full = Compiler(rules[name], now[name], self._memo).cond(tree)
            residual = full
            if rest is not None:  # its own compiler: limit()/redact() may occur in both trees
                residual = Compiler(rules[name], now[name], self._memo).cond(rest)
            self._rules.append((name, req, full, residual))
        self._free = tuple((n, full) for n, req, full, _ in self._rules if req is None)
        self._cache: dict[tuple[Any, Any], tuple[tuple[str, Pred], ...]] = {}
        self.stats = {"evaluated": 0, "skipped": 0}

    def __call__(self, entry: Any) -> list[str]:
        self._memo.reset()
        proto = entry.get("protocol") if type(entry) is dict else None
        if type(proto) is dict:
            key = (_str_or_none(proto.get("abbr")), _str_or_none(proto.get("name")))
        else:
            key = (None, None)
        todo = self._cache.get(key)
        if todo is None:
            todo = self._candidates(key)
        stats = self.stats
        stats["evaluated"] += len(todo)
        stats["skipped"] += len(self._rules) - len(todo)
        return [name for name, pred in todo if pred(entry)]

    def _candidates(self, key: tuple[Any, Any]) -> tuple[tuple[str, Pred], ...]:
        have = {("abbr", key[0]), ("name", key[1])}
        todo: list[tuple[str, Pred]] = []
        for name, req, full, residual in self._rules:
            if req is None:
                todo.append((name, full))
            elif have & req:
                todo.append((name, residual))
        if len(self._cache) >= _CACHE_CAP:
            self._cache.clear()
        self._cache[key] = result = tuple(todo)
        return result

    @property
    def names(self) -> list[str]:
        return [r[0] for r in self._rules]


def compile_many(rules: Mapping[str, str], now_ms: int | None = None) -> RuleSet:
    """Compile a named rule set; a ``KFLError`` names the rule it came from."""
    return RuleSet(rules, now_ms)


def _compile_named(name: str, text: str, now_ms: int | None) -> Query:
    try:
        return compile(text, now_ms=now_ms)
    except KFLError as exc:
        raise KFLError(f"rule {name!r}: {exc.message}", exc.query, exc.line, exc.column) from None


def _str_or_none(v: Any) -> str | None:
    return v if type(v) is str else None


def _requirement(node: Node) -> tuple[Requirement | None, Node | None]:
    """Protocols an entry must have for ``node`` to be true, and what is left to test then.

    The second item is set only when the requirement is a single protocol word conjunct, which
    dispatch makes redundant.
    """
    if isinstance(node, Proto):
        return frozenset({PROTOCOL_WORDS[node.word]}), _TRUE
    if isinstance(node, Or):
        alternatives = [_requirement(i)[0] for i in node.items]
        if any(r is None for r in alternatives):
            return None, None
        return frozenset().union(*[r for r in alternatives if r is not None]), None
    if isinstance(node, And):
        return _conjunction(node)
    return None, None


def _conjunction(node: And) -> tuple[Requirement | None, Node | None]:
    for i, item in enumerate(node.items):
        if isinstance(item, Proto):
            rest = node.items[:i] + node.items[i + 1 :]
            return frozenset({PROTOCOL_WORDS[item.word]}), And(rest) if len(rest) > 1 else rest[0]
    needs: list[Requirement] = []
    for item in node.items:
        req = _requirement(item)[0]
        if req is not None:
            needs.append(req)
    return (min(needs, key=len), None) if needs else (None, None)


_TRUE = And(())


def _shared_paths(trees: list[Node]) -> frozenset[tuple[str, ...]]:
    """Plain dotted paths that appear in at least two rules."""
    seen: dict[tuple[str, ...], int] = {}
    for tree in trees:
        keys = {k for node in walk(tree) if isinstance(node, Path) for k in _key_prefixes(node)}
        for k in keys:
            seen[k] = seen.get(k, 0) + 1
    return frozenset(k for k, n in seen.items() if n > 1)


def _key_prefixes(path: Path) -> list[tuple[str, ...]]:
    names: list[str] = []
    for step in path.steps:
        if isinstance(step, Method):
            break
        if not isinstance(step, Key) or names[-1:] == ["headers"]:
            return []
        names.append(step.name)
    return [tuple(names)]
