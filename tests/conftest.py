"""Session fixtures shared by every test folder.

`stack` starts a private local stack (Kafka + SeaweedFS) on free loopback ports under a temp
dir the first time a test asks for it, and stops it when the session ends. Unit tests never
ask, so `pytest tests/unit` starts nothing.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterator

import pytest

from stack import LocalStack, StackError


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    """A running LocalStack; `.settings` points at it, `.env()` gives the same as env vars."""
    local = LocalStack.isolated(tmp_path_factory.mktemp("stack"))
    guard = local.guard(os.getpid())  # stops the stack should this session be killed
    try:
        try:
            asyncio.run(local.up())
        except StackError as exc:
            pytest.fail(f"local stack did not start: {exc}", pytrace=False)
        yield local
    finally:
        asyncio.run(local.down())
        guard.terminate()
        guard.wait()
