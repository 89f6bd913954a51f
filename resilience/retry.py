"""Retries of one target, through tenacity: full jitter, Retry-After, a budget, one deadline.

`retry_call(fn, ...)` runs `fn(attempt_number)` under `tenacity.AsyncRetrying`
with policies built from a `RetryPolicy` (attempt 1 runs before any of it; a caller
that runs attempt 1 itself hands a retryable failure to `retry_rest`):

- retry: only a `ProviderError` whose kind is retryable (timeouts, network,
  overload, server errors, invalid responses). Rate limits are not retried
  here: the client moves to the next target at once and waits Retry-After only
  as the last resort (`wait_retry_after`). Anything else, cancellation
  included, propagates unchanged after one attempt.
- wait: the error's Retry-After when it has one, else full jitter
  `uniform(0, min(max_delay_s, base_delay_s * 2**(n-1)))`.
- stop: after `max_attempts`; when the wait would not fit the deadline; when a
  Retry-After exceeds `max_retry_after_s`; when the (tenant, provider) budget
  has no retry left. Stopping re-raises the last error.
- before_sleep: a retry that goes ahead spends the budget and is reported to
  `on_retry`; the stop rule itself only decides.

The retry budget keeps retries to `budget_ratio` of the pair's requests in the
last `budget_window_s` (plus `budget_min_retries`), so an outage cannot
multiply the load on a struggling provider.
"""

from __future__ import annotations

import asyncio
import math
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

import tenacity
from tenacity.stop import stop_base
from tenacity.wait import wait_base

from resilience.breaker.policy import check_positive
from resilience.breaker.window import BUCKETS, rolled, total
from resilience.deadline import Deadline
from resilience.errors import ProviderError
from resilience.idle import IdleMap
from resilience.types import BreakerKey, Clock, Sleep

__all__ = [
    "OnRetry",
    "RetryBudget",
    "RetryBudgets",
    "RetryPolicy",
    "WaitFullJitterOrRetryAfter",
    "full_jitter",
    "retry_call",
    "retry_rest",
    "wait_retry_after",
]

T = TypeVar("T")

OnRetry = Callable[[int, ProviderError, float], None]
"""`on_retry(failed_attempt, error, wait_s)`: called just before each wait between attempts."""


@dataclass(frozen=True, slots=True, kw_only=True)
class RetryPolicy:
    """How often and how patiently one target is retried, and the whole request's deadline."""

    max_attempts: int = 3
    base_delay_s: float = 0.5
    max_delay_s: float = 8.0
    max_retry_after_s: float = 30.0
    budget_ratio: float = 0.2
    budget_min_retries: int = 10
    budget_window_s: float = 60.0
    deadline_s: float = 120.0

    def __post_init__(self) -> None:
        check_positive(self, "max_attempts", "deadline_s", "budget_window_s")
        check_positive(self, "base_delay_s", "max_delay_s", "max_retry_after_s", allow_zero=True)
        check_positive(self, "budget_ratio", "budget_min_retries", allow_zero=True)
        if self.max_delay_s < self.base_delay_s:
            raise ValueError(
                f"max_delay_s: must be >= base_delay_s ({self.base_delay_s!r}), "
                f"got {self.max_delay_s!r}"
            )


def full_jitter(attempt: int, *, base: float, cap: float, rng: random.Random) -> float:
    """AWS-style full jitter: spreads retries of many clients over the whole backoff interval."""
    return rng.uniform(0.0, min(cap, base * 2 ** (attempt - 1)))


class RetryBudget:
    """Retries allowed for one (tenant, provider) pair: a share of its recent requests.

    Both counts are sliding windows (`resilience.breaker.window`) on one bucket clock,
    kept in this object's own slots as the breaker keeps its own: counting a request,
    done once per step of every call, is one method and no other object.
    """

    __slots__ = (
        "_bucket",
        "_clock",
        "_past_requests",
        "_past_retries",
        "_policy",
        "_requests",
        "_retries",
        "_width",
    )

    def __init__(self, policy: RetryPolicy, clock: Clock = time.monotonic) -> None:
        self._policy = policy
        self._clock = clock
        self._width = policy.budget_window_s / BUCKETS
        self._bucket = math.floor(clock() / self._width)
        self._requests = 0
        """Requests in the current bucket."""
        self._retries = 0
        """Retries in the current bucket."""
        self._past_requests = 0
        """Requests in the buckets before, packed (`resilience.breaker.window.rolled`)."""
        self._past_retries = 0
        """Retries in the buckets before, packed the same way."""

    def record_request(self) -> None:
        bucket = math.floor(self._clock() / self._width)
        if bucket > self._bucket:
            self._roll(bucket)
        self._requests += 1

    def can_retry(self) -> bool:
        self._roll(math.floor(self._clock() / self._width))
        requests = self._requests + total(self._past_requests)
        allowed = self._policy.budget_min_retries + self._policy.budget_ratio * requests
        return self._retries + total(self._past_retries) < allowed

    def record_retry(self) -> None:
        self._roll(math.floor(self._clock() / self._width))
        self._retries += 1

    def _roll(self, bucket: int) -> None:
        steps = bucket - self._bucket
        if steps <= 0:
            return
        self._past_requests = rolled(self._past_requests, self._requests, steps)
        self._past_retries = rolled(self._past_retries, self._retries, steps)
        self._requests = self._retries = 0
        self._bucket = bucket

    def __repr__(self) -> str:
        self._roll(math.floor(self._clock() / self._width))
        requests = self._requests + total(self._past_requests)
        retries = self._retries + total(self._past_retries)
        return f"RetryBudget(requests={requests}, retries={retries})"


class RetryBudgets:
    """Budgets by (tenant, provider); a pair idle for one to two windows is forgotten
    (`resilience.idle`)."""

    def __init__(self, policy: RetryPolicy, *, clock: Clock = time.monotonic) -> None:
        self._policy = policy
        self._clock = clock
        self._budgets: IdleMap[BreakerKey, RetryBudget] = IdleMap(
            policy.budget_window_s, clock=clock
        )

    def get(self, key: BreakerKey) -> RetryBudget:
        budget = self._budgets.current.get(key)
        if budget is None:
            budget = self._budgets.find(key)
            if budget is None:
                budget = RetryBudget(self._policy, self._clock)
                self._budgets.put(key, budget)
        return budget

    def requested(self, key: BreakerKey) -> RetryBudget:
        """`get(key)`, its new request recorded: what every step of every call does."""
        budget = self._budgets.current.get(key)
        if budget is None:
            budget = self.get(key)
        budget.record_request()
        return budget

    def __len__(self) -> int:
        return len(self._budgets)


class WaitFullJitterOrRetryAfter(wait_base):
    """Retry-After when the provider sent one (it knows when it recovers), full jitter otherwise."""

    def __init__(self, policy: RetryPolicy, rng: random.Random) -> None:
        self._policy = policy
        self._rng = rng

    def __call__(self, retry_state: tenacity.RetryCallState) -> float:
        error = _error(retry_state)
        if error is not None and error.retry_after_s is not None:
            return error.retry_after_s
        policy = self._policy
        return full_jitter(
            retry_state.attempt_number,
            base=policy.base_delay_s,
            cap=policy.max_delay_s,
            rng=self._rng,
        )


class _StopWhenNoRoom(stop_base):
    """Stop on attempts, deadline, Retry-After cap or budget; runs after the wait is chosen."""

    def __init__(self, policy: RetryPolicy, deadline: Deadline, budget: RetryBudget | None) -> None:
        self._policy = policy
        self._deadline = deadline
        self._budget = budget

    def __call__(self, retry_state: tenacity.RetryCallState) -> bool:
        if retry_state.attempt_number >= self._policy.max_attempts:
            return True
        wait = retry_state.upcoming_sleep
        error = _error(retry_state)
        retry_after = error.retry_after_s if error is not None else None
        if retry_after is not None and retry_after > self._policy.max_retry_after_s:
            return True
        if not self._deadline.fits(wait):
            return True
        return self._budget is not None and not self._budget.can_retry()


class _BeforeRetry:
    """Tenacity's `before_sleep`: the retry is decided, so spend the budget and report it."""

    def __init__(self, budget: RetryBudget | None, on_retry: OnRetry | None) -> None:
        self._budget = budget
        self._on_retry = on_retry

    def __call__(self, retry_state: tenacity.RetryCallState) -> None:
        if self._budget is not None:
            self._budget.record_retry()
        error = _error(retry_state)
        if self._on_retry is not None and error is not None:
            self._on_retry(retry_state.attempt_number, error, retry_state.upcoming_sleep)


def _retryable(exc: BaseException) -> bool:
    return isinstance(exc, ProviderError) and exc.kind.policy.retryable


def _numbered(exc: ProviderError, number: int) -> None:
    """Say which attempt failed when the caller's `fn` did not."""
    if exc.attempt is None:
        exc.attempt = number


def _error(retry_state: tenacity.RetryCallState) -> ProviderError | None:
    outcome = retry_state.outcome
    if outcome is None or not outcome.failed:
        return None
    exc = outcome.exception()
    return exc if isinstance(exc, ProviderError) else None


async def retry_call(
    fn: Callable[[int], Awaitable[T]],
    *,
    policy: RetryPolicy,
    deadline: Deadline,
    budget: RetryBudget | None = None,
    sleep: Sleep = asyncio.sleep,
    rng: random.Random | None = None,
    on_retry: OnRetry | None = None,
) -> T:
    """Call `fn(attempt_number)` (1-based) until it succeeds or a stop rule says no more.

    Attempts made: on success, the last number `fn` was called with; on failure,
    the raised `ProviderError`'s `attempt` (set here when `fn` left it None).
    Raises the last `ProviderError` when retries stop, or any other exception
    from `fn` (cancellation included) at once and unchanged.
    """
    if budget is not None:
        budget.record_request()
    try:
        return await fn(1)
    except ProviderError as exc:
        _numbered(exc, 1)
        if not _retryable(exc):
            raise
        first = exc
    return await retry_rest(
        fn,
        first,
        policy=policy,
        deadline=deadline,
        budget=budget,
        sleep=sleep,
        rng=rng,
        on_retry=on_retry,
    )


async def retry_rest(
    fn: Callable[[int], Awaitable[T]],
    failed: ProviderError,
    *,
    policy: RetryPolicy,
    deadline: Deadline,
    budget: RetryBudget | None = None,
    sleep: Sleep = asyncio.sleep,
    rng: random.Random | None = None,
    on_retry: OnRetry | None = None,
) -> T:
    """`retry_call` once attempt 1 (its request recorded in `budget`) has failed with the
    retryable `failed`: attempts 2 and later, as the rules above decide.

    Only a retryable failure pays for tenacity's machinery: a caller that runs attempt 1
    itself (the client's walk does, one coroutine fewer per call) hands the failure over
    here. It is replayed to tenacity as attempt 1, so every retry decision is tenacity's.
    """
    first: ProviderError | None = failed

    async def step(number: int) -> T:
        nonlocal first
        if first is not None:
            replayed, first = first, None
            raise replayed
        try:
            return await fn(number)
        except ProviderError as exc:
            _numbered(exc, number)
            raise

    retrying = tenacity.AsyncRetrying(
        retry=tenacity.retry_if_exception(_retryable),
        wait=WaitFullJitterOrRetryAfter(policy, rng or random.Random()),
        stop=_StopWhenNoRoom(policy, deadline, budget),
        before_sleep=_BeforeRetry(budget, on_retry),
        sleep=sleep,
        reraise=True,
    )
    async for attempt in retrying:
        with attempt:
            return await step(attempt.retry_state.attempt_number)
    raise AssertionError("unreachable: tenacity either returns or re-raises")  # pragma: no cover


async def wait_retry_after(
    seconds: float, *, policy: RetryPolicy, deadline: Deadline, sleep: Sleep = asyncio.sleep
) -> bool:
    """Wait out a Retry-After if it fits `max_retry_after_s` and the deadline; True if it did."""
    if seconds > policy.max_retry_after_s or not deadline.fits(seconds):
        return False
    if seconds > 0:
        await sleep(seconds)
    return True
