"""The public surface: exports, caching, normal form, and the parser built once."""

from __future__ import annotations

from typing import Any

import pipeline.kfl as kfl
from pipeline.kfl import compile
from pipeline.kfl.syntax import parser


def test_all_lists_the_public_api() -> None:
    assert sorted(kfl.__all__) == ["KFLError", "Query", "RuleSet", "compile", "compile_many"]
    for name in kfl.__all__:
        assert getattr(kfl, name) is not None


def test_same_text_gives_the_same_compiled_object() -> None:
    assert compile("http and response.status >= 500") is compile("http and response.status >= 500")
    assert compile("http") is not compile("dns")


def test_cache_keys_time_dependent_queries_by_now() -> None:
    text = "timestamp >= minutes(-5)"
    assert compile(text, now_ms=10) is compile(text, now_ms=10)
    assert compile(text, now_ms=10) is not compile(text, now_ms=20)
    assert compile("timestamp > 0", now_ms=10) is compile("timestamp > 0", now_ms=20)


def test_default_now_is_read_at_compile_time() -> None:
    q = compile("timestamp <= now()")
    assert q.now_ms is not None and q.now_ms > 1_700_000_000_000
    assert q({"timestamp": q.now_ms}) and not q({"timestamp": q.now_ms + 1})


def test_lark_parser_is_built_once() -> None:
    assert parser() is parser()


def test_normal_form_examples() -> None:
    cases = {
        "http   &&  response.status>=500": "http and response.status >= 500",
        "a and b or c": "(a and b) or c",
        "a or b and c": "a or (b and c)",
        '!request.path == "/x"': 'not (request.path == "/x")',
        "request.headers['X-Id'] == 'a\\'b'": 'request.headers["X-Id"] == "a\'b"',
        "x[*].y..z.* == null": "x[*].y..z[*] == nil",
        "-3 < -x": "-3 < -x",
        'redact("a.b") and limit(3)': 'redact("a.b") and limit(3)',
        "// only a comment": "",
        "1e3 == 1000": "1000.0 == 1000",
    }
    for text, normal in cases.items():
        assert str(compile(text)) == normal


def test_query_repr_and_predicate(entries: dict[str, Any]) -> None:
    q = compile("dns")
    assert "dns" in repr(q)
    assert q.predicate(entries["dns_a_ok"]) is True
