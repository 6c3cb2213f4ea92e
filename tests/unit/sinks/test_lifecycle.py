"""The sink's process-wide settings made while it runs, and undone when it stops."""

from __future__ import annotations

import gc

from sinks.cli import FULL_PASS_EVERY, frozen_heap


def test_frozen_heap_freezes_while_any_sink_runs_and_unfreezes_after() -> None:
    assert gc.get_freeze_count() == 0
    before = gc.get_threshold()
    with frozen_heap():
        outer = gc.get_freeze_count()
        assert outer > 0, "what existed at start is out of the collector's full passes"
        assert gc.get_threshold()[2] >= FULL_PASS_EVERY
        assert gc.get_threshold()[:2] == before[:2], "young passes run as before"
        with frozen_heap():  # a second sink in the same process
            assert gc.get_freeze_count() >= outer
        assert gc.get_freeze_count() >= outer, "the first sink still runs"
        assert gc.get_threshold()[2] >= FULL_PASS_EVERY
    assert gc.get_freeze_count() == 0
    assert gc.get_threshold() == before


def test_frozen_heap_unfreezes_when_the_sink_fails() -> None:
    try:
        with frozen_heap():
            raise RuntimeError("the sink failed")
    except RuntimeError:
        pass
    assert gc.get_freeze_count() == 0
    assert gc.get_threshold()[2] < FULL_PASS_EVERY
