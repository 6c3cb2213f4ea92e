"""Properties that must hold for every input, checked with hypothesis."""

from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from pipeline.kfl import KFLError, compile, compile_many
from tests.unit.kfl.conftest import NOW_MS, load_cases
from tests.unit.kfl.strategies import ANY_ENTRY, ENTRIES, JSON, NOISY_QUERIES, QUERIES

CONTRACT_QUERIES = sorted({c["query"] for c in load_cases() if not c.get("error")})
SETTINGS = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _compile_or_none(text: str) -> Any:
    try:
        return compile(text, now_ms=NOW_MS)
    except KFLError as exc:
        assert exc.line >= 1 and exc.column >= 1
        assert "^" in str(exc) or exc.line > text.count("\n") + 1
        return None


@SETTINGS
@given(st.text(max_size=40))
def test_random_text_raises_only_kflerror(text: str) -> None:
    _compile_or_none(text)


@SETTINGS
@given(st.text(alphabet="abcdehilnoprsttu_.\"'()[]*=!<>&|-0123456789 \n/r\\,", max_size=40))
def test_query_alphabet_text_raises_only_kflerror(text: str) -> None:
    _compile_or_none(text)


@SETTINGS
@given(NOISY_QUERIES, st.lists(ANY_ENTRY, min_size=1, max_size=4))
def test_grammar_shaped_queries_compile_or_kflerror_and_never_raise(
    text: str, entries: list[Any]
) -> None:
    q = _compile_or_none(text)
    if q is None:
        return
    for entry in entries:
        assert q(entry) in (True, False)
        q.redact(entry)


@SETTINGS
@given(st.sampled_from(CONTRACT_QUERIES), ANY_ENTRY)
def test_contract_queries_never_raise_on_any_entry(text: str, entry: Any) -> None:
    q = compile(text, now_ms=NOW_MS)
    assert q(entry) in (True, False)


@SETTINGS
@given(QUERIES, st.lists(ANY_ENTRY, max_size=4))
def test_normal_form_reparses_to_an_equivalent_query(text: str, extra: list[Any]) -> None:
    q = _compile_or_none(text)
    assume(q is not None)
    again = compile(q.normalized, now_ms=NOW_MS)
    assert again.normalized == q.normalized, "the normal form is a fixed point"
    assert again.limit == q.limit and again.redactions == q.redactions
    grouping = [w for w in again.warnings if "mixed" in w or "negates" in w]
    assert not grouping, "the normal form parenthesises what Kubeshark grouped differently"
    for entry in [*ENTRIES.values(), *extra]:
        assert again(entry) is q(entry)


@SETTINGS
@given(st.sampled_from(CONTRACT_QUERIES))
def test_contract_queries_normal_form_is_equivalent(text: str) -> None:
    q = compile(text, now_ms=NOW_MS)
    again = compile(q.normalized, now_ms=NOW_MS)
    for entry in ENTRIES.values():
        assert again(entry) is q(entry)


@SETTINGS
@given(st.lists(QUERIES, min_size=1, max_size=6), st.lists(ANY_ENTRY, min_size=1, max_size=4))
def test_compile_many_agrees_with_single_queries(texts: list[str], entries: list[Any]) -> None:
    singles = {f"r{i}": q for i, t in enumerate(texts) if (q := _compile_or_none(t)) is not None}
    assume(singles)
    rules = compile_many({n: q.text for n, q in singles.items()}, now_ms=NOW_MS)
    for entry in [*entries, *ENTRIES.values()]:
        assert rules(entry) == [n for n, q in singles.items() if q(entry)]


@SETTINGS
@given(JSON)
def test_redact_never_changes_the_input(entry: Any) -> None:
    q = compile('redact("..name", "x[*]", "request.headers.status")')
    before = repr(entry)
    q.redact(entry)
    assert repr(entry) == before
