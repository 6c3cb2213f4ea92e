"""The in-memory copy of remembered earlier segments: a byte budget, oldest out first."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from pipeline.recent import RecentValues


def test_values_come_back_once() -> None:
    recent = RecentValues(100)
    recent.put(0, 5, b"abc")
    recent.put(1, 5, b"de")
    assert recent.take(0, 5) == b"abc"
    assert recent.take(0, 5) is None
    assert recent.take(1, 5) == b"de"
    assert recent.held_bytes == 0 and len(recent) == 0


def test_the_oldest_values_go_first_when_the_budget_is_full() -> None:
    recent = RecentValues(10)
    for offset in range(4):
        recent.put(0, offset, b"1234")
    assert recent.held_bytes == 8
    assert [recent.take(0, o) for o in range(4)] == [None, None, b"1234", b"1234"]


def test_a_value_larger_than_the_budget_is_not_kept_and_evicts_nothing() -> None:
    recent = RecentValues(10)
    recent.put(0, 1, b"12345")
    recent.put(0, 2, b"x" * 11)
    assert recent.take(0, 2) is None
    assert recent.take(0, 1) == b"12345"


def test_a_zero_budget_keeps_nothing() -> None:
    recent = RecentValues(0)
    recent.put(0, 1, b"a")
    assert len(recent) == 0 and recent.take(0, 1) is None


@given(
    st.integers(0, 64),
    st.lists(
        st.tuples(st.booleans(), st.integers(0, 3), st.integers(0, 8), st.binary(max_size=20))
    ),
)
def test_it_behaves_like_an_ordered_dict_trimmed_to_the_budget(
    budget: int, steps: list[tuple[bool, int, int, bytes]]
) -> None:
    recent = RecentValues(budget)
    model: dict[tuple[int, int], bytes] = {}
    for is_put, partition, offset, value in steps:
        key = (partition, offset)
        if not is_put:
            assert recent.take(partition, offset) == model.pop(key, None)
        elif len(value) <= budget:  # a larger one is ignored
            model.pop(key, None)
            while sum(map(len, model.values())) + len(value) > budget:
                del model[next(iter(model))]
            model[key] = value
        if is_put:
            recent.put(partition, offset, value)
        assert recent.held_bytes == sum(map(len, model.values())) <= budget
        assert len(recent) == len(model)
