"""Loopback port picking for servers whose ports are not user-facing.

SeaweedFS derives each gRPC port as HTTP port + 10000 (and its mini worker ignores an explicit
admin gRPC port), so a usable port is one where both p and p + 10000 are free.
"""

from __future__ import annotations

import contextlib
import socket

__all__ = ["GRPC_OFFSET", "free_port", "is_free", "is_listening"]

GRPC_OFFSET = 10000
HOST = "127.0.0.1"


def is_free(port: int, host: str = HOST) -> bool:
    """True if nothing listens on host:port right now (a later bind can still race)."""
    if not 0 < port < 65536:
        return False
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        # Servers set SO_REUSEADDR, so connections lingering in TIME_WAIT after a restart do
        # not block them; probe the same way or every quick down/up looks like a conflict.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def free_port(*, with_grpc: bool = False, avoid: frozenset[int] = frozenset()) -> int:
    """A free loopback port chosen by the kernel; with_grpc also wants port + 10000 free."""
    for _ in range(200):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.bind((HOST, 0))
            port = int(sock.getsockname()[1])
        taken = {port, port + GRPC_OFFSET} if with_grpc else {port}
        if taken & avoid:
            continue
        if not with_grpc or is_free(port + GRPC_OFFSET):
            return port
    raise RuntimeError("no free loopback port found")


def is_listening(port: int, host: str = HOST) -> bool:
    """True if a server accepts TCP connections on host:port."""
    with contextlib.suppress(OSError), socket.create_connection((host, port), timeout=1.0):
        return True
    return False
