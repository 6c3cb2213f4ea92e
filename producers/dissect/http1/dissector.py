"""HTTP/1.x: two directions of events paired into one item per request/response exchange.

Parser choice (measured with bench/dissect_bench.py on corpus-shaped keep-alive traffic,
heads + framing only): httptools (llhttp, C) ~10x faster than this hand-written reader, h11
~3.5x slower. We still hand-write it, because llhttp rejects what the corpus carries and
tshark accepts (bare-LF line ends, ``CCM_POST`` and other unlisted methods, ``GET / HTTP/1.``,
obs-fold), cannot be told that a response answers HEAD, and cannot skip a capture gap; and
heads + framing are only 25-45% of this dissector's CPU (pairing, entry building and body
handling are the rest), so even a free parser would gain under 1.8x. Well-formed heads take a
split-based fast path in ``readers.parse_head`` (see there).

Pairing: requests queue FIFO (pipelining) and each final response answers the oldest unanswered
request. 1xx interim responses (100 Continue, 102, 103) do not end the exchange: they are kept
in ``Item.extra["informational"]`` and the request pairs with its *final* response (ENTRY.md has
one entry per request/response pair; tshark counts the 100 as a response of its own). 101 is
final and turns both directions into an opaque tunnel, as does a 2xx answer to CONNECT.

``Item.extra`` keys (the record builder copies them to the entry's top level): ``informational``
(1xx responses: status, statusText, ts_ns), ``tunnel``, ``gap`` (body bytes lost to a capture
gap were skipped), ``unmatched_response`` (no request seen: ``request`` is None),
``request_incomplete``/``response_incomplete`` (the stream or a gap cut the message short),
``{request,response}_trailers``, ``_decoded_capped`` (zip-bomb cap hit), ``_decode_error``,
``_content_encoding`` (a coding we cannot decode), ``_text_truncated`` (text cap hit) and
``evicted`` (the pending-request cap pushed it out before its response came).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import Any, ClassVar, Final

from producers.dissect.base import Direction, DissectError, Dissector, Item, ProtocolInfo
from producers.dissect.http1.content import BodySink
from producers.dissect.http1.events import Body, EndOfMessage, Head
from producers.dissect.http1.message import request_object, response_object
from producers.dissect.http1.side import Side, SideState
from producers.dissect.http1.state import (
    Framing,
    request_framing,
    response_framing,
)
from producers.dissect.limits import DEFAULT_LIMITS, DissectLimits

__all__ = ["Http1Dissector"]

_PROTOCOLS: Final = {v: ProtocolInfo("http", "HTTP", v, "tcp") for v in ("1.0", "1.1", "")}
# enum members as module constants: an Enum attribute lookup costs ~65 ns in 3.11, and these
# are read several times per exchange
_BODY: Final = SideState.BODY
_CLIENT: Final = Direction.CLIENT
_F_NONE: Final = Framing.NONE
_F_LENGTH: Final = Framing.LENGTH
_F_CHUNKED: Final = Framing.CHUNKED
_F_CLOSE: Final = Framing.CLOSE
_F_TUNNEL: Final = Framing.TUNNEL
_BODY_FRAMINGS: Final = (_F_LENGTH, _F_CHUNKED, _F_CLOSE)


@dataclass(slots=True)
class _Exchange:
    """A request (None for a response nobody asked for) and what came back for it.

    ``__init__`` is written out so that mypyc compiles it (see ``events``).
    """

    request: Head | None
    ts_ns: int
    req_sink: BodySink | None
    req_wire: int
    req_done: bool
    response: Head | None
    resp_sink: BodySink | None
    resp_wire: int
    resp_ts_ns: int | None
    extra: dict[str, Any]

    def __init__(self, request: Head | None, ts_ns: int, req_wire: int = 0) -> None:
        self.request = request
        self.ts_ns = ts_ns
        self.req_sink = None
        self.req_wire = req_wire
        self.req_done = False
        self.response = None
        self.resp_sink = None
        self.resp_wire = 0
        self.resp_ts_ns = None
        self.extra = {}


class Http1Dissector(Dissector):
    """Bytes of both directions in, one ``Item`` per exchange out (see module docstring)."""

    name: ClassVar[str] = "http"

    def __init__(self, limits: DissectLimits = DEFAULT_LIMITS) -> None:
        self._limits = limits
        self._client = Side(True, limits)
        self._server = Side(False, limits)
        self._pending: deque[_Exchange] = deque()
        self._ready: deque[Item] = deque()
        self._req: _Exchange | None = None  # request whose body is being read
        self._resp: _Exchange | None = None  # exchange whose final response body is being read
        self._interim = False  # the server side is inside a 1xx response
        self._server_lost = False  # a gap swallowed server framing: pairing must catch up

    # -- Dissector API -------------------------------------------------------------------

    def feed(self, direction: Direction, data: bytes, ts_ns: int) -> None:
        if not data:
            return
        side = self._client if direction is _CLIENT else self._server
        side.feed(data, ts_ns)
        self._run(side, ts_ns)

    def gap(self, direction: Direction, length: int, ts_ns: int) -> None:
        if length <= 0:
            return
        client = direction is _CLIENT
        side = self._client if client else self._server
        was_body = side.state is _BODY
        inside, beyond = side.gap(length)
        ex = self._req if client else self._resp
        if ex is not None and was_body:
            sink = ex.req_sink if client else ex.resp_sink
            if sink is not None and inside:
                sink.skip(inside)
            if client:
                ex.req_wire += inside
            else:
                ex.resp_wire += inside
            ex.extra["gap"] = True
            if beyond:
                self._end_message(client, EndOfMessage(0, complete=False), ts_ns)
        if beyond and not client:
            self._server_lost = True
        self._run(side, ts_ns)

    def end(self, ts_ns: int) -> None:
        for client, side in ((True, self._client), (False, self._server)):
            event = side.at_end()
            if event is not None:
                self._end_message(client, event, ts_ns)
        while self._pending:
            self._emit(self._pending.popleft())

    def next_item(self) -> Item | None:
        return self._ready.popleft() if self._ready else None

    # -- event handling -------------------------------------------------------------------

    def _run(self, side: Side, ts_ns: int) -> None:
        client = side is self._client
        while (event := side.next_event(ts_ns)) is not None:
            if isinstance(event, Head):
                if client:
                    self._on_request(event)
                else:
                    self._on_response(event, ts_ns)
            elif isinstance(event, Body):
                self._on_body(client, event)
            else:
                self._end_message(client, event, ts_ns)

    def _on_request(self, head: Head) -> None:
        index = head.index
        framing, length = request_framing(index)
        ex = _Exchange(head, head.ts_ns, req_wire=head.size)
        if framing is not _F_NONE:
            ex.req_sink = self._sink(index)
        if len(self._pending) >= self._limits.max_pending:
            oldest = self._pending.popleft()
            oldest.extra["evicted"] = True
            self._emit(oldest)
        self._pending.append(ex)
        self._req = ex
        self._client.set_framing(framing, length)
        if "upgrade" in index or head.first == "CONNECT":
            self._client.hold = True  # bytes after this may not be HTTP: wait for the answer

    def _on_response(self, head: Head, ts_ns: int) -> None:
        index = head.index
        status = head.status
        if self._server_lost:
            # whole responses were lost: the newest request is the one being answered now
            self._server_lost = False
            while len(self._pending) > 1:
                self._emit(self._pending.popleft())
        ex = self._pending[0] if self._pending else None
        if 100 <= status < 200 and status != 101:
            self._interim = True
            if ex is not None:
                ex.resp_wire += head.size
                ex.extra.setdefault("informational", []).append(
                    {"status": status, "statusText": head.third, "ts_ns": head.ts_ns}
                )
            self._server.set_framing(_F_NONE, 0)
            return
        if ex is None:
            ex = _Exchange(None, head.ts_ns)
            ex.extra["unmatched_response"] = True
        else:
            self._pending.popleft()
        method = ex.request.first if ex.request is not None else None
        framing, length = response_framing(method, status, index)
        ex.response = head
        ex.resp_ts_ns = head.ts_ns
        ex.resp_wire += head.size
        if framing in _BODY_FRAMINGS:
            ex.resp_sink = self._sink(index)
        self._resp = ex
        released = self._client.hold and framing is not _F_TUNNEL
        self._client.hold = False
        if framing is _F_TUNNEL:
            ex.extra["tunnel"] = True
            self._client.tunnel()
            self._server.set_framing(framing, length)
            self._end_message(False, EndOfMessage(0), ts_ns)
            return
        self._server.set_framing(framing, length)
        if released:
            self._run(self._client, ts_ns)  # bytes held back while the upgrade was pending

    def _on_body(self, client: bool, event: Body) -> None:
        ex = self._req if client else self._resp
        if ex is None:
            return  # body of a 1xx (never has one) or of a dropped message
        sink = ex.req_sink if client else ex.resp_sink
        if sink is not None:
            sink.write(event.data)
        if client:
            ex.req_wire += event.wire
        else:
            ex.resp_wire += event.wire

    def _end_message(self, client: bool, event: EndOfMessage, ts_ns: int) -> None:
        if client:
            ex = self._req
            self._req = None
            if ex is not None:
                ex.req_wire += event.wire
                ex.req_done = event.complete
                if not event.complete:
                    ex.extra["request_incomplete"] = True
                if event.trailers:
                    ex.extra["request_trailers"] = dict(event.trailers)
            return
        if self._interim:
            self._interim = False
            return
        ex = self._resp
        self._resp = None
        if ex is None:
            return
        ex.resp_wire += event.wire
        if not event.complete:
            ex.extra["response_incomplete"] = True
        if event.trailers:
            ex.extra["response_trailers"] = dict(event.trailers)
        self._emit(ex)

    # -- helpers --------------------------------------------------------------------------

    def _sink(self, index: dict[str, str]) -> BodySink:
        return BodySink(
            index.get("content-encoding", ""),
            self._limits.max_body_text,
            self._limits.max_decoded_bytes,
        )

    def _emit(self, ex: _Exchange) -> None:
        if len(self._ready) >= self._limits.max_ready:
            raise DissectError(f"more than {self._limits.max_ready} items not taken")
        version = ""
        head = ex.request or ex.response
        if head is not None:
            v = head.third if head.is_request else head.first
            version = v[5:] if v.startswith("HTTP/") and v[5:] in _PROTOCOLS else ""
        for sink, key in ((ex.req_sink, "request"), (ex.resp_sink, "response")):
            if sink is None:
                continue
            if sink.capped:
                ex.extra[f"{key}_decoded_capped"] = True
            if sink.decode_error:
                ex.extra[f"{key}_decode_error"] = sink.decode_error
            if sink.undecodable:
                ex.extra[f"{key}_content_encoding"] = sink.undecodable
            if len(sink.kept) < sink.decoded_size and not sink.gap:
                ex.extra[f"{key}_text_truncated"] = True
        self._ready.append(
            Item(
                protocol=_PROTOCOLS[version],
                ts_ns=ex.ts_ns,
                request=request_object(ex.request, ex.req_sink) if ex.request else None,
                response=response_object(ex.response, ex.resp_sink) if ex.response else None,
                response_ts_ns=ex.resp_ts_ns,
                request_size=ex.req_wire,
                response_size=ex.resp_wire,
                extra=ex.extra,
            )
        )
