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
        "http or not dns",
        'http || request.headers["x"] == "y"',
        "http and (dns or not tcp)",  # the group has an untranslatable side: http pushed
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
    p = plan('http and request.path.matches("^/api")')
    assert not p.exact
    assert p.where == "abbr = ?"


def test_or_of_translatable_sides_is_exact() -> None:
    p = plan('request.path.startsWith("/api/v1/orders") or response.status == 404')
    assert p.exact
    assert p.where == "(((path IS NOT NULL AND substr(path, 1, ?) = ?)) OR (status = ?))"
    assert p.params == (14, "/api/v1/orders", 404)
    assert p.equals == ()  # neither side must hold for every match: nothing for pruning


def test_or_with_an_untranslatable_side_pushes_nothing() -> None:
    p = plan('http or request.path.matches("x")')
    assert p.where == "" and not p.exact


def test_and_binds_tighter_than_or() -> None:
    p = plan("http and response.status >= 500 or dns")
    assert p.exact
    assert p.where == "((abbr = ? AND status >= ?) OR (abbr = ?))"
    assert p.params == ("HTTP", 500, "DNS")


def test_parenthesised_groups_are_taken_apart() -> None:
    p = plan('dst.port == 80 and (http or dns) and ("x" == "x" or tcp)')
    assert not p.exact  # the literal comparison is left to KFL, and so is its group
    assert p.where == "dst_port = ? AND ((abbr = ?) OR (abbr = ?))"
    assert p.equals == (("dst_port", 80),)
    assert plan("(http) and (dns)").where == "abbr = ? AND abbr = ?"


@pytest.mark.parametrize(
    ("query", "where", "params"),
    [
        ('request.path.startsWith("/a")', "(path IS NOT NULL AND substr(path, 1, ?) = ?)",
         (2, "/a")),
        ("request.path.endsWith('s')", "(path IS NOT NULL AND substr(path, ?) = ?)", (-1, "s")),
        ('request.path.endsWith("")', "path IS NOT NULL", ()),
        ('dst.name.contains("shop")', "instr(dst_name, ?) > 0", ("shop",)),
        ('request.questions[0].name == "a.b"', "qname = ?", ("a.b",)),
    ],
)  # fmt: skip
def test_string_methods_and_first_dns_question(query: str, where: str, params: tuple) -> None:
    p = plan(query)
    assert p.exact and p.where == where and p.params == params


def test_string_methods_on_numbers_and_unknown_paths_are_left_to_kfl() -> None:
    assert not plan('dst.port.startsWith("8")').exact  # KFL runs it on the number's text
    assert not plan('request.url.startsWith("/")').exact
    assert not plan('request.questions[1].name == "x"').exact


def test_words_inside_strings_and_paths_do_not_split() -> None:
    p = plan('src.name == "orders and more" and dns')
    assert p.exact
    assert p.params == ("orders and more", "DNS")
    assert not plan("request.android == 1").exact


def test_number_against_text_column_is_left_to_kfl() -> None:
    assert not plan("src.ip == 10").exact
