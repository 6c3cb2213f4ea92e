"""``redact()`` applied: a copy of the entry with the named values replaced.

Paths are resolved with the query rules (fan-out, ``..name``, case-insensitive header names), but
only values that exist are replaced, so redaction never invents fields.
"""

from __future__ import annotations

from typing import Any

from pipeline.kfl.syntax import Deep, Index, Key, Path, Step, Wild
from pipeline.kfl.values import json_copy

__all__ = ["REDACTED", "redact"]

REDACTED = "[REDACTED]"


def redact(entry: Any, paths: list[Path]) -> Any:
    doc = json_copy(entry)
    for path in paths:
        _apply(doc, path.steps)
    return doc


def _apply(doc: Any, steps: tuple[Step, ...]) -> None:
    holders = [doc]
    prev: Step | None = None
    for step in steps[:-1]:
        holders = [c[k] for h in holders for c, k in _slots(h, step, prev)]
        prev = step
    for holder in holders:
        for container, key in _slots(holder, steps[-1], prev):
            container[key] = REDACTED


def _slots(holder: Any, step: Step, prev: Step | None) -> list[tuple[Any, Any]]:
    """(container, key) pairs below ``holder`` that ``step`` selects."""
    if isinstance(step, Key):
        if type(holder) is not dict:
            return []
        if isinstance(prev, Key | Deep) and prev.name == "headers":
            folded = step.name.lower()
            return [(holder, k) for k in holder if type(k) is str and k.lower() == folded]
        return [(holder, step.name)] if step.name in holder else []
    if isinstance(step, Index):
        if type(holder) is list and -len(holder) <= step.index < len(holder):
            return [(holder, step.index)]
        return []
    if isinstance(step, Wild):
        if type(holder) is dict:
            return [(holder, k) for k in holder]
        return [(holder, i) for i in range(len(holder))] if type(holder) is list else []
    if isinstance(step, Deep):
        return [(c, step.name) for c in _deep_holders(holder, step.name)]
    return []


def _deep_holders(v: Any, name: str) -> list[dict[Any, Any]]:
    holders: list[dict[Any, Any]] = []
    stack = [v]
    while stack:
        x = stack.pop()
        if type(x) is dict:
            if name in x:
                holders.append(x)
            stack.extend(x.values())
        elif type(x) is list:
            stack.extend(x)
    return holders
