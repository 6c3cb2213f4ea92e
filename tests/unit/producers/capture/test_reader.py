"""Readers: every corpus file, synthetic pcap/pcapng variants, gzip, stdin, and damage."""

from __future__ import annotations

import gzip
import io
import json
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from producers.capture import (
    CaptureReader,
    open_capture,
    pcap_header,
    pcap_record,
    pcapng_bytes,
)

ROOT = Path(__file__).resolve().parents[4]
CORPUS = ROOT / "tests" / "data" / "corpus"
MANIFEST = {
    Path(f["file"]).name: f for f in json.loads((CORPUS / "manifest.json").read_text())["files"]
}
LINKTYPES = {"ether": 1, "null": 0, "linux-sll": 113, "linux-sll2": 276}

FRAMES = [
    (1_700_000_000_123_456_000, 1, 60, b"\x01" * 60),
    (1_700_000_000_223_456_000, 1, 1514, b"\x02" * 100),  # snapped: wirelen > caplen
    (1_700_000_001_000_001_000, 1, 0, b""),
]


def _pcap(frames=FRAMES, *, nano=False, big_endian=False, linktype=1) -> bytes:
    out = pcap_header(linktype, nano=nano, big_endian=big_endian)
    for f in frames:
        out += pcap_record(f, nano=nano, big_endian=big_endian)
    return out


def _read(data: bytes) -> tuple[list, CaptureReader]:
    reader = CaptureReader(io.BytesIO(data), "mem")
    return list(reader), reader


@pytest.mark.parametrize("name", sorted(MANIFEST))
def test_corpus_frame_counts_and_linktypes(name: str) -> None:
    info = MANIFEST[name]
    reader = open_capture(CORPUS / info["file"])
    frames = list(reader)
    assert reader.error is None
    assert len(frames) == info["packets"]
    assert reader.format == info["file_format"]
    assert {f[1] for f in frames} == {LINKTYPES[info["link_type"]]}


@pytest.mark.parametrize("nano", [False, True])
@pytest.mark.parametrize("big_endian", [False, True])
def test_classic_pcap_variants(nano: bool, big_endian: bool) -> None:
    frames, reader = _read(_pcap(nano=nano, big_endian=big_endian))
    assert reader.error is None and reader.format == "pcap"
    assert frames == FRAMES


def test_nanosecond_precision_kept() -> None:
    frame = (1_700_000_000_123_456_789, 1, 4, b"abcd")
    assert _read(_pcap([frame], nano=True))[0] == [frame]
    # microsecond files drop the last three digits
    assert _read(_pcap([frame]))[0][0][0] == 1_700_000_000_123_456_000


def test_linktype_fcs_bits_ignored() -> None:
    data = bytearray(_pcap())
    data[20:24] = (0x10000000 | 1).to_bytes(4, "little")
    assert _read(bytes(data))[0][0][1] == 1


@pytest.mark.parametrize("big_endian", [False, True])
def test_pcapng_sections_interfaces_and_resolutions(big_endian: bool) -> None:
    f_eth = (1_700_000_000_123_456_789, 1, 10, b"e" * 10)
    f_raw = (1_700_000_000_500_000_000, 101, 20, b"r" * 20)
    f_sll = (1_700_000_002_000_000_000, 113, 16, b"s" * 16)
    data = pcapng_bytes(
        [
            ([(1, 9), (101, None)], [(0, f_eth), (1, f_raw)]),  # nanosecond + default micro
            ([(113, 0x80 | 10)], [(0, f_sll)]),  # a second section, binary resolution 2^-10
        ],
        big_endian=big_endian,
    )
    frames, reader = _read(data)
    assert reader.error is None and reader.format == "pcapng"
    assert frames[0] == f_eth
    assert frames[1] == f_raw
    assert frames[2][1:] == f_sll[1:]
    assert abs(frames[2][0] - f_sll[0]) < 1_000_000_000 / 1024


def test_pcapng_simple_packet_blocks() -> None:
    frame = (0, 1, 7, b"1234567")
    data = pcapng_bytes([([(1, None)], [(0, frame)])], simple=True)
    frames, reader = _read(data)
    assert reader.error is None
    assert frames == [(0, 1, 7, b"1234567")]


def test_pcapng_obsolete_packet_block() -> None:
    import struct

    shb = pcapng_bytes([([(1, None)], [])])
    body = struct.pack("<HHIIII", 0, 0, 0, 5, 3, 3) + b"xyz\x00"
    opb = struct.pack("<II", 2, len(body) + 12) + body + struct.pack("<I", len(body) + 12)
    frames, reader = _read(shb + opb)
    assert reader.error is None
    assert frames == [(5000, 1, 3, b"xyz")]


@pytest.mark.parametrize("kind", ["pcap", "pcapng"])
def test_gzip_detected_by_magic(kind: str) -> None:
    raw = _pcap() if kind == "pcap" else pcapng_bytes([([(1, 6)], [(0, f) for f in FRAMES])])
    frames, reader = _read(gzip.compress(raw))
    assert reader.error is None and reader.compressed and reader.format == kind
    assert frames == FRAMES


def test_gzip_truncated_is_reported() -> None:
    packed = gzip.compress(_pcap(FRAMES * 50))
    frames, reader = _read(packed[: len(packed) // 2])
    assert reader.error is not None
    assert "mem" in str(reader.error) and "EOFError" in str(reader.error)
    assert len(frames) < 150


def test_stdin_dash_reads_a_pipe(tmp_path: Path) -> None:
    code = (
        "from producers.capture import open_capture\n"
        "r = open_capture('-')\n"
        "print(len(list(r)), r.error, r.source)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        input=gzip.compress(_pcap()),
        capture_output=True,
        cwd=ROOT,
        check=True,
    )
    assert out.stdout.decode().split() == ["3", "None", "<stdin>"]


def test_every_truncation_point_stops_cleanly() -> None:
    whole = _pcap()
    ends = {24, 24 + 16 + 60, 24 + 16 + 60 + 16 + 100, len(whole)}  # record boundaries
    for cut in range(len(whole) + 1):
        frames, reader = _read(whole[:cut])
        assert frames == FRAMES[: len(frames)]
        if cut in ends:
            assert reader.error is None, cut
        else:
            assert reader.error is not None, cut
            assert 0 <= reader.error.offset <= cut


def test_truncation_error_names_offset() -> None:
    frames, reader = _read(_pcap()[:-1])
    assert len(frames) == 2
    assert reader.error is not None
    assert reader.error.offset == 24 + 16 + 60 + 16 + 100
    assert "truncated record header" in reader.error.reason


def test_bogus_length_is_refused_without_allocating() -> None:
    import struct

    data = _pcap([FRAMES[0]]) + struct.pack("<IIII", 1, 0, 0xFFFFFFF0, 0xFFFFFFF0) + b"x" * 10
    frames, reader = _read(data)
    assert frames == [FRAMES[0]]
    assert reader.error is not None and "bogus captured length" in reader.error.reason
    assert reader.error.offset == 24 + 16 + 60


def test_pcapng_bogus_block_length() -> None:
    import struct

    good = pcapng_bytes([([(1, None)], [(0, FRAMES[0])])])
    frames, reader = _read(good + struct.pack("<II", 6, 0xFFFFFFFC) + b"\x00" * 32)
    assert len(frames) == 1
    assert reader.error is not None and reader.error.offset == len(good)
    assert "bogus block length" in reader.error.reason


def test_pcapng_unknown_interface() -> None:
    data = pcapng_bytes([([(1, None)], [(0, FRAMES[0])])])
    # make the EPB point at interface 3
    pos = data.rindex(b"\x06\x00\x00\x00")
    data = data[: pos + 8] + b"\x03" + data[pos + 9 :]
    frames, reader = _read(data)
    assert frames == [] and reader.error is not None and "interface 3" in reader.error.reason


@pytest.mark.parametrize("data", [b"", b"\x00\x01", b"hello world, not a capture"])
def test_not_a_capture(data: bytes) -> None:
    frames, reader = _read(data)
    assert frames == [] and reader.error is not None and reader.error.offset == 0


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=400), st.sampled_from(["pcap", "pcapng", "pcap-be", "gzip"]))
def test_fuzz_readers_never_raise(tail: bytes, kind: str) -> None:
    if kind == "pcap":
        data = pcap_header(1) + tail
    elif kind == "pcap-be":
        data = pcap_header(1, big_endian=True, nano=True) + tail
    elif kind == "pcapng":
        data = pcapng_bytes([([(1, None)], [])]) + tail
    else:
        data = b"\x1f\x8b" + tail
    frames, _reader = _read(data)
    for frame in frames:
        assert isinstance(frame[3], bytes) and len(frame[3]) <= 262_144


def test_open_capture_missing_file(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        open_capture(tmp_path / "nope.pcap")


class _Trickle:
    """A raw stream that hands out at most ``step`` bytes per read, like a pipe may."""

    def __init__(self, data: bytes, step: int) -> None:
        self.data, self.pos, self.step = data, 0, step

    def read(self, n: int = -1) -> bytes:
        n = self.step if n < 0 else min(n, self.step)
        out = self.data[self.pos : self.pos + n]
        self.pos += len(out)
        return out


@pytest.mark.parametrize("step", [1, 3, 7, 1000])
@pytest.mark.parametrize("kind", ["pcap", "pcapng", "gzip"])
def test_short_reads_byte_by_byte(step: int, kind: str) -> None:
    raw = pcapng_bytes([([(1, 6)], [(0, f) for f in FRAMES])]) if kind == "pcapng" else _pcap()
    data = gzip.compress(raw) if kind == "gzip" else raw
    reader = CaptureReader(_Trickle(data, step), "trickle")  # type: ignore[arg-type]
    assert list(reader) == FRAMES and reader.error is None
    # trailing garbage after the last record is reported, not silently read as a frame
    reader = CaptureReader(_Trickle(raw + b"\x01\x02\x03", step), "trickle")  # type: ignore[arg-type]
    assert list(reader) == FRAMES and reader.error is not None


def test_a_file_open_capture_opened_is_closed_when_iteration_ends(tmp_path: Path) -> None:
    path = tmp_path / "f.pcap"
    path.write_bytes(_pcap())
    reader = open_capture(path)
    assert list(reader) == FRAMES
    assert reader._stream.closed
    early = open_capture(path)
    frames = iter(early)
    next(frames)
    assert not early._stream.closed
    frames.close()  # abandoned part way: closed too
    assert early._stream.closed


def test_a_stream_handed_in_is_left_open() -> None:
    stream = io.BytesIO(_pcap())
    assert list(CaptureReader(stream, "mem")) == FRAMES
    assert not stream.closed


class _Arriving(io.BufferedIOBase):
    """A buffered stream (a pipe's) of which only ``arrived`` bytes are there yet: asking for
    more than has arrived would block, and fails the test instead."""

    def __init__(self, data: bytes, arrived: int) -> None:
        self.data, self.pos, self.arrived = data, 0, arrived

    def readable(self) -> bool:
        return True

    def read(self, n: int | None = -1) -> bytes:
        if n is None or n < 0 or self.pos + n > self.arrived:
            assert self.arrived >= len(self.data), "read() would block for bytes not there yet"
            n = len(self.data) - self.pos if n is None or n < 0 else n
        return self._give(n)

    def read1(self, n: int = -1) -> bytes:
        if self.pos >= self.arrived:
            assert self.arrived >= len(self.data), "read1() would block: nothing there yet"
        return self._give(min(n, self.arrived - self.pos))

    def _give(self, n: int) -> bytes:
        out = self.data[self.pos : self.pos + n]
        self.pos += len(out)
        return out


def test_a_frame_is_yielded_as_soon_as_its_bytes_have_arrived() -> None:
    data = _pcap()
    first = 24 + len(pcap_record(FRAMES[0]))
    stream = _Arriving(data, first)
    frames = iter(CaptureReader(stream, "pipe"))
    assert next(frames) == FRAMES[0]  # without waiting for a whole chunk
    stream.arrived = len(data)
    assert list(frames) == FRAMES[1:]


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.integers(1, 5000), min_size=1, max_size=40),
    st.lists(st.integers(1, 300), min_size=1, max_size=20),
    st.integers(0, 60),
)
def test_chunked_reads_cut_records_at_any_boundary(
    sizes: list[int], steps: list[int], cut: int
) -> None:
    frames = [
        (i * 1_000_000_000 + 7_000, 1, n + 3, bytes([i % 256]) * n) for i, n in enumerate(sizes)
    ]
    data = _pcap(frames)

    class Stepping(_Arriving):
        """read1 hands out a varying number of bytes, as a pipe does."""

        turn = 0

        def read1(self, n: int = -1) -> bytes:
            self.turn += 1
            return self._give(min(n, steps[self.turn % len(steps)]))

    whole, reader = _read(data)
    assert whole == frames and reader.error is None
    got = CaptureReader(Stepping(data, len(data)), "pipe")
    assert list(got) == frames and got.error is None
    # damaged the same way, the same error at the same offset as exact reads give
    short = data[: len(data) - cut]
    exact = CaptureReader(_Trickle(short, 1 << 20), "x")  # type: ignore[arg-type]
    chunked = CaptureReader(Stepping(short, len(short)), "x")
    assert list(chunked) == list(exact)
    assert str(chunked.error) == str(exact.error)
