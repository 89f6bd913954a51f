"""`RetryBudget` keeps its two windows in its own slots: it answers as two `SlidingCount`s do.

The reference is the window the breaker and the store use (`resilience.breaker.window`),
one per count, each on its own; the budget rolls both at once. Time is fake.
"""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from resilience.breaker.window import SlidingCount
from resilience.retry import RetryBudget, RetryBudgets, RetryPolicy
from tests.support.clock import FakeClock

Step = tuple[float, str]
STEPS = st.lists(
    st.tuples(
        st.sampled_from([0.0, 0.5, 3.0, 5.9, 6.0, 17.0, 59.0, 61.0, 200.0]),
        st.sampled_from(["request", "retry", "ask"]),
    ),
    max_size=80,
)


@settings(max_examples=300, deadline=None)
@given(steps=STEPS, ratio=st.sampled_from([0.0, 0.2, 1.0]), floor=st.sampled_from([0, 1, 10]))
def test_the_budget_answers_as_two_sliding_counts(
    steps: list[Step], ratio: float, floor: int
) -> None:
    clock = FakeClock(start=1_000.3)
    policy = RetryPolicy(budget_ratio=ratio, budget_min_retries=floor, budget_window_s=60.0)
    budget = RetryBudget(policy, clock)
    requests = SlidingCount(60.0, clock)
    retries = SlidingCount(60.0, clock)
    for advance, op in steps:
        clock.advance(advance)
        if op == "request":
            budget.record_request()
            requests.add()
        elif op == "retry":
            budget.record_retry()
            retries.add()
        expected = retries.count() < floor + ratio * requests.count()
        assert budget.can_retry() is expected
        assert repr(budget) == (
            f"RetryBudget(requests={requests.count()}, retries={retries.count()})"
        )


def test_requested_counts_one_request_on_the_pairs_budget() -> None:
    clock = FakeClock()
    budgets = RetryBudgets(RetryPolicy(budget_window_s=60.0), clock=clock)
    first = budgets.requested(("t", "p"))
    again = budgets.requested(("t", "p"))
    assert first is again is budgets.get(("t", "p"))
    assert repr(first) == "RetryBudget(requests=2, retries=0)"
    assert budgets.requested(("t", "other")) is not first
