"""``streamtap kfl check`` and ``kfl eval``, run in-process through click."""

from __future__ import annotations

import json
from typing import Any

from click.testing import CliRunner

from pipeline.kfl.cli import kfl


def _run(*args: str, stdin: str = "") -> Any:
    return CliRunner().invoke(kfl, list(args), input=stdin)


def test_check_prints_normal_form_and_warnings() -> None:
    result = _run("check", "http && response.status >= 500 || dns")
    assert result.exit_code == 0
    lines = result.output.splitlines()
    assert lines[0] == "(http and response.status >= 500) or dns"
    assert lines[1].startswith("warning: line 1, column 1: `and` and `or` mixed")


def test_check_reports_limit_and_redactions() -> None:
    result = _run("check", 'dns and limit(10) and redact("..name")')
    assert "limit: 10" in result.output and "redact: ..name" in result.output


def test_check_error_shows_caret_and_exits_1() -> None:
    result = _run("check", "http and")
    assert result.exit_code == 1
    assert "unexpected end of query" in result.output
    assert result.output.splitlines()[-1].endswith("^")


def _jsonl(entries: dict[str, Any], *extra: str) -> str:
    return "\n".join([*(json.dumps(e) for e in entries.values()), *extra]) + "\n"


def test_eval_prints_matching_entries(entries: dict[str, Any]) -> None:
    result = _run("eval", "http and response.status >= 300", stdin=_jsonl(entries))
    assert result.exit_code == 0
    ids = [json.loads(line)["id"] for line in result.stdout.splitlines()]
    assert ids == [entries["http_post_500"]["id"], entries["http6_304_b64"]["id"]]
    assert "2 matched of 9 entries, 0 malformed line(s) skipped" in result.stderr


def test_eval_skips_malformed_lines_with_their_number(entries: dict[str, Any]) -> None:
    result = _run("eval", "dns", stdin=_jsonl(entries, "{nope", "", "[1,"))
    assert len(result.stdout.splitlines()) == 2
    assert "line 10: skipped" in result.stderr and "line 12: skipped" in result.stderr
    assert "2 malformed line(s) skipped" in result.stderr


def test_eval_honours_limit_and_redact(entries: dict[str, Any]) -> None:
    query = 'http and limit(2) and redact("request.headers.host")'
    result = _run("eval", query, stdin=_jsonl(entries))
    out = [json.loads(line) for line in result.stdout.splitlines()]
    assert len(out) == 2 and all(e["request"]["headers"]["Host"] == "[REDACTED]" for e in out)
    assert "stopped at limit" in result.stderr


def test_eval_with_bad_query_exits_1() -> None:
    result = _run("eval", "foo(1)", stdin="{}\n")
    assert result.exit_code == 1 and "unknown function foo()" in result.stderr


def test_eval_now_option_fixes_relative_time() -> None:
    line = json.dumps({"timestamp": 1_000_000}) + "\n"
    assert _run("eval", "timestamp >= minutes(-1)", "--now-ms", "1030000", stdin=line).stdout
    assert not _run("eval", "timestamp >= minutes(-1)", "--now-ms", "1090000", stdin=line).stdout
