"""Test-only stand-in for the sensor's reassembly: pcap -> per-flow payload events via scapy.

Slow and simple on purpose. It exists so the dissector tests do not depend on the reassembly
package; the engine replaces it later and the assertions in ``manifest_check`` stay.

TCP: segments grouped by 4-tuple (VLAN ignored, like tshark's tcp.stream), ordered by sequence
number, duplicates and retransmitted bytes dropped. Bytes the capture never saw become a ``gap``
event once the peer acknowledges past them (or at the end). Events keep capture order across the
two directions so request/response interleaving is what was on the wire. UDP: one event per
datagram.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from producers.dissect import Direction, DissectError, Dissector, Item

logging.getLogger("scapy.runtime").setLevel(logging.ERROR)

from scapy.layers.inet import IP, TCP, UDP, defragment  # noqa: E402
from scapy.layers.inet6 import IPv6, IPv6ExtHdrFragment, defragment6  # noqa: E402
from scapy.utils import PcapReader, rdpcap  # noqa: E402

__all__ = [
    "Event",
    "Flow",
    "capture_entries",
    "dissect_flow",
    "item_to_entry",
    "make_dissector",
    "read_flows",
]

Endpoint = tuple[str, int]


@dataclass
class Event:
    kind: str  # "data" or "gap"
    direction: Direction
    data: bytes
    length: int
    ts_ns: int


@dataclass
class Flow:
    layer4: str
    client: Endpoint
    server: Endpoint
    first_ts_ns: int
    events: list[Event] = field(default_factory=list)

    def first_payload(self) -> Event | None:
        return next((e for e in self.events if e.kind == "data" and e.data), None)


@dataclass
class _TcpDir:
    next_seq: int | None = None
    pending: dict[int, tuple[bytes, int]] = field(default_factory=dict)


@dataclass
class _TcpState:
    flow: Flow
    dirs: dict[Endpoint, _TcpDir]
    segments: list[tuple[Endpoint, int, bytes, int, int, bool]]  # src, seq, data, ack, ts, ackflag


def _load(path: Path) -> list:
    try:
        packets = list(rdpcap(str(path)))
    except Exception:  # pragma: no cover - pcapng handled by PcapReader too
        packets = list(PcapReader(str(path)))
    packets = defragment(packets)
    frags: dict[tuple, list] = {}
    out = []
    for p in packets:
        if p.haslayer(IPv6ExtHdrFragment):
            ip6 = p[IPv6]
            key = (ip6.src, ip6.dst, p[IPv6ExtHdrFragment].id)
            frags.setdefault(key, []).append(p)
            group = frags[key]
            frag_hdrs = [f[IPv6ExtHdrFragment] for f in group]
            if any(h.m == 0 for h in frag_hdrs) and any(h.offset == 0 for h in frag_hdrs):
                try:
                    whole = IPv6(bytes(defragment6([f[IPv6] for f in group])))
                except Exception:
                    continue
                whole.time = group[-1].time
                out.append(whole)
                del frags[key]
            continue
        out.append(p)
    return out


def _l3(p) -> tuple[str, str] | None:
    if IP in p:
        return p[IP].src, p[IP].dst
    if IPv6 in p:
        return p[IPv6].src, p[IPv6].dst
    return None


def _client_server(
    a: Endpoint, b: Endpoint, syn_from: Endpoint | None
) -> tuple[Endpoint, Endpoint]:
    if syn_from is not None:
        return (a, b) if syn_from == a else (b, a)
    # no SYN seen: the lower port is the service
    return (b, a) if a[1] < b[1] else (a, b)


def read_flows(path: str | Path) -> list[Flow]:
    """All TCP and UDP flows of a capture, in order of their first packet."""
    tcp: dict[frozenset, list] = {}
    udp: dict[frozenset, list] = {}
    order: list[tuple[int, str, frozenset]] = []
    for p in _load(Path(path)):
        addrs = _l3(p)
        if addrs is None:
            continue
        ts = int(p.time * 1_000_000_000) if not isinstance(p.time, int) else p.time * 10**9
        layer = p.getlayer(TCP) or p.getlayer(UDP)
        if layer is None or type(layer) not in (TCP, UDP):
            continue  # e.g. a datagram quoted inside an ICMP error
        src, dst = (addrs[0], int(layer.sport)), (addrs[1], int(layer.dport))
        key = frozenset((src, dst))
        table = tcp if type(layer) is TCP else udp
        if key not in table:
            table[key] = []
            order.append((ts, "tcp" if table is tcp else "udp", key))
        table[key].append((p, layer, src, dst, ts))
    flows: list[Flow] = []
    for _ts, kind, key in sorted(order, key=lambda t: t[0]):
        flows.append(_tcp_flow(tcp[key]) if kind == "tcp" else _udp_flow(udp[key]))
    return flows


def _udp_flow(pkts: list) -> Flow:
    first_src, first_dst = pkts[0][2], pkts[0][3]
    client, server = (first_src, first_dst)
    if first_src[1] in (53, 5353, 5355) and first_dst[1] not in (53, 5353, 5355):
        client, server = first_dst, first_src
    flow = Flow("udp", client, server, pkts[0][4])
    for _p, layer, src, _dst, ts in pkts:
        direction = Direction.CLIENT if src == client else Direction.SERVER
        data = bytes(layer.payload)
        flow.events.append(Event("data", direction, data, len(data), ts))
    return flow


def _tcp_flow(pkts: list) -> Flow:
    syn_from: Endpoint | None = None
    isn: dict[Endpoint, int] = {}
    for _p, layer, src, dst, _ts in pkts:
        flags = int(layer.flags)
        if flags & 0x02:
            isn.setdefault(src, int(layer.seq))
            if not flags & 0x10 and syn_from is None:
                syn_from = src
            elif flags & 0x10 and syn_from is None:
                syn_from = dst
    a, b = pkts[0][2], pkts[0][3]
    client, server = _client_server(a, b, syn_from)
    flow = Flow("tcp", client, server, pkts[0][4])
    dirs = {client: _TcpDir(), server: _TcpDir()}
    for ep, d in dirs.items():
        if ep in isn:
            d.next_seq = (isn[ep] + 1) & 0xFFFFFFFF
        else:
            seqs = [int(layer.seq) for _p, layer, s, _d, _t in pkts if s == ep and _payload(layer)]
            if seqs:
                d.next_seq = min(seqs, key=lambda s: (s - seqs[0]) & 0xFFFFFFFF)

    def direction(ep: Endpoint) -> Direction:
        return Direction.CLIENT if ep == client else Direction.SERVER

    def drain(ep: Endpoint, ts: int) -> None:
        d = dirs[ep]
        progressed = True
        while progressed and d.pending:
            progressed = False
            assert d.next_seq is not None
            for seq in sorted(d.pending, key=lambda s: (s - d.next_seq) & 0xFFFFFFFF):
                data, _pts = d.pending[seq]
                off = (d.next_seq - seq) & 0xFFFFFFFF
                if off >= 0x80000000:
                    break  # in the future: still a hole before it
                del d.pending[seq]
                progressed = True
                if off < len(data):
                    new = data[off:]
                    flow.events.append(Event("data", direction(ep), new, len(new), ts))
                    d.next_seq = (d.next_seq + len(new)) & 0xFFFFFFFF
                break

    def fill_gap(ep: Endpoint, upto: int | None, ts: int) -> None:
        """Declare the bytes before the earliest pending segment (or ``upto``) lost."""
        d = dirs[ep]
        if d.next_seq is None or not d.pending:
            return
        first = min(d.pending, key=lambda s: (s - d.next_seq) & 0xFFFFFFFF)
        hole = (first - d.next_seq) & 0xFFFFFFFF
        if upto is not None:
            acked = (upto - d.next_seq) & 0xFFFFFFFF
            if acked >= 0x80000000 or acked < hole:
                return
        if 0 < hole < 0x80000000:
            flow.events.append(Event("gap", direction(ep), b"", hole, ts))
            d.next_seq = first
        drain(ep, ts)

    for _p, layer, src, dst, ts in pkts:
        data = _payload(layer)
        flags = int(layer.flags)
        seq = int(layer.seq)
        if flags & 0x02:
            seq = (seq + 1) & 0xFFFFFFFF
        d = dirs[src]
        if data and d.next_seq is not None:
            d.pending.setdefault(seq, (data, ts))
            if len(data) > len(d.pending[seq][0]):
                d.pending[seq] = (data, ts)
            drain(src, ts)
        if flags & 0x10:
            fill_gap(dst, int(layer.ack), ts)
    last = pkts[-1][4]
    for ep in (client, server):
        fill_gap(ep, None, last)
    return flow


def _payload(layer) -> bytes:
    raw = bytes(layer.payload)
    if type(layer) is TCP:
        # scapy keeps Ethernet padding in the payload: trust the IP length instead
        ip = layer.underlayer
        if ip is not None and hasattr(ip, "len") and type(ip).__name__ == "IP" and ip.len:
            size = int(ip.len) - int(ip.ihl) * 4 - int(layer.dataofs) * 4
            raw = raw[: max(size, 0)]
        elif ip is not None and type(ip).__name__ == "IPv6" and ip.plen:
            size = int(ip.plen) - int(layer.dataofs) * 4 - _ext_len(ip)
            raw = raw[: max(size, 0)]
    return raw


def _ext_len(ip6) -> int:
    total = 0
    layer = ip6.payload
    while layer is not None and type(layer).__name__ != "TCP":
        total += len(bytes(layer)) - len(bytes(layer.payload))
        layer = layer.payload
    return total


def dissect_flow(
    flow: Flow,
    make: Callable[[Flow], Dissector | None],
    split: Callable[[bytes], Iterable[bytes]] | None = None,
) -> tuple[Dissector | None, list[Item], DissectError | None]:
    """Feed a flow's events to a fresh dissector; returns it, its items and any DissectError."""
    dissector = make(flow)
    items: list[Item] = []
    if dissector is None:
        return None, items, None
    try:
        for ev in flow.events:
            if ev.kind == "gap":
                dissector.gap(ev.direction, ev.length, ev.ts_ns)
            elif split is None or flow.layer4 == "udp":
                dissector.feed(ev.direction, ev.data, ev.ts_ns)
            else:
                for part in split(ev.data):
                    dissector.feed(ev.direction, part, ev.ts_ns)
            while (item := dissector.next_item()) is not None:
                items.append(item)
        dissector.end(flow.events[-1].ts_ns if flow.events else flow.first_ts_ns)
    except DissectError as exc:
        while (item := dissector.next_item()) is not None:
            items.append(item)
        return dissector, items, exc
    while (item := dissector.next_item()) is not None:
        items.append(item)
    return dissector, items, None


def make_dissector(flow: Flow) -> Dissector | None:
    """What the engine does per stream: pick a dissector from the first payload."""
    from producers.dissect import select_dissector

    first = flow.first_payload()
    if first is None:
        return None
    return select_dissector(
        flow.layer4, first.direction, first.data, flow.client[1], flow.server[1]
    )


def item_to_entry(item: Item, flow: Flow, index: int, stream: str = "s") -> dict:
    """Stand-in for the record builder: an Item plus the common fields -> an ENTRY.md entry."""
    entry = {
        "id": f"{stream}-{index}",
        "stream": stream,
        "index": index,
        "node": {"name": "test", "ip": ""},
        "protocol": {
            "name": item.protocol.name,
            "abbr": item.protocol.abbr,
            "version": item.protocol.version,
            "layer4": item.protocol.layer4,
        },
        "src": {
            "ip": flow.client[0],
            "port": flow.client[1],
            "name": "",
            "namespace": "",
            "pod": "",
        },
        "dst": {
            "ip": flow.server[0],
            "port": flow.server[1],
            "name": "",
            "namespace": "",
            "pod": "",
        },
        "timestamp": item.ts_ns // 1_000_000,
        "elapsedTime": max(0, ((item.response_ts_ns or item.ts_ns) - item.ts_ns) // 1_000_000),
        "requestSize": item.request_size,
        "responseSize": item.response_size,
    }
    if item.request is not None:
        entry["request"] = item.request
    if item.response is not None:
        entry["response"] = item.response
    return entry


def capture_entries(path: str | Path) -> tuple[list[dict], list[Flow], list[DissectError]]:
    """Entries of every dissected flow of a capture (bare flows make none), with any errors."""
    entries: list[dict] = []
    errors: list[DissectError] = []
    flows = read_flows(path)
    for n, flow in enumerate(flows):
        _d, items, err = dissect_flow(flow, make_dissector)
        if err is not None:
            errors.append(err)
        entries.extend(item_to_entry(item, flow, i, f"s{n}") for i, item in enumerate(items))
    return entries, flows, errors
