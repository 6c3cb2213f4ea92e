"""DNS dissector (sans-I/O) over UDP and TCP: see ``dissector.py`` for the pairing rules."""

from producers.dissect.dns.dissector import DnsDissector
from producers.dissect.dns.wire import Message, parse_message

__all__ = ["DnsDissector", "Message", "parse_message"]
