"""``streamtap watch`` lines and filters, and the /stats counters."""

from __future__ import annotations

from pipeline.matcher import decide
from pipeline.rules import RuleSpec, build_ruleset
from pipeline.stats import PipelineStats
from pipeline.testing import make_record
from pipeline.watch import render_line, wants
from streamtap.schema.testing import bare_entry, dns_entry, http_entry


def message(*entries: dict, rules: dict[str, str] | None = None):  # type: ignore[no-untyped-def]
    ruleset = build_ruleset(
        {n: RuleSpec(kfl=q) for n, q in (rules or {"r": "http or dns"}).items()}
    )
    d = decide(make_record(entries=entries), ruleset, None, partition=0, offset=0, max_pending=0)
    assert d.message is not None
    return d.message


def test_http_line() -> None:
    line = render_line(message(bare_entry(), http_entry("POST", "/api?x=1", 201)))
    assert line.startswith("1970-01-01T00:00:00.000Z  r  HTTP  10.0.0.1:40000 -> 10.0.0.2:80  ")
    assert line.endswith("POST /api?x=1 -> 201")


def test_dns_line_and_more_count() -> None:
    line = render_line(message(dns_entry(), dns_entry()))
    assert "  DNS  " in line and "(+1 more)" in line and " -> " in line


def test_filters() -> None:
    m = message(http_entry(), rules={"a": "http", "b": "dns"})
    assert wants(m, None, None) and wants(m, "a", None) and not wants(m, "b", None)
    assert not wants(m, None, lambda e: False) and wants(m, None, lambda e: True)


def test_stats_rates_and_lag() -> None:
    stats = PipelineStats(window_s=10)
    stats.sample(0.0)
    stats.records, stats.record_bytes = 100, 1000
    stats.positions = {0: (5, 9), 1: (3, 3)}
    doc = stats.as_dict(2.0)
    assert doc["records_per_s"] == 50.0 and doc["lag"] == {"total": 4, "partitions": {0: 4, 1: 0}}
