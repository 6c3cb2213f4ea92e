"""The SQL pushdown: exact only when every conjunct was translated, never narrower than KFL."""

from __future__ import annotations

import pytest

from replay.pushdown import plan


def test_empty_query_is_exact_with_no_condition() -> None:
    p = plan("  ")
    assert p.exact and p.where == ""


def test_protocol_word_and_time_range() -> None:
    p = plan("http and timestamp >= 1000 and timestamp < 2000")
    assert p.exact
    assert p.where == "abbr = ? AND ts >= ? AND ts < ?"
    assert p.params == ("HTTP", 1000, 2000)


def test_endpoint_status_and_method_fields() -> None:
    p = plan(
        'dst.ip == "10.0.0.1" && dst.port == "80" and response.status >= 500 '
        "and request.method == 'GET'"
    )
    assert p.exact
    assert p.params == ("10.0.0.1", 80, 500, "GET")


def test_not_equal_excludes_missing_fields() -> None:
    p = plan("response.status != 200")
    assert p.where == "(status IS NOT NULL AND status != ?)"


def test_limit_and_redact_are_always_true_conjuncts() -> None:
    p = plan('dns and limit(5) and redact("request.headers.Authorization")')
    assert p.exact and p.where == "abbr = ?" and p.params == ("DNS",)


@pytest.mark.parametrize(
    "query",
    [
        "http or dns",
        "http || dns",
        "http and (dns or tcp)",  # the parenthesised part is left to Python, http pushed
        'request.path == "/a or b"',
        "http // comment",
        "not http",
        "!http",
        'request.headers["and"] == "x"',
        'response.status == r"5.."',
    ],
)
def test_anything_else_is_not_exact(query: str) -> None:
    assert not plan(query).exact


def test_partial_pushdown_keeps_the_translated_part() -> None:
    p = plan('http and request.path.startsWith("/api")')
    assert not p.exact
    assert p.where == "abbr = ?"


def test_top_level_or_pushes_nothing() -> None:
    p = plan("http or dns")
    assert p.where == "" and p.params == ()


def test_words_inside_strings_and_paths_do_not_split() -> None:
    p = plan('src.name == "orders and more" and dns')
    assert p.exact
    assert p.params == ("orders and more", "DNS")
    assert not plan("request.android == 1").exact


def test_number_against_text_column_is_left_to_kfl() -> None:
    assert not plan("src.ip == 10").exact
