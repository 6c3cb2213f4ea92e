"""DNS dissector: wire parsing (checked against dnspython as an independent encoder),
pairing, TCP framing and hostile messages."""

from __future__ import annotations

import random
import struct

import dns.edns
import dns.flags
import dns.message
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.rrset
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from producers.dissect import Direction, DissectError, DissectLimits, DnsDissector, Item
from producers.dissect.dns import parse_message
from streamtap.schema import DnsEntry

C, S = Direction.CLIENT, Direction.SERVER


def query(name: str = "example.com", rtype: str = "A", qid: int = 4660) -> dns.message.Message:
    q = dns.message.make_query(name, rtype)
    q.id = qid
    return q


def answer(q: dns.message.Message, *records: str, rcode: int = 0, section: str = "answer") -> bytes:
    r = dns.message.make_response(q)
    r.set_rcode(rcode)
    for text in records:
        name, ttl, rclass, rtype, *data = text.split(" ", 4)
        rrset = dns.rrset.from_text(name, int(ttl), rclass, rtype, " ".join(data))
        getattr(r, section).append(rrset)
    return r.to_wire()


def items_of(d: DnsDissector) -> list[Item]:
    out = []
    while (item := d.next_item()) is not None:
        out.append(item)
    return out


def validate(item: Item) -> None:
    entry = {
        "id": "s-0",
        "stream": "s",
        "index": 0,
        "node": {"name": "n"},
        "protocol": {"name": "dns", "abbr": "DNS", "version": "", "layer4": item.protocol.layer4},
        "src": {"ip": "10.0.0.1", "port": 1},
        "dst": {"ip": "10.0.0.2", "port": 53},
        "timestamp": 0,
        "request": item.request,
    }
    if item.response is not None:
        entry["response"] = item.response
    DnsEntry.model_validate(entry)


RECORDS = [
    ("example.com. 300 IN A 93.184.216.34", {"ip": "93.184.216.34"}),
    ("example.com. 300 IN AAAA 2001:db8::1", {"ip": "2001:db8::1"}),
    ("example.com. 60 IN CNAME web.example.net.", {"cname": "web.example.net"}),
    ("example.com. 60 IN NS ns1.example.com.", {"ns": "ns1.example.com"}),
    ("4.3.2.1.in-addr.arpa. 60 IN PTR host.example.com.", {"ptr": "host.example.com"}),
    (
        "example.com. 60 IN MX 10 mx.example.com.",
        {"mx": {"preference": 10, "exchange": "mx.example.com"}},
    ),
    ('example.com. 60 IN TXT "v=spf1 -all" "second"', {"txts": ["v=spf1 -all", "second"]}),
    (
        "_sip._tcp.example.com. 60 IN SRV 1 2 5060 sip.example.com.",
        {"srv": {"priority": 1, "weight": 2, "port": 5060, "target": "sip.example.com"}},
    ),
    (
        "example.com. 60 IN SOA ns.example.com. admin.example.com. 7 3600 600 86400 300",
        {
            "soa": {
                "mname": "ns.example.com",
                "rname": "admin.example.com",
                "serial": 7,
                "refresh": 3600,
                "retry": 600,
                "expire": 86400,
                "minimum": 300,
            }
        },
    ),
    (
        'example.com. 60 IN CAA 0 issue "ca.example"',
        {"rdata": "000569737375656361" + "2e6578616d706c65"},
    ),
]


@pytest.mark.parametrize(("text", "fields"), RECORDS)
def test_record_types(text: str, fields: dict) -> None:
    name, ttl, _cls, rtype, _ = text.split(" ", 4)
    q = query(name.rstrip("."), rtype)
    d = DnsDissector("udp")
    d.feed(C, q.to_wire(), 1_000_000)
    d.feed(S, answer(q, text), 3_000_000)
    (item,) = items_of(d)
    validate(item)
    (rec,) = item.response["answers"]
    assert rec == {
        "name": name.rstrip("."),
        "type": rtype,
        "class": "IN",
        "ttl": int(ttl),
        **fields,
    }
    assert item.request == {
        "opCode": "Query",
        "id": 4660,
        "questions": [{"name": name.rstrip("."), "type": rtype, "class": "IN"}],
    }
    assert item.response["code"] == "No Error" and item.response["rcode"] == 0
    assert item.response_ts_ns == 3_000_000
    assert item.request_size == len(q.to_wire())


def test_sections_and_nxdomain() -> None:
    q = query("nope.invalid", "AAAA", 17)
    wire = answer(
        q,
        "invalid. 86400 IN SOA a.root. nstld.verisign. 1 1800 900 604800 86400",
        rcode=dns.rcode.NXDOMAIN,
        section="authority",
    )
    d = DnsDissector("udp")
    d.feed(C, q.to_wire(), 1)
    d.feed(S, wire, 2)
    (item,) = items_of(d)
    assert item.response["code"] == "Non-Existent Domain" and item.response["rcode"] == 3
    assert item.response["answers"] == [] and item.response["additionals"] == []
    assert item.response["authorities"][0]["soa"]["mname"] == "a.root"


def test_edns_opt_and_extended_rcode() -> None:
    q = query()
    q.use_edns(0, dns.flags.DO, 1232)
    r = dns.message.make_response(q)
    r.use_edns(0, dns.flags.DO, 1232)
    r.set_rcode(dns.rcode.BADVERS)
    d = DnsDissector("udp")
    d.feed(C, q.to_wire(), 1)
    d.feed(S, r.to_wire(), 2)
    (item,) = items_of(d)
    validate(item)
    assert item.response["rcode"] == 16
    (opt,) = item.response["additionals"]
    assert opt["type"] == "OPT" and opt["name"] == ""
    assert opt["opt"]["udpPayloadSize"] == 1232 and opt["opt"]["do"] is True


def test_pairing_by_id_and_question_and_end() -> None:
    a, b, lost = query("a.test", qid=7), query("b.test", qid=7), query("c.test", qid=9)
    d = DnsDissector("udp")
    for q in (a, b, lost):
        d.feed(C, q.to_wire(), 1)
    d.feed(S, answer(b, "b.test. 1 IN A 10.0.0.2"), 2)
    d.feed(S, answer(a, "a.test. 1 IN A 10.0.0.1"), 3)
    got = [(i.request["questions"][0]["name"], i.response["answers"][0]["ip"]) for i in items_of(d)]
    assert got == [("b.test", "10.0.0.2"), ("a.test", "10.0.0.1")]
    d.end(4)
    (left,) = items_of(d)
    assert left.request["id"] == 9 and left.response is None


def test_unmatched_response_rebuilds_request() -> None:
    q = query("x.test")
    d = DnsDissector("udp", "mdns")
    d.feed(S, answer(q, "x.test. 1 IN A 10.1.1.1"), 5)
    (item,) = items_of(d)
    assert item.extra["unmatched_response"] is True and item.extra["variant"] == "mdns"
    assert item.request["questions"][0]["name"] == "x.test"
    assert item.request_size == 0


def test_pending_table_is_bounded() -> None:
    d = DnsDissector("udp", limits=DissectLimits(max_pending=2))
    for i in range(3):
        d.feed(C, query(f"q{i}.test", qid=i).to_wire(), i)
    (evicted,) = items_of(d)
    assert evicted.request["id"] == 0 and evicted.extra["evicted"] is True


def test_mdns_cache_flush_bit_is_masked() -> None:
    q = query("host.local")
    r = dns.message.from_wire(answer(q, "host.local. 120 IN A 10.0.0.7"))
    wire = bytearray(r.to_wire())
    i = wire.rfind(b"\x00\x01\x00\x01")  # the answer's type A, class IN
    wire[i + 2] |= 0x80  # set cache-flush
    assert parse_message(bytes(wire), mdns=True).answers[0]["class"] == "IN"
    assert parse_message(bytes(wire)).answers[0]["class"] == "CLASS32769"


def _tcp(msg: bytes) -> bytes:
    return struct.pack("!H", len(msg)) + msg


TCP_SCRIPT = [
    (C, _tcp(query("a.test", qid=1).to_wire()) + _tcp(query("b.test", qid=2).to_wire())),
    (S, _tcp(answer(query("a.test", qid=1), "a.test. 5 IN A 10.0.0.1"))),
    (
        S,
        _tcp(
            answer(query("b.test", qid=2), "b.test. 5 IN CNAME a.test.", "a.test. 5 IN A 10.0.0.1")
        ),
    ),
]


def run_tcp(split: int | random.Random | None) -> list[Item]:
    d = DnsDissector("tcp")
    items: list[Item] = []
    for ts, (direction, data) in enumerate(TCP_SCRIPT):
        pos = 0
        while pos < len(data):
            n = (
                len(data)
                if split is None
                else split
                if isinstance(split, int)
                else split.randint(1, 30)
            )
            d.feed(direction, data[pos : pos + n], ts)
            pos += n
            items += items_of(d)
    d.end(99)
    return items + items_of(d)


def test_tcp_framing_whole_and_byte_by_byte() -> None:
    whole = run_tcp(None)
    assert [i.request["questions"][0]["name"] for i in whole] == ["a.test", "b.test"]
    assert whole[0].request_size == len(_tcp(query("a.test", qid=1).to_wire()))
    assert whole[0].response_size == len(TCP_SCRIPT[1][1])
    assert run_tcp(1) == whole
    assert run_tcp(5) == whole


@settings(max_examples=50, deadline=None)
@given(st.randoms(use_true_random=False))
def test_tcp_random_splits(rnd: random.Random) -> None:
    assert run_tcp(rnd) == run_tcp(None)


def test_tcp_trailing_partial_message_is_ignored() -> None:
    d = DnsDissector("tcp")
    q = query().to_wire()
    d.feed(C, _tcp(q) + _tcp(q)[:7], 1)
    d.end(2)
    assert len(items_of(d)) == 1


def test_tcp_gap_waits_for_a_plausible_message() -> None:
    d = DnsDissector("tcp")
    d.feed(C, _tcp(query("a.test", qid=1).to_wire())[:10], 1)
    d.gap(C, 30, 2)
    d.feed(C, b"\x99" * 10, 3)  # rest of a lost message: dropped
    d.feed(C, _tcp(query("b.test", qid=2).to_wire()), 4)
    d.end(5)
    assert [i.request["questions"][0]["name"] for i in items_of(d)] == ["b.test"]


def _header(qd: int = 1, an: int = 0, flags: int = 0x0100) -> bytes:
    return struct.pack("!HHHHHH", 1, flags, qd, an, 0, 0)


HOSTILE = {
    "pointer to itself": _header() + b"\xc0\x0c\x00\x01\x00\x01",
    "two pointers in a loop": _header() + b"\x01a\xc0\x0e\xc0\x0c\x00\x01\x00\x01",
    "pointer past the end": _header() + b"\xc0\xff\x00\x01\x00\x01",
    "label past the end": _header() + b"\x3fabc",
    "name over 255 octets": _header()
    + b"\x3f"
    + b"a" * 63
    + (b"\x3f" + b"b" * 63) * 4
    + b"\x00\x00\x01\x00\x01",
    "question cut short": _header() + b"\x01a\x00\x00",
    "more records than bytes": _header(qd=0, an=60000, flags=0x8100),
    "rdlength past the end": _header(qd=0, an=1, flags=0x8100)
    + b"\x00\x00\x01\x00\x01\x00\x00\x00\x01\xff\xff\x01",
    "extended label type": _header() + b"\x41abc\x00\x00\x01\x00\x01",
    "short header": b"\x00\x01\x01",
}


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_hostile_first_message_raises(name: str) -> None:
    d = DnsDissector("udp")
    with pytest.raises(DissectError):
        d.feed(C, HOSTILE[name], 1)


def test_hostile_message_after_good_ones_is_skipped_and_counted() -> None:
    d = DnsDissector("udp")
    q = query()
    d.feed(C, q.to_wire(), 1)
    d.feed(S, HOSTILE["pointer to itself"], 2)
    d.feed(S, answer(q, "example.com. 1 IN A 10.0.0.1"), 3)
    (item,) = items_of(d)
    assert item.extra["malformed_messages"] == 1


_label = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789-", min_size=1, max_size=20)
_name = st.lists(_label, min_size=1, max_size=5).map(".".join)


@settings(max_examples=100, deadline=None)
@given(
    qname=_name,
    targets=st.lists(_name, min_size=0, max_size=1),  # CNAME is a singleton type
    ips=st.lists(st.ip_addresses(v=4).map(str), min_size=0, max_size=5, unique=True),
    qid=st.integers(0, 65535),
)
def test_agrees_with_dnspython_on_generated_messages(
    qname: str, targets: list[str], ips: list[str], qid: int
) -> None:
    """dnspython encodes (with its own name compression); our parser must read back the
    same names and data."""
    q = query(qname, "A", qid)
    records = [f"{qname}. 30 IN CNAME {t}." for t in targets] + [
        f"{qname}. 30 IN A {ip}" for ip in ips
    ]
    wire = answer(q, *records)
    msg = parse_message(wire)
    ref = dns.message.from_wire(wire)
    assert msg.id == ref.id == qid
    assert msg.questions == [{"name": qname, "type": "A", "class": "IN"}]
    ours = sorted((r["name"], r.get("cname") or r.get("ip")) for r in msg.answers)
    theirs = sorted(
        (rrset.name.to_text(omit_final_dot=True), rd.to_text().rstrip("."))
        for rrset in ref.answer
        for rd in rrset
    )
    assert ours == theirs


def test_name_length_limit_counts_compressed_suffixes() -> None:
    """A name built from a label plus a pointer to an earlier (cached) name is still held to
    255 octets on the wire."""
    labels = [b"a" * 61] * 4  # 4 * 62 + 1 = 249 octets
    qname = b"".join(bytes([len(x)]) + x for x in labels) + b"\x00"
    question = qname + b"\x00\x01\x00\x01"
    ok_owner = b"\x04abcd\xc0\x0c"  # 5 + 249 = 254 octets
    bad_owner = b"\x06abcdef\xc0\x0c"  # 7 + 249 = 256 octets
    rr = b"\x00\x01\x00\x01\x00\x00\x00\x3c\x00\x04\x0a\x00\x00\x01"
    header = struct.pack("!HHHHHH", 1, 0x8180, 1, 1, 0, 0)
    msg = parse_message(header + question + ok_owner + rr)
    assert msg.answers[0]["name"] == "abcd." + ".".join(x.decode() for x in labels)
    with pytest.raises(DissectError):
        parse_message(header + question + bad_owner + rr)
