"""DNS over UDP or TCP: messages paired into one item per query/answer exchange.

Pairing is by transaction id plus the first question (case-insensitive name, type, class), so
two outstanding queries that reuse an id still pair right; a response whose question does not
match any query falls back to the oldest query with its id. Queries wait in a table capped at
``max_pending``; the oldest is emitted unanswered when it overflows, and all leftovers are at
``end()``. A response nobody asked for (mDNS announcements, a reply to a query before the
capture) becomes an item whose ``request`` is rebuilt from the response's own header and
question section, marked ``extra["unmatched_response"]``.

mDNS (5353) and LLMNR (5355) use the DNS message format and tshark counts them as DNS, so they
are DNS entries too, marked ``extra["variant"]``; for mDNS the cache-flush/unicast bit is
masked out of the class.

``Item.extra`` keys: ``variant``, ``unmatched_response``, ``evicted``, ``truncated`` (TC bit on
the response) and ``malformed_messages`` (messages skipped since the previous item).
"""

from __future__ import annotations

from collections import OrderedDict, deque
from dataclasses import dataclass
from typing import ClassVar

from producers.dissect.base import Direction, DissectError, Dissector, Item, ProtocolInfo
from producers.dissect.detect import looks_like_dns_tcp
from producers.dissect.dns.framing import LengthPrefixed
from producers.dissect.dns.wire import Message, parse_message
from producers.dissect.limits import DEFAULT_LIMITS, DissectLimits

__all__ = ["DnsDissector"]

_Key = tuple[int, tuple[str, str, str] | None]


@dataclass(slots=True)
class _Query:
    """A query waiting for its response (``__init__`` written out so mypyc compiles it)."""

    msg: Message
    ts_ns: int
    wire: int

    def __init__(self, msg: Message, ts_ns: int, wire: int) -> None:
        self.msg = msg
        self.ts_ns = ts_ns
        self.wire = wire


class DnsDissector(Dissector):
    """One instance per UDP flow or TCP stream (``layer4``); ``variant`` is "", mdns or llmnr."""

    name: ClassVar[str] = "dns"

    def __init__(
        self, layer4: str, variant: str = "", limits: DissectLimits = DEFAULT_LIMITS
    ) -> None:
        if layer4 not in ("udp", "tcp"):
            raise ValueError(f"layer4 must be udp or tcp, not {layer4!r}")
        self._tcp = layer4 == "tcp"
        self._protocol = ProtocolInfo("dns", "DNS", "", layer4)
        self._variant = variant
        self._limits = limits
        self._pending: OrderedDict[_Key, deque[_Query]] = OrderedDict()
        self._pending_count = 0
        self._ready: deque[Item] = deque()
        self._framers = (LengthPrefixed(), LengthPrefixed())
        self._lost = [False, False]  # a TCP gap broke this direction's framing
        self._parsed = 0
        self._malformed = 0

    def feed(self, direction: Direction, data: bytes, ts_ns: int) -> None:
        if not data:
            return
        if not self._tcp:
            self._message(data, len(data), ts_ns)
            return
        if self._lost[direction]:
            if not looks_like_dns_tcp(data):
                return  # still lost: drop until something that starts like a message
            self._lost[direction] = False
        framer = self._framers[direction]
        framer.feed(data)
        while (msg := framer.next_message()) is not None:
            self._message(msg, len(msg) + 2, ts_ns)

    def gap(self, direction: Direction, length: int, ts_ns: int) -> None:
        """UDP has no gaps that matter (a datagram is whole or absent). Over TCP the length
        prefixes after a gap cannot be trusted, so the direction waits for a segment that
        starts with a plausible message."""
        if self._tcp and length > 0:
            self._framers[direction].clear()
            self._lost[direction] = True

    def end(self, ts_ns: int) -> None:
        for queue in self._pending.values():
            for query in queue:
                self._emit(query, None, None)
        self._pending.clear()
        self._pending_count = 0

    def next_item(self) -> Item | None:
        return self._ready.popleft() if self._ready else None

    def _message(self, data: bytes, wire: int, ts_ns: int) -> None:
        try:
            msg = parse_message(data, mdns=self._variant == "mdns")
        except DissectError:
            if not self._parsed:
                raise
            self._malformed += 1  # one bad message in a good flow: skip it, keep the flow
            return
        self._parsed += 1
        if msg.is_response:
            self._answer(msg, wire, ts_ns)
            return
        if self._pending_count >= self._limits.max_pending:
            key = next(iter(self._pending))
            queue = self._pending[key]
            oldest = queue.popleft()
            if not queue:
                del self._pending[key]
            self._pending_count -= 1
            self._emit(oldest, None, None, evicted=True)
        self._pending.setdefault((msg.id, msg.question_key), deque()).append(
            _Query(msg, ts_ns, wire)
        )
        self._pending_count += 1

    def _answer(self, msg: Message, wire: int, ts_ns: int) -> None:
        key: _Key = (msg.id, msg.question_key)
        queue = self._pending.get(key)
        if queue is None:
            key = next((k for k in self._pending if k[0] == msg.id), key)
            queue = self._pending.get(key)
        if queue is None:
            self._emit(_Query(msg, ts_ns, 0), msg, ts_ns, response_wire=wire, unmatched=True)
            return
        query = queue.popleft()
        if not queue:
            del self._pending[key]
        self._pending_count -= 1
        self._emit(query, msg, ts_ns, response_wire=wire)

    def _emit(
        self,
        query: _Query,
        response: Message | None,
        response_ts: int | None,
        *,
        response_wire: int = 0,
        unmatched: bool = False,
        evicted: bool = False,
    ) -> None:
        if len(self._ready) >= self._limits.max_ready:
            raise DissectError(f"more than {self._limits.max_ready} items not taken")
        extra: dict[str, object] = {}
        if self._variant:
            extra["variant"] = self._variant
        if unmatched:
            extra["unmatched_response"] = True
        if evicted:
            extra["evicted"] = True
        if response is not None and response.truncated:
            extra["truncated"] = True
        if self._malformed:
            extra["malformed_messages"] = self._malformed
            self._malformed = 0
        self._ready.append(
            Item(
                protocol=self._protocol,
                ts_ns=query.ts_ns,
                request=query.msg.request_object(),
                response=response.response_object() if response is not None else None,
                response_ts_ns=response_ts,
                request_size=query.wire,
                response_size=response_wire,
                extra=extra,
            )
        )
