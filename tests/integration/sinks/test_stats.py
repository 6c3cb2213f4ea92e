"""``GET /stats`` answers with the live counters (loopback only; no stack needed)."""

from __future__ import annotations

import asyncio

import orjson
import pytest

from sinks.stats import SinkStats, serve_stats
from stack.ports import free_port

pytestmark = pytest.mark.integration


async def _get(port: int, path: str) -> tuple[bytes, bytes]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
    await writer.drain()
    response = await reader.read()
    writer.close()
    head, _, body = response.partition(b"\r\n\r\n")
    return head.split(b"\r\n")[0], body


async def test_stats_route_serves_current_counters() -> None:
    stats = SinkStats(batches=3, objects=5, retries=2)
    stats.upload_done(0.5)
    port = free_port()
    server = await serve_stats(stats, port)
    try:
        status, body = await _get(port, "/stats")
        assert status == b"HTTP/1.1 200 OK"
        data = orjson.loads(body)
        assert (data["batches"], data["objects"], data["retries"]) == (3, 5, 2)
        assert data["upload_seconds_avg"] == 0.5
        stats.objects += 1
        assert orjson.loads((await _get(port, "/stats"))[1])["objects"] == 6
        assert (await _get(port, "/nope"))[0] == b"HTTP/1.1 404 Not Found"
    finally:
        server.close()
        await server.wait_closed()
