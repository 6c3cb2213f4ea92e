"""The engine with synthetic traffic: entries from a fake dissector, bare fallbacks, segments,
size and memory caps, name resolution, and hostile frames."""

from __future__ import annotations

import random
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import producers.dissect as dissect
from producers.decode.synth import ACK, FIN, PSH, SYN, fragment_ipv4, tcp_frame, udp, udp_frame
from producers.dissect import Direction, DissectError, Dissector, Item, ProtocolInfo
from producers.engine import Engine, EngineConfig
from producers.reassembly import ReassemblyConfig
from producers.records import entry_size, item_entry
from streamtap.schema import Node, encode_record, make_stream_id

C, S = "10.1.0.5", "10.1.9.9"
MS = 1_000_000
SEC = 1_000_000_000
T0 = 1_700_000_000 * SEC
ECHO = ProtocolInfo("echo", "ECHO", "1", "tcp")


class EchoDissector(Dissector):
    """Each client line is a request, the next server line its response."""

    name = "echo"

    def __init__(self, fail_on: bytes | None = None) -> None:
        self.fail_on = fail_on
        self.buf = [b"", b""]
        self.pending: list[tuple[bytes, int]] = []
        self.ready: list[Item] = []
        self.gaps: list[tuple[Direction, int]] = []
        self.ended = False

    def feed(self, direction: Direction, data: bytes, ts_ns: int) -> None:
        if self.fail_on is not None and self.fail_on in data:
            raise DissectError("not echo")
        self.buf[direction] += data
        while b"\n" in self.buf[direction]:
            line, self.buf[direction] = self.buf[direction].split(b"\n", 1)
            if direction == Direction.CLIENT:
                self.pending.append((line, ts_ns))
            elif self.pending:
                req, req_ts = self.pending.pop(0)
                self.ready.append(
                    Item(
                        ECHO,
                        req_ts,
                        {"line": req.decode()},
                        {"line": line.decode()},
                        ts_ns,
                        len(req) + 1,
                        len(line) + 1,
                        {"extra": 1, "stream": "not-overwritten"},
                    )
                )

    def gap(self, direction: Direction, length: int, ts_ns: int) -> None:
        self.gaps.append((direction, length))

    def end(self, ts_ns: int) -> None:
        self.ended = True
        for req, req_ts in self.pending:
            self.ready.append(Item(ECHO, req_ts, {"line": req.decode()}, None, None, len(req) + 1))
        self.pending = []

    def next_item(self) -> Item | None:
        return self.ready.pop(0) if self.ready else None


@pytest.fixture
def echo(monkeypatch: pytest.MonkeyPatch) -> list[tuple]:
    """Route every TCP stream to EchoDissector through the registry; record the calls."""
    calls: list[tuple] = []

    def select(
        layer4: str, direction: Direction, first: bytes, sport: int, dport: int, *a: Any
    ) -> Dissector | None:
        calls.append((layer4, direction, first, sport, dport))
        if layer4 != "tcp":
            return None
        return EchoDissector(fail_on=b"BOOM")

    monkeypatch.setattr(dissect, "select_dissector", select)
    return calls


def conversation(
    lines: list[tuple[bool, bytes]], t0: int = T0, cport: int = 40000, fin: bool = True
) -> list[tuple]:
    frames = [
        tcp_frame(t0, C, cport, S, 7, 100, 0, SYN),
        tcp_frame(t0 + 1 * MS, S, 7, C, cport, 900, 101, SYN | ACK),
        tcp_frame(t0 + 2 * MS, C, cport, S, 7, 101, 901, ACK),
    ]
    seq = {True: 101, False: 901}
    t = t0 + 3 * MS
    for from_client, data in lines:
        t += 10 * MS
        src, sp, dst, dp = (C, cport, S, 7) if from_client else (S, 7, C, cport)
        frames.append(
            tcp_frame(t, src, sp, dst, dp, seq[from_client], seq[not from_client], PSH | ACK, data)
        )
        seq[from_client] += len(data)
    if fin:
        t += MS
        frames.append(tcp_frame(t, C, cport, S, 7, seq[True], seq[False], FIN | ACK))
        frames.append(tcp_frame(t + MS, S, 7, C, cport, seq[False], seq[True] + 1, FIN | ACK))
        frames.append(tcp_frame(t + 2 * MS, C, cport, S, 7, seq[True] + 1, seq[False] + 1, ACK))
    return frames


def test_items_become_entries_with_common_fields(echo: list[tuple]) -> None:
    frames = conversation([(True, b"hello\n"), (False, b"HELLO\n"), (True, b"bye\n")])
    engine = Engine(Node(name="node-a", ip="192.0.2.1"))
    records = engine.feed_all(frames)
    assert echo == [("tcp", Direction.CLIENT, b"hello\n", 40000, 7)]
    (record,) = records
    sid = make_stream_id("node-a", "tcp", (C, 40000), (S, 7), (), T0)
    assert record.stream_id == sid and record.closed and record.segment == 0
    first, second = record.entries
    assert first == {
        "id": f"{sid}-0",
        "stream": sid,
        "index": 0,
        "node": {"name": "node-a", "ip": "192.0.2.1"},
        "protocol": {"name": "echo", "abbr": "ECHO", "version": "1", "layer4": "tcp"},
        "src": {"ip": C, "port": 40000, "name": "", "namespace": "", "pod": ""},
        "dst": {"ip": S, "port": 7, "name": "", "namespace": "", "pod": ""},
        "timestamp": (T0 + 13 * MS) // MS,
        "elapsedTime": 10,
        "requestSize": 6,
        "responseSize": 6,
        "request": {"line": "hello"},
        "response": {"line": "HELLO"},
        "extra": 1,
    }
    # a request the stream ended on still makes an entry, without a response
    assert second["id"] == f"{sid}-1" and "response" not in second
    assert second["elapsedTime"] == 0
    assert record.client.packets == 6 and record.server.packets == 3  # SYN..ACK, SYN-ACK..FIN
    assert record.client.bytes == 10 and record.server.bytes == 6
    assert [p.data for p in record.packets] == [f[3] for f in frames]


def test_dissect_error_falls_back_to_bare_keeping_items(echo: list[tuple]) -> None:
    frames = conversation([(True, b"hi\n"), (False, b"HI\n"), (True, b"BOOM\n")])
    engine = Engine("n")
    (record,) = engine.feed_all(frames)
    assert [e["protocol"]["name"] for e in record.entries] == ["echo", "tcp"]
    bare = record.entries[1]
    assert bare["requestSize"] == 3 + 5 and bare["responseSize"] == 3
    assert bare["protocol"] == {"name": "tcp", "abbr": "TCP", "version": "", "layer4": "tcp"}
    assert "request" not in bare and "response" not in bare
    assert engine.stats.dissect_errors == {"echo": 1}


def test_dissector_bug_is_counted_not_raised(monkeypatch: pytest.MonkeyPatch) -> None:
    class Buggy(EchoDissector):
        def feed(self, direction: Direction, data: bytes, ts_ns: int) -> None:
            raise ZeroDivisionError

    monkeypatch.setattr(dissect, "select_dissector", lambda *a, **k: Buggy())
    engine = Engine("n")
    (record,) = engine.feed_all(conversation([(True, b"x\n")]))
    assert [e["protocol"]["name"] for e in record.entries] == ["tcp"]
    assert engine.stats.dissect_errors == {"echo (bug)": 1}


def test_unclaimed_stream_gets_one_bare_entry(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(dissect, "select_dissector", lambda *a, **k: None)
    frames = conversation([(True, b"ssh-ish"), (False, b"banner!!")])
    (record,) = Engine("n").feed_all(frames)
    (entry,) = record.entries
    assert entry["protocol"]["name"] == "tcp"
    assert (entry["requestSize"], entry["responseSize"]) == (7, 8)
    assert entry["elapsedTime"] == 10
    assert entry["timestamp"] == T0 // MS


def test_gap_reaches_the_dissector_and_the_record(echo: list[tuple]) -> None:
    frames = conversation([(True, b"aaaa\n"), (True, b"bbbb\n"), (True, b"cccc\n")], fin=False)
    del frames[4]  # lose the middle segment
    ack_past = tcp_frame(T0 + SEC, S, 7, C, 40000, 901, 101 + 15, ACK)
    engine = Engine("n")
    records = engine.feed_all([*frames, ack_past])
    (record,) = records
    assert [(g.direction, g.offset, g.length) for g in record.gaps] == [("client", 5, 5)]
    assert engine.stats.gaps == 1 and engine.stats.gap_bytes == 5


def test_segments_by_size_keep_the_stream_id(echo: list[tuple]) -> None:
    lines = [(i % 2 == 0, b"%05d" % i + b"x" * 1000 + b"\n") for i in range(60)]
    frames = conversation(lines)
    cfg = EngineConfig(max_record_bytes=16 * 1024)
    records = Engine("n", cfg).feed_all(frames)
    assert len(records) > 3
    assert len({r.stream_id for r in records}) == 1
    assert [r.segment for r in records] == list(range(len(records)))
    assert [r.closed for r in records] == [False] * (len(records) - 1) + [True]
    assert all(len(encode_record(r)) <= cfg.max_record_bytes for r in records)
    assert [p.data for r in records for p in r.packets] == [f[3] for f in frames]
    entries = [e for r in records for e in r.entries]
    assert [e["index"] for e in entries] == list(range(30))


def test_segments_by_age_are_published_while_the_stream_lives(echo: list[tuple]) -> None:
    lines = [(True, b"tick\n")] * 5
    frames = conversation(lines, fin=False)
    # space the segments out: one a minute
    frames = [(T0 + i * 61 * SEC, *f[1:]) for i, f in enumerate(frames)]
    engine = Engine("n", EngineConfig(segment_max_age_ns=60 * SEC))
    live: list[Any] = []
    for f in frames:
        live.extend(engine.feed(f))
    assert live and not any(r.closed for r in live)
    final = engine.flush()
    assert final[-1].closed
    assert len({r.stream_id for r in live + final}) == 1


def test_idle_stream_closes_on_packet_time(echo: list[tuple]) -> None:
    cfg = EngineConfig(reassembly=ReassemblyConfig(udp_idle_ns=5 * SEC))
    engine = Engine("n", cfg)
    assert engine.feed(udp_frame(T0, C, 40000, S, 9999, b"one")) == []
    out = engine.feed(udp_frame(T0 + 10 * SEC, C, 40001, S, 9999, b"two"))
    assert len(out) == 1 and out[0].closed and out[0].src.port == 40000
    assert out[0].entries[0]["protocol"]["name"] == "udp"


def test_held_bytes_cap_publishes_early(echo: list[tuple]) -> None:
    cfg = EngineConfig(max_held_bytes=8 * 1024)
    engine = Engine("n", cfg)
    out: list[Any] = []
    for port in range(40000, 40010):
        for f in conversation([(True, b"y" * 1000 + b"\n")], cport=port, fin=False):
            out.extend(engine.feed(f))
    assert engine.stats.caps["held_bytes"] >= 1
    assert out and not any(r.closed for r in out)
    out.extend(engine.flush())
    assert sum(len(r.packets) for r in out) == engine.stats.frames


def test_dns_answers_name_later_entries() -> None:
    engine = Engine("n")
    ends_item = Item(
        ProtocolInfo("dns", "DNS", "", "udp"),
        T0,
        {"questions": [{"name": "shop.example", "type": "A", "class": "IN"}]},
        {
            "answers": [
                {"name": "shop.example", "type": "CNAME", "cname": "edge.cdn.example"},
                {"name": "edge.cdn.example", "type": "A", "ip": S},
            ]
        },
    )
    engine.names.learn(ends_item.request, ends_item.response)
    (record,) = engine.feed_all(conversation([(True, b"q\n")]))
    assert record.entries[0]["dst"]["name"] == "shop.example"
    assert record.entries[0]["src"]["name"] == ""


def test_fragmented_datagram_frames_all_land_in_its_record() -> None:
    body = udp(5353, 9000, b"f" * 4000)
    frames = fragment_ipv4(T0, C, S, 17, body, 1480, ident=5)
    engine = Engine("n")
    (record,) = engine.feed_all(list(reversed(frames)))
    assert sorted(p.data for p in record.packets) == sorted(f[3] for f in frames)
    assert record.client.bytes == 4000


def test_lone_fragment_is_counted_not_recorded() -> None:
    frames = fragment_ipv4(T0, C, S, 17, udp(1, 2, b"z" * 3000), 1480, ident=6)
    engine = Engine("n")
    assert engine.feed_all(frames[1:]) == []
    assert engine.stats_dict()["frames_not_recorded"]["fragments_incomplete"] == 2


@settings(max_examples=200, deadline=None)
@given(st.lists(st.binary(max_size=120), max_size=20), st.sampled_from([0, 1, 101, 113, 276]))
def test_fuzz_engine_only_counts_errors(junk: list[bytes], linktype: int) -> None:
    engine = Engine("n")
    good = conversation([(True, b"ok\n")], fin=False)
    frames = [*good[:2], *((T0 + i, linktype, len(j), j) for i, j in enumerate(junk)), *good[2:]]
    records = engine.feed_all(frames)
    stats = engine.stats_dict()
    dropped = stats["frames_not_recorded"]
    total = (
        sum(dropped["malformed"].values())
        + sum(dropped["not_tcp_udp"].values())
        + dropped["fragments_incomplete"]
    )
    assert stats["frames_recorded"] + total == len(frames)
    assert sum(len(r.packets) for r in records) == stats["frames_recorded"]


def test_records_generator_equals_feed_all(echo: list[tuple]) -> None:
    frames = conversation([(True, b"a\n"), (False, b"b\n")], cport=41000)
    frames += conversation([(True, b"c\n")], cport=41001, t0=T0 + 400 * SEC)
    assert list(Engine("n").records(iter(frames))) == Engine("n").feed_all(frames)


def test_advance_ends_idle_streams_without_frames(echo: list[tuple]) -> None:
    engine = Engine("n", EngineConfig(reassembly=ReassemblyConfig(udp_idle_ns=5 * SEC)))
    assert engine.feed(udp_frame(T0, C, 40000, S, 9999, b"one")) == []
    assert engine.advance(T0 + 2 * SEC) == []
    assert engine.advance(T0 + 1 * SEC) == []  # time never runs backwards
    (record,) = engine.advance(T0 + 10 * SEC)
    assert record.closed and engine.flush() == []


def test_close_segments_are_coalesced_before_the_dissector(monkeypatch: pytest.MonkeyPatch) -> None:
    made: list[EchoDissector] = []
    feeds: list[tuple[Direction, bytes, int]] = []

    class Counting(EchoDissector):
        def feed(self, direction: Direction, data: bytes, ts_ns: int) -> None:
            feeds.append((direction, data, ts_ns))
            super().feed(direction, data, ts_ns)

    def select(*a: Any, **k: Any) -> Dissector:
        made.append(Counting())
        return made[-1]

    monkeypatch.setattr(dissect, "select_dissector", select)
    lines = [
        (True, b"get\n"),
        (False, b"part1-"),
        (False, b"part2-"),
        (False, b"end\n"),
        (True, b"again\n"),
    ]
    frames = conversation(lines)
    # the three server segments arrive 0.1 ms apart; everything else is 10 ms apart
    base = frames[4][0]
    frames[5] = (base + 100_000, *frames[5][1:])
    frames[6] = (base + 200_000, *frames[6][1:])
    frames[7] = (base + 10 * MS, *frames[7][1:])  # "again" from the client
    (record,) = Engine("n").feed_all(frames)
    assert [(d, data) for d, data, _ in feeds] == [
        (Direction.CLIENT, b"get\n"),
        (Direction.SERVER, b"part1-part2-end\n"),
        (Direction.CLIENT, b"again\n"),
    ]
    assert feeds[1][2] == base  # the first coalesced segment's time
    first = record.entries[0]
    assert first["response"] == {"line": "part1-part2-end"}
    assert first["timestamp"] == frames[3][0] // MS


def test_syn_flood_is_bounded_by_the_stream_cap() -> None:
    cfg = EngineConfig(reassembly=ReassemblyConfig(max_streams=64))
    engine = Engine("n", cfg)
    frames = [
        tcp_frame(T0 + i, f"10.9.{i // 250}.{i % 250}", 1024 + i % 60000, S, 443, i, 0, SYN)
        for i in range(2000)
    ]
    records = []
    for f in frames:
        records.extend(engine.feed(f))
        assert len(engine.flows.conns) <= 64
    records.extend(engine.flush())
    assert engine.stats_dict()["caps"]["cap_max_streams"] == 2000 - 64
    assert sum(len(r.packets) for r in records) == 2000
    assert all(r.entries[0]["protocol"]["name"] == "tcp" for r in records)


class _WalkingEngine(Engine):
    """The reference for the engine's segment timers: ``_sweep`` as a walk over every
    stream, publishing each segment that is old (what it did before it kept timers)."""

    def _sweep(self, now: int) -> None:
        self._next_sweep = now + self.config.sweep_interval_ns
        self.flows.expire(now)
        self.decoder.fragments.expire(now)
        oldest = now - self.config.segment_max_age_ns
        for conn in list(self.flows.conns.values()):
            st = conn.ctx
            if st.frames and st.seg_start < oldest:
                self._emit(conn, closed=False)


@pytest.mark.parametrize("seed", range(6))
def test_old_segments_are_published_as_a_walk_over_every_stream_would(seed: int) -> None:
    """Only streams whose segment timer is due are looked at for an old segment; on random
    long-lived UDP and TCP traffic (timestamps a little out of order, streams ending and
    coming back) the records, and their order, must be those of a walk over every stream."""
    rnd = random.Random(seed)
    frames = []
    t = T0
    seqs: dict[int, int] = {}
    for _ in range(1500):
        t += rnd.randrange(0, 2 * SEC)
        ts = t - rnd.randrange(0, SEC)
        port = 40000 + rnd.randrange(25)
        if rnd.random() < 0.5:
            frames.append(udp_frame(ts, C, port, S, 7000, b"u" * rnd.randrange(1, 40)))
        else:
            seq = seqs.setdefault(port, 1000)
            flags = FIN | ACK if rnd.random() < 0.03 else PSH | ACK
            frames.append(tcp_frame(ts, C, port, S, 7000, seq, 1, flags, b"t\n"))
            seqs[port] = seq + 2 + (flags & FIN)
    cfg = EngineConfig(
        reassembly=ReassemblyConfig(udp_idle_ns=rnd.choice((8, 30)) * SEC, tcp_idle_ns=40 * SEC),
        segment_max_age_ns=rnd.choice((3, 10)) * SEC,
        max_record_bytes=rnd.choice((3000, 1024 * 1024)),
    )
    got = Engine("n", cfg).feed_all(frames)
    want = _WalkingEngine("n", cfg).feed_all(frames)
    assert sum(not r.closed for r in want) > 50  # segments did age out along the way
    assert [encode_record(r) for r in got] == [encode_record(r) for r in want]


class _ExactSizeEngine(Engine):
    """The reference for deferred text sizes: every entry counted exactly as it is added
    (``_add_item`` as it was before the engine left body texts uncounted)."""

    def _add_item(self, conn: Any, st: Any, item: Item) -> None:
        ends = self._endpoints(conn, st)
        if item.protocol.name == "dns":
            self.names.learn(item.request, item.response)
        entry = item_entry(ends, st.index, item, self._names(ends))
        size = entry_size(entry)
        if st.est + size > self.config.max_record_bytes and st.frames:
            self._emit(conn, closed=False)
        self._add_entry(st, entry, size)
        st.items_made += 1


def _http_sessions(rnd: random.Random, control: bool = False) -> list[tuple]:
    """Keep-alive HTTP sessions whose JSON bodies need escapes of every kind (quotes,
    backslashes, short and six-byte control escapes), so a body's exact size and its bound
    differ; timestamps interleave across sessions. ``control``: bodies of control bytes only
    (six JSON bytes each), so the entries outweigh the frames that carried them."""
    frames: list[tuple] = []
    pieces = (
        ["\x01\x02"] if control else ['"k": "v", ', "\\\\", "\\n", "\x01", "plain text " * 5, "\t"]
    )
    for n in range(12):
        lines: list[tuple[bool, bytes]] = []
        for i in range(rnd.randrange(1, 8)):
            body = "".join(rnd.choice(pieces) for _ in range(rnd.randrange(5, 400))).encode()
            lines.append((True, b"GET /i/%d HTTP/1.1\r\nHost: h\r\n\r\n" % i))
            head = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
            lines.append((False, head + b"Content-Length: %d\r\n\r\n" % len(body) + body))
        frames += conversation(lines, t0=T0 + rnd.randrange(0, 50) * MS, cport=41000 + n)
    return sorted(frames, key=lambda f: f[0])


@pytest.mark.parametrize(
    ("max_record", "max_held", "control"),
    [
        (1024 * 1024, 512 * 1024 * 1024, False),
        (3000, 512 * 1024 * 1024, False),
        (9000, 20_000, False),
        (1500, 4000, False),
        (4000, 512 * 1024 * 1024, True),
    ],
)
def test_body_texts_counted_late_cut_records_as_counting_them_at_once(
    max_record: int, max_held: int, control: bool
) -> None:
    """Body texts are sized only when a cut or the held-bytes cap may depend on them; the
    records (cuts, order, sizes), the oversize count and the cap's count must be those of an
    engine that sizes every entry exactly as it comes."""
    frames = _http_sessions(random.Random(max_record), control)
    cfg = EngineConfig(max_record_bytes=max_record, max_held_bytes=max_held)
    got_engine, want_engine = Engine("n", cfg), _ExactSizeEngine("n", cfg)
    got, want = got_engine.feed_all(frames), want_engine.feed_all(frames)
    assert sum(len(r.entries) for r in want) > 30
    assert [encode_record(r) for r in got] == [encode_record(r) for r in want]
    for key in ("oversize_records", "caps", "entries"):
        assert got_engine.stats_dict()[key] == want_engine.stats_dict()[key]
    if max_record < 10_000:
        assert len(want) > 40  # cut many times
    if max_held < 1024 * 1024:
        assert want_engine.stats.caps["held_bytes"] > 0
    if control:
        assert want_engine.stats.oversize_records > 0
