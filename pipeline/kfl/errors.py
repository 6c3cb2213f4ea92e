"""The one error type of KFL, so callers catch a single thing whatever went wrong."""

from __future__ import annotations

__all__ = ["KFLError"]


class KFLError(ValueError):
    """A query that cannot be compiled; it carries where, so a user can find the problem.

    ``line`` and ``column`` are 1-based. ``str()`` shows the message, the offending query line and a
    caret under the column, because queries arrive from config files and shells where a bare
    "column 37" is hard to act on.
    """

    def __init__(self, message: str, query: str = "", line: int = 1, column: int = 1) -> None:
        super().__init__(message)
        self.message = message
        self.query = query
        self.line = line
        self.column = column

    def __str__(self) -> str:
        lines = self.query.split("\n")
        head = f"line {self.line}, column {self.column}: {self.message}"
        if not 1 <= self.line <= len(lines):
            return head
        text = lines[self.line - 1].replace("\t", " ")
        return f"{head}\n  {text}\n  {' ' * (self.column - 1)}^"

    def __reduce__(self) -> tuple[type[KFLError], tuple[str, str, int, int]]:
        return (KFLError, (self.message, self.query, self.line, self.column))
