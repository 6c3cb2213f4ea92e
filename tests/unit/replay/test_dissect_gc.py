"""Replay dissection raises the young-generation GC threshold to the sensor's, never lowers it."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from producers.service import GC_GEN0_THRESHOLD
from replay.dissect import dissect_capture, young_collections_rarer
from replay.errors import ReplayError


@pytest.fixture
def threshold() -> Iterator[None]:
    saved = gc.get_threshold()
    try:
        yield
    finally:
        gc.set_threshold(*saved)


@pytest.mark.usefixtures("threshold")
def test_the_default_threshold_is_raised_to_the_sensors() -> None:
    gc.set_threshold(700, 10, 10)
    young_collections_rarer()
    assert gc.get_threshold() == (GC_GEN0_THRESHOLD, 10, 10)


@pytest.mark.usefixtures("threshold")
@pytest.mark.parametrize("gen0", [0, GC_GEN0_THRESHOLD * 2])
def test_an_application_choice_is_left_alone(gen0: int) -> None:
    gc.set_threshold(gen0, 5, 5)
    young_collections_rarer()
    assert gc.get_threshold() == (gen0, 5, 5)


@pytest.mark.usefixtures("threshold")
def test_dissecting_applies_it() -> None:
    gc.set_threshold(700, 10, 10)
    with pytest.raises(ReplayError):  # the bytes are not a capture
        list(dissect_capture(b"not a capture", "n"))
    assert gc.get_threshold()[0] == GC_GEN0_THRESHOLD
