"""Compare entries with the tshark ground truth in the corpus manifest.

Works on ENTRY.md-shaped entries (not Items), so the same assertions run unchanged once the
real engine produces the entries instead of the scapy stand-in.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from typing import Any

__all__ = ["DELIBERATE_DIFFERENCES", "assert_matches_manifest", "dns_view", "http_view"]

#: captures where our entries differ from tshark's on purpose, and why (test_corpus.py checks
#: what we do instead on each of them)
DELIBERATE_DIFFERENCES = {
    "http11-many-methods.pcap": "streams whose first line is not a request line stay bare",
    "http11-post-chunked-retrans.pcap": "tshark shows two retransmitted responses again",
    "http11-qinq-2vlan.pcap": "we keep the status of a response the capture cut short",
    "http11-socks5-ipfrag.pcap": "HTTP inside SOCKS: the first payload is the SOCKS greeting",
    "http11-206-heavy-ooo.pcap": "tshark's reassembly never completes one 206 response",
}

Conversation = tuple[str, int, str, int]
_ANSWER_FIELDS = {
    "A": "ip",
    "AAAA": "ip",
    "CNAME": "cname",
    "NS": "ns",
    "PTR": "ptr",
}


def _conv(entry: dict[str, Any]) -> Conversation:
    return (entry["src"]["ip"], entry["src"]["port"], entry["dst"]["ip"], entry["dst"]["port"])


def _host(headers: dict[str, str]) -> str | None:
    return next((v for k, v in headers.items() if k.lower() == "host"), None)


def http_view(
    entries: Iterable[dict[str, Any]], manifest: dict[str, Any]
) -> tuple[dict[Conversation, list[tuple]], dict[Conversation, list[tuple]]]:
    """(ours, tshark's): per conversation, the requests in order as (method, uri, host, status)
    plus the statuses of responses without a request (under method None)."""
    ours: dict[Conversation, list[tuple]] = {}
    for e in entries:
        if e["protocol"]["name"] != "http":
            continue
        req, resp = e.get("request"), e.get("response")
        status = resp["status"] if resp else None
        row = (
            (req["method"], req["url"], _host(req["headers"]), status)
            if req
            else (None, None, None, status)
        )
        ours.setdefault(_conv(e), []).append(row)
    theirs: dict[Conversation, list[tuple]] = {}
    for t in manifest.get("http_transactions", []):
        conv = (t["src"], t["sport"], t["dst"], t["dport"])
        theirs.setdefault(conv, []).append((t["method"], t["uri"], t.get("host"), t["status"]))
    for r in manifest.get("http_unmatched_responses", []):
        conv = (r["dst"], r["dport"], r["src"], r["sport"])
        theirs.setdefault(conv, []).append((None, None, None, r["status"]))
    # unmatched responses have no position in tshark's list: compare them as a sorted tail
    for table in (ours, theirs):
        for conv, rows in table.items():
            table[conv] = [r for r in rows if r[0] is not None] + sorted(
                (r for r in rows if r[0] is None), key=str
            )
    return ours, theirs


def _answers(records: list[dict[str, Any]]) -> tuple:
    out = []
    for rec in records:
        field = _ANSWER_FIELDS.get(rec["type"])
        if field is not None:
            out.append((rec["name"], rec["type"], rec.get(field)))
        elif rec["type"] == "MX":
            out.append((rec["name"], "MX", rec["mx"]["exchange"]))
        elif rec["type"] == "SRV":
            out.append((rec["name"], "SRV", rec["srv"]["target"]))
        elif rec["type"] == "SOA":
            out.append((rec["name"], "SOA", rec["soa"]["mname"]))
    return tuple(sorted(out))


def dns_view(
    entries: Iterable[dict[str, Any]], manifest: dict[str, Any]
) -> tuple[Counter, Counter]:
    """(ours, tshark's): multisets of queries (id, name, type) and responses
    (id, rcode, answer records). Messages tshark found inside ICMP errors are left out:
    they are not a UDP flow."""
    ours: Counter = Counter()
    for e in entries:
        if e["protocol"]["name"] != "dns":
            continue
        req = e["request"]
        q = req["questions"][0] if req["questions"] else {"name": None, "type": None}
        if e["requestSize"] > 0:  # a real query (an unmatched response rebuilds its request)
            ours["Q", req["id"], q["name"], q["type"]] += 1
        resp = e.get("response")
        if resp is not None:
            # the response's own question is not in the entry (tshark's may be empty, as in
            # mDNS answers): responses are compared by id, rcode and their answer records
            ours["R", req["id"], resp["rcode"], _answers(resp["answers"])] += 1
    theirs: Counter = Counter()
    for m in manifest.get("dns_messages", []):
        if m.get("inside_icmp_error"):
            continue
        name = "" if m["qname"] == "<Root>" else m["qname"]
        if not m["response"]:
            theirs["Q", m["id"], name, m["qtype_name"]] += 1
            continue
        answers = []
        for a in m.get("answers", []):
            if a["type_name"] in _ANSWER_FIELDS or a["type_name"] in ("MX", "SRV", "SOA"):
                # tshark's JSON leaves "name" out of SRV answers; its summary starts with it
                owner = a.get("name", a["summary"].split(": type ", 1)[0])
                answers.append((owner, a["type_name"], a.get("data")))
        theirs["R", m["id"], m["rcode"], tuple(sorted(answers))] += 1
    return ours, theirs


def assert_matches_manifest(
    entries: Iterable[dict[str, Any]],
    manifest: dict[str, Any],
    *,
    skip_conversations: Iterable[Conversation] = (),
) -> None:
    """HTTP method, URI, host and status per request (and unmatched responses) per
    conversation, and DNS names, types, rcodes and answers, agree with tshark.

    ``skip_conversations`` lists conversations where we differ on purpose; the calling test
    must say why and check our behaviour there separately.
    """
    entries = list(entries)
    skip = set(skip_conversations)
    ours, theirs = http_view(entries, manifest)
    for conv in skip:
        ours.pop(conv, None)
        theirs.pop(conv, None)
    assert ours == theirs, _diff(ours, theirs)
    dns_ours, dns_theirs = dns_view(entries, manifest)
    assert dns_ours == dns_theirs, (
        f"only ours: {dns_ours - dns_theirs}\nonly tshark: {dns_theirs - dns_ours}"
    )


def _diff(ours: dict, theirs: dict) -> str:
    lines = []
    for conv in sorted(set(ours) | set(theirs), key=str):
        if ours.get(conv) != theirs.get(conv):
            lines.append(f"{conv}:\n  ours   {ours.get(conv)}\n  tshark {theirs.get(conv)}")
    return "\n".join(lines)
