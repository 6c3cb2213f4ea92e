"""Corpus flows give the same items fed whole, byte by byte and at random splits."""

from __future__ import annotations

import random
from functools import cache
from pathlib import Path

import pytest
from corpus_streams import Flow, dissect_flow, make_dissector, read_flows
from hypothesis import given, settings
from hypothesis import strategies as st

CORPUS = Path(__file__).parents[3] / "data" / "corpus"
SMALL = [
    "http11-keepalive-gzip-5req.pcap",
    "http11-post-100-continue-chunked.pcap",
    "http11-head-101-204-chunked-docker.pcap",
    "http11-browse-keepalive-304.pcap",
    "http11-chunked-gzip-no-syn.pcap",
    "http11-drops-lost-segments.pcap",
    "http11-data-before-handshake-rst.pcap",
    "http10-get-rst.pcap",
    "mixed-http-dns-204-304.pcap",
    "dns-tcp.pcap",
    "dns-tcp-multiseg-tkey.pcap",
    "dns-tcp-edns-keepalive.pcap",
    "dns-edns-tc-tcp-ipfrag.pcap",
]


@cache
def flows(name: str) -> list[Flow]:
    return [f for f in read_flows(CORPUS / name) if make_dissector(f) is not None]


def _bytewise(data: bytes):
    return (data[i : i + 1] for i in range(len(data)))


@pytest.mark.parametrize("name", SMALL)
def test_byte_by_byte_equals_whole(name: str) -> None:
    assert flows(name), "capture has no dissected flow"
    for flow in flows(name):
        _d, whole, err = dissect_flow(flow, make_dissector)
        assert err is None
        assert whole
        _d, split, err = dissect_flow(flow, make_dissector, _bytewise)
        assert err is None
        assert split == whole


@settings(max_examples=25, deadline=None)
@given(st.sampled_from(SMALL), st.integers(0, 2**32))
def test_random_splits_equal_whole(name: str, seed: int) -> None:
    rnd = random.Random(seed)

    def cut(data: bytes):
        i = 0
        while i < len(data):
            n = rnd.choice((1, 2, 3, 17, 100, 1460, 5000))
            yield data[i : i + n]
            i += n

    for flow in flows(name):
        _d, whole, _ = dissect_flow(flow, make_dissector)
        _d, split, _ = dissect_flow(flow, make_dissector, cut)
        assert split == whole
