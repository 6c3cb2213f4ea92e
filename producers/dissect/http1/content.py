"""Body bytes -> what an entry keeps: streaming content decoding under a decoded-size cap.

Bodies are decoded as they arrive and never stored whole: only the first ``text_cap`` decoded
bytes are kept for ``content.text``, and decoding stops after ``decoded_cap`` bytes of output,
so a zip bomb costs bounded CPU and memory. The full bytes stay in the PCAP.
"""

from __future__ import annotations

import base64
import codecs
import zlib
from typing import Final, Protocol

try:
    import brotli
except ImportError:  # pragma: no cover - brotli is a dependency, but optional here
    brotli = None

__all__ = ["BodySink", "render_body"]

#: decode in steps of at most this many output bytes, so one step never allocates much
_STEP: Final = 64 * 1024

_TEXT_MIME_HINTS: Final = (
    "json",
    "xml",
    "javascript",
    "ecmascript",
    "x-www-form-urlencoded",
    "yaml",
    "csv",
)
_BINARY_MIME_PREFIXES: Final = (
    "image/",
    "audio/",
    "video/",
    "font/",
    "application/octet-stream",
    "application/zip",
    "application/gzip",
    "application/pdf",
    "application/grpc",
    "application/x-protobuf",
    "application/protobuf",
    "application/vnd.docker.raw-stream",
)


class _Decoder(Protocol):
    def feed(self, data: bytes, limit: int) -> list[bytes]: ...


class _ZlibDecoder:
    """gzip or zlib/raw deflate; the deflate flavour is chosen from the first two bytes."""

    __slots__ = ("_d", "_gzip", "_head")

    def __init__(self, gzip: bool) -> None:
        self._gzip = gzip
        self._d: zlib._Decompress | None = zlib.decompressobj(31) if gzip else None
        self._head = b""

    def feed(self, data: bytes, limit: int) -> list[bytes]:
        if self._d is None:
            self._head += data
            if len(self._head) < 2:
                return []
            b0, b1 = self._head[0], self._head[1]
            zlib_header = b0 & 0x0F == 8 and ((b0 << 8) | b1) % 31 == 0
            self._d = zlib.decompressobj(15 if zlib_header else -15)
            data, self._head = self._head, b""
        out: list[bytes] = []
        while limit > 0 and not self._d.eof:
            chunk = self._d.decompress(data, min(limit, _STEP))
            if chunk:
                out.append(chunk)
                limit -= len(chunk)
            data = self._d.unconsumed_tail
            if not data and not chunk:
                break
        if limit <= 0 and (self._d.unconsumed_tail or not self._d.eof):
            out.append(b"")  # marker: more output was pending when the budget ran out
        return out


class _BrotliDecoder:
    __slots__ = ("_d",)

    def __init__(self) -> None:
        assert brotli is not None
        self._d = brotli.Decompressor()

    def feed(self, data: bytes, limit: int) -> list[bytes]:
        out: list[bytes] = []
        chunk = self._d.process(data, output_buffer_limit=min(limit, _STEP))
        while True:
            if chunk:
                out.append(chunk)
                limit -= len(chunk)
            if self._d.can_accept_more_data() or self._d.is_finished():
                return out
            if limit <= 0:
                out.append(b"")
                return out
            chunk = self._d.process(b"", output_buffer_limit=min(limit, _STEP))


def _decoder_for(coding: str) -> _Decoder | str | None:
    """A decoder, None for identity, or the coding's name when we cannot decode it."""
    coding = coding.strip().lower()
    if coding in ("", "identity"):
        return None
    if coding in ("gzip", "x-gzip"):
        return _ZlibDecoder(gzip=True)
    if coding == "deflate":
        return _ZlibDecoder(gzip=False)
    if coding == "br" and brotli is not None:
        return _BrotliDecoder()
    return coding


class BodySink:
    """Takes a message body piece by piece; knows its sizes and keeps its first bytes."""

    __slots__ = (
        "_decoded_cap",
        "_decoder",
        "_text_cap",
        "capped",
        "decode_error",
        "decoded_size",
        "gap",
        "kept",
        "raw_kept",
        "size",
        "undecodable",
    )

    def __init__(self, content_encoding: str, text_cap: int, decoded_cap: int) -> None:
        self.size = 0
        self.decoded_size = 0
        self.kept = bytearray()
        #: the body as sent, kept only while decoding so a decode error can fall back to it
        self.raw_kept = bytearray()
        self.capped = False
        self.gap = False
        self.decode_error = ""
        self.undecodable = ""
        self._text_cap = text_cap
        self._decoded_cap = decoded_cap
        # several codings ("gzip, br") are rare: decode the outermost only if it is the sole one
        codings = [c for c in content_encoding.split(",") if c.strip()]
        dec = _decoder_for(codings[0]) if len(codings) == 1 else (content_encoding or None)
        if isinstance(dec, str):
            self.undecodable = dec
            self._decoder: _Decoder | None = None
        else:
            self._decoder = dec

    def _keep(self, data: bytes) -> None:
        room = self._text_cap - len(self.kept)
        if room > 0:
            self.kept += data[:room]

    def write(self, data: bytes) -> None:
        self.size += len(data)
        if self._decoder is None:
            self.decoded_size += len(data)
            if not self.gap:
                self._keep(data)
            return
        room = self._text_cap - len(self.raw_kept)
        if room > 0:
            self.raw_kept += data[:room]
        if self.capped or self.decode_error or self.gap:
            return
        try:
            chunks = self._decoder.feed(data, self._decoded_cap - self.decoded_size)
        except Exception as exc:  # zlib.error, or brotli.error (a plain Exception subclass)
            self.decode_error = type(exc).__name__
            self.kept = self.raw_kept  # show the body as sent, as tshark does when it fails
            self.decoded_size = 0
            return
        for chunk in chunks:
            if not chunk:
                self.capped = True
                continue
            self.decoded_size += len(chunk)
            self._keep(chunk)

    def skip(self, length: int) -> None:
        """``length`` body bytes were never captured: sizes stay right, decoding stops."""
        self.size += length
        self.gap = True
        if self._decoder is None:
            self.decoded_size += length

    @property
    def decoded(self) -> bool:
        """Whether ``kept`` holds decoded output (else it is the body as sent)."""
        return self._decoder is not None and not self.decode_error


def _charset(mime: str) -> str | None:
    for param in mime.split(";")[1:]:
        key, _, value = param.partition("=")
        if key.strip().lower() == "charset":
            name = value.strip().strip('"')
            try:
                return codecs.lookup(name).name
            except LookupError:
                return None
    return None


def _strict_utf8(data: bytes) -> str | None:
    """UTF-8 text, allowing a multi-byte character cut off by the text cap at the end."""
    for cut in range(4):
        try:
            return (data[: len(data) - cut] if cut else data).decode("utf-8")
        except UnicodeDecodeError as exc:
            if exc.start < len(data) - 4:
                return None
    return None


def _texty(lower: str) -> bool:
    return lower.startswith("text/") or any(h in lower for h in _TEXT_MIME_HINTS)


def render_body(data: bytes, mime: str) -> tuple[str, bool]:
    """(text, is_base64): text bodies as text, anything else base64 (ENTRY.md)."""
    lower = mime.lower()
    if not data:
        return "", False
    if lower.startswith(_BINARY_MIME_PREFIXES):
        return base64.b64encode(data).decode("ascii"), True
    charset = _charset(lower) if ";" in lower else None  # no parameters, no charset
    if charset and charset != "utf-8" and _texty(lower):
        return data.decode(charset, errors="replace"), False
    text = _strict_utf8(data)
    if text is not None and "\x00" not in text:
        return text, False
    if _texty(lower):
        return data.decode("utf-8", errors="replace"), False
    return base64.b64encode(data).decode("ascii"), True
