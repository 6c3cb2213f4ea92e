"""PCAP bytes checked with scapy's readers (code we did not write), not with our own parser."""

from __future__ import annotations

import io

import pytest
from hypothesis import given
from hypothesis import strategies as st
from scapy.utils import RawPcapNgReader, RawPcapReader

from sinks.errors import SinkError
from sinks.pcap import PCAP_MAGIC_NS, write_pcap, write_pcapng
from sinks.testing import packet


def _read_pcap(data: bytes) -> tuple[int, list[tuple[bytes, int, int]]]:
    reader = RawPcapReader(io.BytesIO(data))
    out = []
    for payload, meta in reader:
        ts_ns = (meta.sec * 1_000_000_000) + meta.usec  # scapy names the sub-second field usec
        out.append((payload, ts_ns, meta.wirelen))
    return reader.linktype, out


def test_classic_pcap_is_nanosecond_and_byte_identical() -> None:
    packets = [
        packet(1_700_000_000_123_456_789, b"\x00\x01frame-one", wirelen=100),
        packet(1_700_000_001_000_000_001, b"frame-two"),
    ]
    data = write_pcap(packets, 1)
    assert int.from_bytes(data[:4], "little") == PCAP_MAGIC_NS
    linktype, read = _read_pcap(data)
    assert linktype == 1
    assert read == [(p.data, p.ts_ns, p.wirelen) for p in packets]


def test_link_type_is_written_and_enforced() -> None:
    data = write_pcap([packet(5, b"ip", linktype=101)], 101)
    assert _read_pcap(data)[0] == 101
    with pytest.raises(SinkError):
        write_pcap([packet(5, b"ip", linktype=1)], 101)


def test_empty_pcap_is_a_valid_file() -> None:
    linktype, read = _read_pcap(write_pcap([], 1))
    assert (linktype, read) == (1, [])


def test_negative_timestamp_is_refused() -> None:
    with pytest.raises(SinkError):
        write_pcap([packet(-1)], 1)


def test_jumbo_frames_are_kept_whole() -> None:
    big = packet(1, bytes(range(256)) * 400)  # 102400 bytes: larger than scapy's default read
    reader = RawPcapReader(io.BytesIO(write_pcap([big], 1)))
    payload, meta = reader._read_packet(size=200_000)
    assert (payload, meta.caplen) == (big.data, len(big.data))


def test_snaplen_is_raised_for_frames_beyond_it() -> None:
    data = write_pcap([packet(1, b"z" * 300_000)], 1)
    assert RawPcapReader(io.BytesIO(data)).snaplen == 300_000


def test_pcapng_keeps_every_link_type_and_nanoseconds() -> None:
    packets = [
        packet(1_700_000_000_000_000_007, b"eth-frame", linktype=1),
        packet(1_700_000_000_000_000_008, b"raw-ip", linktype=101),
        packet(1_700_000_000_000_000_009, b"eth-2", linktype=1),
    ]
    reader = RawPcapNgReader(io.BytesIO(write_pcapng(packets)))
    got = []
    for payload, meta in reader:
        ts = (meta.tshigh << 32) | meta.tslow
        assert meta.tsresol == 1_000_000_000
        got.append((payload, ts, meta.linktype))
    assert got == [(p.data, p.ts_ns, p.linktype) for p in packets]


@given(st.lists(st.tuples(st.integers(0, 2**62), st.binary(min_size=0, max_size=64)), max_size=20))
def test_any_packets_round_trip_through_scapy(items: list[tuple[int, bytes]]) -> None:
    packets = [packet(ts, data) for ts, data in items if ts // 1_000_000_000 <= 0xFFFFFFFF]
    data = write_pcap(packets, 1)
    assert data == write_pcap(packets, 1)
    assert [(d, ts) for d, ts, _ in _read_pcap(data)[1]] == [(p.data, p.ts_ns) for p in packets]
