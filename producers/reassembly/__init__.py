"""TCP/UDP stream reassembly (pure): ordered bytes per direction, gaps, stream ends."""

from producers.reassembly.conn import Conn
from producers.reassembly.half import Budget, HalfStream
from producers.reassembly.roles import sender_is_client
from producers.reassembly.table import FlowListener, FlowTable, ReassemblyConfig, Timers

__all__ = [
    "Budget",
    "Conn",
    "FlowListener",
    "FlowTable",
    "HalfStream",
    "ReassemblyConfig",
    "Timers",
    "sender_is_client",
]
