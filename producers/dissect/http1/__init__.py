"""HTTP/1.x dissector (sans-I/O): see ``dissector.py`` for pairing rules and the parser choice."""

from producers.dissect.http1.dissector import Http1Dissector

__all__ = ["Http1Dissector"]
