"""Entry and record factories for tests in any package (like mitmproxy's ``tflow``).

Each factory returns a plain JSON-ready dict that has been validated against the entry models,
so a test that builds its input here cannot drift from ENTRY.md. Keyword arguments override the
defaults; ``request=``/``response=`` replace the whole object (pass ``response=None`` for a
request that got no answer).
"""

from __future__ import annotations

from typing import Any

from streamtap.schema.entry import PROTOCOLS, entry_from_json
from streamtap.schema.record import Gap, Node, RawPacket, StreamRecord

__all__ = ["bare_entry", "dns_entry", "dns_record", "full_record", "http_entry"]

_UNSET: Any = object()


def _common(
    name: str,
    layer4: str,
    *,
    stream: str,
    index: int,
    src: tuple[str, int],
    dst: tuple[str, int],
    timestamp: int,
    elapsed: int,
    request_size: int,
    response_size: int,
    version: str = "",
    node: str = "test-node",
    src_name: str = "",
    dst_name: str = "",
) -> dict[str, Any]:
    return {
        "id": f"{stream}-{index}",
        "stream": stream,
        "index": index,
        "node": {"name": node, "ip": "127.0.0.1"},
        "protocol": {"name": name, "abbr": PROTOCOLS[name], "version": version, "layer4": layer4},
        "src": {"ip": src[0], "port": src[1], "name": src_name, "namespace": "", "pod": ""},
        "dst": {"ip": dst[0], "port": dst[1], "name": dst_name, "namespace": "", "pod": ""},
        "timestamp": timestamp,
        "elapsedTime": elapsed,
        "requestSize": request_size,
        "responseSize": response_size,
    }


def _validated(entry: dict[str, Any]) -> dict[str, Any]:
    return entry_from_json(entry).to_json()


def http_entry(
    method: str = "GET",
    url: str = "/",
    status: int | None = 200,
    *,
    host: str = "example.test",
    headers: dict[str, str] | None = None,
    response_headers: dict[str, str] | None = None,
    body: str = "",
    mime: str = "text/plain",
    request: Any = _UNSET,
    response: Any = _UNSET,
    stream: str = "00000000000000a1",
    index: int = 0,
    src: tuple[str, int] = ("10.0.0.1", 40000),
    dst: tuple[str, int] = ("10.0.0.2", 80),
    timestamp: int = 1_795_773_600_000,
    elapsed: int = 5,
    version: str = "1.1",
    **common: Any,
) -> dict[str, Any]:
    """An ``http`` entry; ``status=None`` makes one without a response."""
    path, _, query = url.partition("?")
    qs: dict[str, Any] = {}
    for part in filter(None, query.split("&")):
        k, _, v = part.partition("=")
        have = qs.get(k)
        if have is None:
            qs[k] = v
        elif isinstance(have, list):
            have.append(v)
        else:
            qs[k] = [have, v]
    if request is _UNSET:
        request = {
            "method": method,
            "url": url,
            "path": path,
            "pathSegments": [s for s in path.split("/") if s],
            "httpVersion": f"HTTP/{version}",
            "headers": {"Host": host, **(headers or {})},
            "cookies": {},
            "queryString": qs,
            "headersSize": 40 + len(url),
            "bodySize": 0,
        }
    if response is _UNSET:
        response = None
        if status is not None:
            response = {
                "status": status,
                "statusText": "",
                "httpVersion": f"HTTP/{version}",
                "headers": {"Content-Type": mime, **(response_headers or {})},
                "cookies": {},
                "content": {"mimeType": mime, "size": len(body.encode()), "text": body},
                "headersSize": 60,
                "bodySize": len(body.encode()),
            }
    entry = _common(
        "http",
        "tcp",
        stream=stream,
        index=index,
        src=src,
        dst=dst,
        timestamp=timestamp,
        elapsed=elapsed if response is not None else 0,
        request_size=(request or {}).get("headersSize", 0) + (request or {}).get("bodySize", 0),
        response_size=(response or {}).get("headersSize", 0) + (response or {}).get("bodySize", 0),
        version=version,
        **common,
    )
    if request is not None:
        entry["request"] = request
    if response is not None:
        entry["response"] = response
    return _validated(entry)


def dns_record(name: str, rtype: str = "A", ttl: int = 300, **fields: Any) -> dict[str, Any]:
    """One answer/authority/additional record, e.g. ``dns_record("a.test", ip="10.0.0.9")``."""
    return {"name": name, "type": rtype, "class": "IN", "ttl": ttl, **fields}


def dns_entry(
    name: str = "example.test",
    qtype: str = "A",
    rcode: int | None = 0,
    *,
    answers: list[dict[str, Any]] | None = None,
    authorities: list[dict[str, Any]] | None = None,
    additionals: list[dict[str, Any]] | None = None,
    txid: int = 4660,
    layer4: str = "udp",
    stream: str = "00000000000000b1",
    index: int = 0,
    src: tuple[str, int] = ("10.0.0.1", 40000),
    dst: tuple[str, int] = ("10.0.0.53", 53),
    timestamp: int = 1_795_773_600_000,
    elapsed: int = 2,
    **common: Any,
) -> dict[str, Any]:
    """A ``dns`` entry; ``rcode=None`` makes a query without an answer."""
    codes = {0: "No Error", 1: "Format Error", 2: "Server Failure", 3: "Non-Existent Domain"}
    codes |= {4: "Not Implemented", 5: "Query Refused"}
    entry = _common(
        "dns",
        layer4,
        stream=stream,
        index=index,
        src=src,
        dst=dst,
        timestamp=timestamp,
        elapsed=elapsed if rcode is not None else 0,
        request_size=29 + len(name),
        response_size=0 if rcode is None else 45 + len(name),
        **common,
    )
    entry["request"] = {
        "opCode": "Query",
        "id": txid,
        "questions": [{"name": name, "type": qtype, "class": "IN"}],
    }
    if rcode is not None:
        if answers is None and rcode == 0 and qtype == "A":
            answers = [dns_record(name, ip="10.0.0.9")]
        entry["response"] = {
            "code": codes.get(rcode, f"RCode{rcode}"),
            "rcode": rcode,
            "answers": answers or [],
            "authorities": authorities or [],
            "additionals": additionals or [],
        }
    return _validated(entry)


def bare_entry(
    layer4: str = "tcp",
    *,
    stream: str = "00000000000000c1",
    src: tuple[str, int] = ("10.0.0.1", 40000),
    dst: tuple[str, int] = ("10.0.0.2", 22),
    timestamp: int = 1_795_773_600_000,
    request_size: int = 0,
    response_size: int = 0,
    **common: Any,
) -> dict[str, Any]:
    """A ``tcp``/``udp`` entry for a stream no dissector claimed."""
    entry = _common(
        layer4,
        layer4,
        stream=stream,
        index=0,
        src=src,
        dst=dst,
        timestamp=timestamp,
        elapsed=0,
        request_size=request_size,
        response_size=response_size,
        **common,
    )
    return _validated(entry)


def full_record(entries: list[dict[str, Any]] | None = None, **fields: Any) -> StreamRecord:
    """A record with every field set to something other than its default (so encoders and
    decoders are checked on every field), validated; keyword arguments replace fields."""
    values: dict[str, Any] = {
        "stream_id": "0123456789abcdef",
        "segment": 3,
        "closed": True,
        "node": Node(name="n1", ip="192.0.2.9"),
        "layer4": "tcp",
        "src": {"ip": "10.0.0.1", "port": 40000},
        "dst": {"ip": "2001:db8::1", "port": 80},
        "vlan": (10, 20),
        "first_ts_ns": 1,
        "last_ts_ns": 2**62,
        "client": {"packets": 4, "bytes": 100},
        "server": {"packets": 5, "bytes": 0},
        "gaps": [Gap(direction="server", offset=7, length=9, ts_ns=11)],
        "entries": [http_entry(), dns_entry(), bare_entry()] if entries is None else entries,
        "packets": [
            RawPacket(ts_ns=1, linktype=1, wirelen=60, data=bytes(range(60))),
            RawPacket(ts_ns=2, linktype=276, wirelen=9000, data=b""),
            RawPacket(ts_ns=3, linktype=1, wirelen=1, data=b"\xff"),
            RawPacket(ts_ns=4, linktype=1, wirelen=2, data=b"\xff\xfe"),
        ],
    }
    values.update(fields)
    return StreamRecord.model_validate(values)
