"""Byte and count caps shared by the dissectors.

Every buffer a dissector keeps is bounded by one of these, so hostile or broken traffic costs at
most a known amount of memory per stream. The sensor builds one ``DissectLimits`` from its
settings at the edge and hands it to ``select_dissector``; the defaults are what tests use.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["DEFAULT_LIMITS", "DissectLimits"]


@dataclass(frozen=True, slots=True)
class DissectLimits:
    """Caps (bytes unless named otherwise). Exceeding a parse cap raises DissectError."""

    #: request/response line plus header section of one HTTP message
    max_head_bytes: int = 64 * 1024
    #: header lines in one HTTP message (a header flood beyond this is an error)
    max_headers: int = 256
    #: one chunk-size line or trailer section of a chunked body
    max_chunk_line: int = 4 * 1024
    #: body bytes kept in an entry (``content.text`` / ``postData.text``) before encoding
    max_body_text: int = 64 * 1024
    #: decoded (gunzipped...) bytes counted before decoding stops: the zip-bomb cap
    max_decoded_bytes: int = 16 * 1024 * 1024
    #: requests waiting for a response (pipelining) or DNS queries waiting for an answer
    max_pending: int = 1024
    #: finished items not yet taken with ``next_item``
    max_ready: int = 4096
    #: bytes scanned while looking for the next message after a gap before giving up
    max_resync_bytes: int = 1024 * 1024


DEFAULT_LIMITS = DissectLimits()
