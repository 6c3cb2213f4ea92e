"""Every case of the shared contract (tests/data/kfl/cases.jsonl), one test id per case."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import pytest

from pipeline.kfl import KFLError, compile
from tests.unit.kfl.conftest import DATA, NOW_MS, load_cases

CASES = load_cases()


def _case_id(i: int, case: dict[str, Any]) -> str:
    kind = "error" if case.get("error") else "warning" if case.get("warning") else case["entry"]
    return f"{i:03d}-{kind}-{case['query'][:40]!r}"


@pytest.mark.parametrize("case", CASES, ids=[_case_id(i, c) for i, c in enumerate(CASES)])
def test_case(case: dict[str, Any], entries: dict[str, Any]) -> None:
    query = case["query"]
    if case.get("error"):
        with pytest.raises(KFLError) as info:
            compile(query, now_ms=NOW_MS)
        assert info.value.line >= 1 and info.value.column >= 1
        assert "^" in str(info.value)
        return
    q = compile(query, now_ms=NOW_MS)
    if case.get("warning"):
        assert q.warnings, f"expected a warning for {query!r}"
    if "entry" in case:
        assert q(entries[case["entry"]]) is case["match"], case.get("note", "")


def test_file_has_every_kind() -> None:
    kinds = {("error" in c, "warning" in c, "entry" in c) for c in CASES}
    assert (True, False, False) in kinds and (False, True, False) in kinds
    assert len([c for c in CASES if "entry" in c]) > 100


def _digests(folder: Path) -> dict[str, str]:
    return {
        name: hashlib.sha256((folder / name).read_bytes()).hexdigest()
        for name in ("entries.json", "cases.jsonl")
    }


def test_repo_copy_matches_the_shared_contract() -> None:
    """The copy is byte for byte the contract it was taken from: its SHA-256s are recorded in
    ``CONTRACT.sha256`` when it is copied, so an edit to the copy fails here on any clone, and
    where ``../shared/kfl`` sits next to the clone, a newer contract fails here too."""
    recorded = {
        name: digest
        for digest, name in (
            line.split() for line in (DATA / "CONTRACT.sha256").read_text().splitlines()
        )
    }
    assert _digests(DATA) == recorded
    shared = DATA.parents[2].parent / "shared" / "kfl"
    if shared.is_dir():
        assert _digests(shared) == recorded, "../shared/kfl changed: copy it again"
