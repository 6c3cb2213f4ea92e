"""The in-memory copy of remembered earlier segments: a memory budget, oldest out first."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from pipeline.recent import ENTRY_OVERHEAD, RecentValues

ONE = ENTRY_OVERHEAD + 4  # what a 4-byte value costs


def test_values_stay_until_discarded() -> None:
    recent = RecentValues(10 * ONE)
    recent.put(0, 5, b"abcd")
    recent.put(1, 5, b"de")
    assert recent.get(0, 5) == b"abcd" and recent.get(0, 5) == b"abcd"
    recent.discard(0, 5)
    assert recent.get(0, 5) is None
    recent.discard(0, 5)  # twice is harmless
    recent.discard(1, 5)
    assert recent.held_bytes == 0 and len(recent) == 0


def test_the_oldest_values_go_first_when_the_budget_is_full() -> None:
    recent = RecentValues(2 * ONE + 3)
    for offset in range(4):
        recent.put(0, offset, b"1234")
    assert recent.held_bytes == 2 * ONE
    assert [recent.get(0, o) for o in range(4)] == [None, None, b"1234", b"1234"]


def test_a_value_larger_than_the_budget_is_not_kept_and_evicts_nothing() -> None:
    recent = RecentValues(2 * ONE)
    recent.put(0, 1, b"1234")
    recent.put(0, 2, b"x" * (ONE + 5))
    assert recent.get(0, 2) is None
    assert recent.get(0, 1) == b"1234"


def test_a_zero_budget_keeps_nothing_not_even_an_empty_value() -> None:
    recent = RecentValues(0)
    recent.put(0, 1, b"a")
    recent.put(0, 2, b"")
    assert len(recent) == 0 and recent.get(0, 1) is None and recent.get(0, 2) is None


@given(
    st.integers(0, 4 * ONE),
    st.lists(
        st.tuples(st.booleans(), st.integers(0, 3), st.integers(0, 8), st.binary(max_size=20))
    ),
)
def test_it_behaves_like_an_ordered_dict_trimmed_to_the_budget(
    budget: int, steps: list[tuple[bool, int, int, bytes]]
) -> None:
    recent = RecentValues(budget)
    model: dict[tuple[int, int], bytes] = {}

    def cost() -> int:
        return sum(len(v) + ENTRY_OVERHEAD for v in model.values())

    for is_put, partition, offset, value in steps:
        key = (partition, offset)
        if not is_put:
            assert recent.get(partition, offset) == model.get(key)
            recent.discard(partition, offset)
            model.pop(key, None)
        else:
            if len(value) + ENTRY_OVERHEAD <= budget:  # a larger one is ignored
                model.pop(key, None)
                while cost() + len(value) + ENTRY_OVERHEAD > budget:
                    del model[next(iter(model))]
                model[key] = value
            recent.put(partition, offset, value)
        assert recent.held_bytes == cost() <= budget
        assert len(recent) == len(model)
