"""Syntax tree to plain closures, once per query; evaluation never looks at the tree again.

Closures are specialised at compile time for the shapes recording rules are made of: a protocol
word is one dict-lookup chain, a dotted path without fan-out is nested ``dict.get`` calls, and a
comparison against a literal tests the common type first and only falls back to the general rules
in ``values`` for the rare ones. Constant parts (``limit()``, ``true``, ``datetime(...)``) are
folded away, so ``http and limit(10)`` costs what ``http`` costs.
"""

from __future__ import annotations

import operator
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from pipeline.kfl import values as V
from pipeline.kfl.errors import KFLError
from pipeline.kfl.functions import FUNCTIONS, METHODS, Arg, Returns, Signature, parse_datetime
from pipeline.kfl.syntax import (
    PROTOCOL_WORDS,
    And,
    Call,
    Compare,
    Deep,
    Empty,
    Index,
    Key,
    Literal,
    Method,
    Neg,
    Node,
    Not,
    Or,
    Path,
    Pos,
    Proto,
    Regex,
    Step,
    Wild,
    parse_path,
)
from pipeline.kfl.values import MISSING

__all__ = ["ALWAYS", "NEVER", "Compiled", "Compiler", "PathMemo", "Pred"]

Pred = Callable[[Any], bool]
Getter = Callable[[Any], Any]


def ALWAYS(entry: Any) -> bool:  # a constant predicate, compared by identity
    return True


def NEVER(entry: Any) -> bool:
    return False


_FLIP = {"==": "==", "!=": "!=", "<": ">", "<=": ">=", ">": "<", ">=": "<="}
_OPS: dict[str, Callable[[Any, Any], bool]] = {
    "==": operator.eq,
    "!=": operator.ne,
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
}


@dataclass(frozen=True)
class Operand:
    """A compiled value source: a constant, one value (or MISSING), or a list of values."""

    kind: str  # "const" | "one" | "many"
    value: Any = None
    get: Getter = NEVER
    keys: tuple[str, ...] | None = None  # set for plain dotted paths, so comparisons can fuse


@dataclass
class Compiled:
    predicate: Pred
    limit: int | None = None
    redactions: list[Path] = field(default_factory=list)


class PathMemo:
    """Per-entry cache of simple paths shared by several rules of one ``compile_many`` set.

    Slots are reset before each entry, so a rule set is not re-entrant across threads; one set per
    worker thread (or asyncio loop) is the intended use.
    """

    def __init__(self, shared: frozenset[tuple[str, ...]]) -> None:
        self.shared = shared
        self.index: dict[tuple[str, ...], int] = {}
        self.slots: list[Any] = []

    def wrap(self, keys: tuple[str, ...], raw: Getter) -> Getter:
        if keys not in self.shared:
            return raw
        if keys not in self.index:
            self.index[keys] = len(self.index)
            self.slots.append(_UNSET)
        i, slots = self.index[keys], self.slots

        def memo(e: Any) -> Any:
            v = slots[i]
            if v is _UNSET:
                v = slots[i] = raw(e)
            return v

        return memo

    def reset(self) -> None:
        self.slots[:] = [_UNSET] * len(self.slots)


_UNSET = object()


class Compiler:
    """One compilation: collects ``limit``/``redact`` while turning the tree into closures."""

    def __init__(self, query: str, now_ms: int | None, memo: PathMemo | None = None) -> None:
        self.query = query
        self.now_ms = now_ms if now_ms is not None else 0
        self.memo = memo
        self.limit: int | None = None
        self.redactions: list[Path] = []

    def fail(self, message: str, pos: Pos) -> KFLError:
        return KFLError(message, self.query, pos.line, pos.column)

    def run(self, tree: Node) -> Compiled:
        return Compiled(self.cond(tree), self.limit, self.redactions)

    # conditions ---------------------------------------------------------------------------

    def cond(self, node: Node) -> Pred:
        if isinstance(node, Empty):
            return ALWAYS
        if isinstance(node, Or):
            return any_of([self.cond(i) for i in node.items])
        if isinstance(node, And):
            return self.conjunction(node)
        if isinstance(node, Not):
            return negate(self.cond(node.item))
        if isinstance(node, Compare):
            return self.compare(node)
        if isinstance(node, Proto):
            return proto_pred(node.word)
        if isinstance(node, Path):
            return self.path_cond(node)
        if isinstance(node, Regex):
            raise self.fail("a regex literal can only be compared with == or !=", node.pos)
        return truth_of(self.operand(node))

    def conjunction(self, node: And) -> Pred:
        """`http and X` is the commonest rule shape: test the protocol inline, then X."""
        words = [i for i in node.items if isinstance(i, Proto)]
        if not words:
            return all_of([self.cond(i) for i in node.items])
        rest = [i for i in node.items if i is not words[0]]
        return proto_then(words[0].word, all_of([self.cond(i) for i in rest]))

    def path_cond(self, node: Path) -> Pred:
        last = node.steps[-1]
        if (
            isinstance(last, Method)
            and METHODS.get(last.name, _NO_SIG).returns is Returns.CONDITION
        ):
            return self.method_pred(node)
        return truth_of(self.path(node))

    # operands -----------------------------------------------------------------------------

    def operand(self, node: Node) -> Operand:
        if isinstance(node, Literal):
            return Operand("const", node.value)
        if isinstance(node, Call):
            return Operand("const", self.call(node))
        if isinstance(node, Path):
            last = node.steps[-1]
            sig = METHODS.get(last.name) if isinstance(last, Method) else None
            if sig is not None and sig.returns is Returns.CONDITION:
                return as_value(self.method_pred(node))
            return self.path(node)
        if isinstance(node, Neg):
            return self.negative(node)
        if isinstance(node, Regex):
            raise self.fail("a regex literal can only be compared with == or !=", node.pos)
        return as_value(self.cond(node))

    def negative(self, node: Neg) -> Operand:
        inner = self.operand(node.item)
        if inner.kind == "const":
            if type(inner.value) not in (int, float):
                raise self.fail("only numbers can be negated", node.pos)
            return Operand("const", -inner.value)
        get = inner.get
        if inner.kind == "one":
            return Operand("one", get=lambda e: _neg(get(e)))
        return Operand("many", get=lambda e: [n for v in get(e) if (n := _neg(v)) is not MISSING])

    # comparisons --------------------------------------------------------------------------

    def compare(self, node: Compare) -> Pred:
        left, right, op = node.left, node.right, node.op
        if isinstance(left, Regex) or isinstance(right, Regex):
            return self.regex_compare(node)
        lo, ro = self.operand(left), self.operand(right)
        if lo.kind == "const" and ro.kind == "const":
            return ALWAYS if V.compare(op, [lo.value], [ro.value]) else NEVER
        if lo.kind == "const":
            lo, ro, op = ro, lo, _FLIP[op]
        if ro.kind == "const":
            return compare_const(lo, op, ro.value)
        return compare_dynamic(lo, op, ro)

    def regex_compare(self, node: Compare) -> Pred:
        if isinstance(node.left, Regex) and isinstance(node.right, Regex):
            raise self.fail("cannot compare a regex with a regex", node.pos)
        if node.op not in ("==", "!="):
            raise self.fail(f"a regex can only be compared with == or !=, not {node.op}", node.pos)
        rx_node, other = (
            (node.left, node.right) if isinstance(node.left, Regex) else (node.right, node.left)
        )
        assert isinstance(rx_node, Regex)
        rx = re.compile(rx_node.pattern)
        side = self.operand(other)
        if side.kind == "const":
            hit = V.regex_any(rx, [side.value])
            return ALWAYS if hit is (node.op == "==") else NEVER
        return regex_pred(side, rx, node.op)

    # paths --------------------------------------------------------------------------------

    def path(self, node: Path) -> Operand:
        steps = node.steps
        for step in steps:
            if isinstance(step, Method):
                self.check_value_method(step)
        simple = all(isinstance(s, Key | Index) or _is_json(s) for s in steps)
        funcs = [self.step_func(s, prev) for prev, s in zip((None, *steps), steps, strict=False)]
        if simple:
            keys = _plain_keys(steps)
            if keys is not None:
                if self.memo is not None:
                    return Operand("one", get=self.memo.wrap(keys, key_getter(keys)))
                return Operand("one", get=key_getter(keys), keys=keys)
            return Operand("one", get=chain_getter([f for _, f in funcs]))
        return Operand("many", get=_wild_getter(steps) or fan_getter(funcs))

    def check_value_method(self, step: Method) -> None:
        sig = self.method_sig(step)
        if sig.returns is Returns.CONDITION:
            raise self.fail(f".{step.name}() gives true/false; nothing can follow it", step.pos)
        self.check_arity(sig, step.args, step.pos, method=True)

    def step_func(self, step: Step, prev: Step | None) -> tuple[str, Getter]:
        if isinstance(step, Key):
            if _is_headers(prev):
                return "one", header_step(step.name)
            return "one", key_step(step.name)
        if isinstance(step, Index):
            return "one", index_step(step.index)
        if isinstance(step, Wild):
            return "many", wild_step
        if isinstance(step, Deep):
            name = step.name
            return "many", lambda v: V.deep_find(v, name)
        impl: Getter = METHODS[step.name].impl  # .json(), the only value method
        return "one", impl

    def method_pred(self, node: Path) -> Pred:
        method = node.steps[-1]
        assert isinstance(method, Method)
        sig = self.method_sig(method)
        self.check_arity(sig, method.args, method.pos, method=True)
        base = self.path(Path(node.steps[:-1], node.pos))
        (arg,) = method.args
        if sig.params[0] is Arg.PATTERN:
            return text_pred(base, _pattern_arg(self, arg), sig.impl)
        return text_pred(base, self.text_arg(arg), sig.impl)

    def method_sig(self, step: Method) -> Signature:
        sig = METHODS.get(step.name)
        if sig is None:
            known = ", ".join(f".{n}()" for n in METHODS)
            raise self.fail(f"unknown method .{step.name}(); known: {known}", step.pos)
        return sig

    def text_arg(self, arg: Node) -> Operand:
        if isinstance(arg, Literal) and type(arg.value) in (str, int, float):
            return Operand("const", V.text_of(arg.value))
        if isinstance(arg, Path) and not isinstance(arg.steps[-1], Method):
            return self.path(arg)
        raise self.fail("expected a string, a number or a path", _pos_of(arg))

    # functions ----------------------------------------------------------------------------

    def call(self, node: Call) -> Any:
        sig = FUNCTIONS.get(node.name)
        if sig is None:
            known = ", ".join(f"{n}()" for n in FUNCTIONS)
            raise self.fail(f"unknown function {node.name}(); known: {known}", node.pos)
        self.check_arity(sig, node.args, node.pos, method=False)
        args = [self.const_arg(sig, i, a) for i, a in enumerate(node.args)]
        if sig.returns is Returns.TRUE:
            self.note_effect(node, args)
            return True
        return sig.impl(self.now_ms, *args)

    def check_arity(self, sig: Signature, args: tuple[Node, ...], pos: Pos, method: bool) -> None:
        if not sig.arity_ok(len(args)):
            raise self.fail(
                f"{sig.shape(method)} takes {_count(sig)}, got {len(args)}",
                pos,
            )

    def const_arg(self, sig: Signature, i: int, arg: Node) -> Any:
        kind = sig.params[min(i, len(sig.params) - 1)]
        value = arg.value if isinstance(arg, Literal) else _NOT_LITERAL
        pos = _pos_of(arg)
        if kind is Arg.NUMBER and type(value) in (int, float):
            return value
        if kind is Arg.COUNT and type(value) is int and value > 0:
            return value
        if kind is Arg.DATETIME and type(value) is str:
            ms = parse_datetime(value)
            if ms is None:
                raise self.fail(f"cannot read {value!r} as a date/time", pos)
            return ms
        if kind is Arg.PATH_TEXT and type(value) is str:
            path = parse_path(value, self.query, pos)
            if any(isinstance(s, Method) for s in path.steps):
                raise self.fail("a redact() path cannot call methods", pos)
            return path
        raise self.fail(f"{sig.name}() expects a {kind.value} here", pos)

    def note_effect(self, node: Call, args: list[Any]) -> None:
        if node.name == "limit":
            if self.limit is not None:
                raise self.fail("limit() given more than once", node.pos)
            self.limit = args[0]
        else:
            self.redactions.extend(args)


_NO_SIG = Signature("", (), Returns.VALUE, "", "", lambda: None)
_NOT_LITERAL = object()


def _count(sig: Signature) -> str:
    n = len(sig.params)
    if sig.variadic:
        return f"at least {n} argument{'s' * (n != 1)}"
    return f"{n} argument{'s' * (n != 1)}" if n else "no arguments"


def _pos_of(node: Node) -> Pos:
    return node.pos


def _pattern_arg(compiler: Compiler, arg: Node) -> Operand:
    if isinstance(arg, Regex):
        return Operand("const", re.compile(arg.pattern))
    if isinstance(arg, Literal) and type(arg.value) is str:
        try:
            return Operand("const", re.compile(arg.value))
        except (re.error, OverflowError, RecursionError) as exc:
            raise compiler.fail(f"invalid regex: {exc}", arg.pos) from None
    raise compiler.fail("matches() expects a regex or string literal", _pos_of(arg))


def _is_json(step: Step) -> bool:
    return isinstance(step, Method) and step.name == "json"


def _is_headers(prev: Step | None) -> bool:
    return isinstance(prev, Key | Deep) and prev.name == "headers"


def _plain_keys(steps: tuple[Step, ...]) -> tuple[str, ...] | None:
    names: list[str] = []
    prev: Step | None = None
    for step in steps:
        if not isinstance(step, Key) or _is_headers(prev):
            return None
        names.append(step.name)
        prev = step
    return tuple(names)


def _neg(v: Any) -> Any:
    t = type(v)
    if t is int or t is float:
        return -v
    return MISSING


# building blocks, each returning a closure ------------------------------------------------


def any_of(preds: list[Pred]) -> Pred:
    preds = [p for p in preds if p is not NEVER]
    if any(p is ALWAYS for p in preds):
        return ALWAYS
    if not preds:
        return NEVER
    if len(preds) == 1:
        return preds[0]
    if len(preds) == 2:
        a, b = preds
        return lambda e: a(e) or b(e)
    group = tuple(preds)

    def any_pred(e: Any) -> bool:
        for p in group:  # noqa: SIM110 - a plain loop beats any() with a generator here
            if p(e):
                return True
        return False

    return any_pred


def all_of(preds: list[Pred]) -> Pred:
    preds = [p for p in preds if p is not ALWAYS]
    if any(p is NEVER for p in preds):
        return NEVER
    if not preds:
        return ALWAYS
    if len(preds) == 1:
        return preds[0]
    if len(preds) == 2:
        a, b = preds
        return lambda e: a(e) and b(e)
    if len(preds) == 3:
        a, b, c = preds
        return lambda e: a(e) and b(e) and c(e)
    group = tuple(preds)

    def all_pred(e: Any) -> bool:
        for p in group:  # noqa: SIM110 - a plain loop beats all() with a generator here
            if not p(e):
                return False
        return True

    return all_pred


def negate(pred: Pred) -> Pred:
    if pred is ALWAYS:
        return NEVER
    if pred is NEVER:
        return ALWAYS
    return lambda e: not pred(e)


def proto_then(word: str, rest: Pred) -> Pred:
    if rest is NEVER:
        return NEVER
    if rest is ALWAYS:
        return proto_pred(word)
    name, want = PROTOCOL_WORDS[word]

    def proto_and(e: Any) -> bool:
        if type(e) is dict:
            p = e.get("protocol")
            if type(p) is dict and p.get(name) == want:
                return rest(e)
        return False

    return proto_and


def proto_pred(word: str) -> Pred:
    name, want = PROTOCOL_WORDS[word]

    def is_proto(e: Any) -> bool:
        if type(e) is dict:
            p = e.get("protocol")
            if type(p) is dict:
                return p.get(name) == want
        return False

    return is_proto


def truth_of(src: Operand) -> Pred:
    if src.kind == "const":
        return ALWAYS if V.truthy(src.value) else NEVER
    get, truthy = src.get, V.truthy
    if src.kind == "one":
        return lambda e: truthy(get(e))
    return lambda e: any(truthy(v) for v in get(e))


def as_value(pred: Pred) -> Operand:
    if pred is ALWAYS or pred is NEVER:
        return Operand("const", pred is ALWAYS)
    return Operand("one", get=pred)


def _values(src: Operand) -> Getter:
    if src.kind == "const":
        fixed = [src.value]
        return lambda e: fixed
    get = src.get
    if src.kind == "many":
        return get
    return lambda e: [] if (v := get(e)) is MISSING else [v]


def compare_dynamic(lo: Operand, op: str, ro: Operand) -> Pred:
    left, right, compare = _values(lo), _values(ro), V.compare
    return lambda e: compare(op, left(e), right(e))


def compare_const(src: Operand, op: str, c: Any) -> Pred:
    """Specialise `path OP literal`: test the expected type inline, general rules otherwise."""
    compare = V.compare
    if src.kind == "many":
        get_all, fixed = src.get, [c]
        return lambda e: compare(op, get_all(e), fixed)
    get, fixed = src.get, [c]
    if type(c) is int or type(c) is float:
        if src.keys is not None and len(src.keys) == 2:
            return _number_compare_2(src.keys, op, c)
        return _number_compare(get, op, c)
    if type(c) is str and op in ("==", "!="):
        if src.keys is not None and len(src.keys) == 2:
            return _string_equality_2(src.keys, op, c)
        return _string_equality(get, op, c)

    def general(e: Any) -> bool:
        v = get(e)
        return v is not MISSING and compare(op, [v], fixed)

    return general


def _number_compare(get: Getter, op: str, c: int | float) -> Pred:
    test, compare, fixed = _OPS[op], V.compare, [c]

    def number_compare(e: Any) -> bool:
        v = get(e)
        t = type(v)
        if t is int or t is float:
            return test(v, c)
        if v is MISSING:
            return False
        return compare(op, [v], fixed)

    return number_compare


def _number_compare_2(keys: tuple[str, ...], op: str, c: int | float) -> Pred:
    """`a.b OP number` with the two lookups inline: the most common comparison in rules."""
    k1, k2 = keys
    test, compare, fixed = _OPS[op], V.compare, [c]

    def number_compare_2(e: Any) -> bool:
        if type(e) is dict:
            v = e.get(k1)
            if type(v) is dict:
                v = v.get(k2, MISSING)
                t = type(v)
                if t is int or t is float:
                    return test(v, c)
                if v is not MISSING:
                    return compare(op, [v], fixed)
        return False

    return number_compare_2


def _string_equality_2(keys: tuple[str, ...], op: str, c: str) -> Pred:
    k1, k2 = keys
    compare, fixed = V.compare, [c]
    want = op == "=="

    def string_equality_2(e: Any) -> bool:
        if type(e) is dict:
            v = e.get(k1)
            if type(v) is dict:
                v = v.get(k2, MISSING)
                if type(v) is str:
                    return (v == c) is want
                if v is not MISSING:
                    return compare(op, [v], fixed)
        return False

    return string_equality_2


def _string_equality(get: Getter, op: str, c: str) -> Pred:
    compare, fixed = V.compare, [c]
    want = op == "=="

    def string_equality(e: Any) -> bool:
        v = get(e)
        if type(v) is str:
            return (v == c) is want
        if v is MISSING:
            return False
        return compare(op, [v], fixed)

    return string_equality


def regex_pred(src: Operand, rx: re.Pattern[str], op: str) -> Pred:
    """`x == r"..."` searches the text; `!=` means a value exists and none matches."""
    search, regex_any = rx.search, V.regex_any
    want = op == "=="
    if src.kind == "many":
        get_all = src.get
        return lambda e: bool(vals := get_all(e)) and regex_any(rx, vals) is want
    get = src.get

    def regex_one(e: Any) -> bool:
        v = get(e)
        if type(v) is str:
            return (search(v) is not None) is want
        if v is MISSING:
            return False
        return regex_any(rx, [v]) is want

    return regex_one


def text_pred(base: Operand, arg: Operand, test: Callable[[str, Any], bool]) -> Pred:
    """A string method: true when some text of the base passes with some value of the argument."""
    texts = V.texts
    base_values = _values(base)
    if arg.kind == "const":
        a = arg.value
        if base.kind == "one":
            get = base.get

            def text_one(e: Any) -> bool:
                v = get(e)
                if type(v) is str:
                    return test(v, a)
                if v is MISSING:
                    return False
                return any(test(t, a) for t in texts([v]))

            return text_one
        return lambda e: any(test(t, a) for t in texts(base_values(e)))
    arg_values = _values(arg)

    def text_dynamic(e: Any) -> bool:
        args = list(texts(arg_values(e)))
        return bool(args) and any(test(t, a) for t in texts(base_values(e)) for a in args)

    return text_dynamic


def key_step(k: str) -> Getter:
    return lambda v: v.get(k, MISSING) if type(v) is dict else MISSING


def header_step(k: str) -> Getter:
    """Header names are case-insensitive (SPEC section 4): exact key first, then a folded scan."""
    folded = k.lower()

    def header(v: Any) -> Any:
        if type(v) is not dict:
            return MISSING
        r = v.get(k, MISSING)
        if r is MISSING:
            for name, value in v.items():
                if type(name) is str and name.lower() == folded:
                    return value
        return r

    return header


def index_step(i: int) -> Getter:
    def index(v: Any) -> Any:
        if type(v) is list and -len(v) <= i < len(v):
            return v[i]
        return MISSING

    return index


def wild_step(v: Any) -> list[Any]:
    if type(v) is dict:
        return list(v.values())
    if type(v) is list:
        return v
    return []


def key_getter(keys: tuple[str, ...]) -> Getter:
    """Nested ``dict.get`` unrolled for the short paths rules use most."""
    if len(keys) == 1:
        (k1,) = keys
        return lambda e: e.get(k1, MISSING) if type(e) is dict else MISSING
    if len(keys) == 2:
        k1, k2 = keys

        def get2(e: Any) -> Any:
            if type(e) is dict:
                v = e.get(k1)
                if type(v) is dict:
                    return v.get(k2, MISSING)
            return MISSING

        return get2
    if len(keys) == 3:
        k1, k2, k3 = keys

        def get3(e: Any) -> Any:
            if type(e) is dict:
                v = e.get(k1)
                if type(v) is dict:
                    v = v.get(k2)
                    if type(v) is dict:
                        return v.get(k3, MISSING)
            return MISSING

        return get3

    def get_n(e: Any) -> Any:
        v = e
        for k in keys:
            if type(v) is not dict:
                return MISSING
            v = v.get(k, MISSING)
        return v

    return get_n


def _wild_getter(steps: tuple[Step, ...]) -> Getter | None:
    """`a.b[*].c` (DNS answers, questions): one fan-out between plain keys, without the
    general list-of-lists pipeline."""
    kinds = [isinstance(s, Wild) for s in steps]
    if kinds.count(True) != 1:
        return None
    at = kinds.index(True)
    before, after = (
        _plain_keys(steps[:at]),
        _plain_keys(steps[at + 1 :]) if at + 1 < len(steps) else (),
    )
    if before is None or after is None:
        return None
    base = key_getter(before)
    tail = key_getter(after) if after else None

    def wild_keys(e: Any) -> list[Any]:
        items = base(e)
        if type(items) is dict:
            items = list(items.values())
        elif type(items) is not list:
            return []
        if tail is None:
            return items
        out = []
        for x in items:
            v = tail(x)
            if v is not MISSING:
                out.append(v)
        return out

    return wild_keys


def chain_getter(funcs: list[Getter]) -> Getter:
    steps = tuple(funcs)

    def chain(e: Any) -> Any:
        v = e
        for f in steps:
            v = f(v)
            if v is MISSING:
                return MISSING
        return v

    return chain


def fan_getter(funcs: list[tuple[str, Getter]]) -> Getter:
    steps = tuple((kind == "many", f) for kind, f in funcs)

    def fan(e: Any) -> list[Any]:
        vals = [e]
        for many, f in steps:
            if many:
                vals = [r for v in vals for r in f(v)]
            else:
                vals = [r for v in vals if (r := f(v)) is not MISSING]
            if not vals:
                break
        return vals

    return fan
