"""The entry: what a KFL query sees, one per dissected item (see ``shared/kfl/ENTRY.md``).

These models are the documentation and the validator of that JSON shape. The sensor's hot path
builds plain dicts (dissectors fill ``request``/``response``, the record builder the common
fields); tests validate those dicts here, so the shape cannot drift from ENTRY.md unnoticed.
Unknown keys inside ``request``/``response`` are refused, so a typo in a dissector fails a test
instead of reaching users.

``entry_from_json`` picks the model by ``protocol.name``; ``Entry.to_json`` gives back exactly
ENTRY.md's JSON (optional fields that are unset are left out, as ENTRY.md does).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

__all__ = [
    "BareEntry",
    "DnsEntry",
    "DnsMx",
    "DnsQuestion",
    "DnsRecord",
    "DnsRequest",
    "DnsResponse",
    "DnsSoa",
    "DnsSrv",
    "Entry",
    "EntryNode",
    "EntryPeer",
    "EntryProtocol",
    "HttpContent",
    "HttpEntry",
    "HttpPostData",
    "HttpRequest",
    "HttpResponse",
    "entry_from_json",
]

PROTOCOLS: dict[str, str] = {
    "http": "HTTP",
    "http2": "HTTP/2",
    "grpc": "gRPC",
    "dns": "DNS",
    "tls": "TLS",
    "redis": "Redis",
    "kafka": "Kafka",
    "amqp": "AMQP",
    "tcp": "TCP",
    "udp": "UDP",
}


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    def to_json(self) -> dict[str, Any]:
        """The JSON object ENTRY.md describes (aliases, no unset optional fields)."""
        return self.model_dump(mode="json", by_alias=True, exclude_none=True)


# -- common fields -----------------------------------------------------------------------------


class EntryNode(_Model):
    """The sensor that captured the stream."""

    name: str
    ip: str = ""


class EntryProtocol(_Model):
    name: Literal["http", "http2", "grpc", "dns", "tls", "redis", "kafka", "amqp", "tcp", "udp"]
    abbr: str
    version: str = ""
    layer4: Literal["tcp", "udp"]


class EntryPeer(_Model):
    """One side of the stream: ``src`` opened it (the client), ``dst`` is the server."""

    ip: str
    port: int = Field(ge=0, le=65535)
    name: str = ""
    namespace: str = ""
    pod: str = ""


class Entry(_Model):
    """Fields every entry has, whatever the protocol.

    Top-level keys beyond these are allowed: the record builder adds a dissector's
    ``Item.extra`` there (``gap``, ``informational``, ``unmatched_response``, ``variant``...),
    never over a documented field. Everything nested stays strict.
    """

    model_config = ConfigDict(extra="allow", populate_by_name=True)

    id: str = Field(description="<stream>-<index>")
    stream: str
    index: int = Field(ge=0)
    node: EntryNode
    protocol: EntryProtocol
    src: EntryPeer
    dst: EntryPeer
    timestamp: int = Field(description="unix ms of the item's first packet (the request)")
    elapsedTime: int = Field(0, ge=0, description="ms from request to response; 0 without one")
    requestSize: int = Field(0, ge=0, description="bytes on the wire of the request side")
    responseSize: int = Field(0, ge=0, description="bytes on the wire of the response side")


class BareEntry(Entry):
    """A stream no dissector claimed: ``protocol.name`` is ``tcp`` or ``udp``."""


# -- HTTP (also the shape HTTP/2 and gRPC use) --------------------------------------------------


QueryValue = str | list[str]


class HttpPostData(_Model):
    mimeType: str = ""
    text: str = ""
    encoding: Literal["base64"] | None = None


class HttpRequest(_Model):
    method: str
    url: str = Field(description="request target as on the wire (path and query)")
    path: str
    pathSegments: list[str]
    httpVersion: str
    headers: dict[str, str] = Field(description='name as sent -> value; repeats joined by ", "')
    cookies: dict[str, str] = {}
    queryString: dict[str, QueryValue] = {}
    postData: HttpPostData | None = Field(None, description="present when there is a body")
    headersSize: int = Field(0, ge=0)
    bodySize: int = Field(0, ge=0, description="after de-chunking, before content decoding")


class HttpContent(_Model):
    mimeType: str = ""
    size: int = Field(0, ge=0, description="decoded body size")
    text: str = Field("", description="capped; text as text, anything else base64")
    encoding: Literal["base64"] | None = None


class HttpResponse(_Model):
    status: int
    statusText: str = ""
    httpVersion: str
    redirectURL: str | None = Field(None, description="HAR's field; optional")
    headers: dict[str, str]
    cookies: dict[str, str] = {}
    content: HttpContent
    headersSize: int = Field(0, ge=0)
    bodySize: int = Field(0, ge=0)


class HttpEntry(Entry):
    """``http`` (HTTP/1.x), ``http2`` and ``grpc``.

    No ``response`` when none was seen (ENTRY.md). No ``request`` when a response came whose
    request was never seen (the capture began mid-stream, or the server spoke first as in the
    corpus's data-before-handshake capture): tshark lists those as unmatched responses.
    """

    request: HttpRequest | None = None
    response: HttpResponse | None = None


# -- DNS ------------------------------------------------------------------------------------------


class DnsQuestion(_Model):
    name: str = Field(description="no trailing dot; the root is empty")
    type: str
    class_: str = Field(alias="class")


class DnsMx(_Model):
    preference: int
    exchange: str


class DnsSoa(_Model):
    mname: str
    rname: str
    serial: int
    refresh: int
    retry: int
    expire: int
    minimum: int


class DnsSrv(_Model):
    priority: int
    weight: int
    port: int
    target: str


class DnsOpt(_Model):
    """EDNS(0): the OPT pseudo-record's class and TTL fields, decoded."""

    udpPayloadSize: int
    extendedRcode: int
    version: int
    do: bool
    options: list[dict[str, Any]] = []


class DnsRecord(_Model):
    name: str
    type: str
    class_: str = Field(alias="class")
    ttl: int
    ip: str | None = Field(None, description="A and AAAA")
    cname: str | None = None
    ns: str | None = None
    ptr: str | None = None
    dname: str | None = None
    mx: DnsMx | None = None
    txts: list[str] | None = Field(None, description="TXT and SPF character strings")
    soa: DnsSoa | None = None
    srv: DnsSrv | None = None
    opt: DnsOpt | None = None
    rdata: str | None = Field(None, description="hex rdata of types without their own field")


class DnsRequest(_Model):
    opCode: str = Field(description="Query, IQuery, Status, Notify, Update")
    id: int = Field(ge=0, le=65535)
    questions: list[DnsQuestion]


class DnsResponse(_Model):
    code: str = Field(description='"No Error", "Non-Existent Domain", ...')
    rcode: int = Field(ge=0)
    answers: list[DnsRecord] = []
    authorities: list[DnsRecord] = []
    additionals: list[DnsRecord] = []


class DnsEntry(Entry):
    request: DnsRequest
    response: DnsResponse | None = None


_BY_PROTOCOL: dict[str, type[Entry]] = {
    "http": HttpEntry,
    "http2": HttpEntry,
    "grpc": HttpEntry,
    "dns": DnsEntry,
    "tcp": BareEntry,
    "udp": BareEntry,
}


def entry_from_json(obj: dict[str, Any]) -> Entry:
    """Validate an entry object, choosing the model by ``protocol.name``.

    Raises pydantic's ``ValidationError`` (a ``ValueError``) when it does not fit.
    """
    name = obj.get("protocol", {}).get("name") if isinstance(obj, dict) else None
    model = _BY_PROTOCOL.get(str(name))
    if model is None:
        raise ValueError(f"no entry model for protocol {name!r}")
    return model.model_validate(obj)
