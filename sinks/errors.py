"""The sink's one error type, and the one case callers must tell apart from it."""

from __future__ import annotations

__all__ = ["ObjectConflictError", "SinkError"]


class SinkError(Exception):
    """Input the sink cannot turn into an object (bad timestamps, bad keys, bad manifests)."""


class ObjectConflictError(SinkError):
    """A key already holds different bytes. The evidence store never overwrites, so this stops
    the batch instead of being retried: an operator has to look at it."""
