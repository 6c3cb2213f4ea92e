"""What the sink reports: a periodic log line and, when a port is set, ``GET /stats`` as JSON."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import asdict, dataclass

import orjson

__all__ = ["SinkStats", "serve_stats"]

log = logging.getLogger("streamtap.sink")


@dataclass
class SinkStats:
    messages: int = 0
    bad_messages: int = 0
    batches: int = 0
    objects: int = 0
    objects_already_stored: int = 0
    bytes_uploaded: int = 0
    retries: int = 0
    commit_retries: int = 0
    conflicts: int = 0
    uploads: int = 0
    upload_seconds_total: float = 0.0
    upload_seconds_max: float = 0.0
    pending_bytes: int = 0
    spilled_bytes: int = 0
    spilled_bytes_total: int = 0
    pauses: int = 0
    pending_batches: int = 0
    paused: bool = False

    def upload_done(self, seconds: float) -> None:
        self.uploads += 1
        self.upload_seconds_total += seconds
        self.upload_seconds_max = max(self.upload_seconds_max, seconds)

    def as_dict(self) -> dict[str, object]:
        data: dict[str, object] = asdict(self)
        data["upload_seconds_avg"] = self.upload_seconds_total / self.uploads if self.uploads else 0
        return data

    def line(self) -> str:
        avg = self.upload_seconds_total / self.uploads if self.uploads else 0.0
        return (
            f"batches={self.batches} objects={self.objects} "
            f"already_stored={self.objects_already_stored} bytes={self.bytes_uploaded} "
            f"messages={self.messages} bad={self.bad_messages} retries={self.retries} "
            f"upload_avg={avg:.3f}s upload_max={self.upload_seconds_max:.3f}s "
            f"pending={self.pending_batches}/{self.pending_bytes}B spilled={self.spilled_bytes}B "
            f"paused={self.paused}"
        )


async def serve_stats(stats: SinkStats, port: int) -> asyncio.Server:
    """A one-route HTTP server on 127.0.0.1: enough for a probe or ``curl``."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            request = await reader.readline()
            while (await reader.readline()) not in (b"\r\n", b"\n", b""):
                pass
            if request.split(b" ")[1:2] == [b"/stats"]:
                body, status = orjson.dumps(stats.as_dict()), b"200 OK"
            else:
                body, status = b'{"error": "not found"}', b"404 Not Found"
            writer.write(
                b"HTTP/1.1 " + status + b"\r\nContent-Type: application/json\r\n"
                b"Content-Length: "
                + str(len(body)).encode()
                + b"\r\nConnection: close\r\n\r\n"
                + body
            )
            await writer.drain()
        finally:
            writer.close()

    return await asyncio.start_server(handle, "127.0.0.1", port)
