"""DNS answers -> names for addresses."""

from __future__ import annotations

from producers.names import NameTable


def _resp(*answers: dict) -> dict:
    return {"answers": list(answers)}


def test_a_and_aaaa() -> None:
    t = NameTable()
    n = t.learn(
        {"questions": [{"name": "api.example", "type": "A"}]},
        _resp(
            {"name": "api.example", "type": "A", "ip": "192.0.2.1"},
            {"name": "api.example", "type": "AAAA", "ip": "2001:db8::1"},
        ),
    )
    assert n == 2
    assert t.name("192.0.2.1") == "api.example" and t.name("2001:db8::1") == "api.example"
    assert t.name("192.0.2.99") == ""


def test_cname_chain_names_the_question() -> None:
    t = NameTable()
    t.learn(
        {"questions": [{"name": "www.shop.example."}]},
        _resp(
            {"name": "www.shop.example", "type": "CNAME", "cname": "shop.cdn.example"},
            {"name": "shop.cdn.example", "type": "CNAME", "cname": "edge7.cdn.example"},
            {"name": "edge7.cdn.example", "type": "A", "ip": "198.51.100.7"},
        ),
    )
    assert t.name("198.51.100.7") == "www.shop.example"


def test_cname_loop_terminates() -> None:
    t = NameTable()
    t.learn(
        {"questions": [{"name": "q.example"}]},
        _resp(
            {"name": "a.example", "type": "CNAME", "cname": "b.example"},
            {"name": "b.example", "type": "CNAME", "cname": "a.example"},
            {"name": "b.example", "type": "A", "ip": "192.0.2.5"},
        ),
    )
    assert t.name("192.0.2.5") in {"a.example", "b.example"}


def test_lru_cap() -> None:
    t = NameTable(max_entries=3)
    for i in range(5):
        t.learn(None, _resp({"name": f"h{i}.example", "type": "A", "ip": f"192.0.2.{i}"}))
    assert len(t) == 3 and t.evicted == 2
    assert t.name("192.0.2.0") == "" and t.name("192.0.2.4") == "h4.example"


def test_garbage_is_ignored() -> None:
    t = NameTable()
    assert t.learn(None, None) == 0
    assert t.learn({"questions": "x"}, {"answers": "nope"}) == 0
    assert t.learn(None, _resp("str", {"type": "A"}, {"type": "A", "ip": "1.2.3.4"})) == 0
