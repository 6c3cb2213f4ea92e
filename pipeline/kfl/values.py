"""KFL's value rules (truth, text, numbers, equality, order), shared by compiler and redactor.

Everything here must be total over JSON-shaped data: a predicate may never raise, so these
helpers use type checks instead of exceptions and never recurse on the data's depth.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Callable, Iterator
from typing import Any, Final

__all__ = [
    "MISSING",
    "as_number",
    "compare",
    "deep_find",
    "json_copy",
    "json_equal",
    "parse_json",
    "text_of",
    "truthy",
]


class _Missing:
    """A path that leads nowhere; distinct from JSON null on purpose (SPEC section 4)."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "MISSING"

    def __bool__(self) -> bool:
        return False


MISSING: Final[Any] = _Missing()

_DECIMAL = re.compile(r"-?[0-9]+(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?\Z")
_INTEGER = re.compile(r"-?[0-9]+\Z")
_MAX_INT_TEXT = 4000  # CPython refuses int<->str conversions past 4300 digits


def truthy(v: Any) -> bool:
    t = type(v)
    if t is bool:
        return bool(v)
    if t is str or t is list or t is dict:
        return len(v) > 0
    if t is int or t is float:
        return bool(v != 0)
    return False  # None, MISSING, anything not JSON-shaped


def as_number(v: Any) -> int | float | None:
    """A number, or a string that is a decimal number (so `dst.port == "80"` works)."""
    t = type(v)
    if t is int or t is float:
        return v
    if t is str and len(v) < 400 and _DECIMAL.match(v):
        if _INTEGER.match(v):
            return int(v)
        return float(v)
    return None


def text_of(v: Any) -> str | None:
    """The text that string methods and regexes see; only strings and numbers have one."""
    t = type(v)
    if t is str:
        return v
    if t is int:
        return str(v) if v.bit_length() < 13000 else None
    if t is float:
        return repr(v)
    return None


def _scalar_eq(a: Any, b: Any) -> bool:
    ta, tb = type(a), type(b)
    a_num = ta is int or ta is float
    b_num = tb is int or tb is float
    if a_num or b_num:
        if a_num and b_num:
            return bool(a == b)
        x, y = as_number(a), as_number(b)
        return x is not None and y is not None and x == y
    if ta is not tb:
        return False
    if ta is list or ta is dict:
        return json_equal(a, b)
    return bool(a == b)  # str, bool, None


def _json_leaf_eq(a: Any, b: Any) -> bool:
    ta, tb = type(a), type(b)
    if (ta is int or ta is float) and (tb is int or tb is float):
        return bool(a == b)
    return ta is tb and a == b


def json_equal(a: Any, b: Any) -> bool:
    """Deep equality with 1 == 1.0 but true != 1, iteratively so depth cannot overflow."""
    stack = [(a, b)]
    while stack:
        x, y = stack.pop()
        tx, ty = type(x), type(y)
        if tx is list:
            if ty is not list or len(x) != len(y):
                return False
            stack.extend(zip(x, y, strict=True))
        elif tx is dict:
            if ty is not dict or x.keys() != y.keys():
                return False
            stack.extend((x[k], y[k]) for k in x)
        elif not _json_leaf_eq(x, y):
            return False
    return True


def _lt(a: Any, b: Any) -> int | None:
    """-1, 0 or 1 when the two are ordered by KFL's rules, else None."""
    ta, tb = type(a), type(b)
    if ta is str and tb is str:
        return (a > b) - (a < b)
    x, y = as_number(a), as_number(b)
    if x is None or y is None or (ta is str and tb is str):
        return None
    if not (ta is int or ta is float or tb is int or tb is float):
        return None
    return (x > y) - (x < y)


_ORDER: dict[str, Callable[[int], bool]] = {
    "<": lambda c: c < 0,
    "<=": lambda c: c <= 0,
    ">": lambda c: c > 0,
    ">=": lambda c: c >= 0,
}


def _pair(op: str, a: Any, b: Any) -> bool:
    """One comparison of two present values; a list against a scalar means any element."""
    la, lb = type(a) is list, type(b) is list
    if la != lb:
        items, other = (a, b) if la else (b, a)
        flip = not la
        return any(
            _pair_scalar(op, other, x) if flip else _pair_scalar(op, x, other) for x in items
        )
    return _pair_scalar(op, a, b)


def _pair_scalar(op: str, a: Any, b: Any) -> bool:
    if op == "==":
        return _scalar_eq(a, b)
    c = _lt(a, b)
    return c is not None and _ORDER[op](c)


def compare(op: str, left: list[Any], right: list[Any]) -> bool:
    """The any-semantics of fan-out: true when some pair satisfies ``op``.

    ``!=`` is "no pair is equal, and both sides have a value", so a repeated query parameter
    ``tag=a&tag=b`` is not ``!= "a"``.
    """
    if not left or not right:
        return False
    if op == "!=":
        return not any(_pair("==", a, b) for a in left for b in right)
    return any(_pair(op, a, b) for a in left for b in right)


def regex_any(rx: re.Pattern[str], values: list[Any]) -> bool:
    return any(rx.search(t) is not None for t in texts(values))


def texts(values: list[Any]) -> Iterator[str]:
    """Text of each value, with a list standing for its elements (one level)."""
    for v in values:
        if type(v) is list:
            for x in v:
                t = text_of(x)
                if t is not None:
                    yield t
        else:
            t = text_of(v)
            if t is not None:
                yield t


def deep_find(v: Any, name: str) -> list[Any]:
    """Every value stored under key ``name`` at any depth below ``v`` (``..name``)."""
    found: list[Any] = []
    stack = [v]
    while stack:
        x = stack.pop()
        if type(x) is dict:
            if name in x:
                found.append(x[name])
            stack.extend(reversed(list(x.values())))
        elif type(x) is list:
            stack.extend(reversed(x))
    return found


def _reject_constant(name: str) -> Any:
    raise ValueError(name)


def parse_json(v: Any) -> Any:
    """``.json()``: the document in a string, or in base64 of one; unparseable is missing."""
    if type(v) is not str:
        return MISSING
    doc = _loads(v)
    if doc is MISSING and v and len(v) % 4 == 0:
        try:
            raw = base64.b64decode(v, validate=True)
        except (binascii.Error, ValueError):
            return MISSING
        doc = _loads(raw)
    return doc


def _loads(text: str | bytes) -> Any:
    try:
        return json.loads(text, parse_constant=_reject_constant)
    except (ValueError, RecursionError, UnicodeDecodeError):
        return MISSING


def json_copy(v: Any) -> Any:
    """A deep copy of JSON-shaped data without recursion (redaction mutates the copy)."""
    if type(v) is not dict and type(v) is not list:
        return v
    root: Any = {} if type(v) is dict else []
    stack: list[tuple[Any, Any]] = [(v, root)]
    while stack:
        src, dst = stack.pop()
        items = src.items() if type(src) is dict else enumerate(src)
        for k, x in items:
            tx = type(x)
            if tx is dict or tx is list:
                y: Any = {} if tx is dict else []
                stack.append((x, y))
            else:
                y = x
            if type(dst) is dict:
                dst[k] = y
            else:
                dst.append(y)
    return root
