"""Per-test topics and worker processes for the pipeline's end-to-end tests."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from pipeline.testing import WorkerProcess, create_topics, isolated_settings
from stack import LocalStack


@pytest.fixture
def settings(stack: LocalStack) -> Any:
    """The stack's settings with this test's own topics (created here)."""
    tagged = isolated_settings(stack.settings, uuid.uuid4().hex[:10])
    asyncio.run(create_topics(tagged))
    return tagged


@pytest.fixture
def workers(tmp_path: Path) -> Iterator[list[WorkerProcess]]:
    """Workers a test starts; all stopped at the end, logs kept in tmp_path."""
    started: list[WorkerProcess] = []
    yield started
    for worker in started:
        worker.stop()
