"""Compile errors: everything is found at compile time, located, and shown with a caret."""

from __future__ import annotations

import pytest

from pipeline.kfl import KFLError, compile


def _error(query: str) -> KFLError:
    with pytest.raises(KFLError) as info:
        compile(query)
    return info.value


@pytest.mark.parametrize(
    ("query", "line", "column", "words"),
    [
        ("http and", 1, 9, "end of query"),
        ("(http", 1, 6, "expected ')'"),
        ("response.status === 500", 1, 19, "unexpected character '='"),
        ("1 == 1 == true", 1, 8, "do not chain"),
        ("foo(1)", 1, 1, "unknown function foo()"),
        ("request.path.shout()", 1, 14, "unknown method .shout()"),
        ('response.status == r"("', 1, 20, "invalid regex"),
        ('request.path.matches("[")', 1, 22, "invalid regex"),
        ('timestamp > datetime("yesterday")', 1, 22, "cannot read 'yesterday'"),
        ('limit("ten")', 1, 7, "positive integer"),
        ("limit(0)", 1, 7, "positive integer"),
        ("limit(-3)", 1, 7, "positive integer"),
        ("limit(2.5)", 1, 7, "positive integer"),
        ("limit(1) and limit(2)", 1, 14, "more than once"),
        ("request.headers.x-y == 1", 1, 18, "need brackets"),
        ('"unterminated', 1, 1, "unterminated string"),
        ("a /* open comment", 1, 3, "unterminated comment"),
        ("0x10 == 16", 1, 2, "unexpected 'x10'"),
        ("now(1)", 1, 1, "no arguments, got 1"),
        ("minutes()", 1, 1, "takes 1 argument, got 0"),
        ('minutes("5")', 1, 9, "number literal"),
        ("redact()", 1, 1, "at least 1 argument"),
        ("redact(request.path)", 1, 8, "path string"),
        ('redact("a.b(")', 1, 8, "bad path in string"),
        ('redact("a.json()")', 1, 8, "cannot call methods"),
        ('x.startsWith("a", "b")', 1, 3, "takes 1 argument, got 2"),
        ('x.startsWith("a").y', 1, 3, "nothing can follow"),
        ("x.matches(y)", 1, 11, "regex or string literal"),
        ('r"a" < x', 1, 6, "only be compared with == or !="),
        ('r"a"', 1, 1, "only be compared"),
        ('r"a" == r"b"', 1, 6, "regex with a regex"),
        ('-"a" == 1', 1, 1, "only numbers can be negated"),
        ('x == "\\q"', 1, 7, "unknown escape"),
        ("x[1.5]", 1, 2, "integer"),
        ("1e999 == 1", 1, 1, "out of range"),
    ],
)
def test_error_is_located(query: str, line: int, column: int, words: str) -> None:
    exc = _error(query)
    assert (exc.line, exc.column) == (line, column), str(exc)
    assert words in exc.message, exc.message


def test_str_shows_the_line_and_a_caret_under_the_column() -> None:
    exc = _error("http\n  and response.status >= 500\n  and foo(1)")
    assert (exc.line, exc.column) == (3, 7)
    text = str(exc).splitlines()
    assert text[0].startswith("line 3, column 7: unknown function foo()")
    assert text[1] == "    and foo(1)"
    assert text[2] == "  " + " " * 6 + "^"


def test_error_at_end_of_a_later_line_points_past_the_last_character() -> None:
    exc = _error("dns and\n(response.code == 1 or")
    assert (exc.line, exc.column) == (2, 23)


def test_non_text_query_is_a_kflerror() -> None:
    with pytest.raises(KFLError):
        compile(42)  # type: ignore[arg-type]


def test_deep_nesting_is_refused_at_compile_time() -> None:
    assert "nests" in _error("(" * 300 + "x" + ")" * 300).message
    assert "nests" in _error("not " * 300 + "x").message


def test_error_survives_pickling() -> None:
    import pickle

    exc = _error("http and")
    again = pickle.loads(pickle.dumps(exc))
    assert str(again) == str(exc)
