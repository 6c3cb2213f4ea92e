"""Live capture from a network interface through libpcap (``pcapy-ng``), non-blocking.

Kept apart from the file readers: it is the one capture source that needs privileges
(CAP_NET_RAW, and CAP_NET_ADMIN for promiscuous mode) and a C library. ``poll()`` never
blocks, so an asyncio service can call it when ``fileno()`` is readable or on a short timer.
"""

from __future__ import annotations

import sys
from typing import Any

from producers.capture.errors import DEFAULT_MAX_CAPLEN, Frame

__all__ = ["LiveCapture", "LiveCaptureError"]

_PERMISSION_HINTS = ("permission", "not permitted", "eperm", "access denied")


class LiveCaptureError(Exception):
    """The interface cannot be captured on; the message says why and what to do."""


def _explain(iface: str, exc: Exception) -> LiveCaptureError:
    text = str(exc)
    if any(hint in text.lower() for hint in _PERMISSION_HINTS):
        return LiveCaptureError(
            f"cannot capture on {iface!r}: {text}. Live capture needs the CAP_NET_RAW capability "
            f"(and CAP_NET_ADMIN for promiscuous mode): run as root, or grant it once with "
            f"`sudo setcap cap_net_raw,cap_net_admin=eip {sys.executable}`"
        )
    if "no such device" in text.lower():
        return LiveCaptureError(f"cannot capture on {iface!r}: no such interface ({text})")
    return LiveCaptureError(f"cannot capture on {iface!r}: {text}")


class LiveCapture:
    """Frames from one interface. ``open()`` first; then ``poll()`` returns what is ready.

    ``bpf`` is a libpcap filter expression (bad syntax raises LiveCaptureError at open),
    ``snaplen`` caps captured bytes per frame, ``timeout_ms`` is libpcap's batching timeout.
    """

    def __init__(
        self,
        iface: str,
        bpf: str = "",
        snaplen: int = DEFAULT_MAX_CAPLEN,
        promisc: bool = True,
        timeout_ms: int = 100,
    ) -> None:
        self.iface = iface
        self.bpf = bpf
        self.snaplen = snaplen
        self.promisc = promisc
        self.timeout_ms = timeout_ms
        self.linktype = -1
        self.frames = 0
        self._handle: Any = None

    def open(self) -> None:
        try:
            import pcapy
        except ImportError as exc:  # the optional [live] extra
            raise LiveCaptureError(
                "live capture needs pcapy-ng: pip install 'streamtap[live]'"
            ) from exc
        try:
            handle = pcapy.open_live(self.iface, self.snaplen, int(self.promisc), self.timeout_ms)
        except pcapy.PcapError as exc:
            raise _explain(self.iface, exc) from None
        try:
            if self.bpf:
                handle.setfilter(self.bpf)
            handle.setnonblock(1)
        except pcapy.PcapError as exc:
            handle.close()
            raise LiveCaptureError(
                f"bad BPF filter {self.bpf!r} on {self.iface!r}: {exc}"
            ) from None
        self.linktype = handle.datalink()
        self._handle = handle

    def fileno(self) -> int:
        """A descriptor that turns readable when frames wait (for ``loop.add_reader``)."""
        return int(self._require().getfd())

    def poll(self, max_frames: int = 1000) -> list[Frame]:
        """Up to ``max_frames`` frames that are ready now; an empty list when none are."""
        handle = self._require()
        linktype = self.linktype
        out: list[Frame] = []
        for _ in range(max_frames):
            header, data = handle.next()
            if header is None:
                break
            sec, usec = header.getts()
            out.append((sec * 1_000_000_000 + usec * 1000, linktype, header.getlen(), data))
        self.frames += len(out)
        return out

    def stats(self) -> dict[str, int]:
        """libpcap's counters: received, dropped by the kernel (buffer full), by the NIC."""
        received, dropped, if_dropped = self._require().stats()
        return {"received": received, "kernel_dropped": dropped, "if_dropped": if_dropped}

    def close(self) -> None:
        if self._handle is not None:
            self._handle.close()
            self._handle = None

    def __enter__(self) -> LiveCapture:
        self.open()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _require(self) -> Any:
        if self._handle is None:
            raise LiveCaptureError("capture is not open")
        return self._handle
