"""Manifest pruning: an object is skipped only when its manifest proves it cannot match."""

from __future__ import annotations

import orjson

from replay.manifest import Criteria, criteria_from, may_match, parse_manifest
from replay.pushdown import plan

SEC = 1_000_000_000


def _manifest(**over: object) -> bytes:
    doc = {
        "object_key": "rec/http/node-1/2026/11/27/10/a.pcap",
        "time_range": {"first_ns": 100 * SEC, "last_ns": 200 * SEC},
        "rules": ["http"],
        "streams": [
            {
                "stream_id": "s1",
                "layer4": "tcp",
                "src": {"ip": "10.0.0.5", "port": 40000},
                "dst": {"ip": "10.0.0.9", "port": 80},
                "protocol": "http",
                "entries": [{"method": "GET", "path": "/", "status": 200}],
            }
        ],
        "name_resolution": {"10.0.0.9": ["web.shop", "web.shop.svc"]},
    }
    doc.update(over)
    return orjson.dumps(doc)


def test_parse_reads_range_rules_streams_and_names() -> None:
    m = parse_manifest(_manifest())
    assert (m.first_ns, m.last_ns) == (100 * SEC, 200 * SEC)
    assert m.rules == {"http"}
    assert m.streams[0].dst == ("10.0.0.9", 80)
    assert m.streams[0].statuses == {200}
    assert m.names == {"10.0.0.9": "web.shop"}


def test_object_key_defaults_from_the_manifest_key() -> None:
    m = parse_manifest(_manifest(object_key=None), "p/x.pcap.manifest.json")
    assert m.object_key == "p/x.pcap"


def test_time_range_prunes_only_outside() -> None:
    m = parse_manifest(_manifest())
    assert not may_match(m, Criteria(since_ns=201 * SEC))
    assert not may_match(m, Criteria(until_ns=99 * SEC))
    assert may_match(m, Criteria(since_ns=150 * SEC, until_ns=400 * SEC))


def test_rule_prunes() -> None:
    m = parse_manifest(_manifest())
    assert not may_match(m, Criteria(rule="dns"))
    assert may_match(m, Criteria(rule="http"))


def test_five_tuple_from_kfl_prunes() -> None:
    m = parse_manifest(_manifest())
    hit = criteria_from(plan('src.ip == "10.0.0.5" and src.port == 40000 and dst.port == 80'))
    miss = criteria_from(plan('src.ip == "10.0.0.5" and src.port == 40001'))
    assert may_match(m, hit)
    assert not may_match(m, miss)


def test_protocol_and_status_from_entry_summaries_prune() -> None:
    m = parse_manifest(_manifest())
    assert not may_match(m, criteria_from(plan("dns")))
    assert not may_match(m, criteria_from(plan("response.status == 500")))
    assert may_match(m, criteria_from(plan("http and response.status == 200")))


def test_what_a_manifest_does_not_say_never_prunes() -> None:
    bare = parse_manifest(orjson.dumps({"object_key": "k.pcap"}))
    assert may_match(bare, criteria_from(plan('dns and src.ip == "1.2.3.4"'), 1, 2, "r"))
    # Conditions the pushdown cannot express keep the object too.
    assert may_match(parse_manifest(_manifest()), criteria_from(plan("http or dns")))


def test_reads_what_the_sink_writes() -> None:
    """Format drift between sink and replay would silently stop pruning: pin it here."""
    from replay.testing import dns_entry, http_entry, make_record
    from sinks.batch import ClosedBatch, Consumed
    from sinks.manifest import build_manifest
    from sinks.plan import PlanOptions, plan_batch
    from streamtap.schema import MatchedPackets, MatchedStream, RuleSettings

    records = [
        make_record([http_entry("e1", 0, 1_000, src=("10.1.1.1", 4000, ""), status=404)]),
        make_record([dns_entry("e2", 0, 2_000, dst=("10.96.0.10", 53, "kube-dns.kube-system"))]),
    ]
    rules = {"web": RuleSettings()}
    messages = tuple(
        Consumed(0, i, 1_000 + i, 100, MatchedPackets.of(MatchedStream(record=r, rules=rules)))
        for i, r in enumerate(records)
    )
    (obj,) = plan_batch(ClosedBatch(0, messages, "size"), PlanOptions(default_prefix="p"))
    m = parse_manifest(build_manifest(obj, None))
    assert m.object_key == str(obj.key)
    assert m.rules == {"web"}
    assert (m.first_ns, m.last_ns) == (records[0].first_ts_ns, records[1].last_ts_ns)
    http, dns = m.streams
    assert http.src == ("10.1.1.1", 4000) and http.protocols == {"http"}
    assert http.statuses == {404} and dns.protocols == {"dns"}
    assert m.names["10.96.0.10"] == "kube-dns.kube-system"
    assert m.node == "worker-1"
    assert not may_match(m, criteria_from(plan('src.ip == "10.1.1.2"')))
    assert may_match(m, criteria_from(plan('src.ip == "10.1.1.1" and response.status == 404')))
