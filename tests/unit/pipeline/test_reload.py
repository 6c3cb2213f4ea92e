"""Hot reload bookkeeping: sources merged, bad edits rejected, history kept; file polling."""

from __future__ import annotations

import os
from pathlib import Path

from pipeline.reload import FileWatcher, RuleSources
from pipeline.rules import RuleSpec, build_ruleset
from pipeline.testing import TableCompiler, make_entry


def sources(kfl: str = "") -> RuleSources:
    return RuleSources(recording_kfl=kfl, compiler=TableCompiler())


def test_env_and_file_rules_are_merged_at_startup() -> None:
    s = sources("http")
    event = s.start(1.0, "rules:\n  names: dns\n")
    assert event.ok and event.rules == ("names", "recording")
    assert s.current.match(make_entry("dns")) == {"names"}


def test_bad_yaml_at_startup_loads_the_rest_and_says_why() -> None:
    s = sources("http")
    event = s.start(1.0, "rules: [")
    assert not event.ok and "not valid YAML" in event.problems[0]
    assert event.rules == ("recording",)


def test_a_reload_swaps_the_whole_set() -> None:
    s = sources()
    s.start(1.0, "rules:\n  web: http\n")
    before = s.current
    event = s.reload_file(2.0, "rules:\n  names: dns\n")
    assert event.ok and s.current is not before
    assert s.current.names == {"names"}
    assert before.names == {"web"}  # the old set is untouched (a record in flight keeps it)


def test_an_invalid_edit_keeps_the_previous_rules() -> None:
    s = sources()
    s.start(1.0, "rules:\n  web: http\n")
    before = s.current
    event = s.reload_file(2.0, "rules:\n  web: {kfl: http, lock_mode: NOPE}\n")
    assert not event.ok and s.current is before
    assert "previous rules kept" in event.problems[0]
    assert "rejected" in str(event)


def test_deleting_the_file_turns_its_rules_off() -> None:
    s = sources()
    s.start(1.0, "rules:\n  web: http\n")
    event = s.reload_file(2.0, None)
    assert event.ok and not s.current.enabled
    assert "recording off" in str(event)


def test_control_rules_override_by_name_and_can_be_withdrawn() -> None:
    s = sources("http")
    s.start(1.0, None)
    s.apply_control(2.0, {"rules": {"recording": {"kfl": "dns"}, "extra": "tcp"}})
    assert s.current.rules["recording"].spec == RuleSpec(kfl="dns")
    assert s.current.names == {"recording", "extra"}
    s.apply_control(3.0, {"rules": {}})
    assert s.current.rules["recording"].spec == RuleSpec(kfl="http")
    bad = s.apply_control(4.0, {"nope": 1})
    assert not bad.ok and s.current.names == {"recording"}


def test_history_is_bounded() -> None:
    s = RuleSources(recording_kfl="http", compiler=TableCompiler(), history_size=3)
    for i in range(10):
        s.reload_file(float(i), None)
    assert len(s.history) == 3 and s.history[-1].at == 9.0


def test_real_kfl_errors_carry_line_column_and_caret() -> None:
    ruleset = build_ruleset({"bad": RuleSpec(kfl="http and\n  (response.status >")})
    (problem,) = ruleset.problems
    assert problem.line == 2 and problem.column is not None
    assert "^" in problem.message and "(response.status >" in problem.message


def test_real_kfl_rule_set_matches_and_redacts() -> None:
    ruleset = build_ruleset(
        {
            "web": RuleSpec(kfl='http and redact("request.headers")'),
            "names": RuleSpec(kfl="dns"),
        }
    )
    entry = {"protocol": {"name": "http", "abbr": "HTTP"}, "request": {"headers": {"a": "b"}}}
    assert ruleset.match(entry) == {"web"}
    assert ruleset.redact(entry, {"web"})["request"]["headers"] == "[REDACTED]"
    assert ruleset.rules["names"].redacts is False


def test_file_watcher_sees_changes_by_content(tmp_path: Path) -> None:
    path = tmp_path / "rules.yaml"
    watcher = FileWatcher(path)
    assert watcher.read_now() is None
    path.write_text("a")
    assert watcher.poll() == (True, "a")
    assert watcher.poll() == (False, None)
    stat = path.stat()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000))
    assert watcher.poll() == (False, "a")  # touched, same bytes: not a change
    path.write_text("b")
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 2_000_000))
    assert watcher.poll() == (True, "b")
    path.unlink()
    assert watcher.poll() == (True, None)
    assert watcher.poll() == (False, None)
