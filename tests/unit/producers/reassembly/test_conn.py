"""``address_text``: the text form of packed addresses, as ``ipaddress`` writes it."""

from __future__ import annotations

import ipaddress
import random

from hypothesis import given
from hypothesis import strategies as st

from producers.reassembly.conn import address_text


@given(st.binary(min_size=4, max_size=4) | st.binary(min_size=16, max_size=16))
def test_address_text_is_what_ipaddress_writes(packed: bytes) -> None:
    assert address_text(packed) == str(ipaddress.ip_address(packed))
    assert address_text(packed) == str(ipaddress.ip_address(packed))  # from the memo


def test_address_text_edge_addresses() -> None:
    rnd = random.Random(1)
    edges = [bytes(4), b"\xff" * 4, b"\x00\x00\x00\x01", b"\x0a\x00\x00\xff", bytes(16)]
    edges += [rnd.randbytes(4) for _ in range(1000)]
    edges += [bytes(10) + b"\xff\xff" + rnd.randbytes(4) for _ in range(10)]  # v4-mapped v6
    for packed in edges:
        assert address_text(packed) == str(ipaddress.ip_address(packed)), packed
