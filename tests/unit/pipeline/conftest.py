"""Fixtures for the pipeline's pure-code tests."""

from __future__ import annotations

import pytest

from pipeline.testing import TableCompiler


@pytest.fixture
def compiler() -> TableCompiler:
    return TableCompiler()
