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
        "names": {"10.0.0.9": "web.shop"},
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
