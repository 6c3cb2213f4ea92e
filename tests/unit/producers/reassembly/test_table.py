"""Reassembly with synthetic segments: order, loss, retransmission, overlap, close, caps."""

from __future__ import annotations

import gc
import itertools
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from producers.decode import Decoder, Packet
from producers.decode.synth import ACK, FIN, PSH, RST, SYN, tcp_frame, udp_frame
from producers.reassembly import Conn, FlowListener, FlowTable, ReassemblyConfig, Timers
from producers.reassembly.half import HalfStream

C, S = "10.0.0.1", "10.0.0.2"
CP, SP = 40000, 80
ISN_C, ISN_S = 1000, 5000
SEC = 1_000_000_000


class Recorder(FlowListener):
    """A FlowListener that keeps everything it is told."""

    def __init__(self) -> None:
        self.data: dict[Conn, list[bytearray]] = {}
        self.events: list[tuple] = []
        self.closed: list[tuple[Conn, str]] = []
        self.opened: list[Conn] = []

    def on_open(self, conn: Conn) -> None:
        self.opened.append(conn)
        self.data[conn] = [bytearray(), bytearray()]

    def on_swap(self, conn: Conn) -> None:
        self.events.append(("swap",))

    def on_reopen(self, conn: Conn) -> None:
        self.events.append(("reopen",))

    def on_data(self, conn: Conn, direction: int, data: bytes, ts_ns: int) -> None:
        self.data[conn][direction] += data
        self.events.append(("data", direction, bytes(data)))

    def on_gap(self, conn: Conn, direction: int, offset: int, length: int, ts_ns: int) -> None:
        self.events.append(("gap", direction, offset, length))

    def on_close(self, conn: Conn, reason: str, ts_ns: int) -> None:
        self.closed.append((conn, reason))

    def gaps(self) -> list[tuple]:
        return [e for e in self.events if e[0] == "gap"]


def pkt(
    ts: int, client: bool, seq: int, ack: int, flags: int, payload: bytes = b"", **kw: object
) -> Packet:
    src, sp, dst, dp = (C, CP, S, SP) if client else (S, SP, C, CP)
    p = Decoder().decode(tcp_frame(ts, src, sp, dst, dp, seq, ack, flags, payload, **kw))
    assert p is not None
    return p


def handshake(ts: int = 0) -> list[Packet]:
    return [
        pkt(ts, True, ISN_C, 0, SYN),
        pkt(ts + 1, False, ISN_S, ISN_C + 1, SYN | ACK),
        pkt(ts + 2, True, ISN_C + 1, ISN_S + 1, ACK),
    ]


def client_segments(data: bytes, cuts: list[int], t0: int = 10) -> list[Packet]:
    bounds = [0, *sorted(set(cuts)), len(data)]
    return [
        pkt(t0 + i, True, ISN_C + 1 + a, ISN_S + 1, PSH | ACK, data[a:b])
        for i, (a, b) in enumerate(itertools.pairwise(bounds))
        if b > a
    ]


def run(
    packets: list[Packet], config: ReassemblyConfig | None = None, flush: bool = True
) -> tuple[Recorder, FlowTable]:
    rec = Recorder()
    table = FlowTable(rec, config)
    for p in packets:
        table.packet(p)
    if flush:
        table.flush()
    return rec, table


BODY = bytes(random.Random(1).randrange(256) for _ in range(5000))


def test_in_order_handshake_and_fin() -> None:
    packets = [
        *handshake(),
        *client_segments(BODY, [1000, 2500]),
        pkt(50, False, ISN_S + 1, ISN_C + 1 + len(BODY), PSH | ACK, b"reply"),
        pkt(60, True, ISN_C + 1 + len(BODY), ISN_S + 6, FIN | ACK),
        pkt(61, False, ISN_S + 6, ISN_C + 2 + len(BODY), FIN | ACK),
        pkt(62, True, ISN_C + 2 + len(BODY), ISN_S + 7, ACK),
    ]
    rec, table = run(packets, flush=False)
    conn = rec.opened[0]
    assert (conn.cport, conn.sport) == (CP, SP) and conn.syn_seen
    assert rec.data[conn] == [bytearray(BODY), bytearray(b"reply")]
    assert conn.closing == "fin" and not rec.closed  # lingering for late ACKs
    table.expire(62 + 3 * SEC)
    assert rec.closed == [(conn, "fin")] and not table.conns
    assert not rec.gaps()


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(1, len(BODY) - 1), max_size=12), st.randoms())
def test_any_split_any_order_gives_the_same_bytes(cuts: list[int], rnd: random.Random) -> None:
    segs = client_segments(BODY, cuts)
    rnd.shuffle(segs)
    dup = [rnd.choice(segs) for _ in range(3)]  # retransmissions
    rec, table = run([*handshake(), *segs, *dup])
    assert rec.data[rec.opened[0]][0] == BODY
    assert not rec.gaps()
    assert table.counts["conflicts"] == 0
    assert table.budget.used == 0


def test_out_of_order_waits_for_the_hole() -> None:
    segs = client_segments(BODY, [1000, 2000])
    rec, table = run([*handshake(), segs[0], segs[2]], flush=False)
    assert rec.data[rec.opened[0]][0] == BODY[:1000]
    table.packet(segs[1])
    assert rec.data[rec.opened[0]][0] == BODY
    assert table.counts["out_of_order"] == 1


def test_retransmission_overlap_and_conflict_first_copy_wins() -> None:
    segs = client_segments(BODY[:3000], [1000, 2000])
    forged = pkt(40, True, ISN_C + 1 + 500, ISN_S + 1, ACK, b"X" * 1000)  # covers 500..1500
    rec, table = run([*handshake(), segs[0], forged, segs[1], segs[0], segs[2]])
    out = rec.data[rec.opened[0]][0]
    # 500..1000 was delivered from the first copy; 1000..1500 of the forged copy was new
    assert out[:1000] == BODY[:1000]
    assert out[1000:1500] == b"X" * 500
    assert out[1500:] == BODY[1500:3000]
    assert table.counts["conflicts"] >= 2  # forged vs first, then real segs[1] vs forged
    assert table.counts["retransmitted"] == 1  # segs[0] again
    assert table.counts["overlapping"] == 2  # forged, then segs[1] (its head was delivered)


def test_gap_when_peer_acks_past_a_hole() -> None:
    segs = client_segments(BODY, [1000, 2000, 3000])
    lost = segs[1]
    ack_past = pkt(30, False, ISN_S + 1, ISN_C + 1 + 3000, ACK)
    rec, table = run([*handshake(), segs[0], segs[2], ack_past], flush=False)
    assert rec.gaps() == [("gap", 0, 1000, 1000)]
    assert rec.data[rec.opened[0]][0] == BODY[:1000] + BODY[2000:3000]
    table.packet(segs[3])  # delivery keeps going after the gap
    table.packet(lost)  # too late: counted as a retransmission, not delivered
    assert rec.data[rec.opened[0]][0] == BODY[:1000] + BODY[2000:]


def test_hole_at_end_becomes_gap_on_close() -> None:
    segs = client_segments(BODY, [1000, 2000])
    rec, _ = run([*handshake(), segs[0], segs[2]])
    assert rec.gaps() == [("gap", 0, 1000, 1000)]
    assert rec.closed[0][1] == "end"


def test_stream_buffer_cap_forces_gap() -> None:
    cfg = ReassemblyConfig(stream_buffer_bytes=1500)
    segs = client_segments(BODY, [1000, 2000, 3000])
    rec, table = run([*handshake(), segs[0], segs[2], segs[3]], cfg, flush=False)
    assert table.counts["cap_stream_buffer"] == 1
    assert rec.gaps() == [("gap", 0, 1000, 1000)]
    assert rec.data[rec.opened[0]][0] == BODY[:1000] + BODY[2000:]


def test_total_buffer_cap() -> None:
    cfg = ReassemblyConfig(total_buffer_bytes=500)
    segs = client_segments(BODY, [1000, 2000])
    rec, table = run([*handshake(), segs[0], segs[2]], cfg, flush=False)
    assert table.counts["cap_total_buffer"] == 1 and table.budget.used == 0
    assert len(rec.gaps()) == 1


def test_mid_stream_start_ports_decide() -> None:
    # no SYN; the server (port 80) speaks first with a non-HTTP payload
    rec, _ = run(
        [
            pkt(1, False, 777, 1, ACK, b"\x00\x01binary"),
            pkt(2, True, 1, 784, ACK, b"more"),
        ]
    )
    conn = rec.opened[0]
    assert (conn.cport, conn.sport) == (CP, SP) and not conn.syn_seen
    assert rec.data[conn] == [bytearray(b"more"), bytearray(b"\x00\x01binary")]


def test_mid_stream_start_http_request_decides() -> None:
    # both ports ephemeral-looking; the ports alone would call 40000 the client
    rec, _ = run(
        [
            pkt(1, False, 777, 1, ACK, b"GET / HTTP/1.1\r\n\r\n"),  # sent by port 80 here
        ]
    )
    conn = rec.opened[0]
    assert conn.cport == SP  # whoever sends the request is the client


def test_handshake_seen_out_of_order_fixes_roles() -> None:
    syn, synack, ack = handshake()
    rec, _ = run([synack, syn, ack, *client_segments(b"hello", [])])
    conn = rec.opened[0]
    assert (conn.cport, conn.sport) == (CP, SP)
    assert rec.data[conn][0] == b"hello"


def test_pure_ack_before_syn_guess_then_syn_swaps() -> None:
    # first packet is an ACK from the server port guessed wrong by ports? use equal ports
    a = Decoder().decode(tcp_frame(1, S, 5555, C, 5555, 10, 20, ACK))
    b = Decoder().decode(tcp_frame(2, C, 5555, S, 5555, 100, 0, SYN))
    rec, _ = run([a, b])
    assert rec.opened[0].cip == bytes([10, 0, 0, 1])
    assert ("swap",) in rec.events


def test_tcp_fast_open_data_on_syn() -> None:
    syn = pkt(0, True, ISN_C, 0, SYN, b"GET /tfo HTTP/1.1\r\n\r\n")
    synack = pkt(1, False, ISN_S, ISN_C + 1 + 21, SYN | ACK)
    rec, _ = run([syn, synack, pkt(2, True, ISN_C + 22, ISN_S + 1, ACK, b"next")])
    assert rec.data[rec.opened[0]][0] == b"GET /tfo HTTP/1.1\r\n\r\nnext"


def test_rst_closes_after_linger() -> None:
    rec, table = run([*handshake(), pkt(5, False, ISN_S + 1, 0, RST)], flush=False)
    assert rec.opened[0].closing == "rst"
    table.expire(5 + 3 * SEC)
    assert rec.closed[0][1] == "rst"


def test_port_reuse_new_syn_is_new_stream() -> None:
    first = [*handshake(), pkt(5, True, ISN_C + 1, ISN_S + 1, RST | ACK)]
    second = [
        pkt(10, True, 9_000_000, 0, SYN),
        pkt(11, False, 7_000_000, 9_000_001, SYN | ACK),
    ]
    rec, table = run([*first, *second])
    assert len(rec.opened) == 2 and table.counts["port_reuse"] == 1
    assert [r for _, r in rec.closed] == ["rst", "end"]


def test_port_reuse_after_tombstone() -> None:
    first = [*handshake(), pkt(5, True, ISN_C + 1, ISN_S + 1, RST | ACK)]
    rec = Recorder()
    table = FlowTable(rec)
    for p in first:
        table.packet(p)
    table.expire(10 * SEC)
    assert len(rec.closed) == 1
    table.packet(pkt(11 * SEC, True, 9_000_000, 0, SYN))
    assert len(rec.opened) == 2 and table.counts["port_reuse"] == 1


def test_late_packets_reopen_the_closed_stream() -> None:
    rec = Recorder()
    table = FlowTable(rec)
    for p in [*handshake(), pkt(5, True, ISN_C + 1, ISN_S + 1, RST | ACK)]:
        table.packet(p)
    table.expire(10 * SEC)
    conn = rec.opened[0]
    again = table.packet(pkt(11 * SEC, True, ISN_C + 1, ISN_S + 1, ACK))
    assert again is conn and len(rec.opened) == 1 and ("reopen",) in rec.events
    table.expire(11 * SEC + 5 * SEC)  # closed again: a new tombstone
    assert table.closed and not table.conns
    table.expire(11 * SEC + 70 * SEC)  # the tombstone is gone
    assert not table.closed


def test_idle_timeout_uses_packet_time() -> None:
    cfg = ReassemblyConfig(tcp_idle_ns=10 * SEC, udp_idle_ns=5 * SEC)
    rec = Recorder()
    table = FlowTable(rec, cfg)
    for p in handshake():
        table.packet(p)
    table.packet(Decoder().decode(udp_frame(0, C, 5000, S, 53, b"q")))
    assert table.expire(4 * SEC) == 0
    assert table.expire(6 * SEC) == 1  # the UDP flow
    assert table.expire(11 * SEC) == 1  # the TCP connection
    assert [r for _, r in rec.closed] == ["idle", "idle"]


def test_vlan_is_part_of_the_key() -> None:
    a = pkt(1, True, 1, 1, ACK, b"a", vlan=(10,))
    b = pkt(2, True, 1, 1, ACK, b"b", vlan=(20,))
    rec, _ = run([a, b])
    assert len(rec.opened) == 2 and {c.vlan for c in rec.opened} == {(10,), (20,)}


def test_udp_each_datagram_is_one_feed_and_client_by_port() -> None:
    d = Decoder()
    answer = d.decode(udp_frame(1, S, 53, C, 45000, b"answer"))
    query = d.decode(udp_frame(2, C, 45000, S, 53, b"query"))
    rec, _ = run([answer, query])
    conn = rec.opened[0]
    assert conn.sport == 53
    assert [e[1:] for e in rec.events] == [(1, b"answer"), (0, b"query")]


def test_max_streams_evicts_oldest() -> None:
    cfg = ReassemblyConfig(max_streams=16)
    d = Decoder()
    rec = Recorder()
    table = FlowTable(rec, cfg)
    for i in range(40):
        table.packet(d.decode(udp_frame(i, C, 10000 + i, S, 53, b"x")))
    assert len(table.conns) <= 16
    assert table.counts["cap_max_streams"] == 40 - len(table.conns)
    assert all(r == "evicted" for _, r in rec.closed)


def test_sequence_wraparound() -> None:
    isn = 0xFFFFFF00
    segs = [
        pkt(0, True, isn, 0, SYN),
        pkt(1, True, isn + 1, 0, ACK, BODY[:1000]),
        pkt(2, True, (isn + 1001) & 0xFFFFFFFF, 0, ACK, BODY[1000:2000]),
    ]
    rec, _ = run([segs[0], segs[2], segs[1]])
    assert rec.data[rec.opened[0]][0] == BODY[:2000]


@pytest.mark.parametrize("seed", range(5))
def test_random_loss_gaps_account_for_every_byte(seed: int) -> None:
    rnd = random.Random(seed)
    segs = client_segments(BODY, rnd.sample(range(1, len(BODY)), 20))
    kept = [s for s in segs if rnd.random() > 0.3]
    rnd.shuffle(kept)
    rec, _ = run([*handshake(), *kept])
    out = rec.data[rec.opened[0]][0]
    gap_bytes = sum(g[3] for g in rec.gaps())
    start = min(s.seq for s in kept) - ISN_C - 1
    end = max(s.seq - ISN_C - 1 + len(s.payload) for s in kept)
    assert len(out) + gap_bytes == end  # every offset up to the last byte is data or gap
    assert start >= 0


def test_new_syn_on_a_live_stream_with_data_is_port_reuse() -> None:
    first = [*handshake(), *client_segments(b"old connection", [])]
    again = [pkt(100, True, 77_000_000, 0, SYN), pkt(101, False, 5, 77_000_001, SYN | ACK)]
    rec, table = run([*first, *again])
    assert len(rec.opened) == 2 and table.counts["port_reuse"] == 1
    assert rec.data[rec.opened[0]][0] == b"old connection"
    # a retransmitted SYN (same ISN) is not a new connection
    rec, table = run([*handshake(), handshake()[0], *client_segments(b"x", [])])
    assert len(rec.opened) == 1


def test_streams_that_leave_the_table_are_freed_without_the_cyclic_gc() -> None:
    """Idle-ended, tombstone-expired, tombstone-overflowed and port-reused streams give up
    their Conn <-> HalfStream cycle; a tombstone keeps it (it may be reopened)."""
    gc.collect()
    gc.disable()
    try:
        rec = Recorder()
        table = FlowTable(rec, ReassemblyConfig(max_streams=2))
        for p in handshake():  # ends idle
            table.packet(p)
        table.expire(400 * SEC)
        d = Decoder()
        for i in range(4):  # four RST-closed streams: two tombstones overflow
            t = 500 * SEC + i * 10 * SEC
            sp = 41000 + i
            table.packet(d.decode(tcp_frame(t, C, sp, S, SP, 1, 0, SYN)))
            table.packet(d.decode(tcp_frame(t + 1, C, sp, S, SP, 2, 0, RST)))
            table.expire(t + 5 * SEC)
        assert len(table.closed) == 2
        kept = [conn for _, conn in table.closed.values()]
        assert all(conn.halves is not None for conn in kept)
        left = [conn for conn in rec.opened if all(conn is not k for k in kept)]
        assert len(left) == 3 and all(conn.halves is None for conn in left)
        table.expire(1000 * SEC)  # the tombstones expire too
        assert not table.closed and all(conn.halves is None for conn in kept)
        del rec, table, kept, left
        gc.set_debug(gc.DEBUG_SAVEALL)
        gc.collect()
        assert not [o for o in gc.garbage if isinstance(o, (Conn, HalfStream))]
    finally:
        gc.set_debug(0)
        gc.garbage.clear()
        gc.enable()


def _ended_by_walk(table: FlowTable, now: int) -> list[Conn]:
    """The reference for ``expire``: the streams a walk over ``conns`` ends at ``now``, in
    the walk's order (what ``expire`` did before it kept timers)."""
    cfg = table.config
    out = []
    for conn in table.conns.values():
        last = conn.last_ts
        if conn.proto == 6:
            if conn.closing and last < now - cfg.close_linger_ns:
                assert conn.halves is not None
                holes = conn.halves[0].pending or conn.halves[1].pending
                if last < now - cfg.close_linger_holes_ns or not holes:
                    out.append(conn)
            elif last < now - cfg.tcp_idle_ns:
                out.append(conn)
        elif last < now - cfg.udp_idle_ns:
            out.append(conn)
    return out


@pytest.mark.parametrize("seed", range(12))
def test_expire_ends_what_a_walk_over_every_stream_ends(seed: int) -> None:
    """``expire`` looks only at streams whose timer is due; on random traffic (streams that
    open, idle, close by FIN or RST with and without holes, reopen, reuse ports; timestamps
    a little out of order) it must end exactly the streams, in exactly the order, that a
    walk over every stream ends, at every step."""
    rnd = random.Random(seed)
    cfg = ReassemblyConfig(
        tcp_idle_ns=rnd.choice((30, 60)) * SEC,
        udp_idle_ns=rnd.choice((10, 40)) * SEC,
        close_linger_ns=rnd.choice((1, 2, 50)) * SEC,
        close_linger_holes_ns=rnd.choice((5, 9)) * SEC,
        tombstone_ns=rnd.choice((3, 20)) * SEC,
        max_streams=rnd.choice((6, 1000)),
    )
    rec = Recorder()
    table = FlowTable(rec, cfg)
    d = Decoder()
    seqs: dict[int, int] = {}
    now = 0
    for _ in range(1500):
        now += rnd.randrange(0, 3 * SEC)
        ts = max(0, now - rnd.randrange(0, 2 * SEC))  # capture times a little out of order
        port = 40000 + rnd.randrange(20)
        if rnd.random() < 0.25:
            frame = udp_frame(ts, C, port, S, 53, b"q")
        else:
            seq = seqs.setdefault(port, rnd.randrange(1 << 31))
            flags = rnd.choice((SYN, ACK, ACK | PSH, ACK | PSH, FIN | ACK, RST, SYN))
            client = rnd.random() < 0.6
            payload = b"x" * rnd.randrange(1, 50) if flags & PSH else b""
            if payload and rnd.random() < 0.2:
                seq += 100  # leaves a hole
            ends = (C, port, S, SP) if client else (S, SP, C, port)
            frame = tcp_frame(ts, *ends, seq, 1, flags, payload)
            seqs[port] = seq + len(payload)
        p = d.decode(frame)
        assert p is not None
        table.packet(p)
        if rnd.random() < 0.4:
            expected = _ended_by_walk(table, now)
            before = len(rec.closed)
            assert table.expire(now) == len(expected)
            assert [conn for conn, _ in rec.closed[before:]] == expected
    assert len(rec.closed) > 100  # the traffic did end streams along the way


@pytest.mark.parametrize("seed", range(5))
def test_timers_give_back_exactly_the_keys_due(seed: int) -> None:
    """``Timers.due(now)`` returns each armed key whose time is before ``now`` once, whatever
    bucket it fell in (times near bucket edges, several keys per time, re-arming)."""
    rnd = random.Random(seed)
    timers, armed = Timers(), []
    now = 5 * SEC
    for step in range(3000):
        if rnd.random() < 0.7:
            when = now + rnd.choice((0, 1, -1, (1 << 30) - 1, 1 << 30, rnd.randrange(4 * SEC)))
            key = (step,)
            timers.arm(when, key)
            armed.append((when, key))
        else:
            now += rnd.choice((0, 1, rnd.randrange(2 * SEC)))
            want = sorted(k for w, k in armed if w < now)
            armed = [(w, k) for w, k in armed if w >= now]
            assert sorted(timers.due(now)) == want
            assert len(timers) == len(armed)
    timers.clear()
    assert len(timers) == 0 and timers.due(now + 100 * SEC) == []
