"""Text to a small typed tree: the lark parse, KFL's token rules, positions and warnings.

The compiler, the normal-form printer, the rule-set analyser and the redactor all work on these
dataclasses rather than on lark trees, so lark stays an implementation detail of this module and
every later stage can rely on literals already decoded and validated.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from typing import Any

from lark import Lark, Token, Tree
from lark.exceptions import UnexpectedCharacters, UnexpectedEOF, UnexpectedInput, UnexpectedToken

from pipeline.kfl.errors import KFLError

__all__ = [
    "KEYWORDS",
    "PROTOCOL_WORDS",
    "And",
    "Call",
    "Compare",
    "Deep",
    "Empty",
    "Index",
    "Key",
    "Literal",
    "Method",
    "Neg",
    "Node",
    "Not",
    "Or",
    "Parsed",
    "Path",
    "Pos",
    "Proto",
    "Regex",
    "Step",
    "Wild",
    "parse",
    "parse_path",
    "walk",
]

MAX_DEPTH = 100
"""Deeper nesting is refused at compile time so evaluation can never exhaust the C stack."""

KEYWORDS = frozenset({"and", "or", "not", "true", "false", "nil", "null"})

# word -> (entry field under `protocol`, value it must equal)
PROTOCOL_WORDS: dict[str, tuple[str, str]] = {
    "http": ("abbr", "HTTP"),
    "http2": ("abbr", "HTTP/2"),
    "grpc": ("abbr", "gRPC"),
    "gql": ("abbr", "GQL"),
    "dns": ("abbr", "DNS"),
    "tls": ("abbr", "TLS"),
    "amqp": ("name", "amqp"),
    "kafka": ("name", "kafka"),
    "redis": ("name", "redis"),
    "tcp": ("name", "tcp"),
    "udp": ("name", "udp"),
}

_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
_HEX4 = re.compile(r"[0-9A-Fa-f]{4}")
_ESCAPES = {'"': '"', "'": "'", "\\": "\\", "n": "\n", "t": "\t", "r": "\r", "/": "/"}


@dataclass(frozen=True)
class Pos:
    line: int
    column: int


_NOWHERE = Pos(1, 1)
# Positions are for messages only: two queries that differ only in layout are equal trees.


@dataclass(frozen=True)
class Empty:
    pos: Pos = field(default=_NOWHERE, compare=False, repr=False)


@dataclass(frozen=True)
class Or:
    items: tuple[Node, ...]
    pos: Pos = field(default=_NOWHERE, compare=False, repr=False)


@dataclass(frozen=True)
class And:
    items: tuple[Node, ...]
    pos: Pos = field(default=_NOWHERE, compare=False, repr=False)


@dataclass(frozen=True)
class Not:
    item: Node
    pos: Pos = field(default=_NOWHERE, compare=False, repr=False)


@dataclass(frozen=True)
class Compare:
    op: str
    left: Node
    right: Node
    pos: Pos = field(default=_NOWHERE, compare=False, repr=False)


@dataclass(frozen=True)
class Literal:
    value: str | int | float | bool | None
    pos: Pos = field(default=_NOWHERE, compare=False, repr=False)


@dataclass(frozen=True)
class Regex:
    pattern: str
    pos: Pos = field(default=_NOWHERE, compare=False, repr=False)


@dataclass(frozen=True)
class Neg:
    item: Node
    pos: Pos = field(default=_NOWHERE, compare=False, repr=False)


@dataclass(frozen=True)
class Proto:
    word: str
    pos: Pos = field(default=_NOWHERE, compare=False, repr=False)


@dataclass(frozen=True)
class Call:
    name: str
    args: tuple[Node, ...]
    pos: Pos = field(default=_NOWHERE, compare=False, repr=False)


@dataclass(frozen=True)
class Key:
    name: str
    pos: Pos = field(default=_NOWHERE, compare=False, repr=False)


@dataclass(frozen=True)
class Index:
    index: int
    pos: Pos = field(default=_NOWHERE, compare=False, repr=False)


@dataclass(frozen=True)
class Wild:
    pos: Pos = field(default=_NOWHERE, compare=False, repr=False)


@dataclass(frozen=True)
class Deep:
    name: str
    pos: Pos = field(default=_NOWHERE, compare=False, repr=False)


@dataclass(frozen=True)
class Method:
    name: str
    args: tuple[Node, ...]
    pos: Pos = field(default=_NOWHERE, compare=False, repr=False)


Step = Key | Index | Wild | Deep | Method


@dataclass(frozen=True)
class Path:
    """A path; the root name is the first ``Key`` of ``steps`` so every stage treats it alike."""

    steps: tuple[Step, ...]
    pos: Pos = field(default=_NOWHERE, compare=False, repr=False)


Node = Empty | Or | And | Not | Compare | Literal | Regex | Neg | Proto | Call | Path


@dataclass(frozen=True)
class Parsed:
    text: str
    tree: Node
    warnings: tuple[str, ...]


@cache
def parser() -> Lark:
    """Built once per process: building the LALR tables costs far more than any parse."""
    grammar = resources.files("pipeline.kfl").joinpath("grammar.lark").read_text("utf-8")
    return Lark(
        grammar,
        parser="lalr",
        lexer="basic",
        start=["start", "redact_path"],
        propagate_positions=True,
        maybe_placeholders=False,
    )


def parse(text: str) -> Parsed:
    """Parse a whole query, turning every lark failure into a located ``KFLError``."""
    tree = _lark_parse(text, "start", text)
    builder = _Builder(text)
    try:
        node: Node = builder.node(tree.children[0], 0) if tree.children else Empty()
    except RecursionError:
        raise KFLError("query nests too deeply", text, 1, 1) from None
    return Parsed(text, node, tuple(builder.warnings))


def parse_path(text: str, query: str, at: Pos) -> Path:
    """Parse a ``redact()`` argument; errors point at the argument inside the enclosing query."""
    tree = _lark_parse(text, "redact_path", query, at)
    builder = _Builder(query, at)
    node = builder.path(tree)
    return node


def _lark_parse(text: str, start: str, query: str, at: Pos | None = None) -> Tree[Token]:
    try:
        return parser().parse(text, start=start)
    except UnexpectedInput as exc:
        line, column, message = _describe(exc, text)
    if at is not None:  # inside a string argument: report the argument's own position
        line, column = at.line, at.column
        message = f"bad path in string: {message}"
    raise KFLError(message, query, line, column)


def _describe(exc: UnexpectedInput, text: str) -> tuple[int, int, str]:
    at_end = isinstance(exc, UnexpectedToken) and exc.token.type == "$END"
    if at_end or isinstance(exc, UnexpectedEOF):
        line = text.count("\n") + 1
        column = len(text) - (text.rfind("\n") + 1) + 1
        return line, column, "unexpected end of query" + _expected(exc)
    if isinstance(exc, UnexpectedToken):
        tok = exc.token
        if tok.type == "CMP" and "CMP" not in exc.expected and "OR" in exc.expected:
            return tok.line or 1, tok.column or 1, "comparisons do not chain; join them with `and`"
        if tok.type == "MINUS" and "CMP" in exc.expected:
            return (
                tok.line or 1,
                tok.column or 1,
                (
                    "unexpected '-': keys with characters other than letters, digits and _ need "
                    'brackets, e.g. request.headers["x-request-id"]'
                ),
            )
        return tok.line or 1, tok.column or 1, f"unexpected {tok.value!r}" + _expected(exc)
    if isinstance(exc, UnexpectedCharacters):
        at = exc.pos_in_stream or 0
        char = text[at] if at < len(text) else ""
        what = "unterminated string" if char in "\"'" else f"unexpected character {char!r}"
        if char == "/" and text.startswith("/*", at):
            what = "unterminated comment"
        return exc.line, exc.column, what
    return getattr(exc, "line", 1) or 1, getattr(exc, "column", 1) or 1, "syntax error"


_READABLE = {
    "CMP": "a comparison",
    "IDENT": "a name",
    "NUMBER": "a number",
    "STRING": "a string",
    "REGEX": "a regex",
    "LPAR": "'('",
    "RPAR": "')'",
    "LSQB": "'['",
    "RSQB": "']'",
    "DOT": "'.'",
    "DEEP": "'..'",
    "COMMA": "','",
    "MINUS": "'-'",
    "STAR": "'*'",
    "BANG": "'!'",
    "NOT": "'not'",
    "TRUE": "'true'",
    "FALSE": "'false'",
    "NIL": "'nil'",
    "NULL": "'null'",
    "AND": "'and'",
    "OR": "'or'",
}


def _readable(name: str) -> str:
    if name in _READABLE:
        return _READABLE[name]
    for term in parser().terminals:
        if term.name == name and term.pattern.type == "str":
            return repr(term.pattern.value)
    return name.lower()


def _expected(exc: UnexpectedInput) -> str:
    names = getattr(exc, "expected", None) or getattr(exc, "allowed", None) or ()
    words = sorted({_readable(n) for n in names if n != "$END"})
    if not words:
        return ""
    return ", expected " + (words[0] if len(words) == 1 else "one of " + ", ".join(words))


def _where(item: Tree[Token] | Token) -> Pos:
    if isinstance(item, Token):
        return Pos(item.line or 1, item.column or 1)
    meta = item.meta
    if getattr(meta, "empty", True):
        return _NOWHERE
    return Pos(meta.line, meta.column)


class _Builder:
    """Turns lark trees into ``Node`` values, decoding literals and noting warnings on the way."""

    def __init__(self, query: str, offset: Pos | None = None) -> None:
        self.query = query
        self.offset = offset
        self.warnings: list[str] = []

    def fail(self, message: str, pos: Pos) -> KFLError:
        return KFLError(message, self.query, pos.line, pos.column)

    def warn(self, pos: Pos, message: str) -> None:
        self.warnings.append(f"line {pos.line}, column {pos.column}: {message}")

    def node(self, item: Tree[Token] | Token, depth: int) -> Node:
        if depth > MAX_DEPTH:
            raise self.fail(f"query nests more than {MAX_DEPTH} levels deep", _where(item))
        assert isinstance(item, Tree)
        build = getattr(self, "n_" + str(item.data))
        result: Node = build(item, depth + 1)
        return result

    def n_or_(self, tree: Tree[Token], depth: int) -> Node:
        for child in tree.children:
            if isinstance(child, Tree) and child.data == "and_":
                self.warn(
                    _where(tree),
                    "`and` and `or` mixed without parentheses: streamtap reads `a and b or c` as "
                    "`(a and b) or c`; Kubeshark read it as `a and (b or c)`. Add parentheses.",
                )
                break
        return Or(tuple(self.node(c, depth) for c in tree.children), _where(tree))

    def n_and_(self, tree: Tree[Token], depth: int) -> Node:
        return And(tuple(self.node(c, depth) for c in tree.children), _where(tree))

    def n_not_(self, tree: Tree[Token], depth: int) -> Node:
        bang, operand = tree.children
        if isinstance(operand, Tree) and operand.data == "compare":
            self.warn(
                _where(bang),
                f"`{bang}{' ' if str(bang) == 'not' else ''}x == y` negates the whole comparison "
                "here: `not (x == y)`; Kubeshark negated `x` alone. Add parentheses to make the "
                "intent explicit.",
            )
        return Not(self.node(operand, depth), _where(bang))

    def n_compare(self, tree: Tree[Token], depth: int) -> Node:
        left, op, right = tree.children
        assert isinstance(op, Token)
        node = Compare(str(op), self.node(left, depth), self.node(right, depth), _where(op))
        for side in (node.left, node.right):
            if isinstance(side, Regex) and node.op in ("==", "!=") and not _anchored(side.pattern):
                self.warn(
                    side.pos,
                    f"regex r{_quote(side.pattern)} is not anchored: it matches anywhere in the "
                    "text (Kubeshark's readers often assumed the whole text). Use ^...$ to pin it.",
                )
        return node

    def n_neg(self, tree: Tree[Token], depth: int) -> Node:
        minus, operand = tree.children
        inner = self.node(operand, depth)
        if isinstance(inner, Literal) and _is_number(inner.value):
            assert isinstance(inner.value, int | float)
            return Literal(-inner.value, _where(minus))
        if isinstance(inner, Literal | Regex | Proto):
            raise self.fail("only numbers can be negated", _where(minus))
        return Neg(inner, _where(minus))

    def n_number(self, tree: Tree[Token], depth: int) -> Node:
        tok = tree.children[0]
        return Literal(self.number(tok), _where(tok))

    def number(self, tok: Tree[Token] | Token) -> int | float:
        text = str(tok)
        if re.fullmatch(r"[0-9]+", text):
            if len(text) > 4000:
                raise self.fail("number too long", _where(tok))
            return int(text)
        value = float(text)
        if not math.isfinite(value):
            raise self.fail("number out of range", _where(tok))
        return value

    def n_string(self, tree: Tree[Token], depth: int) -> Node:
        tok = tree.children[0]
        return Literal(self.string(tok), _where(tok))

    def string(self, tok: Tree[Token] | Token) -> str:
        return unescape(str(tok)[1:-1], lambda msg, i: self.fail(msg, _shift(_where(tok), i + 1)))

    def n_regex(self, tree: Tree[Token], depth: int) -> Node:
        tok = tree.children[0]
        pattern = regex_text(str(tok)[2:-1])
        try:
            re.compile(pattern)
        except (re.error, OverflowError, RecursionError) as exc:
            raise self.fail(f"invalid regex: {exc}", _where(tok)) from None
        return Regex(pattern, _where(tok))

    def n_true(self, tree: Tree[Token], depth: int) -> Node:
        return Literal(True, _where(tree))

    def n_false(self, tree: Tree[Token], depth: int) -> Node:
        return Literal(False, _where(tree))

    def n_nil(self, tree: Tree[Token], depth: int) -> Node:
        return Literal(None, _where(tree))

    def n_paren(self, tree: Tree[Token], depth: int) -> Node:
        return self.node(tree.children[0], depth)

    def n_call(self, tree: Tree[Token], depth: int) -> Node:
        name, *rest = tree.children
        return Call(str(name), self.args(rest, depth), _where(name))

    def args(self, rest: list[Any], depth: int) -> tuple[Node, ...]:
        if not rest or rest[0] is None:
            return ()
        return tuple(self.node(a, depth) for a in rest[0].children)

    def n_path(self, tree: Tree[Token], depth: int) -> Node:
        path = self.path(tree, depth)
        if len(path.steps) == 1:
            only = path.steps[0]
            if isinstance(only, Key) and only.name in PROTOCOL_WORDS:
                return Proto(only.name, only.pos)
        return path

    def path(self, tree: Tree[Token], depth: int = 0) -> Path:
        children = list(tree.children)
        steps: list[Step] = []
        if tree.data == "deep_root":
            steps.append(Deep(str(children[1]), self.at(_where(children[0]))))
            children = children[2:]
        else:
            steps.append(Key(str(children[0]), self.at(_where(children[0]))))
            children = children[1:]
        steps.extend(self.step(c, depth) for c in children)
        return Path(tuple(steps), steps[0].pos)

    def at(self, pos: Pos) -> Pos:
        return self.offset if self.offset is not None else pos

    def step(self, item: Tree[Token] | Token, depth: int) -> Step:
        assert isinstance(item, Tree)
        kind, kids = str(item.data), item.children
        pos = self.at(_where(item))
        if kind == "key":
            tok = kids[0]
            assert isinstance(tok, Token)
            return Key(self.string(tok) if tok.type == "STRING" else str(tok), pos)
        if kind == "wild":
            return Wild(pos)
        if kind == "deep":
            return Deep(str(kids[1]), pos)
        if kind == "index":
            value = self.number(kids[-1])
            if not isinstance(value, int):
                raise self.fail("a list index must be an integer", pos)
            return Index(-value if len(kids) == 2 else value, pos)
        name, *rest = kids
        return Method(str(name), self.args(rest, depth), self.at(_where(name)))


def _shift(pos: Pos, by: int) -> Pos:
    return Pos(pos.line, pos.column + by)


def unescape(body: str, fail: Any) -> str:
    """Decode the escapes of a quoted string; Kubeshark kept them literally, KFL processes them."""
    out: list[str] = []
    i = 0
    while i < len(body):
        ch = body[i]
        if ch != "\\":
            out.append(ch)
            i += 1
            continue
        nxt = body[i + 1] if i + 1 < len(body) else ""
        if nxt in _ESCAPES and nxt:
            out.append(_ESCAPES[nxt])
            i += 2
        elif nxt == "u" and _HEX4.fullmatch(body, i + 2, i + 6):
            code = int(body[i + 2 : i + 6], 16)
            i += 6
            low = _HEX4.fullmatch(body, i + 2, i + 6) if body.startswith("\\u", i) else None
            if 0xD800 <= code < 0xDC00 and low and 0xDC00 <= int(low.group(), 16) < 0xE000:
                code = 0x10000 + ((code - 0xD800) << 10) + (int(low.group(), 16) - 0xDC00)
                i += 6  # a surrogate pair, as JSON writes characters beyond U+FFFF
            out.append(chr(code))
        else:
            raise fail(f"unknown escape \\{nxt}", i)
    return "".join(out)


def regex_text(body: str) -> str:
    """The pattern as written, except that ``\\"`` becomes ``"`` (and ``\\\\`` stays as is)."""
    out: list[str] = []
    i = 0
    while i < len(body):
        if body[i] == "\\" and i + 1 < len(body):
            pair = body[i : i + 2]
            out.append('"' if pair == '\\"' else pair)
            i += 2
        else:
            out.append(body[i])
            i += 1
    return "".join(out)


def _quote(pattern: str) -> str:
    return '"' + quote_regex(pattern) + '"'


def quote_regex(pattern: str) -> str:
    """Inverse of ``regex_text`` for every pattern it can produce."""
    out: list[str] = []
    i = 0
    while i < len(pattern):
        if pattern[i] == "\\" and i + 1 < len(pattern):
            out.append(pattern[i : i + 2])
            i += 2
            continue
        out.append('\\"' if pattern[i] == '"' else pattern[i])
        i += 1
    return "".join(out)


def _anchored(pattern: str) -> bool:
    """True when search and whole-text match agree, so the reading cannot differ."""
    start = pattern.startswith(("^", "\\A", ".*"))
    end = (pattern.endswith(("$", "\\Z", ".*")) and not pattern.endswith("\\$")) or not pattern
    return start and end


def _is_number(value: object) -> bool:
    return type(value) is int or type(value) is float


def is_identifier(name: str) -> bool:
    return bool(_IDENT.match(name)) and name not in KEYWORDS


def walk(node: Node) -> list[Node]:
    """Every node of a tree, method arguments included, without recursion."""
    out: list[Node] = []
    stack: list[Node] = [node]
    while stack:
        n = stack.pop()
        out.append(n)
        if isinstance(n, Or | And):
            stack.extend(n.items)
        elif isinstance(n, Not | Neg):
            stack.append(n.item)
        elif isinstance(n, Compare):
            stack.extend((n.left, n.right))
        elif isinstance(n, Call):
            stack.extend(n.args)
        elif isinstance(n, Path):
            for step in n.steps:
                if isinstance(step, Method):
                    stack.extend(step.args)
    return out
