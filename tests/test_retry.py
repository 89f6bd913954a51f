"""Retries through tenacity: attempts, jitter, Retry-After, budget and deadline; time is fake."""

from __future__ import annotations

import asyncio
import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from resilience.deadline import Deadline
from resilience.errors import ErrorKind, ProviderError
from resilience.retry import (
    RetryBudget,
    RetryBudgets,
    RetryPolicy,
    full_jitter,
    retry_call,
    wait_retry_after,
)
from tests.support.clock import FakeClock


def failing(kinds: list[ErrorKind], retry_after_s: float | None = None) -> tuple[list[int], object]:
    """fn failing with each kind in turn, then answering "ok"; records attempt numbers."""
    calls: list[int] = []

    async def fn(number: int) -> str:
        calls.append(number)
        if len(calls) <= len(kinds):
            raise ProviderError("boom", kind=kinds[len(calls) - 1], retry_after_s=retry_after_s)
        return "ok"

    return calls, fn


async def run(
    fn: object,
    clock: FakeClock,
    policy: RetryPolicy | None = None,
    *,
    deadline_s: float = 120.0,
    budget: RetryBudget | None = None,
) -> str:
    result: str = await retry_call(
        fn,  # type: ignore[arg-type]
        policy=policy or RetryPolicy(),
        deadline=Deadline.after(deadline_s, clock=clock),
        budget=budget,
        sleep=clock.sleep,
        rng=random.Random(3),
    )
    return result


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


async def test_attempts_are_counted_and_passed_to_fn(clock: FakeClock) -> None:
    calls, fn = failing([ErrorKind.OVERLOADED, ErrorKind.TIMEOUT])
    assert await run(fn, clock) == "ok"
    assert calls == [1, 2, 3]
    assert len(clock.sleeps) == 2


async def test_the_raised_error_says_which_attempt_failed(clock: FakeClock) -> None:
    _, fn = failing([ErrorKind.SERVER_ERROR] * 5)
    with pytest.raises(ProviderError) as info:
        await run(fn, clock, RetryPolicy(max_attempts=4))
    assert info.value.attempt == 4
    _, once = failing([ErrorKind.AUTH])
    with pytest.raises(ProviderError) as first:
        await run(once, clock)
    assert first.value.attempt == 1


async def test_an_attempt_number_set_by_fn_is_kept(clock: FakeClock) -> None:
    async def fn(number: int) -> str:
        raise ProviderError("boom", kind=ErrorKind.TIMEOUT, attempt=number + 100)

    with pytest.raises(ProviderError) as info:
        await run(fn, clock, RetryPolicy(max_attempts=2))
    assert info.value.attempt == 102


async def test_on_retry_reports_each_failed_attempt_and_its_wait(clock: FakeClock) -> None:
    _, fn = failing([ErrorKind.OVERLOADED, ErrorKind.NETWORK])
    seen: list[tuple[int, ErrorKind, float]] = []
    result: str = await retry_call(
        fn,  # type: ignore[arg-type]
        policy=RetryPolicy(),
        deadline=Deadline.after(120.0, clock=clock),
        sleep=clock.sleep,
        rng=random.Random(3),
        on_retry=lambda number, error, wait: seen.append((number, error.kind, wait)),
    )
    assert result == "ok"
    assert [(n, k) for n, k, _ in seen] == [(1, ErrorKind.OVERLOADED), (2, ErrorKind.NETWORK)]
    assert [w for _, _, w in seen] == clock.sleeps


async def test_gives_up_after_max_attempts_with_the_last_error(clock: FakeClock) -> None:
    calls, fn = failing([ErrorKind.SERVER_ERROR] * 5)
    with pytest.raises(ProviderError) as info:
        await run(fn, clock, RetryPolicy(max_attempts=3))
    assert calls == [1, 2, 3]
    assert info.value.kind is ErrorKind.SERVER_ERROR


@pytest.mark.parametrize(
    "kind",
    [
        ErrorKind.BAD_REQUEST,
        ErrorKind.AUTH,
        ErrorKind.RATE_LIMITED,
        ErrorKind.CONTEXT_LENGTH,
        ErrorKind.CONTENT_FILTER,
        ErrorKind.STREAM_INTERRUPTED,
    ],
)
async def test_non_retryable_kinds_raise_after_one_attempt(
    clock: FakeClock, kind: ErrorKind
) -> None:
    calls, fn = failing([kind])
    with pytest.raises(ProviderError):
        await run(fn, clock)
    assert calls == [1]
    assert clock.sleeps == []


async def test_other_exceptions_and_cancellation_are_not_retried(clock: FakeClock) -> None:
    for exc in (ValueError("bug"), asyncio.CancelledError()):
        calls: list[int] = []

        async def fn(number: int, exc: BaseException = exc, calls: list[int] = calls) -> str:
            calls.append(number)
            raise exc

        with pytest.raises(type(exc)):
            await run(fn, clock)
        assert calls == [1]


@given(attempt=st.integers(min_value=1, max_value=30), seed=st.integers(0, 2**32))
def test_full_jitter_stays_within_its_bounds(attempt: int, seed: int) -> None:
    wait = full_jitter(attempt, base=0.5, cap=8.0, rng=random.Random(seed))
    assert 0.0 <= wait <= min(8.0, 0.5 * 2 ** (attempt - 1))


def test_full_jitter_is_spread_not_constant() -> None:
    rng = random.Random(0)
    waits = {round(full_jitter(4, base=0.5, cap=8.0, rng=rng), 6) for _ in range(50)}
    assert len(waits) > 40
    assert max(waits) > 2.0 and min(waits) < 1.0


async def test_jittered_waits_recorded_are_within_backoff_bounds(clock: FakeClock) -> None:
    _, fn = failing([ErrorKind.NETWORK] * 4)
    await run(fn, clock, RetryPolicy(max_attempts=5))
    bounds = [0.5, 1.0, 2.0, 4.0]
    assert len(clock.sleeps) == 4
    assert all(0 <= wait <= bound for wait, bound in zip(clock.sleeps, bounds, strict=True))


@pytest.mark.parametrize("retry_after_s", [0.25, 1.5, 7.0])
async def test_retry_after_is_honoured(clock: FakeClock, retry_after_s: float) -> None:
    _, fn = failing([ErrorKind.OVERLOADED], retry_after_s=retry_after_s)
    assert await run(fn, clock) == "ok"
    assert clock.sleeps == [retry_after_s]


async def test_retry_after_above_the_cap_is_not_waited(clock: FakeClock) -> None:
    calls, fn = failing([ErrorKind.OVERLOADED], retry_after_s=31.0)
    with pytest.raises(ProviderError):
        await run(fn, clock, RetryPolicy(max_retry_after_s=30.0))
    assert calls == [1]
    assert clock.sleeps == []


async def test_a_wait_that_does_not_fit_the_deadline_is_not_waited(clock: FakeClock) -> None:
    calls, fn = failing([ErrorKind.OVERLOADED], retry_after_s=5.0)
    with pytest.raises(ProviderError):
        await run(fn, clock, deadline_s=4.0)
    assert calls == [1]
    assert clock.sleeps == []


async def test_the_deadline_stops_everything(clock: FakeClock) -> None:
    calls: list[int] = []

    async def slow_failure(number: int) -> str:
        calls.append(number)
        clock.advance(3.0)  # each attempt takes 3 s
        raise ProviderError("slow", kind=ErrorKind.TIMEOUT)

    with pytest.raises(ProviderError):
        await run(
            slow_failure, clock, RetryPolicy(max_attempts=10, base_delay_s=0.1), deadline_s=7.0
        )
    assert len(calls) <= 3
    assert clock.now - 1_000.0 <= 7.0 + 3.0


async def test_budget_refuses_retries_beyond_its_ratio_then_recovers(clock: FakeClock) -> None:
    policy = RetryPolicy(budget_ratio=0.2, budget_min_retries=10, budget_window_s=60.0)
    budget = RetryBudget(policy, clock)
    retried = 0
    for _ in range(100):
        calls, fn = failing([ErrorKind.SERVER_ERROR] * 5)
        with pytest.raises(ProviderError):
            await run(
                fn,
                clock,
                RetryPolicy(
                    max_attempts=2,
                    base_delay_s=0.0,
                    max_delay_s=0.0,
                    budget_ratio=0.2,
                    budget_min_retries=10,
                ),
                budget=budget,
            )
        retried += len(calls) - 1
    assert retried == 30  # floor 10 + 20% of 100 requests
    assert not budget.can_retry()
    clock.advance(61.0)
    assert budget.can_retry()


async def test_a_retry_refused_by_the_deadline_spends_no_budget(clock: FakeClock) -> None:
    policy = RetryPolicy(budget_ratio=0.0, budget_min_retries=1)
    budget = RetryBudget(policy, clock)
    _, fn = failing([ErrorKind.OVERLOADED], retry_after_s=5.0)
    with pytest.raises(ProviderError):
        await run(fn, clock, policy, deadline_s=4.0, budget=budget)
    assert budget.can_retry()
    _, fn = failing([ErrorKind.OVERLOADED], retry_after_s=1.0)
    assert await run(fn, clock, policy, budget=budget) == "ok"
    assert not budget.can_retry()


async def test_budget_memory_is_bounded_across_100000_pairs(clock: FakeClock) -> None:
    budgets = RetryBudgets(RetryPolicy(budget_window_s=60.0), clock=clock)
    peak = 0
    for i in range(100_000):
        if i % 1000 == 0:
            clock.advance(10.0)
            peak = max(peak, len(budgets))
        budgets.get((f"tenant-{i}", "openai")).record_request()
    assert peak <= 13_000  # two generations of 60 s at 1,000 pairs per 10 s


async def test_budgets_keep_an_active_pair(clock: FakeClock) -> None:
    budgets = RetryBudgets(RetryPolicy(budget_window_s=60.0), clock=clock)
    first = budgets.get(("acme", "openai"))
    for i in range(10):
        clock.advance(50.0)
        budgets.get((f"other-{i}", "openai"))
        assert budgets.get(("acme", "openai")) is first


async def test_wait_retry_after_waits_only_when_it_fits(clock: FakeClock) -> None:
    policy = RetryPolicy(max_retry_after_s=30.0)
    deadline = Deadline.after(10.0, clock=clock)
    assert await wait_retry_after(5.0, policy=policy, deadline=deadline, sleep=clock.sleep)
    assert not await wait_retry_after(6.0, policy=policy, deadline=deadline, sleep=clock.sleep)
    long_deadline = Deadline.after(100.0, clock=clock)
    assert not await wait_retry_after(
        31.0, policy=policy, deadline=long_deadline, sleep=clock.sleep
    )
    assert clock.sleeps == [5.0]
