"""Capture sources: frames ``(ts_ns, linktype, wirelen, data)`` from files, streams and (in
``live``) interfaces. The file readers are pure: bytes in, frames out."""

from producers.capture.errors import DEFAULT_MAX_CAPLEN, CaptureError, Frame, FrameRef
from producers.capture.live import LiveCapture, LiveCaptureError
from producers.capture.reader import CaptureReader, open_capture
from producers.capture.writer import pcap_header, pcap_record, pcapng_bytes, write_pcap

__all__ = [
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
]
