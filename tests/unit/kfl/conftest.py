"""Shared fixtures: the contract's entries and cases, read from the repo's own copy."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[3]
DATA = ROOT / "tests" / "data" / "kfl"
if str(ROOT) not in sys.path:  # the test modules import helpers as tests.unit.kfl.*
    sys.path.insert(0, str(ROOT))
NOW_MS = 1795780800000  # 2026-11-27T12:00:00Z, two hours after the sample entries


def load_entries() -> dict[str, Any]:
    return json.loads((DATA / "entries.json").read_text())


def load_cases() -> list[dict[str, Any]]:
    lines = (DATA / "cases.jsonl").read_text().splitlines()
    return [json.loads(line) for line in lines if line.strip()]


@pytest.fixture(scope="session")
def entries() -> dict[str, Any]:
    return load_entries()
