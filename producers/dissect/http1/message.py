"""Heads and bodies -> ``request``/``response`` objects in ENTRY.md's JSON shape.

Plain dicts rather than the pydantic models: this runs once per exchange on the sensor's hot
path; ``tests/unit/producers/dissect`` checks the dicts validate against
``streamtap.schema.entry``.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import unquote_plus, urlsplit

from producers.dissect.http1.content import BodySink, render_body
from producers.dissect.http1.events import Head

__all__ = ["parse_query", "request_object", "response_object"]


def parse_query(query: str) -> dict[str, Any]:
    """``a=1&b=2&b=3`` -> ``{"a": "1", "b": ["2", "3"]}`` (form decoding, blanks kept)."""
    out: dict[str, Any] = {}
    plain = "%" not in query and "+" not in query  # then unquote_plus returns its input
    for part in query.split("&"):
        if not part:
            continue
        name, _, value = part.partition("=")
        if not plain:
            name, value = unquote_plus(name), unquote_plus(value)
        have = out.get(name)
        if have is None:
            out[name] = value
        elif isinstance(have, list):
            have.append(value)
        else:
            out[name] = [have, value]
    return out


def _cookie_pairs(text: str, first_only: bool) -> list[tuple[str, str]]:
    pairs = []
    for part in text.split(";"):
        name, eq, value = part.strip().partition("=")
        if eq and name:
            pairs.append((name.strip(), value.strip().strip('"')))
        if first_only:
            break
    return pairs


def _split_target(target: str) -> tuple[str, str]:
    if target.startswith(("http://", "https://")):
        parts = urlsplit(target)
        return parts.path or "/", parts.query
    path, _, query = target.partition("?")
    return path.partition("#")[0], query.partition("#")[0]


def _body(sink: BodySink, mime: str) -> tuple[str, bool]:
    return render_body(bytes(sink.kept), mime)


def request_object(head: Head, sink: BodySink | None) -> dict[str, Any]:
    path, query = _split_target(head.second)
    cookies: dict[str, str] = {}
    if "cookie" in head.index:
        for name, value in head.headers:
            if name.lower() == "cookie":
                cookies.update(_cookie_pairs(value, first_only=False))
    obj: dict[str, Any] = {
        "method": head.first,
        "url": head.second,
        "path": path,
        "pathSegments": [s for s in path.split("/") if s],
        "httpVersion": head.third,
        "headers": head.fields,
        "cookies": cookies,
        "queryString": parse_query(query) if query else {},
        "headersSize": head.size,
        "bodySize": sink.size if sink is not None else 0,
    }
    if sink is not None and sink.size:
        mime = head.index.get("content-type", "")
        text, b64 = _body(sink, mime)
        post: dict[str, Any] = {"mimeType": mime, "text": text}
        if b64:
            post["encoding"] = "base64"
        obj["postData"] = post
    return obj


def response_object(head: Head, sink: BodySink | None) -> dict[str, Any]:
    cookies: dict[str, str] = {}
    if "set-cookie" in head.index:
        for name, value in head.headers:
            if name.lower() == "set-cookie":
                cookies.update(_cookie_pairs(value, first_only=True))
    mime = head.index.get("content-type", "")
    content: dict[str, Any] = {"mimeType": mime, "size": 0, "text": ""}
    if sink is not None:
        content["size"] = sink.decoded_size if sink.decoded else sink.size
        text, b64 = _body(sink, mime)
        content["text"] = text
        if b64:
            content["encoding"] = "base64"
    return {
        "status": head.status,
        "statusText": head.third,
        "httpVersion": head.first,
        "headers": head.fields,
        "cookies": cookies,
        "content": content,
        "headersSize": head.size,
        "bodySize": sink.size if sink is not None else 0,
    }
