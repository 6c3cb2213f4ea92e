"""Hypothesis strategies shared by the schema's hand-written checkers' tests: a published JSON
document with one to three of its values replaced, deleted, joined by an extra key or reordered,
so a fast checker can be held to pydantic's outcome on near-valid input."""

from __future__ import annotations

import copy
import string
from collections.abc import Sequence
from typing import Any

import orjson
from hypothesis import strategies as st

__all__ = ["JSON_VALUES", "mutated"]

JSON_VALUES = st.one_of(
    st.sampled_from(
        [
            None,
            True,
            False,
            0,
            -1,
            1,
            65535,
            65536,
            2**63,
            2**64 - 1,
            -(2**63),
            1.0,
            1.5,
            "80",
            "1",
            "",
            "tcp",
            "udp",
            "sctp",
            "client",
            "server",
            "GOVERNANCE",
            "COMPLIANCE",
            [],
            {},
            [1, 2],
            ["1"],
            [True],
            {"ip": "1.2.3.4", "port": 1},
            {"port": 1, "ip": "1.2.3.4"},
            {"retention_days": 0},
            # base64: canonical, non-canonical trailing bits, bad padding, bad characters
            "AAAA",
            "Zg==",
            "Zh==",
            "Zm8=",
            "Zm9=",
            "Zg",
            "Zg=",
            "Zg===",
            "=Zg=",
            "====",
            "==",
            "Zg==Zg==",
            "999w=",
            "AAAA=",
            "Zg==\n",
            " Zg==",
            "Zm9v\nYmFy",
            "Zm9v-_",
            "é",
        ]
    ),
    st.integers(min_value=-(2**63), max_value=2**64 - 1),
    st.text(alphabet=string.ascii_letters + string.digits + "+/=", max_size=9),
    st.text(max_size=6),
)


def _paths(obj: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [prefix]
    if isinstance(obj, dict):
        for k, v in obj.items():
            out += _paths(v, (*prefix, k))
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            out += _paths(v, (*prefix, i))
    return out


def _get(obj: Any, path: tuple[Any, ...]) -> Any:
    for step in path:
        obj = obj[step]
    return obj


@st.composite
def mutated(draw: st.DrawFn, bases: Sequence[bytes], extra_names: Sequence[str]) -> bytes:
    """One of ``bases`` (JSON documents) with one to three mutations; an added key is named
    from ``extra_names``."""
    doc = orjson.loads(bases[draw(st.integers(0, len(bases) - 1))])
    for _ in range(draw(st.integers(1, 3))):
        paths = [p for p in _paths(doc) if p]
        if not paths:
            break
        path = draw(st.sampled_from(paths))
        parent = _get(doc, path[:-1])
        key = path[-1]
        op = draw(st.sampled_from(["set", "set", "set", "delete", "extra", "reorder"]))
        if op == "set":
            parent[key] = copy.deepcopy(draw(JSON_VALUES))
        elif op == "delete":
            del parent[key]
        elif op == "extra" and isinstance(parent, dict):
            parent[draw(st.sampled_from(list(extra_names)))] = copy.deepcopy(draw(JSON_VALUES))
        elif op == "reorder" and isinstance(parent, dict):
            items = list(parent.items())
            parent.clear()
            parent.update(reversed(items))
    return orjson.dumps(doc)
