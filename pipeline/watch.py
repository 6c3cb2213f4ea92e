"""``streamtap watch``: matched streams as one line each, for people at a terminal.

A watcher is a reader, not a worker: it uses no consumer group (it never takes partitions away
from sinks or other watchers, and never commits), and starts at the end of the topic unless
asked to replay it.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Callable
from typing import Any

from aiokafka import AIOKafkaConsumer

from streamtap.schema import MatchedStream, RecordError, decode_matched

__all__ = ["render_line", "wants", "watch_matched"]


def _time(ts_ns: int) -> str:
    stamp = dt.datetime.fromtimestamp(ts_ns / 1e9, tz=dt.UTC)
    return stamp.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def _endpoint(ip: str, port: int) -> str:
    return f"[{ip}]:{port}" if ":" in ip else f"{ip}:{port}"


def _summary(entry: dict[str, Any]) -> str:
    name = (entry.get("protocol") or {}).get("name")
    req = entry.get("request") or {}
    resp = entry.get("response") or {}
    if name == "http":
        text = f"{req.get('method', '?')} {req.get('url') or req.get('path') or ''}"
        return f"{text} -> {resp['status']}" if "status" in resp else text
    if name == "dns":
        questions = req.get("questions") or resp.get("answers") or [{}]
        q = questions[0] if isinstance(questions, list) and questions else {}
        text = f"{q.get('type', '?')} {q.get('name', '?')}"
        return f"{text} -> {resp['code']}" if "code" in resp else text
    return ""


def render_line(message: MatchedStream) -> str:
    """time  rules  protocol  src -> dst  summary (the first matching entry, else counters)."""
    record = message.record
    indices = sorted({i for ids in message.matched_entries.values() for i in ids})
    entry = record.entries[indices[0]] if indices else (record.entries[0] if record.entries else {})
    protocol = (entry.get("protocol") or {}).get("abbr") or record.layer4.upper()
    summary = _summary(entry) if entry else ""
    if not summary:
        packets = record.client.packets + record.server.packets
        octets = record.client.bytes + record.server.bytes
        summary = f"segment {record.segment}, {packets} packets, {octets} bytes"
    if len(indices) > 1:
        summary += f" (+{len(indices) - 1} more)"
    rules = ",".join(sorted(message.rules))
    src = _endpoint(record.src.ip, record.src.port)
    dst = _endpoint(record.dst.ip, record.dst.port)
    return f"{_time(record.first_ts_ns)}  {rules}  {protocol}  {src} -> {dst}  {summary}"


def wants(
    message: MatchedStream, rule: str | None, query: Callable[[dict[str, Any]], bool] | None
) -> bool:
    if rule is not None and rule not in message.rules:
        return False
    return query is None or any(query(e) for e in message.record.entries)


async def watch_matched(
    bootstrap: str,
    topic: str,
    emit: Callable[[str], None],
    *,
    rule: str | None = None,
    query: Callable[[dict[str, Any]], bool] | None = None,
    from_beginning: bool = False,
    limit: int | None = None,
    idle_exit_s: float | None = None,
) -> int:
    """Print matching messages until cancelled (or ``limit`` lines, or ``idle_exit_s`` quiet)."""
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id=None,
        enable_auto_commit=False,
        auto_offset_reset="earliest" if from_beginning else "latest",
    )
    await consumer.start()
    shown = 0
    idle = 0.0
    try:
        while limit is None or shown < limit:
            batches = await consumer.getmany(timeout_ms=500)
            if not batches:
                idle += 0.5
                if idle_exit_s is not None and idle >= idle_exit_s:
                    break
                continue
            idle = 0.0
            for messages in batches.values():
                for raw in messages:
                    try:
                        message = decode_matched(raw.value or b"")
                    except RecordError as exc:
                        emit(f"# offset {raw.partition}@{raw.offset}: not a matched stream ({exc})")
                        continue
                    if wants(message, rule, query):
                        emit(render_line(message))
                        shown += 1
                        if limit is not None and shown >= limit:
                            return shown
            await asyncio.sleep(0)
    finally:
        await consumer.stop()
    return shown
