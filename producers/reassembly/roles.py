"""Who is the client? The stream record's ``src`` is the side that opened the stream.

In order of trust:

1. TCP handshake: the sender of a SYN without ACK is the client; of a SYN-ACK, the server.
2. Capture started mid-stream (no SYN seen): the first payload decides when it is plainly a
   request or a response: an HTTP request line (``GET /...``) comes from the client, an HTTP
   status line (``HTTP/1.1 200``) from the server.
3. Otherwise ports: a well-known service port (below 1024, or one of ``SERVICE_PORTS``) is the
   server's; between two other ports the lower one is the server's (ephemeral ports are high).
4. Equal ports: whoever sent first is the client.

For UDP the first datagram's sender is the client, unless only its *own* port is a service port
(we caught the answer before the question).
"""

from __future__ import annotations

from typing import Final

__all__ = ["SERVICE_PORTS", "looks_like_request", "looks_like_response", "sender_is_client"]

#: Server ports above 1023 common enough to trust (HTTP alternates, databases, brokers, gRPC).
SERVICE_PORTS: Final = frozenset(
    (
        1080,
        1433,
        1521,
        2375,
        2376,
        3000,
        3306,
        5000,
        5353,
        5355,
        5432,
        5672,
        6379,
        6443,
        8000,
        8080,
        8081,
        8443,
        8888,
        9000,
        9042,
        9090,
        9092,
        9200,
        10250,
        11211,
        27017,
        50051,
    )
)

_METHODS: Final = (
    b"GET ",
    b"POST ",
    b"PUT ",
    b"HEAD ",
    b"DELETE ",
    b"OPTIONS ",
    b"PATCH ",
    b"CONNECT ",
    b"TRACE ",
    b"PRI * HTTP/2",
)


def _service(port: int) -> bool:
    return port < 1024 or port in SERVICE_PORTS


def sender_is_client(sport: int, dport: int, udp: bool = False) -> bool:
    """Guess from ports alone whether the sender of a packet (sport -> dport) is the client."""
    if _service(sport) != _service(dport):
        return _service(dport)
    if udp or sport == dport:
        return True
    return sport > dport


def looks_like_request(payload: bytes) -> bool:
    """The payload opens with an HTTP/1.x request line (or the HTTP/2 preface)."""
    return payload.startswith(_METHODS)


def looks_like_response(payload: bytes) -> bool:
    """The payload opens with an HTTP/1.x status line."""
    return payload.startswith((b"HTTP/1.0 ", b"HTTP/1.1 "))
