"""Live capture on the loopback interface (needs root; skipped otherwise)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from producers.capture import LiveCapture, LiveCaptureError
from producers.decode import Decoder

ROOT = Path(__file__).resolve().parents[4]
pytest.importorskip("pcapy")
root_only = pytest.mark.skipif(os.geteuid() != 0, reason="capturing on lo needs root")


@root_only
def test_capture_udp_over_loopback() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as rx:
        rx.bind(("127.0.0.1", 0))
        port = rx.getsockname()[1]
        with LiveCapture("lo", bpf=f"udp port {port}", snaplen=2048, timeout_ms=10) as cap:
            assert cap.poll() == []  # non-blocking: nothing yet
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as tx:
                for i in range(3):
                    tx.sendto(b"streamtap-%d" % i, ("127.0.0.1", port))
            frames = []
            deadline = time.monotonic() + 5
            while len(frames) < 3 and time.monotonic() < deadline:
                frames += cap.poll()
                time.sleep(0.01)
            stats = cap.stats()
    decoder = Decoder()
    payloads = [decoder.decode(f).payload for f in frames]
    assert payloads == [b"streamtap-0", b"streamtap-1", b"streamtap-2"]
    assert all(f[1] == 1 and f[2] == len(f[3]) for f in frames)  # lo is DLT_EN10MB on Linux
    assert stats["received"] >= 3


@root_only
def test_bad_filter_and_missing_interface() -> None:
    with pytest.raises(LiveCaptureError, match="bad BPF filter"):
        LiveCapture("lo", bpf="udp and and").open()
    with pytest.raises(LiveCaptureError, match="no such interface"):
        LiveCapture("nosuchif0").open()


@root_only
def test_permission_message_names_cap_net_raw() -> None:
    """Drop root in a child process and try to capture: the error must say what is missing."""
    code = (  # import first: after dropping root the interpreter's files may be unreadable
        "import os, pcapy\n"
        "from producers.capture import LiveCapture, LiveCaptureError\n"
        "os.setgroups([]); os.setgid(65534); os.setuid(65534)\n"
        "try:\n"
        "    LiveCapture('lo').open()\n"
        "except LiveCaptureError as exc:\n"
        "    print(exc)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=60
    )
    assert "CAP_NET_RAW" in out.stdout, out.stderr
    assert "'lo'" in out.stdout


def test_poll_before_open_is_an_error() -> None:
    with pytest.raises(LiveCaptureError, match="not open"):
        LiveCapture("lo").poll()
