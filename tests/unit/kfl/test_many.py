"""compile_many: same answers as single queries, with protocol dispatch and shared path reads."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.kfl import KFLError, compile, compile_many

RULES = {
    "http-5xx": "http and response.status >= 500",
    "http-slow": "http and elapsedTime > 1000",
    "http-post": 'http and request.method == "POST"',
    "nxdomain": 'dns and response.code == "Non-Existent Domain"',
    "dns-any": "dns",
    "ssh": "tcp and dst.port == 22",
    "web": "http or grpc",
    "port-80": "dst.port == 80",
}


def test_names_match_single_evaluation_in_rule_order(entries: dict[str, Any]) -> None:
    rules = compile_many(RULES)
    singles = {n: compile(t) for n, t in RULES.items()}
    for entry in entries.values():
        assert rules(entry) == [n for n, q in singles.items() if q(entry)]
    assert rules.names == list(RULES)


def test_dispatch_skips_rules_for_other_protocols(entries: dict[str, Any]) -> None:
    rules = compile_many(RULES)
    rules(entries["dns_a_ok"])
    # dns-any, nxdomain and the protocol-free port-80 run; the 3 http, ssh and web rules do not
    assert rules.stats == {"evaluated": 3, "indexed": 0, "skipped": 5}
    rules(entries["tcp_ssh"])
    # ssh (`dst.port == 22` once tcp is settled) and port-80 share one index lookup
    assert rules.stats == {"evaluated": 3, "indexed": 2, "skipped": 11}


def test_residual_rules_keep_limit_and_redact(entries: dict[str, Any]) -> None:
    rules = compile_many({"a": 'http and limit(2) and redact("..session")'})
    assert rules(entries["http_post_500"]) == ["a"] and rules(entries["dns_a_ok"]) == []


def test_shared_paths_are_read_once_per_entry(entries: dict[str, Any]) -> None:
    rules = compile_many(
        {"a": "response.status >= 500", "b": "response.status == 404", "c": "dst.port == 22"}
    )
    assert rules(entries["http_post_500"]) == ["a"]
    assert rules(entries["http_get_200"]) == []
    memo = rules._memo
    assert set(memo.index) == {("response", "status")}


def test_unconstrained_and_or_requirements(entries: dict[str, Any]) -> None:
    rules = compile_many({"either": "(dns or tcp) and dst.port >= 22", "none": "not http"})
    assert rules(entries["tcp_ssh"]) == ["either", "none"]
    assert rules(entries["http_get_200"]) == []
    assert rules.stats["skipped"] == 1


def test_error_names_the_rule() -> None:
    with pytest.raises(KFLError) as info:
        compile_many({"good": "http", "broken": "http and"})
    assert "rule 'broken'" in info.value.message


def test_limits_and_redactions_stay_available_per_rule() -> None:
    rules = compile_many({"a": "http and limit(5)", "b": 'redact("..password")'})
    assert rules.queries["a"].limit == 5
    assert rules.queries["b"].redactions == ["..password"]


def test_fifty_rules_do_less_work_than_fifty_queries(entries: dict[str, Any]) -> None:
    rules = {f"r{i}": f"http and response.status == {500 + i}" for i in range(25)}
    rules |= {f"d{i}": f'dns and request.questions[0].name == "h{i}.example"' for i in range(25)}
    many = compile_many(rules)
    for entry in entries.values():
        many(entry)
    assert many.stats["skipped"] > many.stats["evaluated"]
    # the 25 status rules on an HTTP entry are one lookup, not 25 comparisons
    assert many.stats["evaluated"] == 0 and many.stats["indexed"] > 0


VALUES = st.one_of(
    st.sampled_from([500, 500.0, 500.5, "500", "500.0", "5e2", "abc", "ABC", True, None, {}, []]),
    st.lists(st.sampled_from([500, "abc", [500], "x"]), max_size=3),
)
CONSTS = st.sampled_from(["500", "500.0", "abc", "ABC", "5e2", "-1", "true", "nil", "x"])


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.tuples(st.sampled_from(["a.b", "a.c", "l[*]", "a..b"]), CONSTS), max_size=8),
    st.fixed_dictionaries({"a": st.fixed_dictionaries({"b": VALUES, "c": VALUES}), "l": VALUES}),
)
def test_equality_index_agrees_with_single_rules(pairs: list[tuple[str, str]], entry: Any) -> None:
    rests = ["", " and a.c != 1", " and a.b", " and not a.c == 500"]
    texts = {
        f"r{i}": f"{path} == {const}{rests[i % len(rests)]}"
        for i, (path, const) in enumerate(pairs)
    }
    texts["guard"] = "a.b != 1"
    many = compile_many(texts)
    assert many(entry) == [n for n, t in texts.items() if compile(t)(entry)]


def test_guarded_equality_runs_the_rest_only_on_a_hit(entries: dict[str, Any]) -> None:
    many = compile_many(
        {
            f"ns{i}": f'src.namespace == "{ns}" and dst.port == 80'
            for i, ns in enumerate(["storefront", "shop", "x"])
        }
    )
    assert many(entries["http_post_500"]) == ["ns0"]
    assert many(entries["http_get_200"]) == []
    assert many.stats["indexed"] == 6 and many.stats["evaluated"] == 0


def test_equality_index_is_used_for_same_path_rules(entries: dict[str, Any]) -> None:
    many = compile_many({f"p{p}": f"tcp and dst.port == {p}" for p in (22, 23, 80)})
    assert many(entries["tcp_ssh"]) == ["p22"]
    assert many.stats == {"evaluated": 0, "indexed": 3, "skipped": 0}
