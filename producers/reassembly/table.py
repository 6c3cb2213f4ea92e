"""The flow table: packets in, per-stream ordered bytes, gaps and stream ends out (to a listener).

Streams are keyed by protocol, VLAN tags and the two endpoints, so the same 5-tuple on two
VLANs is two streams (tshark merges them). A TCP stream ends on FIN from both sides or RST,
after a short *linger* so the last ACKs land in the same stream; a new SYN on a closing stream
(port reuse) ends it at once and starts a new one. Idle streams end after a timeout measured in
*packet* time (never the wall clock), checked whenever ``expire(now)`` is called.
"""

from __future__ import annotations

import heapq
from collections import Counter
from dataclasses import dataclass
from typing import Any, Final

from mypy_extensions import mypyc_attr

from producers.decode import TCP, Packet
from producers.reassembly.conn import Conn
from producers.reassembly.half import Budget, HalfStream, StreamSink
from producers.reassembly.roles import looks_like_request, looks_like_response, sender_is_client

__all__ = ["FlowListener", "FlowTable", "ReassemblyConfig", "Timers"]

_FIN: Final = 0x01
_SYN: Final = 0x02
_RST: Final = 0x04
_ACK: Final = 0x10
_MASK: Final = 0xFFFFFFFF
#: a ``Timers`` bucket spans 2**30 ns (~1.07 s) of packet time
_BUCKET_SHIFT: Final = 30


@dataclass(frozen=True, slots=True)
class ReassemblyConfig:
    """Timeouts (ns of packet time) and memory caps of the flow table."""

    tcp_idle_ns: int = 300_000_000_000
    #: 120 s, like Linux conntrack's timeout for a UDP flow that has seen replies
    udp_idle_ns: int = 120_000_000_000
    close_linger_ns: int = 2_000_000_000
    #: a closed stream still missing bytes waits longer for their retransmission (RTOs back off
    #: 1, 2, 4, 8 s...) before its holes are declared gaps
    close_linger_holes_ns: int = 30_000_000_000
    #: a closed TCP stream's key is remembered this long (TIME_WAIT is 60 s on Linux) so that
    #: late retransmissions and ACKs join the stream they belong to instead of a new one
    tombstone_ns: int = 60_000_000_000
    max_streams: int = 100_000
    stream_buffer_bytes: int = 4 * 1024 * 1024  # out-of-order bytes parked per direction
    stream_buffer_segments: int = 2048
    total_buffer_bytes: int = 256 * 1024 * 1024  # out-of-order bytes parked by all streams


class Timers:
    """Keys due once packet time passes their time: the streams to look at, not all of them.

    Entries go into buckets of ~1 s of packet time, and only bucket numbers are kept in a
    heap, so arming is a list append and a sweep takes whole buckets (only the bucket ``now``
    falls in is split). Entries are never removed early: whoever gets a key back checks its
    stream's state (a key may come back more than once, or for a stream that left).
    """

    __slots__ = ("_buckets", "_heap", "_size")

    def __init__(self) -> None:
        self._buckets: dict[int, list[tuple[int, tuple[Any, ...]]]] = {}
        self._heap: list[int] = []
        self._size = 0

    def __len__(self) -> int:
        return self._size

    def arm(self, when: int, key: tuple[Any, ...]) -> None:
        """``key`` is due once packet time is past ``when``."""
        bucket = when >> _BUCKET_SHIFT
        entries = self._buckets.get(bucket)
        if entries is None:
            entries = self._buckets[bucket] = []
            heapq.heappush(self._heap, bucket)
        entries.append((when, key))
        self._size += 1

    def due(self, now: int) -> list[tuple[Any, ...]]:
        """The keys of every entry whose time is before ``now`` (taken out), in no order."""
        out: list[tuple[Any, ...]] = []
        heap = self._heap
        current = now >> _BUCKET_SHIFT
        while heap and heap[0] <= current:
            bucket = heap[0]
            entries = self._buckets[bucket]
            if bucket < current:  # all of it is before ``now``
                for _when, key in entries:
                    out.append(key)
            else:
                kept = []
                for when, key in entries:
                    if when < now:
                        out.append(key)
                    else:
                        kept.append((when, key))
                if kept:
                    self._buckets[bucket] = kept
                    break
            heapq.heappop(heap)
            del self._buckets[bucket]
        self._size -= len(out)
        return out

    def clear(self) -> None:
        self._buckets.clear()
        self._heap.clear()
        self._size = 0


@mypyc_attr(allow_interpreted_subclasses=True)  # tests' listeners are interpreted
class FlowListener(StreamSink):
    """What the table tells its owner (subclass it; see ``StreamSink`` for why a base class).
    Calls for one stream come in stream order."""

    def on_open(self, conn: Conn) -> None:
        raise NotImplementedError

    def on_swap(self, conn: Conn) -> None:
        raise NotImplementedError

    def on_reopen(self, conn: Conn) -> None:
        raise NotImplementedError

    def on_close(self, conn: Conn, reason: str, ts_ns: int) -> None:
        raise NotImplementedError


class FlowTable:
    """Track TCP and UDP streams. ``counts`` has the reassembly counters (out_of_order,
    retransmitted, overlapping, conflicts, cap_*, port_reuse, evicted, ...)."""

    def __init__(self, listener: FlowListener, config: ReassemblyConfig | None = None) -> None:
        self.config = cfg = config or ReassemblyConfig()
        self.listener = listener
        self.conns: dict[tuple[Any, ...], Conn] = {}
        self.closed: dict[tuple[Any, ...], tuple[int, Conn]] = {}  # tombstones, oldest first
        self.counts: Counter[str] = Counter()
        self.budget = Budget(cfg.total_buffer_bytes)
        #: the stream under a key cannot end before its time (see ``expire``); keys rather
        #: than streams, so a stream that left is not kept alive
        self._timers = Timers()
        self._order = 0  # the next Conn.order: the order of insertion into ``conns``
        #: the stream of the last packet, while it is in ``conns`` (``close`` forgets it)
        self._last: Conn | None = None
        self._half_args = (
            listener,
            self.counts,
            self.budget,
            cfg.stream_buffer_bytes,
            cfg.stream_buffer_segments,
        )

    def packet(self, pkt: Packet) -> Conn:
        """Account one packet to its stream (opening one if needed); returns the stream, with
        ``last_dir`` set to the packet's direction."""
        ts = pkt.ts_ns
        proto = pkt.proto
        vlan = pkt.vlan
        src = pkt.src
        sport = pkt.sport
        dst = pkt.dst
        dport = pkt.dport
        flags = pkt.flags
        seq = pkt.seq
        ack = pkt.ack
        payload = pkt.payload
        # Most packets belong to the stream of the packet before (a burst of segments, a
        # reply): then the stream is the one in ``conns`` under the same key, found without
        # building the key tuple, hashing it and looking it up (~2% of the sensor's CPU).
        last = self._last
        if (
            last is not None
            and last.proto == proto
            and last.vlan == vlan
            and (
                (
                    sport == last.cport
                    and dport == last.sport
                    and src == last.cip
                    and dst == last.sip
                )
                or (
                    sport == last.sport
                    and dport == last.cport
                    and src == last.sip
                    and dst == last.cip
                )
            )
        ):
            conn: Conn | None = last
            key = last.key
        else:
            if src < dst or (src == dst and sport <= dport):
                key = (proto, vlan, src, sport, dst, dport)
            else:
                key = (proto, vlan, dst, dport, src, sport)
            conn = self.conns.get(key)
        if proto != TCP:
            if conn is None:
                conn = self._open(key, pkt, sender_is_client(sport, dport, udp=True))
            self._last = conn
            if ts > conn.last_ts:
                conn.last_ts = ts
            conn.last_dir = d = 0 if (sport == conn.cport and src == conn.cip) else 1
            if payload:
                conn.data_seen = True
                self.listener.on_data(conn, d, payload, ts)
            return conn

        syn = flags & _SYN
        if conn is None and self.closed:
            conn = self._reopen(key, pkt)
        if conn is None:
            if syn:
                client = not (flags & _ACK)
            elif payload and looks_like_request(payload):
                client = True
            elif payload and looks_like_response(payload):
                client = False
            else:
                client = sender_is_client(sport, dport)
            conn = self._open(key, pkt, client)
        elif syn and (conn.closing or conn.data_seen) and not (flags & _ACK):
            # A fresh SYN (new ISN) on a closing stream, or on one that already carried data:
            # the port pair is being reused by a new connection.
            d = 0 if (sport == conn.cport and src == conn.cip) else 1
            halves = conn.halves
            assert halves is not None
            if halves[d].isn != seq:
                self.counts["port_reuse"] += 1
                self.close(conn, conn.closing, ts)
                conn = self._open(key, pkt, True)
        self._last = conn
        if ts > conn.last_ts:
            conn.last_ts = ts
        conn.last_dir = d = 0 if (sport == conn.cport and src == conn.cip) else 1
        halves = conn.halves
        assert halves is not None
        if syn:
            if not conn.data_seen and (d == 0) == bool(flags & _ACK):
                halves = self._swap(conn)  # a SYN-ACK from the "client" or SYN from "server"
                d = conn.last_dir
            conn.syn_seen = True
            half = halves[d]
            half.syn(seq)
            if payload:  # TCP Fast Open: data rides on the SYN
                conn.data_seen = True
                half.segment((seq + 1) & _MASK, payload, ts)
        else:
            half = halves[d]
            if payload:
                if not conn.data_seen:
                    conn.data_seen = True
                    if not conn.syn_seen and (
                        (d == 1 and looks_like_request(payload))
                        or (d == 0 and looks_like_response(payload))
                    ):
                        halves = self._swap(conn)
                        d = conn.last_dir
                        half = halves[d]
                half.segment(seq, payload, ts)
            elif not half.started:
                half.start(seq)
        if flags & _ACK:
            other = halves[d ^ 1]
            if other.pending:
                other.acked(ack, ts)
        if flags & (_FIN | _RST):
            if flags & _RST:
                conn.closing = "rst"
            else:
                half.fin = True
                if halves[d ^ 1].fin:
                    conn.closing = conn.closing or "fin"
            if conn.closing:  # it may end sooner now: after the linger
                self._arm(conn, conn.last_ts + self._tcp_wait(conn))
        return conn

    def expire(self, now_ns: int) -> int:
        """End streams that are idle, or closed and done lingering; returns how many ended.

        Only streams whose timer is due are looked at, not every stream: each stream in
        ``conns`` has an entry in ``_timers`` no later than the earliest time it can end
        (``last_ts`` plus its timeout, which only grows as packets come; an entry is added
        when a stream opens, starts closing or is reopened). A due stream that has not ended
        gets a new entry; entries of streams that left are dropped when due (or when they
        pile up, ``_rebuild_timers``). Those that end are closed in the order of ``conns``,
        as the walk over all of it closed them. The engine expires every second of packet
        time; walking a few thousand streams each time, most of them nowhere near their
        timeout, was ~3% of the sensor's CPU.
        """
        cfg = self.config
        closed = self.closed
        tomb_before = now_ns - cfg.tombstone_ns
        while closed:
            key = next(iter(closed))
            if closed[key][0] >= tomb_before:
                break
            _release(closed.pop(key)[1])
        keys = self._timers.due(now_ns)
        if not keys:
            return 0
        conns = self.conns
        ended: list[Conn] = []
        due: dict[tuple[Any, ...], Conn] = {}
        for key in keys:
            conn = conns.get(key)
            if conn is not None:
                due[key] = conn
        for conn in due.values():
            when = self._end_time(conn, now_ns)
            if when < 0:
                ended.append(conn)
            else:
                self._arm(conn, when)
        if len(self._timers) > 2 * len(conns) + 1024:
            self._rebuild_timers()
        if len(ended) > 1:
            ended.sort(key=_conn_order)
        for conn in ended:
            self.close(conn, conn.closing or "idle", now_ns)
        return len(ended)

    def _end_time(self, conn: Conn, now_ns: int) -> int:
        """-1 if ``conn`` ends at ``now_ns``; else the earliest time (not before ``now_ns``) it
        can end, as far as its state says now."""
        cfg = self.config
        last = conn.last_ts
        if conn.proto == TCP:
            if conn.closing and last < now_ns - cfg.close_linger_ns:
                halves = conn.halves
                assert halves is not None
                if last < now_ns - cfg.close_linger_holes_ns or not (
                    halves[0].pending or halves[1].pending
                ):
                    return -1
                return now_ns  # waiting for holes, which a packet may fill: look again
            if last < now_ns - cfg.tcp_idle_ns:
                return -1
            return last + self._tcp_wait(conn)
        if last < now_ns - cfg.udp_idle_ns:
            return -1
        return last + cfg.udp_idle_ns

    def _tcp_wait(self, conn: Conn) -> int:
        """How long after its last packet a TCP stream can end at the earliest."""
        cfg = self.config
        if conn.closing:
            return min(cfg.close_linger_ns, cfg.tcp_idle_ns)
        return cfg.tcp_idle_ns

    def _rebuild_timers(self) -> None:
        """One entry per stream: entries of streams that left, or that were superseded, pile
        up when streams come and go faster than their timeouts run out."""
        cfg = self.config
        self._timers.clear()
        for conn in self.conns.values():
            wait = cfg.udp_idle_ns if conn.proto != TCP else self._tcp_wait(conn)
            self._timers.arm(conn.last_ts + wait, conn.key)

    def _arm(self, conn: Conn, when: int) -> None:
        """``conn`` cannot end before packet time passes ``when``: look at it then."""
        self._timers.arm(when, conn.key)

    def flush(self, reason: str = "end") -> None:
        """End every stream (end of capture)."""
        for conn in list(self.conns.values()):
            self.close(conn, conn.closing or reason, conn.last_ts)

    def close(self, conn: Conn, reason: str, ts_ns: int) -> None:
        """End one stream: holes still open become gaps, parked bytes are delivered."""
        if self._last is conn:
            self._last = None
        if self.conns.get(conn.key) is conn:
            del self.conns[conn.key]
        if conn.halves is not None:
            for half in conn.halves:
                half.flush(ts_ns)
                half.recent.clear()
            if conn.closing:
                closed = self.closed
                tomb = closed.pop(conn.key, None)
                if tomb is not None and tomb[1] is not conn:
                    _release(tomb[1])
                closed[conn.key] = (ts_ns, conn)
                while len(closed) > self.config.max_streams:
                    _release(closed.pop(next(iter(closed)))[1])
                self.listener.on_close(conn, reason, ts_ns)
                return  # kept as a tombstone: released when it leaves ``closed``
        self.listener.on_close(conn, reason, ts_ns)
        _release(conn)

    def _reopen(self, key: tuple[Any, ...], pkt: Packet) -> Conn | None:
        """A packet for a closed stream: late traffic of it, unless it is a fresh SYN."""
        tomb = self.closed.get(key)
        if tomb is None:
            return None
        conn = tomb[1]
        if pkt.flags & (_SYN | _ACK) == _SYN:
            assert conn.halves is not None
            if conn.halves[0].isn != pkt.seq:
                self.counts["port_reuse"] += 1
                del self.closed[key]
                _release(conn)
                return None
        del self.closed[key]
        self.counts["reopened"] += 1
        self._insert(conn)
        self._arm(conn, conn.last_ts + self._tcp_wait(conn))  # closing: it may end soon
        self.listener.on_reopen(conn)
        return conn

    def _open(self, key: tuple[Any, ...], pkt: Packet, sender_is_client: bool) -> Conn:
        if len(self.conns) >= self.config.max_streams:
            self._evict()
        ends = ((pkt.src, pkt.sport), (pkt.dst, pkt.dport))
        client, server = ends if sender_is_client else ends[::-1]
        conn = Conn(key, pkt.proto, pkt.vlan, client, server, pkt.ts_ns)
        if pkt.proto == TCP:
            conn.make_halves(*self._half_args)
            wait = self.config.tcp_idle_ns
        else:
            wait = self.config.udp_idle_ns
        self._insert(conn)
        self._arm(conn, pkt.ts_ns + wait)
        self.listener.on_open(conn)
        return conn

    def _insert(self, conn: Conn) -> None:
        """Into ``conns`` (at the end of its order, which ``Conn.order`` numbers)."""
        conn.order = self._order
        self._order += 1
        self.conns[conn.key] = conn

    def _swap(self, conn: Conn) -> tuple[HalfStream, HalfStream]:
        conn.swap_roles()
        self.listener.on_swap(conn)
        assert conn.halves is not None
        return conn.halves

    def _evict(self) -> None:
        """At the stream cap: end the least recently active sixteenth of the streams."""
        by_age = sorted(self.conns.values(), key=lambda c: c.last_ts)
        victims = by_age[: max(1, len(by_age) // 16)]
        self.counts["cap_max_streams"] += len(victims)
        for conn in victims:
            self.close(conn, "evicted", conn.last_ts)


def _conn_order(conn: Conn) -> int:
    return conn.order


def _release(conn: Conn) -> None:
    """A stream that left the table for good (ended and not kept as a tombstone, or its
    tombstone dropped): break its one reference cycle (``Conn.halves`` <-> each half's owner),
    so reference counting frees the stream and what hangs off it (the listener's ``ctx``) at
    once. Otherwise each ended TCP stream (~18 objects) is left for the cyclic collector:
    young collections trace and free them, and the survivors promoted with the live streams
    make the older collections slow (one of 0.46 s seen in the sensor benchmark)."""
    conn.halves = None
