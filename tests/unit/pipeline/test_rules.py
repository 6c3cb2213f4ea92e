"""Rule-set loading: sources, shapes, compile failures and what a reload keeps."""

from __future__ import annotations

import pytest

from pipeline.reload import RuleSources
from pipeline.rules import (
    LIMIT_IGNORED,
    RECORDING_RULE,
    RulesError,
    RuleSpec,
    build_ruleset,
    merge_specs,
    parse_rules_yaml,
    specs_from_env,
)
from pipeline.testing import TableCompiler, make_entry
from streamtap.schema.testing import http_entry

TWO_RULES = """
rules:
  web:
    kfl: http
    retention_days: 30
    lock_mode: COMPLIANCE
    legal_hold: true
    prefix: web/
  names: dns
"""


@pytest.mark.parametrize("value", ["", "   ", "\n\t"])
def test_blank_recording_kfl_means_recording_off(value: str) -> None:
    assert specs_from_env(value) == {}


def test_recording_kfl_is_one_rule_named_recording() -> None:
    assert specs_from_env("http or dns") == {RECORDING_RULE: RuleSpec(kfl="http or dns")}


def test_rules_file_with_settings_and_bare_string() -> None:
    specs = parse_rules_yaml(TWO_RULES)
    assert set(specs) == {"web", "names"}
    web = specs["web"].settings()
    assert (web.retention_days, web.lock_mode, web.legal_hold, web.prefix) == (
        30,
        "COMPLIANCE",
        True,
        "web/",
    )
    assert specs["names"] == RuleSpec(kfl="dns")


@pytest.mark.parametrize("text", ["", "rules:\n", "rules: {}\n", "# nothing\n"])
def test_empty_rules_file_means_no_rules(text: str) -> None:
    assert parse_rules_yaml(text) == {}


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("rules: [http", "not valid YAML"),
        ("- http\n", "mapping"),
        ("rulez: {}\n", "unknown top-level"),
        ("rules: [http]\n", "map rule names"),
        ("rules:\n  a: {kfl: http, lock_mode: FOREVER}\n", "rule 'a'"),
        ("rules:\n  a: {kfl: http, retention_days: 0}\n", "retention_days"),
        ("rules:\n  a: {kfl: http, colour: red}\n", "colour"),
        ("rules:\n  a: 5\n", "rule 'a'"),
    ],
)
def test_malformed_rules_file_is_rejected_whole(text: str, fragment: str) -> None:
    with pytest.raises(RulesError, match=fragment):
        parse_rules_yaml(text)


def test_later_source_overrides_rule_by_name() -> None:
    env = {"recording": RuleSpec(kfl="http"), "x": RuleSpec(kfl="dns")}
    file = {"x": RuleSpec(kfl="tcp")}
    assert merge_specs(env, file) == {"recording": RuleSpec(kfl="http"), "x": RuleSpec(kfl="tcp")}


def test_broken_rule_is_reported_and_the_others_run(compiler: TableCompiler) -> None:
    specs = {"good": RuleSpec(kfl="http"), "bad": RuleSpec(kfl="http and (")}
    ruleset = build_ruleset(specs, compiler=compiler)
    assert ruleset.names == {"good"}
    (problem,) = ruleset.problems
    assert (problem.rule, problem.line, problem.column, problem.kept_previous) == (
        "bad",
        1,
        1,
        False,
    )
    assert "^" in problem.message
    assert "'bad'" in str(problem) and "not loaded" in str(problem)
    assert ruleset.match(make_entry("http")) == {"good"}


def test_broken_edit_keeps_the_previous_version(compiler: TableCompiler) -> None:
    before = build_ruleset({"r": RuleSpec(kfl="http")}, compiler=compiler)
    after = build_ruleset({"r": RuleSpec(kfl="htp or")}, previous=before, compiler=compiler)
    assert after.rules["r"] is before.rules["r"]
    assert after.problems[0].kept_previous
    assert "previous version kept" in str(after.problems[0])
    assert after.match(make_entry("http")) == {"r"}


def test_unchanged_rules_are_not_recompiled(compiler: TableCompiler) -> None:
    before = build_ruleset({"a": RuleSpec(kfl="http")}, compiler=compiler)
    compiler.compiled.clear()
    after = build_ruleset(
        {"a": RuleSpec(kfl="http"), "b": RuleSpec(kfl="dns")}, previous=before, compiler=compiler
    )
    assert after.rules["a"] is before.rules["a"]
    assert compiler.compiled == ["dns"]


def test_blank_rule_turns_that_rule_off(compiler: TableCompiler) -> None:
    ruleset = build_ruleset({"a": RuleSpec(kfl="  "), "b": RuleSpec(kfl="dns")}, compiler=compiler)
    assert ruleset.names == {"b"}
    assert not ruleset.problems


def test_no_rules_is_disabled(compiler: TableCompiler) -> None:
    ruleset = build_ruleset({}, compiler=compiler)
    assert not ruleset.enabled
    assert ruleset.match(make_entry("http")) == frozenset()


def test_match_returns_every_matching_rule(compiler: TableCompiler) -> None:
    ruleset = build_ruleset(
        {"a": RuleSpec(kfl="http"), "b": RuleSpec(kfl="http or dns"), "c": RuleSpec(kfl="dns")},
        compiler=compiler,
    )
    assert ruleset.match(make_entry("http")) == {"a", "b"}
    assert ruleset.match(make_entry("dns")) == {"b", "c"}
    assert ruleset.match(make_entry("udp")) == frozenset()


def test_fingerprint_follows_the_specs(compiler: TableCompiler) -> None:
    a = build_ruleset({"a": RuleSpec(kfl="http")}, compiler=compiler)
    b = build_ruleset({"a": RuleSpec(kfl="http")}, compiler=compiler)
    c = build_ruleset({"a": RuleSpec(kfl="http", prefix="p/")}, compiler=compiler)
    assert a.fingerprint == b.fingerprint != c.fingerprint


def test_redact_applies_every_named_rule(compiler: TableCompiler) -> None:
    ruleset = build_ruleset(
        {"plain": RuleSpec(kfl="http"), "hide": RuleSpec(kfl="secret")}, compiler=compiler
    )
    e = make_entry("http", secret="pw")
    assert ruleset.redact(e, {"plain"})["secret"] == "pw"
    assert ruleset.redact(e, {"plain", "hide"})["secret"] == "[REDACTED]"
    assert e["secret"] == "pw"


def test_limit_in_a_recording_rule_loads_with_a_warning() -> None:
    """limit() has no meaning for a recorder (see LIMIT_IGNORED): the rule records every match
    and the reload says so."""
    sources = RuleSources(recording_kfl="http and limit(1)")
    event = sources.start(0.0, None)
    rule = sources.current.rules["recording"]
    assert rule.query.limit == 1
    assert rule.warnings == (LIMIT_IGNORED,)
    assert event.ok and event.warnings == (f"rule 'recording': {LIMIT_IGNORED}",)
    assert "limit() is ignored" in str(event)
    http = http_entry()
    assert [sources.current.match(http) for _ in range(3)] == [frozenset({"recording"})] * 3
