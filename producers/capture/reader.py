"""Open any capture the sensor accepts and iterate its frames: pcap, pcapng, gzip of either,
from a path or from an already open binary stream (stdin for ``-``).

The format is detected by magic bytes, not by file name, so ``tcpdump -w - | gzip`` piped in
works. A damaged capture stops cleanly: the frames before the damage are yielded, and
``reader.error`` says which file, which byte offset and what was wrong.
"""

from __future__ import annotations

import gzip
import io
import sys
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import BinaryIO

from producers.capture.errors import DEFAULT_MAX_CAPLEN, CaptureError, Frame
from producers.capture.pcap import PCAP_MAGICS, read_pcap
from producers.capture.pcapng import PCAPNG_MAGIC, read_pcapng

__all__ = ["CaptureReader", "open_capture"]

_GZIP_MAGIC = b"\x1f\x8b"


class _Prefixed:
    """A read(n) that first returns bytes already taken off a stream (to sniff its magic)."""

    def __init__(self, prefix: bytes, read: Callable[[int], bytes]) -> None:
        self._prefix = prefix
        self._read = read

    def read(self, n: int = -1) -> bytes:
        if not self._prefix:
            return self._read(n)
        if n < 0:
            out, self._prefix = self._prefix + self._read(-1), b""
            return out
        out, self._prefix = self._prefix[:n], self._prefix[n:]
        if len(out) < n:
            out += self._read(n - len(out))
        return out


def _exact(read: Callable[[int], bytes]) -> Callable[[int], bytes]:
    """``read`` for a raw stream (pipe, socket) that may return fewer bytes than asked:
    keep reading until ``n`` bytes or end of stream, as a buffered stream does by itself."""

    def read_exact(n: int) -> bytes:
        data = read(n)
        if data is None:
            data = b""
        while 0 <= len(data) < n:
            more = read(n - len(data))
            if not more:
                break
            data += more
        return data

    return read_exact


class CaptureReader:
    """Iterate ``(ts_ns, linktype, wirelen, data)`` frames of one capture stream, once.

    ``frames`` and ``bytes`` count what was yielded; ``error`` holds the CaptureError that
    stopped the iteration early, or None when the capture ended cleanly.
    """

    def __init__(
        self,
        stream: BinaryIO,
        source: str = "<stream>",
        max_caplen: int = DEFAULT_MAX_CAPLEN,
        *,
        owns_stream: bool = False,
    ) -> None:
        self.source = source
        self.max_caplen = max_caplen
        self.frames = 0
        self.bytes = 0
        self.compressed = False
        self.format = ""
        self._stream = stream
        self._errors: list[CaptureError] = []
        #: close the stream when iteration ends (a file ``open_capture`` opened; closed here,
        #: not by a generator around this one, which was one more resumption per frame)
        self._owns_stream = owns_stream

    @property
    def error(self) -> CaptureError | None:
        return self._errors[0] if self._errors else None

    def __iter__(self) -> Iterator[Frame]:
        read: Callable[[int], bytes] = self._stream.read
        # what has arrived, up to n bytes (b"" at the end): lets the pcap reader take chunks
        read_some: Callable[[int], bytes] | None = None
        if isinstance(self._stream, io.BufferedIOBase):
            read_some = getattr(self._stream, "read1", None)
        else:
            read = _exact(read)  # buffered streams already return all n bytes unless at EOF
        try:
            magic = read(4)
            if magic[:2] == _GZIP_MAGIC:
                self.compressed = True
                gz = gzip.GzipFile(fileobj=_Prefixed(magic, read), mode="rb")  # type: ignore[call-overload]
                read = gz.read
                read_some = gz.read1
                magic = read(4)
            if magic in PCAP_MAGICS:
                self.format = "pcap"
                frames = read_pcap(
                    read, magic, self.source, self.max_caplen, self._errors, read_some
                )
            elif magic == PCAPNG_MAGIC:
                self.format = "pcapng"
                frames = read_pcapng(read, magic, self.source, self.max_caplen, self._errors)
            else:
                what = "empty input" if not magic else f"unknown magic {magic.hex()}"
                self._errors.append(
                    CaptureError(self.source, 0, f"not a pcap or pcapng capture ({what})")
                )
                return
            for frame in frames:
                self.frames += 1
                self.bytes += len(frame[3])
                yield frame
        except (OSError, EOFError, zlib.error) as exc:
            # gzip reports truncation and corruption as EOFError / BadGzipFile (an OSError).
            where = "decompressed " if self.compressed else ""
            self._errors.append(
                CaptureError(
                    self.source,
                    -1,
                    f"read failed after {self.frames} frames "
                    f"({where}stream): {type(exc).__name__}: {exc}",
                )
            )
        finally:
            if self._owns_stream:
                self._stream.close()


def open_capture(path: str | Path, max_caplen: int = DEFAULT_MAX_CAPLEN) -> CaptureReader:
    """A reader for a capture file, or for stdin when ``path`` is ``-``.

    The file is opened now (so a missing file fails here) and closed when iteration ends.
    """
    if str(path) == "-":
        return CaptureReader(sys.stdin.buffer, "<stdin>", max_caplen)
    file = Path(path)
    return CaptureReader(file.open("rb"), str(file), max_caplen, owns_stream=True)
