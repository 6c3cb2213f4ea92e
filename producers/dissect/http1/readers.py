"""Turn buffered bytes into events: the header-section parser and one reader per body framing.

Readers return None for "need more data", like h11's. Parsing is deliberately lenient where
real traffic is sloppy (bare LF line ends, a missing or odd version, obs-fold continuations,
lines without a colon) and strict where sloppiness would make us misframe the stream
(status codes, chunk sizes), because a wrong frame poisons every later exchange.
"""

from __future__ import annotations

import re
from typing import Final

from producers.dissect.base import DissectError
from producers.dissect.http1.buffer import ReceiveBuffer
from producers.dissect.http1.events import Body, EndOfMessage, Head

__all__ = [
    "END",
    "ChunkedReader",
    "CloseDelimitedReader",
    "ContentLengthReader",
    "index_headers",
    "parse_head",
    "parse_head_careful",
    "parse_header_block",
    "split_status_line",
    "split_status_line_regex",
]

_TOKEN: Final = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_STATUS_LINE: Final = re.compile(r"(HTTP/[0-9]\.[0-9])[ \t]+([0-9]{3})(?:[ \t]+(.*))?")
_HEX: Final = re.compile(rb"[0-9A-Fa-f]{1,16}")
#: methods known to be tokens, so the token regex can be skipped for them
_COMMON_METHODS: Final = frozenset(
    ("GET", "POST", "PUT", "DELETE", "HEAD", "OPTIONS", "PATCH", "CONNECT", "TRACE")
)
_DIGITS: Final = "0123456789"


def parse_header_block(text: str, max_headers: int) -> tuple[tuple[str, str], ...]:
    """``Name: value`` lines (latin-1 text) as sent; obs-fold lines join the previous value.

    Lines without a colon are tolerated and carry no header (tshark shows them, nothing more).
    A plain split/partition loop over ``str`` measured faster here than one regex ``findall``
    (the regex needs lazy whitespace trimming) and than bytes with per-field decoding.
    """
    headers: list[tuple[str, str]] = []
    for line in text.split("\n"):
        if line.endswith("\r"):
            line = line[:-1]
        if not line:
            continue
        if line[0] in " \t":
            if headers:
                name, value = headers[-1]
                headers[-1] = (name, value + " " + line.strip(" \t"))
            continue
        name, colon, value = line.partition(":")
        name = name.rstrip(" \t")
        if colon and name:
            headers.append((name, value.strip(" \t")))
    if len(headers) > max_headers:
        raise DissectError(f"more than {max_headers} header lines")
    return tuple(headers)


def index_headers(
    headers: tuple[tuple[str, str], ...],
) -> tuple[dict[str, str], dict[str, str]]:
    """(as sent, lower-cased) maps; repeated headers joined with ", " (RFC 9110 5.3)."""
    fields: dict[str, str] = {}
    index: dict[str, str] = {}
    spelled: dict[str, str] = {}
    for name, value in headers:
        key = name.lower()
        first = spelled.get(key)
        if first is None:
            spelled[key] = name
            fields[name] = value
            index[key] = value
        else:
            joined = fields[first] + ", " + value
            fields[first] = joined
            index[key] = joined
    return fields, index


def parse_head(raw: bytes, is_request: bool, ts_ns: int, max_headers: int) -> Head:
    """One header section (start line through the blank line) as a ``Head``.

    Request lines are split like tshark does: the method ends at the first space; the target is
    everything up to the last space (or the rest of the line when there is none), so
    ``OPTIONS HTTP/1.1`` has target ``HTTP/1.1`` and an empty version, as tshark shows it.

    Fast path for the common, well-formed head (every line ends in CRLF, no obs-fold): split on
    CRLF and build the header tuple and both maps in one loop, which also checks that the head
    is one (no LF left in a line, no line starting with a space or tab) rather than scanning the
    text for that first; lower-cased names come from a small memo (``_lower``). We do not hand
    heads to httptools (llhttp, ~4x faster still) because it rejects sloppy heads tshark
    accepts, so a fallback would be needed anyway, and its stricter value and start-line rules
    would make the two paths disagree on inputs both accept. Anything else takes
    ``parse_head_careful``, the reference; ``test_http1_fastpath`` checks both give the same
    Head (or the same error) on the corpus, generated and hypothesis input.
    """
    text = raw.decode("latin-1")
    lines = text.split("\r\n")
    start = lines[0]
    if "\n" in start:
        return parse_head_careful(raw, is_request, ts_ns, max_headers)
    headers: list[tuple[str, str]] = []
    fields: dict[str, str] = {}
    index: dict[str, str] = {}
    for i in range(1, len(lines)):
        line = lines[i]
        if not line:
            continue  # the blank line that ends the head
        lead = line[0]
        if lead == " " or lead == "\t" or "\n" in line:
            # obs-fold, or a line that ends in a bare LF: the careful parser's
            return parse_head_careful(raw, is_request, ts_ns, max_headers)
        name, colon, value = line.partition(":")
        if not colon:
            continue  # a line without a colon: no header (as careful)
        name = name.rstrip(" \t")
        if not name:
            continue
        value = value.strip(" \t")
        headers.append((name, value))
        key = _lower(name)
        if key not in index:
            fields[name] = value
            index[key] = value
        else:  # a repeat (rare): joined under the spelling first sent, as index_headers does
            first = _first_spelling(headers, key)
            joined = fields[first] + ", " + value
            fields[first] = joined
            index[key] = joined
    if len(headers) > max_headers:
        raise DissectError(f"more than {max_headers} header lines")
    return _head(start, is_request, tuple(headers), len(raw), ts_ns, fields, index)


#: header name as sent -> lower-cased (the same string object each time, its hash computed
#: once); bounded, like ``reassembly.conn``'s address memo
_LOWER: Final[dict[str, str]] = {}
_LOWER_MAX: Final = 4096


def _lower(name: str) -> str:
    """``name.lower()``, memoised: names repeat across messages, and a lower-cased copy per
    header line (and hashing it) was a visible part of the head parser."""
    key = _LOWER.get(name)
    if key is None:
        if len(_LOWER) >= _LOWER_MAX:
            _LOWER.clear()
        key = _LOWER[name] = name.lower()
    return key


def _first_spelling(headers: list[tuple[str, str]], key: str) -> str:
    """The name as first sent of the header whose lower-cased name is ``key``."""
    for name, _value in headers:
        if name.lower() == key:
            return name
    raise AssertionError(key)  # not reached: the caller saw ``key`` among ``headers``


def parse_head_careful(raw: bytes, is_request: bool, ts_ns: int, max_headers: int) -> Head:
    """``parse_head`` for any head: bare-LF line ends, obs-fold, odd lines (the reference)."""
    text = raw.decode("latin-1")
    line_end = text.find("\n")
    start = text[:line_end]
    if start.endswith("\r"):
        start = start[:-1]
    headers = parse_header_block(text[line_end + 1 :], max_headers)
    fields, index = index_headers(headers)
    return _head(start, is_request, headers, len(raw), ts_ns, fields, index)


def _head(
    start: str,
    is_request: bool,
    headers: tuple[tuple[str, str], ...],
    size: int,
    ts_ns: int,
    fields: dict[str, str],
    index: dict[str, str],
) -> Head:
    """The start line's three fields, checked, and the parsed header section as a Head."""
    if is_request:
        method, _, rest = start.partition(" ")
        if method not in _COMMON_METHODS and not _TOKEN.fullmatch(method):
            raise DissectError("not an HTTP request line")
        if " " in rest:
            target, _, version = rest.rpartition(" ")
        else:
            target, version = rest, ""
        return Head(True, method, target, version, headers, size, ts_ns, fields, index)
    parts = split_status_line(start)
    if parts is None:
        raise DissectError("not an HTTP status line")
    return Head(False, parts[0], parts[1], parts[2], headers, size, ts_ns, fields, index)


def split_status_line(start: str) -> tuple[str, str, str] | None:
    """(version, status, reason) of a status line, or None if it is not one.

    Fast path for ``HTTP/d.d ddd`` followed by the end, a space or a tab, read by index; any
    other line goes to ``split_status_line_regex``, the reference (regex matching was ~1 us per
    response in the compiled engine). ``test_http1_fastpath`` checks both agree.
    """
    if (
        len(start) >= 12
        and start.startswith("HTTP/")
        and start[5] in _DIGITS
        and start[6] == "."
        and start[7] in _DIGITS
        and start[8] == " "
        and start[9] in _DIGITS
        and start[10] in _DIGITS
        and start[11] in _DIGITS
    ):
        if len(start) == 12:
            return start[:8], start[9:12], ""
        if start[12] in " \t":
            return start[:8], start[9:12], start[12:].lstrip(" \t")
    return split_status_line_regex(start)


def split_status_line_regex(start: str) -> tuple[str, str, str] | None:
    """``split_status_line`` by the status-line regex (the reference)."""
    m = _STATUS_LINE.fullmatch(start)
    if m is None:
        return None
    return m.group(1), m.group(2), m.group(3) or ""


#: the end of a message with no framing bytes left (events are frozen, so one is shared)
END: Final = EndOfMessage(0)


class ContentLengthReader:
    """Exactly ``remaining`` body bytes. Bytes are never buffered, so a 2 GB length is free."""

    __slots__ = ("remaining",)

    def __init__(self, length: int) -> None:
        self.remaining = length

    def read(self, buf: ReceiveBuffer) -> Body | EndOfMessage | None:
        if self.remaining == 0:
            return END
        if not buf:
            return None
        n = min(len(buf), self.remaining)
        self.remaining -= n
        return Body(buf.take(n), n)

    def skip(self, length: int) -> int:
        """Account for ``length`` lost bytes; returns how many fell past this body."""
        n = min(length, self.remaining)
        self.remaining -= n
        return length - n

    def at_end(self) -> EndOfMessage:
        return EndOfMessage(0, complete=self.remaining == 0)


class CloseDelimitedReader:
    """Everything until the stream ends (a response without length or chunking)."""

    __slots__ = ()

    def read(self, buf: ReceiveBuffer) -> Body | EndOfMessage | None:
        if not buf:
            return None
        n = len(buf)
        return Body(buf.take(n), n)

    def skip(self, length: int) -> int:
        return 0

    def at_end(self) -> EndOfMessage:
        return END


class ChunkedReader:
    """``Transfer-Encoding: chunked``: size lines, data, CRLF, then a trailer section."""

    __slots__ = ("_max_headers", "_max_line", "_remaining", "_state", "_wire")

    def __init__(self, max_line: int, max_headers: int) -> None:
        self._state = "size"
        self._remaining = 0
        self._wire = 0  # framing bytes consumed but not yet reported
        self._max_line = max_line
        self._max_headers = max_headers

    def read(self, buf: ReceiveBuffer) -> Body | EndOfMessage | None:
        while True:
            if self._state == "size":
                line = buf.take_line(self._max_line)
                if line is None:
                    return None
                self._wire += len(line)
                size_text = line.split(b";", 1)[0].strip(b" \t\r\n")
                if not _HEX.fullmatch(size_text):
                    raise DissectError(f"bad chunk size {size_text[:20]!r}")
                self._remaining = int(size_text, 16)
                self._state = "data" if self._remaining else "trailers"
            elif self._state == "data":
                if not buf:
                    return None
                n = min(len(buf), self._remaining)
                self._remaining -= n
                if self._remaining == 0:
                    self._state = "crlf"
                wire, self._wire = self._wire + n, 0
                return Body(buf.take(n), wire)
            elif self._state == "crlf":
                data = buf.data
                if data[:2] == b"\r\n":
                    buf.skip(2)
                    self._wire += 2
                elif data[:1] == b"\n":
                    buf.skip(1)
                    self._wire += 1
                elif len(data) < 2 and data in (b"", b"\r"):
                    return None
                else:
                    raise DissectError("chunk data not followed by CRLF")
                self._state = "size"
            else:  # trailers
                data = buf.data
                if data[:2] == b"\r\n" or data[:1] == b"\n":
                    n = 2 if data[:1] == b"\r" else 1
                    buf.skip(n)
                    wire, self._wire = self._wire + n, 0
                    self._state = "done"
                    return EndOfMessage(wire)
                if len(data) < 2 and data in (b"", b"\r"):
                    return None
                raw = buf.take_head()
                if raw is None:
                    return None
                trailers = parse_header_block(raw.decode("latin-1"), self._max_headers)
                wire, self._wire = self._wire + len(raw), 0
                self._state = "done"
                return EndOfMessage(wire, trailers)

    def skip(self, length: int) -> int:
        if self._state != "data":
            return length
        n = min(length, self._remaining)
        self._remaining -= n
        if self._remaining == 0:
            self._state = "crlf"
        return length - n

    def at_end(self) -> EndOfMessage:
        return EndOfMessage(self._wire, complete=False)


BodyReader = ContentLengthReader | ChunkedReader | CloseDelimitedReader
