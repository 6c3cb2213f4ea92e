"""Language rules beyond the shared cases: warnings, limit, redact, time, regex, values."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from pipeline.kfl import compile
from tests.unit.kfl.conftest import NOW_MS

# warnings -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("query", "fragment"),
    [
        ("http and response.status == 500 or dns", "`and` and `or` mixed"),
        ("dns or http and response.status == 500", "`and` and `or` mixed"),
        ("a && b || c", "`and` and `or` mixed"),
        ('!request.path == "/x"', "negates the whole comparison"),
        ('not request.path == "/x"', "negates the whole comparison"),
        ('response.status == r"4.*"', "not anchored"),
        ('r"^5" != response.status', "not anchored"),
    ],
)
def test_warning(query: str, fragment: str) -> None:
    warnings = compile(query).warnings
    assert len(warnings) == 1 and fragment in warnings[0], warnings
    assert warnings[0].startswith("line 1, column ")


@pytest.mark.parametrize(
    "query",
    [
        "(http and response.status == 500) or dns",
        "http and (response.status == 500 or dns)",
        'not (request.path == "/x")',
        "!response",
        'response.status == r"^5..$"',
        'grpc and request.headers[":path"] == r".*Catalog.*"',
        'request.path.matches("4.*")',
        "a or b or c",
    ],
)
def test_no_warning(query: str) -> None:
    assert compile(query).warnings == []


def test_warnings_are_listed_in_order() -> None:
    q = compile('!x == r"a" or y and z')
    assert [w.split(":")[0] for w in q.warnings] == ["line 1, column 1"] * 2 + ["line 1, column 7"]


# limit ----------------------------------------------------------------------------------------


def test_limit_is_exposed_and_always_true(entries: dict[str, Any]) -> None:
    q = compile("http and limit(25)")
    assert q.limit == 25
    assert q(entries["http_get_200"]) and not q(entries["dns_a_ok"])
    assert compile("http").limit is None
    assert compile("limit(1)")(None) is True


# redact ---------------------------------------------------------------------------------------


def test_redact_replaces_only_the_named_values(entries: dict[str, Any]) -> None:
    entry = entries["http_post_500"]
    original = copy.deepcopy(entry)
    q = compile('http and redact("request.headers.Authorization", "request.cookies.session")')
    assert q.redactions == ["request.headers.Authorization", "request.cookies.session"]
    out = q.redact(entry)
    assert entry == original, "the input is not modified"
    assert out["request"]["headers"]["Authorization"] == "[REDACTED]"
    assert out["request"]["cookies"] == {"session": "[REDACTED]", "theme": "dark"}
    out["request"]["headers"]["Authorization"] = entry["request"]["headers"]["Authorization"]
    out["request"]["cookies"]["session"] = "xyz"
    assert out == original


def test_redact_header_keys_ignore_case(entries: dict[str, Any]) -> None:
    out = compile(
        'redact("request.headers.authorization", "request.headers[\\"COOKIE\\"]")'
    ).redact(entries["http_post_500"])
    assert out["request"]["headers"]["Authorization"] == "[REDACTED]"
    assert out["request"]["headers"]["Cookie"] == "[REDACTED]"
    assert out["request"]["headers"]["Host"] == "checkout"


def test_redact_deep_name_finds_every_depth(entries: dict[str, Any]) -> None:
    out = compile('redact("..session")').redact(entries["http_post_500"])
    assert out["request"]["cookies"]["session"] == "[REDACTED]"
    assert out["response"]["cookies"]["session"] == "[REDACTED]"
    assert out["request"]["cookies"]["theme"] == "dark"


def test_redact_fan_out_and_index(entries: dict[str, Any]) -> None:
    q = compile('redact("request.questions[*].name", "response.answers[-1].ip")')
    out = q.redact(entries["dns_a_ok"])
    assert out["request"]["questions"][0] == {"name": "[REDACTED]", "type": "A", "class": "IN"}
    assert out["response"]["answers"][0]["ip"] == "[REDACTED]"


def test_redact_never_adds_missing_fields(entries: dict[str, Any]) -> None:
    entry = entries["tcp_ssh"]
    assert compile('redact("request.headers.Authorization", "..password")').redact(entry) == entry


def test_redact_without_paths_is_a_plain_copy(entries: dict[str, Any]) -> None:
    entry = entries["dns_a_ok"]
    out = compile("dns").redact(entry)
    assert out == entry and out is not entry and out["request"] is not entry["request"]


# time -----------------------------------------------------------------------------------------

TEN = 1795773600000  # 2026-11-27T10:00:00Z


@pytest.mark.parametrize(
    "text",
    [
        "2026-11-27T10:00:00Z",
        "2026-11-27T10:00:00+00:00",
        "2026-11-27 11:00:00+01:00",
        "2026-11-27T10:00:00",
        "2026-11-27 10:00:00.000",
        "11/27/2026, 10:00:00 AM",
        "11/27/2026, 10:00:00.000 AM",
        " 2026-11-27T05:00:00-05:00 ",
    ],
)
def test_datetime_formats(text: str) -> None:
    q = compile(f'timestamp == datetime("{text}")')
    assert q({"timestamp": TEN}) and not q({"timestamp": TEN + 1})


def test_datetime_keeps_milliseconds_and_pm() -> None:
    q = compile('timestamp == datetime("11/27/2026, 1:02:03.250 PM")')
    assert q({"timestamp": TEN + 3 * 3_600_000 + 2 * 60_000 + 3_250})


@pytest.mark.parametrize("text", ["yesterday", "2026-13-01", "27/11/2026, 10:00:00 AM", ""])
def test_datetime_rejects_unreadable_text(text: str) -> None:
    from pipeline.kfl import KFLError

    with pytest.raises(KFLError):
        compile(f'timestamp > datetime("{text}")')


@pytest.mark.parametrize(
    ("call", "offset_ms"),
    [
        ("now()", 0),
        ("seconds(30)", 30_000),
        ("minutes(-5)", -300_000),
        ("hours(2)", 7_200_000),
        ("days(-1)", -86_400_000),
        ("weeks(1)", 604_800_000),
        ("months(1)", 30 * 86_400_000),
        ("years(-1)", -365 * 86_400_000),
        ("hours(0.5)", 1_800_000),
    ],
)
def test_relative_time_uses_the_compile_time_now(call: str, offset_ms: int) -> None:
    q = compile(f"timestamp == {call}", now_ms=NOW_MS)
    assert q({"timestamp": NOW_MS + offset_ms})
    assert not q({"timestamp": NOW_MS + offset_ms + 1})


def test_now_is_fixed_at_compile_time_not_evaluation() -> None:
    early, late = (
        compile("timestamp < now()", now_ms=1000),
        compile("timestamp < now()", now_ms=5000),
    )
    assert not early({"timestamp": 3000}) and late({"timestamp": 3000})


# regex ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("query", "value", "match"),
    [
        ('x == r"b"', "abc", True),
        ('x == r"^b"', "abc", False),
        ('x == r"(?i)ABC"', "abc", True),
        ('x != r"z"', "abc", True),
        ('x != r"a"', "abc", False),
        ('x == r"^5\\d\\d$"', 503, True),
        ('x == r"say \\"hi\\""', 'say "hi"', True),
        ('x == r"a\\\\b"', "a\\b", True),
        ('x.matches("^a.c$")', "abc", True),
        ('x.matches(r"^a.c$")', "xabc", False),
        ('x == r"b"', ["zz", "ab"], True),
        ('x == r"b"', {"k": "b"}, False),
        ('x != r"b"', {"k": "b"}, True),
        ('x == r"true"', True, False),
    ],
)
def test_regex(query: str, value: Any, match: bool) -> None:
    assert compile(query)({"x": value}) is match


def test_regex_on_missing_is_false_both_ways() -> None:
    assert not compile('x == r"a"')({}) and not compile('x != r"a"')({})


# values ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("query", "entry", "match"),
    [
        ("x == 1", {"x": 1.0}, True),
        ("x == 1", {"x": True}, False),
        ("x == true", {"x": 1}, False),
        ("x == nil", {"x": None}, True),
        ("x != nil", {"x": 0}, True),
        ("x != nil", {}, False),
        ('x == "1e3"', {"x": 1000}, True),
        ('x == "abc"', {"x": 1}, False),
        ("x < 10", {"x": "9"}, True),
        ('x < "b"', {"x": "a"}, True),
        ('x < "10"', {"x": "9"}, False),
        ("x == y", {"x": [1, {"a": 2}], "y": [1.0, {"a": 2}]}, True),
        ("x == y", {"x": {"a": 1}, "y": {"a": 1, "b": 2}}, False),
        ("x", {"x": {}}, False),
        ("x", {"x": {"a": None}}, True),
        ("x", {"x": 0.0}, False),
        ("x", {"x": "0"}, True),
        ("-x == -3", {"x": 3}, True),
        ("-x < 0", {"x": "3"}, False),
        ("x.*.y == 2", {"x": {"a": {"y": 1}, "b": {"y": 2}}}, True),
        ("x[*] > 5", {"x": [1, 9]}, True),
        ("x..id == 3", {"x": [{"a": {"id": 3}}]}, True),
        ("x.startsWith(y)", {"x": "abc", "y": "ab"}, True),
        ("x.startsWith(y)", {"x": "abc"}, False),
        ("x.contains(5)", {"x": 1500}, True),
        ('x.endsWith("b")', {"x": ["ab", "c"]}, True),
        ('x.startsWith("fa")', {"x": False}, False),
        ("x.json().a == 1", {"x": '{"a": 1}'}, True),
        ("x.json() == 12", {"x": "MTI="}, True),
        ("x.json().a", {"x": "{bad"}, False),
        ('request.headers["HOST"] == "h"', {"request": {"headers": {"host": "h"}}}, True),
        ('request.Headers["HOST"] == "h"', {"request": {"Headers": {"host": "h"}}}, False),
        ("http", {"protocol": {"abbr": "HTTP", "name": "http"}}, True),
        ("http", {"protocol": "HTTP"}, False),
        ("http", ["protocol"], False),
        ("tcp", {"protocol": {"name": "tcp"}}, True),
        ("redis", {"protocol": {"name": "redis", "abbr": "Redis"}}, True),
        ("dns.x == 1", {"dns": {"x": 1}}, True),
    ],
)
def test_value_rules(query: str, entry: Any, match: bool) -> None:
    assert compile(query)(entry) is match
