"""A test kit for code that uses the pipeline (shipped in the package, as mitmproxy ships tflow).

``TableCompiler`` stands in for the KFL compiler where a test is about rule-set bookkeeping
(reload, errors, stream memory) rather than the language: each known query text maps to a plain
predicate, and anything else fails the way ``KFLError`` does, with a line and column.
``make_record``/``make_entry`` build stream records without a sensor.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

from streamtap.schema import DirectionStats, Endpoint, Node, StreamRecord

__all__ = ["FakeKFLError", "TableCompiler", "make_entry", "make_record"]

Entry = dict[str, Any]


class FakeKFLError(Exception):
    def __init__(self, query: str) -> None:
        super().__init__(f"unknown query\n{query}\n^")
        self.line = 1
        self.column = 1


class _Query:
    def __init__(self, pred: Callable[[Entry], bool], redact_keys: tuple[str, ...]) -> None:
        self.pred = pred
        self.redact_keys = redact_keys
        self.warnings: list[str] = []
        self.limit = None

    def __call__(self, entry: Entry) -> bool:
        return self.pred(entry)

    def redact(self, entry: Entry) -> Entry:
        out = dict(entry)
        for key in self.redact_keys:
            if key in out:
                out[key] = "[REDACTED]"
        return out


def _proto(name: str) -> Callable[[Entry], bool]:
    return lambda e: e.get("protocol", {}).get("name") == name


QUERIES: dict[str, tuple[Callable[[Entry], bool], tuple[str, ...]]] = {
    "http": (_proto("http"), ()),
    "dns": (_proto("dns"), ()),
    "http or dns": (lambda e: _proto("http")(e) or _proto("dns")(e), ()),
    "secret": (lambda e: "secret" in e, ("secret",)),
    "tcp": (_proto("tcp"), ()),
}


class TableCompiler:
    error = FakeKFLError

    def __init__(self) -> None:
        self.compiled: list[str] = []

    def compile(self, query: str) -> _Query:
        """Compile one query; ``compiled`` records each call, so tests see recompiles."""
        self.compiled.append(query)
        return self._compile(query)

    def _compile(self, query: str) -> _Query:
        if query not in QUERIES:
            raise FakeKFLError(query)
        pred, keys = QUERIES[query]
        return _Query(pred, keys)

    def compile_many(self, queries: Mapping[str, str]) -> Callable[[Entry], Iterable[str]]:
        compiled = {name: self._compile(q) for name, q in queries.items()}
        return lambda e: [name for name, q in compiled.items() if q(e)]


def make_entry(protocol: str, **extra: Any) -> Entry:
    return {"protocol": {"name": protocol}, **extra}


def make_record(
    stream: str = "s1",
    segment: int = 0,
    closed: bool = True,
    entries: tuple[Entry, ...] = (),
) -> StreamRecord:
    return StreamRecord(
        stream_id=stream,
        segment=segment,
        closed=closed,
        node=Node(name="n1"),
        layer4="tcp",
        src=Endpoint(ip="10.0.0.1", port=40000),
        dst=Endpoint(ip="10.0.0.2", port=80),
        first_ts_ns=1,
        last_ts_ns=2,
        client=DirectionStats(),
        server=DirectionStats(),
        entries=entries,
    )
