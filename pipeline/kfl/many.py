"""``compile_many``: a rule set evaluated per entry with the work rules have in common done once.

Recording runs every rule on every entry, and most rules start with a protocol word. The set reads
``protocol.abbr``/``protocol.name`` once, looks up the rules that can match that protocol (the
lookup is cached per protocol pair), and runs, for a rule such as ``http and X``, only ``X``. Simple
paths used by several rules (``response.status``, ``dst.port``) are read once per entry, and rules
of the form ``path == literal`` on the same path are decided by one dictionary lookup.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pipeline.kfl.compiler import ALWAYS, Compiler, Operand, PathMemo, Pred
from pipeline.kfl.errors import KFLError
from pipeline.kfl.query import Query, compile
from pipeline.kfl.syntax import (
    PROTOCOL_WORDS,
    And,
    Compare,
    Key,
    Literal,
    Method,
    Node,
    Or,
    Path,
    Proto,
    walk,
)
from pipeline.kfl.values import as_number

__all__ = ["RuleSet", "compile_many"]

Requirement = frozenset[tuple[str, str]]
_CACHE_CAP = 4096  # distinct (abbr, name) pairs remembered; dissectors produce a handful


@dataclass
class _Rule:
    index: int
    name: str
    requirement: Requirement | None
    full: Pred
    residual: Pred
    residual_tree: Node  # what is left to test once dispatch has settled the protocol
    guard: tuple[Path, int | str, Pred] | None = None  # `path == literal and rest`, indexable


class RuleSet:
    """Callable: ``rules(entry) -> [names that match]``, in the order the rules were given.

    ``stats`` counts rules run one by one (``evaluated``), decided together by an equality index
    (``indexed``) and skipped by protocol dispatch (``skipped``). Not re-entrant across threads:
    shared path values live in the set for the duration of one call.
    """

    def __init__(self, rules: Mapping[str, str], now_ms: int | None = None) -> None:
        self.queries: dict[str, Query] = {n: _compile_named(n, t, now_ms) for n, t in rules.items()}
        trees = [q.tree for q in self.queries.values()]
        self._memo = PathMemo(_shared_paths(trees))
        self._names = list(self.queries)
        self._rules = [self._rule(i, n, rules[n]) for i, n in enumerate(self._names)]
        self._getters: dict[Path, Operand] = {}
        self._plans: dict[tuple[Any, Any], _Plan] = {}
        self.stats = {"evaluated": 0, "indexed": 0, "skipped": 0}

    def _rule(self, index: int, name: str, text: str) -> _Rule:
        # each partial tree gets its own Compiler: limit()/redact() may be noted once per compiler
        query = self.queries[name]
        req, rest = _requirement(query.tree)
        full = Compiler(text, query.now_ms, self._memo).cond(query.tree)
        residual, residual_tree = full, query.tree
        if rest is not None:
            residual_tree = rest
            residual = Compiler(text, query.now_ms, self._memo).cond(rest)
        guard = None
        split = _guard(residual_tree)
        if split is not None:
            path, const, remainder = split
            compiler = Compiler(text, query.now_ms, self._memo)
            guard = (path, const, compiler.cond(remainder) if remainder is not None else ALWAYS)
        return _Rule(index, name, req, full, residual, residual_tree, guard)

    def __call__(self, entry: Any) -> list[str]:
        self._memo.reset()
        proto = entry.get("protocol") if type(entry) is dict else None
        if type(proto) is dict:
            key = (_str_or_none(proto.get("abbr")), _str_or_none(proto.get("name")))
        else:
            key = (None, None)
        plan = self._plans.get(key)
        if plan is None:
            plan = self._plan(key)
        stats = self.stats
        stats["evaluated"] += len(plan.singles)
        stats["indexed"] += plan.indexed
        stats["skipped"] += plan.skipped
        hits = [i for i, pred in plan.singles if pred(entry)]
        if plan.groups:
            for group in plan.groups:
                group.collect(entry, hits)
            hits.sort()
        names = self._names
        return [names[i] for i in hits]

    def _plan(self, key: tuple[Any, Any]) -> _Plan:
        have = {("abbr", key[0]), ("name", key[1])}
        todo = [r for r in self._rules if r.requirement is None or have & r.requirement]
        by_path: dict[Path, list[_Rule]] = {}
        for rule in todo:
            if rule.guard is not None:
                by_path.setdefault(rule.guard[0], []).append(rule)
        grouped = {r.index for members in by_path.values() if len(members) > 1 for r in members}
        groups = tuple(
            _EqualityIndex(
                self._getter(path), [(r.index, *r.guard[1:]) for r in members if r.guard]
            )
            for path, members in by_path.items()
            if len(members) > 1
        )
        singles = tuple(
            (r.index, r.full if r.requirement is None else r.residual)
            for r in todo
            if r.index not in grouped
        )
        plan = _Plan(singles, groups, len(grouped), len(self._rules) - len(todo))
        if len(self._plans) >= _CACHE_CAP:
            self._plans.clear()
        self._plans[key] = plan
        return plan

    def _getter(self, path: Path) -> Operand:
        if path not in self._getters:
            self._getters[path] = Compiler("", None, self._memo).path(path)
        return self._getters[path]

    @property
    def names(self) -> list[str]:
        return list(self._names)


@dataclass(frozen=True)
class _Plan:
    """What to run for one (protocol.abbr, protocol.name) pair."""

    singles: tuple[tuple[int, Pred], ...]
    groups: tuple[_EqualityIndex, ...]
    indexed: int
    skipped: int


class _EqualityIndex:
    """Rules `path == literal [and rest]` over one path: read the path once, look its value up,
    and run ``rest`` only for the rules whose literal it equals.

    The lookup follows KFL equality exactly: integers also match equal floats and decimal strings,
    strings match strings, a list matches through its elements, and nothing else matches.
    """

    def __init__(self, src: Operand, members: list[tuple[int, int | str, Pred]]) -> None:
        self.many = src.kind == "many"
        self.get = src.get
        self.ints: dict[int, list[int]] = {}
        self.strs: dict[str, list[int]] = {}
        self.rest: dict[int, Pred] = {}
        for index, const, rest in members:
            table: dict[Any, list[int]] = self.ints if type(const) is int else self.strs
            table.setdefault(const, []).append(index)
            if rest is not ALWAYS:
                self.rest[index] = rest

    def collect(self, entry: Any, hits: list[int]) -> None:
        found: set[int] = set()
        if self.many:
            for v in self.get(entry):
                self._lookup(v, found, True)
        else:
            self._lookup(self.get(entry), found, True)
        rest = self.rest
        for i in found:
            if i not in rest or rest[i](entry):
                hits.append(i)

    def _lookup(self, v: Any, found: set[int], expand: bool) -> None:
        t = type(v)
        if t is int:
            found.update(self.ints.get(v, ()))
        elif t is str:
            found.update(self.strs.get(v, ()))
            if self.ints:
                n = as_number(v)
                if n is not None:
                    self._lookup(n, found, False)
        elif t is float:
            if v.is_integer():
                found.update(self.ints.get(int(v), ()))
        elif t is list and expand:
            for x in v:
                self._lookup(x, found, False)


def _guard(tree: Node) -> tuple[Path, int | str, Node | None] | None:
    """Split `path == literal and rest` (or just `path == literal`) for an equality index."""
    eq = _equality(tree)
    if eq is not None:
        return eq[0], eq[1], None
    if isinstance(tree, And):
        for i, item in enumerate(tree.items):
            eq = _equality(item)
            if eq is not None:
                rest = tree.items[:i] + tree.items[i + 1 :]
                return eq[0], eq[1], rest[0] if len(rest) == 1 else And(rest)
    return None


def _equality(node: Node) -> tuple[Path, int | str] | None:
    """`path == literal` that an equality index can decide, or None."""
    if not isinstance(node, Compare) or node.op != "==":
        return None
    path, lit = node.left, node.right
    if isinstance(path, Literal):
        path, lit = lit, path
    if not isinstance(path, Path) or not isinstance(lit, Literal):
        return None
    value = lit.value
    if type(value) is str and as_number(value) is not None:
        return None  # a decimal string also equals numbers; leave it to the general rule
    if type(value) is not int and type(value) is not str:
        return None
    if any(isinstance(s, Method) and s.name != "json" for s in path.steps):
        return None  # a string method makes the path a condition, not a value
    return path, value


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
