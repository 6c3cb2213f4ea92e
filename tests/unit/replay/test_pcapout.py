"""The capture writer gives back frames byte for byte, as a file other readers open."""

from __future__ import annotations

import io
from pathlib import Path

from producers.capture import CaptureReader, open_capture
from replay.pcapout import write_capture

CORPUS = Path(__file__).parents[2] / "data" / "corpus"


def _frames(path: Path) -> list[tuple[int, int, int, bytes]]:
    return list(open_capture(path))


def test_corpus_file_records_are_byte_identical() -> None:
    original = (CORPUS / "http11-get-simple.pcap").read_bytes()
    frames = _frames(CORPUS / "http11-get-simple.pcap")
    written = b"".join(write_capture(frames))
    # Same magic (little-endian microseconds) and the same record bytes after the 24-byte header.
    assert written[:4] == original[:4]
    assert written[24:] == original[24:]


def test_nanosecond_timestamps_use_the_nanosecond_magic() -> None:
    frames = [(1_700_000_000_123_456_789, 1, 60, b"\x00" * 60)]
    written = b"".join(write_capture(frames))
    assert written[:4] == b"\x4d\x3c\xb2\xa1"
    assert list(CaptureReader(io.BytesIO(written))) == frames


def test_mixed_link_types_become_pcapng_that_reads_back() -> None:
    frames = [
        (1_000_000_000_000_000_001, 1, 64, b"\x01" * 61),
        (1_000_000_000_000_000_002, 101, 40, b"\x45" + b"\x00" * 39),
        (1_000_000_000_000_000_003, 1, 1500, b"\x02" * 100),
    ]
    written = b"".join(write_capture(frames))
    reader = CaptureReader(io.BytesIO(written))
    assert list(reader) == frames
    assert reader.format == "pcapng"
    assert reader.error is None


def test_snapped_frames_keep_their_original_length() -> None:
    frames = [(2_000_000_000, 1, 9000, b"\xaa" * 96)]
    assert list(CaptureReader(io.BytesIO(b"".join(write_capture(frames))))) == frames
