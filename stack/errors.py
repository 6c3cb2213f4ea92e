"""The stack package's one error type."""

from __future__ import annotations

__all__ = ["StackError"]


class StackError(Exception):
    """The local stack could not do what was asked; the message says what to look at."""
