"""The sensor's pure engine: raw frames in, stream records out.

``Engine.feed(frame)`` decodes a frame, reassembles its stream, runs the stream's dissector and
returns the records that became ready (usually none); ``flush()`` ends the capture. Every frame
that carries TCP or UDP lands in exactly one record, byte for byte, including every fragment of
a reassembled IP datagram. Frames that carry neither (ARP, ICMP, LLC, ...), malformed frames and
fragments of datagrams that never completed are *not* recorded: they are counted by reason in
``stats`` (a recorder of L4 streams has no stream to put them in).

Entries: a stream a dissector claims gets one entry per dissected item. A stream no dissector
claims (or whose dissector raised DissectError, or made no item at all) gets a *bare* entry per
published segment, counting that segment's payload bytes, so every segment can be matched on
its own; a short stream thus has exactly one. Late packets of a closed stream (see the flow
table's tombstones) are recorded in further segments under the same id, without new entries.

Dissectors get TCP payload coalesced: consecutive in-order segments of one direction that
arrive within 1 ms of the first are joined into one ``feed`` (a dissector's cost is mostly per
call); the joined bytes carry the first segment's timestamp. Items therefore complete when the
other side speaks, the stream ends or a segment is published.

Time is packet time: timeouts and segment ages run on the frames' timestamps, so the same
capture always gives the same records and stream ids. No sockets, clocks or env vars here.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, Final, Literal

from mypy_extensions import mypyc_attr

import producers.dissect as dissect
from producers.capture import FrameRef
from producers.decode import Decoder, FragmentReassembler
from producers.dissect import Direction, DissectError, Dissector, Item
from producers.names import NameTable
from producers.reassembly import Conn, FlowListener, FlowTable, ReassemblyConfig, Timers
from producers.records import (
    PACKET_OVERHEAD,
    RECORD_OVERHEAD,
    Endpoints,
    bare_entry,
    build_record,
    entry_size,
    entry_size_parts,
    item_entry,
    json_text_size,
    json_text_slack,
)
from streamtap.schema import Gap, Node, StreamRecord, make_stream_id

__all__ = ["Engine", "EngineConfig", "EngineStats"]

#: coalescing of in-order TCP payload before it reaches a dissector (see _feed_buffered)
_COALESCE_NS: Final = 1_000_000
_COALESCE_BYTES: Final = 256 * 1024

_DIRS: Final[tuple[Literal["client"], Literal["server"]]] = ("client", "server")


@dataclass(frozen=True, slots=True)
class EngineConfig:
    """Every cap and threshold of the engine (the service maps settings onto these)."""

    reassembly: ReassemblyConfig = field(default_factory=ReassemblyConfig)
    #: a record's JSON stays under this (more segments are cut when needed); keep it below the
    #: topic's max message size
    max_record_bytes: int = 1024 * 1024
    #: a long-lived stream publishes a segment at least this often (packet time)
    segment_max_age_ns: int = 60_000_000_000
    #: raw bytes held in unfinished segments of all streams; beyond it the biggest are cut
    max_held_bytes: int = 512 * 1024 * 1024
    sweep_interval_ns: int = 1_000_000_000
    fragment_timeout_ns: int = 30_000_000_000
    fragment_max_datagrams: int = 1024
    fragment_max_bytes: int = 8 * 1024 * 1024
    name_table_size: int = 65_536
    #: the dissectors' caps (bodies, buffers); None means their defaults
    dissect_limits: dissect.DissectLimits | None = None


@dataclass(slots=True)
class EngineStats:
    """Completeness counters; ``Engine.stats_dict()`` adds the decoder's and reassembly's."""

    frames: int = 0
    bytes: int = 0
    packets: int = 0  # TCP/UDP packets decoded (a reassembled datagram is one)
    tcp_streams: int = 0
    udp_streams: int = 0
    records: int = 0
    frames_recorded: int = 0
    entries: int = 0
    gaps: int = 0
    gap_bytes: int = 0
    oversize_records: int = 0
    dissect_errors: Counter[str] = field(default_factory=Counter)
    caps: Counter[str] = field(default_factory=Counter)


class _Stream:
    """The engine's state for one stream (``Conn.ctx``): the segment being filled and the
    dissector's progress."""

    __slots__ = (
        "buf",
        "buf_dir",
        "buf_len",
        "buf_ts",
        "dissector",
        "ends",
        "entries",
        "est",
        "first_ts",
        "frames",
        "gaps",
        "index",
        "items_made",
        "last_ts",
        "pkts0",
        "pkts1",
        "reopened",
        "req_ts",
        "resp_ts",
        "seg_start",
        "segment",
        "selected",
        "size0",
        "size1",
        "slack",
        "texts",
        "wire0",
        "wire1",
    )

    def __init__(self, ts: int) -> None:
        self.ends: Endpoints | None = None
        self.segment = 0
        self.index = 0
        self.dissector: Dissector | None = None
        self.selected = False
        self.items_made = 0
        self.reopened = False
        # In-order TCP payload not yet given to the dissector (see Engine._coalesce).
        self.buf: list[bytes] = []
        self.buf_dir = 0
        self.buf_len = 0
        self.buf_ts = 0
        self._new_segment(ts)

    def _new_segment(self, ts: int) -> None:
        self.frames: list[FrameRef] = []
        self.entries: list[dict[str, Any]] = []
        self.gaps: list[Gap] = []
        # The segment's JSON size so far: ``est`` plus the sizes of the long body ``texts``
        # its entries hold, which are counted only when a cut or the held-bytes cap may
        # depend on them (``Engine._settle``); until then ``slack`` bounds them from above.
        self.est = RECORD_OVERHEAD
        self.texts: list[str] = []
        self.slack = 0
        self.seg_start = ts
        self.first_ts = ts
        self.last_ts = ts
        # Per direction (0 client, 1 server), each its own int rather than a two-item list:
        # compiled, an int attribute is stored unboxed, where a list item is an int object
        # (a new one per packet once a count passes 256).
        self.pkts0 = self.pkts1 = 0  # packets
        self.wire0 = self.wire1 = 0  # payload bytes as seen on the wire
        self.size0 = self.size1 = 0  # reassembled payload bytes (bare entries)
        self.req_ts: int | None = None
        self.resp_ts: int | None = None


@mypyc_attr(allow_interpreted_subclasses=True)  # tests extend it (e.g. to keep payloads)
class Engine(FlowListener):
    """Frames in, StreamRecords out. See the module docstring for what is recorded."""

    def __init__(self, node: Node | str, config: EngineConfig | None = None) -> None:
        self.node = node if isinstance(node, Node) else Node(name=node)
        self.config = cfg = config or EngineConfig()
        self.stats = EngineStats()
        self.names = NameTable(cfg.name_table_size)
        self.decoder = Decoder(
            FragmentReassembler(
                cfg.fragment_timeout_ns, cfg.fragment_max_datagrams, cfg.fragment_max_bytes
            )
        )
        self.flows = FlowTable(self, cfg.reassembly)
        self._out: list[StreamRecord] = []
        self._now = 0
        self._next_sweep = 0
        self._held = 0
        #: upper bound of the sizes of the texts ``_held`` leaves out (every ``_Stream.slack``)
        self._held_slack = 0
        #: the streams holding texts whose sizes are not counted yet
        self._unsettled: dict[_Stream, None] = {}
        #: the held segment of the stream under a key is not old before its time (``_sweep``)
        self._seg_timers = Timers()
        self._max_record = cfg.max_record_bytes
        self._max_held = cfg.max_held_bytes

    # -- frames in -------------------------------------------------------------------------

    def feed(self, frame: FrameRef) -> list[StreamRecord]:
        """Take one frame (a ``Frame``); return the records it completed (often none).

        The frame is the tuple a record's packet is later made of, kept as it came (see
        ``FrameRef``), not rebuilt."""
        stats = self.stats
        stats.frames += 1
        ts: int = frame[0]
        data: bytes = frame[3]
        stats.bytes += len(data)
        if ts > self._now:
            self._now = ts
            if ts >= self._next_sweep:
                self._sweep(ts)
        # direct method calls, not bound methods kept in attributes: compiled, these are
        # native calls, where a stored bound method goes through Python's call protocol
        pkt = self.decoder.decode(frame)
        if pkt is not None:
            stats.packets += 1
            conn = self.flows.packet(pkt)
            st: _Stream = conn.ctx
            frames = pkt.fragments
            if frames is None:
                size = (len(data) + 2) // 3 * 4 + PACKET_OVERHEAD
                lo = hi = ts
            else:  # a reassembled datagram: every fragment's frame
                size = sum((len(f[3]) + 2) // 3 * 4 + PACKET_OVERHEAD for f in frames)
                lo = min(f[0] for f in frames)
                hi = max(f[0] for f in frames)
            held = st.frames
            if held:
                if (
                    st.est + st.slack + size > self._max_record
                    and self._settled_est(st) + size > self._max_record
                ):
                    self._emit(conn, closed=False)
                    held = st.frames
                    st.first_ts = st.seg_start = lo
                    st.last_ts = hi
                    self._arm_segment(conn, lo)
                else:
                    if lo < st.first_ts:
                        st.first_ts = lo
                    if hi > st.last_ts:
                        st.last_ts = hi
            else:
                st.first_ts = st.seg_start = lo
                st.last_ts = hi
                self._arm_segment(conn, lo)
            if frames is None:
                held.append(frame)
            else:
                held.extend(frames)
            st.est += size
            if conn.last_dir:
                st.pkts1 += 1
                st.wire1 += len(pkt.payload)
            else:
                st.pkts0 += 1
                st.wire0 += len(pkt.payload)
            self._held += size
            if (
                self._held + self._held_slack > self._max_held
                and self._settled_held() > self._max_held
            ):
                self._shed()
        if self._out:
            out, self._out = self._out, []
            return out
        return []

    def advance(self, now_ns: int) -> list[StreamRecord]:
        """Let time pass without frames (a quiet live interface): idle streams end, old
        segments are published. The caller supplies the time; the engine never reads a clock."""
        if now_ns > self._now:
            self._now = now_ns
            self._sweep(now_ns)
        out, self._out = self._out, []
        return out

    def flush(self) -> list[StreamRecord]:
        """End of capture: close every stream (final segments) and give up on fragments."""
        self.decoder.fragments.flush()
        self.flows.flush()
        out, self._out = self._out, []
        return out

    def records(self, frames: Iterable[FrameRef]) -> Iterator[StreamRecord]:
        """Feed frames and yield each record as soon as it is ready; flush at the end."""
        for frame in frames:
            records = self.feed(frame)
            if records:
                yield from records
        yield from self.flush()

    def feed_all(self, frames: Iterable[FrameRef]) -> list[StreamRecord]:
        """Feed an iterable of frames and flush: every record of a whole capture."""
        out: list[StreamRecord] = []
        for frame in frames:
            records = self.feed(frame)
            if records:
                out.extend(records)
        out.extend(self.flush())
        return out

    def stats_dict(self) -> dict[str, Any]:
        """Every counter, flat enough to log or publish as JSON."""
        s = self.stats
        frag = self.decoder.fragments.counts
        return {
            "frames": s.frames,
            "bytes": s.bytes,
            "packets": s.packets,
            "streams": {"tcp": s.tcp_streams, "udp": s.udp_streams, "open": len(self.flows.conns)},
            "records": s.records,
            "entries": s.entries,
            "frames_recorded": s.frames_recorded,
            "frames_not_recorded": {
                "malformed": dict(self.decoder.malformed),
                "not_tcp_udp": dict(self.decoder.skipped),
                "fragments_incomplete": frag["frames_dropped"],
            },
            "snapped_frames": self.decoder.snapped,
            "fragments": dict(frag),
            "reassembly": dict(self.flows.counts),
            "gaps": s.gaps,
            "gap_bytes": s.gap_bytes,
            "caps": dict(s.caps)
            | {k: v for k, v in self.flows.counts.items() if k.startswith("cap_")},
            "dissect_errors": dict(s.dissect_errors),
            "oversize_records": s.oversize_records,
            "names": len(self.names),
        }

    # -- flow table listener ---------------------------------------------------------------

    def on_open(self, conn: Conn) -> None:
        conn.ctx = _Stream(conn.first_ts)
        if conn.proto == 6:
            self.stats.tcp_streams += 1
        else:
            self.stats.udp_streams += 1

    def on_swap(self, conn: Conn) -> None:
        st: _Stream = conn.ctx
        st.pkts0, st.pkts1 = st.pkts1, st.pkts0
        st.wire0, st.wire1 = st.wire1, st.wire0

    def on_reopen(self, conn: Conn) -> None:
        """Late packets of a closed stream: more segments under its id, no new entries."""
        st: _Stream = conn.ctx
        st.reopened = True
        st.selected = True
        st.dissector = None

    def on_data(self, conn: Conn, direction: int, data: bytes, ts_ns: int) -> None:
        st: _Stream = conn.ctx
        if direction:
            st.size1 += len(data)
        else:
            st.size0 += len(data)
        if direction:
            if st.resp_ts is None and st.req_ts is not None:
                st.resp_ts = ts_ns
        elif st.req_ts is None:
            st.req_ts = ts_ns
        if not st.selected:
            st.selected = True
            try:
                limits = self.config.dissect_limits
                if limits is None:
                    st.dissector = dissect.select_dissector(
                        conn.layer4, _direction(direction), data, conn.cport, conn.sport
                    )
                else:
                    st.dissector = dissect.select_dissector(
                        conn.layer4, _direction(direction), data, conn.cport, conn.sport, limits
                    )
            except Exception:  # a bug in detection must not stop the sensor
                self.stats.dissect_errors["select"] += 1
        if st.dissector is not None:
            if conn.proto == 6:
                buf = st.buf
                if buf and (
                    direction != st.buf_dir
                    or ts_ns - st.buf_ts >= _COALESCE_NS
                    or st.buf_len >= _COALESCE_BYTES
                ):
                    self._feed_buffered(conn, st)
                if not buf:
                    st.buf_dir = direction
                    st.buf_ts = ts_ns
                buf.append(data)
                st.buf_len += len(data)
            else:  # UDP: each datagram is one feed, by contract
                self._feed(conn, st, direction, data, ts_ns)

    def _feed_buffered(self, conn: Conn, st: _Stream) -> None:
        """Hand the coalesced TCP payload to the dissector in one feed.

        Consecutive in-order segments of one direction that arrive within ``_COALESCE_NS`` of
        the first are joined: a dissector's cost is mostly per call, and entry timestamps are
        milliseconds, so a body of many segments becomes one call without changing entries.
        """
        buf = st.buf
        data = buf[0] if len(buf) == 1 else b"".join(buf)
        buf.clear()
        st.buf_len = 0
        self._feed(conn, st, st.buf_dir, data, st.buf_ts)

    def _feed(self, conn: Conn, st: _Stream, direction: int, data: bytes, ts_ns: int) -> None:
        dis = st.dissector
        if dis is not None:
            try:
                dis.feed(_direction(direction), data, ts_ns)
            except Exception as exc:
                self._dissect_failed(conn, st, exc)
                return
            self._drain(conn, st)

    def on_gap(self, conn: Conn, direction: int, offset: int, length: int, ts_ns: int) -> None:
        st: _Stream = conn.ctx
        st.gaps.append(Gap(direction=_DIRS[direction], offset=offset, length=length, ts_ns=ts_ns))
        st.est += 120
        self._held += 120
        self.stats.gaps += 1
        self.stats.gap_bytes += length
        if st.buf:
            self._feed_buffered(conn, st)
        dis = st.dissector
        if dis is not None:
            try:
                dis.gap(_direction(direction), length, ts_ns)
            except Exception as exc:
                self._dissect_failed(conn, st, exc)
                return
            self._drain(conn, st)

    def on_close(self, conn: Conn, reason: str, ts_ns: int) -> None:
        st: _Stream = conn.ctx
        if st.buf:
            self._feed_buffered(conn, st)
        dis = st.dissector
        if dis is not None:
            try:
                dis.end(ts_ns)
            except Exception as exc:
                self._dissect_failed(conn, st, exc)
            else:
                self._drain(conn, st)
        self._emit(conn, closed=True)
        st.dissector = None  # ended; a reopened stream gets no new dissector

    # -- internals -------------------------------------------------------------------------

    def _endpoints(self, conn: Conn, st: _Stream) -> Endpoints:
        if st.ends is None:
            src = (conn.client_ip, conn.cport)
            dst = (conn.server_ip, conn.sport)
            sid = make_stream_id(self.node.name, conn.layer4, src, dst, conn.vlan, conn.first_ts)
            st.ends = Endpoints(sid, self.node, conn.layer4, src, dst)
        return st.ends

    def _names(self, ends: Endpoints) -> tuple[str, str]:
        return self.names.name(ends.src_ip), self.names.name(ends.dst_ip)

    def _drain(self, conn: Conn, st: _Stream) -> None:
        dis = st.dissector
        while dis is not None:
            try:
                item = dis.next_item()
            except Exception as exc:
                self._dissect_failed(conn, st, exc)
                return
            if item is None:
                return
            self._add_item(conn, st, item)

    def _add_item(self, conn: Conn, st: _Stream, item: Item) -> None:
        ends = self._endpoints(conn, st)
        if item.protocol.name == "dns":
            self.names.learn(item.request, item.response)
        entry = item_entry(ends, st.index, item, self._names(ends))
        # The body texts' JSON sizes are left uncounted while the segment stays under the
        # record cap even if every character needed escaping; reading every body for its
        # escapes was ~3% of the sensor's CPU, and records are far smaller than the cap.
        size, texts = entry_size_parts(entry)
        slack = 0
        for text in texts:
            slack += json_text_slack(text)
        max_record = self.config.max_record_bytes
        if st.frames and st.est + st.slack + size + slack > max_record:
            self._settle(st)
            for text in texts:
                size += json_text_size(text) - 2
            texts, slack = [], 0
            if st.est + size > max_record:
                self._emit(conn, closed=False)  # the entry opens the next segment instead
        self._add_entry(st, entry, size)
        if texts:
            st.texts.extend(texts)
            st.slack += slack
            self._held_slack += slack
            self._unsettled[st] = None
        st.items_made += 1

    def _add_entry(self, st: _Stream, entry: dict[str, Any], size: int = 0) -> None:
        st.index += 1
        st.entries.append(entry)
        size = size or entry_size(entry)
        st.est += size
        self._held += size
        self.stats.entries += 1

    def _settle(self, st: _Stream) -> None:
        """Count the sizes of the texts ``st`` holds: ``est`` and ``_held`` become exact."""
        if st.texts:
            exact = 0
            for text in st.texts:
                exact += json_text_size(text) - 2
            st.est += exact
            self._held += exact
            self._held_slack -= st.slack
            st.texts = []
            st.slack = 0
            del self._unsettled[st]

    def _settled_est(self, st: _Stream) -> int:
        self._settle(st)
        return st.est

    def _settled_held(self) -> int:
        for st in list(self._unsettled):
            self._settle(st)
        return self._held

    def _dissect_failed(self, conn: Conn, st: _Stream, exc: Exception) -> None:
        name = getattr(st.dissector, "name", "") or type(st.dissector).__name__
        kind = "" if isinstance(exc, DissectError) else " (bug)"
        self.stats.dissect_errors[f"{name}{kind}"] += 1
        st.dissector = None  # bare from here on; items already made are kept

    def _emit(self, conn: Conn, closed: bool) -> None:
        """Publish the stream's current segment as a record and start the next one."""
        st: _Stream = conn.ctx
        if st.buf:
            self._feed_buffered(conn, st)  # its items belong in this segment
        ends = self._endpoints(conn, st)
        bare = st.dissector is None or (closed and st.items_made == 0)
        if bare and not st.reopened and (st.frames or st.size0 or st.size1 or not st.entries):
            ts = st.first_ts if st.frames else conn.first_ts
            entry = bare_entry(
                ends,
                st.index,
                self._names(ends),
                ts,
                st.size0,
                st.size1,
                st.req_ts,
                st.resp_ts,
            )
            self._add_entry(st, entry)
        record = build_record(
            ends,
            conn.vlan,
            st.segment,
            closed,
            st.first_ts,
            st.last_ts,
            (st.pkts0, st.pkts1),
            (st.wire0, st.wire1),
            st.gaps,
            st.entries,
            st.frames,
        )
        stats = self.stats
        stats.records += 1
        stats.frames_recorded += len(st.frames)
        max_record = self.config.max_record_bytes
        if st.est + st.slack > max_record and self._settled_est(st) > max_record:
            stats.oversize_records += 1
        self._held -= st.est - RECORD_OVERHEAD
        if st.texts:  # uncounted, and now published: they leave the bound too
            self._held_slack -= st.slack
            del self._unsettled[st]
        self._out.append(record)
        st.segment += 1
        st._new_segment(st.last_ts)

    def _sweep(self, now: int) -> None:
        """Periodic work on packet time: idle/closed streams, stale fragments, old segments.

        Only streams whose segment timer is due are looked at for an old segment, not every
        stream (a timer is set when a segment gets its first frame; a segment published
        since is recognised by its start); old ones are published in the order of the flow
        table's ``conns``, as the walk over all of it did. Walking every stream each second
        of packet time, most of them holding nothing old, was ~1% of the sensor's CPU.
        """
        self._next_sweep = now + self.config.sweep_interval_ns
        self.flows.expire(now)
        self.decoder.fragments.expire(now)
        keys = self._seg_timers.due(now)
        if not keys:
            return
        oldest = now - self.config.segment_max_age_ns
        conns = self.flows.conns
        due: dict[tuple[Any, ...], Conn] = {}
        for key in keys:
            conn = conns.get(key)
            if conn is not None:
                due[key] = conn
        old: list[Conn] = []
        for conn in due.values():
            st: _Stream = conn.ctx
            if st.frames:
                if st.seg_start < oldest:
                    old.append(conn)
                else:
                    self._arm_segment(conn, st.seg_start)
        if len(old) > 1:
            old.sort(key=_conn_order)
        for conn in old:
            self._emit(conn, closed=False)
        if len(self._seg_timers) > 2 * len(conns) + 1024:
            self._seg_timers.clear()
            for conn in conns.values():
                st = conn.ctx
                if st.frames:
                    self._arm_segment(conn, st.seg_start)

    def _arm_segment(self, conn: Conn, seg_start: int) -> None:
        """A segment that started at ``seg_start`` is old once it is ``segment_max_age_ns``
        older: look at its stream then."""
        self._seg_timers.arm(seg_start + self.config.segment_max_age_ns, conn.key)

    def _shed(self) -> None:
        """Held bytes over the cap: publish the biggest unfinished segments early."""
        self.stats.caps["held_bytes"] += 1
        target = self.config.max_held_bytes // 2
        conns = sorted(self.flows.conns.values(), key=lambda c: c.ctx.est, reverse=True)
        for conn in conns:
            if self._held <= target:
                break
            if conn.ctx.frames:
                self._emit(conn, closed=False)


_DIR_ENUM: Final = (Direction.CLIENT, Direction.SERVER)


def _direction(d: int) -> Direction:
    return _DIR_ENUM[d]


def _conn_order(conn: Conn) -> int:
    return conn.order
