"""The normal form: one canonical spelling per query, which re-parses to an equivalent query.

Mixed ``and``/``or`` and negated comparisons are always parenthesised, so a normalised query
carries none of the Kubeshark-difference warnings its original may have had.
"""

from __future__ import annotations

from pipeline.kfl.syntax import (
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
    Proto,
    Regex,
    Step,
    Wild,
    is_identifier,
    quote_regex,
)

__all__ = ["normal_form", "quote"]

_SIMPLE = (Literal, Regex, Path, Proto, Call)


def normal_form(node: Node) -> str:
    if isinstance(node, Empty):
        return ""
    if isinstance(node, Or):
        return " or ".join(_wrap(i, isinstance(i, Or | And)) for i in node.items)
    if isinstance(node, And):
        return " and ".join(_wrap(i, isinstance(i, Or | And)) for i in node.items)
    if isinstance(node, Not):
        return "not " + _wrap(node.item, isinstance(node.item, Or | And | Compare))
    if isinstance(node, Compare):
        return f"{_operand(node.left)} {node.op} {_operand(node.right)}"
    return _operand(node)


def _wrap(node: Node, parens: bool) -> str:
    text = normal_form(node)
    return f"({text})" if parens else text


def _operand(node: Node) -> str:
    if isinstance(node, Literal):
        return _literal(node.value)
    if isinstance(node, Regex):
        return 'r"' + quote_regex(node.pattern) + '"'
    if isinstance(node, Proto):
        return node.word
    if isinstance(node, Call):
        return f"{node.name}({_args(node.args)})"
    if isinstance(node, Path):
        return path_text(node)
    if isinstance(node, Neg):
        return "-" + _wrap(node.item, not isinstance(node.item, Path | Call))
    return f"({normal_form(node)})"


def _args(args: tuple[Node, ...]) -> str:
    return ", ".join(normal_form(a) for a in args)


def _literal(value: object) -> str:
    if value is None:
        return "nil"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, str):
        return quote(value)
    return repr(value)


def quote(text: str) -> str:
    out = ['"']
    for ch in text:
        if ch in '"\\':
            out.append("\\" + ch)
        elif ch == "\n":
            out.append("\\n")
        elif ch == "\t":
            out.append("\\t")
        elif ch == "\r":
            out.append("\\r")
        elif ord(ch) < 0x20 or ord(ch) == 0x7F or 0xD800 <= ord(ch) <= 0xDFFF:
            out.append(f"\\u{ord(ch):04x}")
        else:
            out.append(ch)
    out.append('"')
    return "".join(out)


def path_text(path: Path) -> str:
    first, *rest = path.steps
    head = first.name if isinstance(first, Key) else f"..{first.name}"  # type: ignore[union-attr]
    return head + "".join(_step(s) for s in rest)


def _step(step: Step) -> str:
    if isinstance(step, Key):
        return f".{step.name}" if is_identifier(step.name) else f"[{quote(step.name)}]"
    if isinstance(step, Index):
        return f"[{step.index}]"
    if isinstance(step, Wild):
        return "[*]"
    if isinstance(step, Deep):
        return f"..{step.name}"
    assert isinstance(step, Method)
    return f".{step.name}({_args(step.args)})"
