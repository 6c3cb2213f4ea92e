"""The demo's wait for a consumer group to catch up: what it retries and what it gives up on."""

from __future__ import annotations

from collections.abc import Callable, Coroutine, Iterator
from typing import Any

import click
import pytest
from aiokafka.errors import GroupCoordinatorNotAvailableError, TopicAuthorizationFailedError

from streamtap.demo import _wait_for_lag_zero
from streamtap.settings import Settings, load_settings


def answers(*replies: int | Exception) -> Callable[[Settings, str, str], Coroutine[Any, Any, int]]:
    """A lag reader that gives ``replies`` in turn (an exception is raised), standing in for
    the broker's answers so the loop's decisions can be checked without one."""
    queue: Iterator[int | Exception] = iter(replies)

    async def measure(settings: Settings, group: str, topic: str) -> int:
        reply = next(queue)
        if isinstance(reply, Exception):
            raise reply
        return reply

    return measure


@pytest.fixture(autouse=True)
def no_sleep(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("streamtap.demo.time.sleep", lambda s: None)


def test_no_group_coordinator_yet_is_asked_again(capsys: pytest.CaptureFixture[str]) -> None:
    measure = answers(
        GroupCoordinatorNotAvailableError(), GroupCoordinatorNotAvailableError(), 3, 0
    )
    _wait_for_lag_zero(load_settings(None), "g", "streams", "pipeline", 60, measure=measure)
    out = capsys.readouterr().out
    assert out.count("GroupCoordinatorNotAvailableError") == 1  # said once, not per attempt
    assert "3 messages to go" in out
    assert "pipeline: caught up" in out


def test_a_final_error_stops_the_demo_with_its_name() -> None:
    measure = answers(TopicAuthorizationFailedError(), 0)
    with pytest.raises(click.ClickException, match="TopicAuthorizationFailedError"):
        _wait_for_lag_zero(load_settings(None), "g", "streams", "sink", 60, measure=measure)


def test_a_broker_that_never_answers_times_out_naming_the_error() -> None:
    measure = answers(*[GroupCoordinatorNotAvailableError() for _ in range(10_000)])
    with pytest.raises(click.ClickException, match=r"did not catch up.*GroupCoordinator"):
        _wait_for_lag_zero(load_settings(None), "g", "streams", "sink", 0.05, measure=measure)
