"""Shared fixtures: the contract's entries and cases, read from the repo's own copy."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

DATA = Path(__file__).resolve().parents[2] / "data" / "kfl"
NOW_MS = 1795780800000  # 2026-11-27T12:00:00Z, two hours after the sample entries


def load_entries() -> dict[str, Any]:
    return json.loads((DATA / "entries.json").read_text())


def load_cases() -> list[dict[str, Any]]:
    lines = (DATA / "cases.jsonl").read_text().splitlines()
    return [json.loads(line) for line in lines if line.strip()]


@pytest.fixture(scope="session")
def entries() -> dict[str, Any]:
    return load_entries()
