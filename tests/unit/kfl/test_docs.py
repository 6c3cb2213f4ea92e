"""docs/kfl.md stays true: the function table is the generated one, and every example compiles."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from pipeline.kfl import compile
from pipeline.kfl.functions import markdown_table

DOC = Path(__file__).resolve().parents[3] / "docs" / "kfl.md"


def _examples() -> list[str]:
    text = DOC.read_text()
    block = text.split("## Examples", 1)[1].split("```text", 1)[1].split("```", 1)[0]
    rules: list[str] = []
    for line in block.splitlines():
        code = re.sub(r"//.*", "", line).rstrip()
        if not code.strip():
            continue
        if line.startswith((" ", "\t")) and rules:
            rules[-1] += "\n" + code
        else:
            rules.append(code)
    return rules


def test_function_table_is_generated_from_the_registry() -> None:
    text = DOC.read_text()
    table = text.split("<!-- kfl-functions:start -->\n", 1)[1].split("<!-- kfl-functions:end -->")[
        0
    ]
    assert table.strip() == markdown_table().strip()


@pytest.mark.parametrize("rule", _examples())
def test_documented_example_compiles(rule: str) -> None:
    q = compile(rule)
    assert q.normalized


def test_there_are_many_examples() -> None:
    assert len(_examples()) >= 15
