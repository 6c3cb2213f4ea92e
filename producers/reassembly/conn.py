"""One L4 stream (a TCP connection or a UDP flow) as the flow table tracks it."""

from __future__ import annotations

import ipaddress
from collections import Counter
from typing import Any, Final

from producers.reassembly.half import Budget, HalfStream, StreamSink

__all__ = ["Conn", "address_text"]

_TEXT: Final[dict[bytes, str]] = {}
_TEXT_MAX: Final = 65_536


def address_text(packed: bytes) -> str:
    """``ipaddress``'s text form of a packed IPv4/IPv6 address, memoised (addresses recur
    across streams, and formatting one costs microseconds). The memo is bounded.

    IPv4 is formatted here (dotted decimal, what ``ipaddress`` writes; ``test_conn`` checks
    they agree): ``ipaddress`` is interpreted, and a capture full of distinct clients misses
    the memo for most streams (~2% of the sensor benchmark's CPU).
    """
    text = _TEXT.get(packed)
    if text is None:
        if len(_TEXT) >= _TEXT_MAX:
            _TEXT.clear()
        if len(packed) == 4:
            text = f"{packed[0]}.{packed[1]}.{packed[2]}.{packed[3]}"
        else:
            text = str(ipaddress.ip_address(packed))
        _TEXT[packed] = text
    return text


class Conn:
    """Addresses by role (client first), timestamps, TCP halves and closing state.

    ``ctx`` belongs to the listener (the engine keeps its per-stream record state there);
    ``last_dir`` is the direction of the packet just processed (0 client->server, 1 back).
    """

    __slots__ = (
        "cip",
        "closing",
        "cport",
        "ctx",
        "data_seen",
        "first_ts",
        "halves",
        "key",
        "last_dir",
        "last_ts",
        "order",
        "proto",
        "sip",
        "sport",
        "syn_seen",
        "vlan",
    )

    def __init__(
        self,
        key: tuple[Any, ...],
        proto: int,
        vlan: tuple[int, ...],
        client: tuple[bytes, int],
        server: tuple[bytes, int],
        ts_ns: int,
    ) -> None:
        self.key = key
        self.proto = proto
        self.vlan = vlan
        self.cip, self.cport = client
        self.sip, self.sport = server
        self.first_ts = ts_ns
        self.last_ts = ts_ns
        self.last_dir = 0
        self.halves: tuple[HalfStream, HalfStream] | None = None
        self.syn_seen = False
        self.data_seen = False
        self.closing = ""  # "fin" or "rst" once the connection is being torn down
        self.ctx: Any = None
        #: its place in the flow table's ``conns`` (set by the table when it goes in)
        self.order = 0

    def make_halves(
        self, sink: StreamSink, counts: Counter[str], budget: Budget, max_bytes: int, max_segs: int
    ) -> None:
        self.halves = (
            HalfStream(self, 0, sink, counts, budget, max_bytes, max_segs),
            HalfStream(self, 1, sink, counts, budget, max_bytes, max_segs),
        )

    def swap_roles(self) -> None:
        """We guessed the client wrong (before any payload was delivered): turn it around."""
        self.cip, self.sip = self.sip, self.cip
        self.cport, self.sport = self.sport, self.cport
        if self.halves is not None:
            server, client = self.halves
            client.direction, server.direction = 0, 1
            self.halves = (client, server)
        self.last_dir ^= 1

    @property
    def client_ip(self) -> str:
        return address_text(self.cip)

    @property
    def server_ip(self) -> str:
        return address_text(self.sip)

    @property
    def layer4(self) -> str:
        return "tcp" if self.proto == 6 else "udp"
