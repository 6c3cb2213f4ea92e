"""The one-line view of an entry: the columns the store indexes and the dashboard's table shows.

Computed in one place so the SQL columns, the API's rows and the manifest-pruning summaries can
never disagree about what "the status" or "the summary" of an entry is.
"""

from __future__ import annotations

from typing import Any

# typing_extensions: pydantic (the API's response model) needs it for TypedDict before 3.12
from typing_extensions import TypedDict

__all__ = ["Row", "index_terms", "summarize"]


class Row(TypedDict):
    id: str
    stream: str
    timestamp: int
    protocol: str
    abbr: str
    src_ip: str | None
    src_port: int | None
    src_name: str | None
    dst_ip: str | None
    dst_port: int | None
    dst_name: str | None
    method: str | None
    summary: str
    status: int | None
    rcode: int | None
    status_text: str
    elapsed: int
    size: int


def _obj(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _str(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _dns_question(request: dict[str, Any]) -> str:
    questions = request.get("questions")
    if not isinstance(questions, list) or not questions:
        return ""
    parts = []
    for q in questions:
        q = _obj(q)
        parts.append(f"{q.get('type', '?')} {q.get('name', '')}".strip())
    return ", ".join(parts)


def summarize(entry: dict[str, Any]) -> Row:
    """The row for an entry; tolerant of any shape (a missing field gives None or "")."""
    proto = _obj(entry.get("protocol"))
    src, dst = _obj(entry.get("src")), _obj(entry.get("dst"))
    request, response = _obj(entry.get("request")), _obj(entry.get("response"))
    name = _str(proto.get("name")) or ""
    method = _str(request.get("method"))
    status = _int(response.get("status"))
    rcode = _int(response.get("rcode"))
    if name == "dns":
        summary = _dns_question(request)
        status_text = _str(response.get("code")) or ""
    elif method is not None:
        summary = f"{method} {_str(request.get('url')) or _str(request.get('path')) or ''}"
        status_text = str(status) if status is not None else ""
    else:
        summary = ""
        status_text = str(status) if status is not None else ""
    return Row(
        id=_str(entry.get("id")) or "",
        stream=_str(entry.get("stream")) or "",
        timestamp=_int(entry.get("timestamp")) or 0,
        protocol=name,
        abbr=_str(proto.get("abbr")) or name.upper(),
        src_ip=_str(src.get("ip")),
        src_port=_int(src.get("port")),
        src_name=_str(src.get("name")),
        dst_ip=_str(dst.get("ip")),
        dst_port=_int(dst.get("port")),
        dst_name=_str(dst.get("name")),
        method=method,
        summary=summary,
        status=status,
        rcode=rcode,
        status_text=status_text,
        elapsed=_int(entry.get("elapsedTime")) or 0,
        size=(_int(entry.get("requestSize")) or 0) + (_int(entry.get("responseSize")) or 0),
    )


def index_terms(entry: dict[str, Any]) -> tuple[str | None, str | None]:
    """``request.path`` and ``request.questions[0].name``: store columns that only the SQL
    pushdown reads (the table does not show them), so path prefixes and DNS names are answered
    by SQLite instead of parsing every document. Text values only, like the other text columns:
    the dissectors never write anything else there."""
    request = _obj(entry.get("request"))
    questions = request.get("questions")
    qname = None
    if isinstance(questions, list) and questions:
        qname = _str(_obj(questions[0]).get("name"))
    return _str(request.get("path")), qname
