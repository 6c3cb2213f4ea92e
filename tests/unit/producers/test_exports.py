"""Each sensor-core package exports exactly its public API through ``__all__``."""

from __future__ import annotations

import importlib

import pytest

PACKAGES = {
    "producers.capture": {
        "DEFAULT_MAX_CAPLEN",
        "CaptureError",
        "CaptureReader",
        "Frame",
        "FrameRef",
        "LiveCapture",
        "LiveCaptureError",
        "open_capture",
        "pcap_header",
        "pcap_record",
        "pcapng_bytes",
        "write_pcap",
    },
    "producers.decode": {
        "LINKTYPE_NAMES",
        "TCP",
        "UDP",
        "Decoder",
        "FragmentReassembler",
        "Packet",
        "link_header",
    },
    "producers.reassembly": {
        "Budget",
        "Conn",
        "FlowListener",
        "FlowTable",
        "HalfStream",
        "ReassemblyConfig",
        "Timers",
        "sender_is_client",
    },
    "producers.engine": {"Engine", "EngineConfig", "EngineStats"},
    "producers.names": {"NameTable"},
}


@pytest.mark.parametrize("name", sorted(PACKAGES))
def test_all_lists_the_public_api(name: str) -> None:
    module = importlib.import_module(name)
    assert set(module.__all__) == PACKAGES[name]
    for attr in module.__all__:
        assert hasattr(module, attr), attr
