"""The replay package's one error type: a replay that cannot go on, and why."""

from __future__ import annotations

__all__ = ["ReplayError"]


class ReplayError(Exception):
    """A source that cannot be listed or read, a job that cannot be resumed, a bad option."""
