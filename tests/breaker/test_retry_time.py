"""Retry times that no datetime or header can hold (issue finding 3, the library side).

An admin open's duration is bounded where the breaker takes it, so no store can be given
one; and where a retry time is turned into a datetime or a wait (a snapshot for `/metrics`
and the admin API, a refusal for `Retry-After`) a long cooldown from the config cannot
overflow either.
"""

from __future__ import annotations

import math

import pytest

from resilience import BreakerPolicy, BreakerRegistry, BreakerState, CircuitOpenError
from resilience.breaker.events import MemorySink
from resilience.breaker.machine import MAX_DURATION_S, check_duration
from tests.support.breakers import make, open_breaker
from tests.support.clock import FakeClock


@pytest.mark.parametrize(
    "duration",
    [1e12, 1e308, math.inf, math.nan, -1.0, 0, MAX_DURATION_S + 0.5, 10**400, True, "600"],
    ids=lambda value: repr(value)[:20],
)
async def test_an_open_for_longer_than_thirty_days_or_not_a_number_changes_nothing(
    duration: object,
) -> None:
    clock, sink = FakeClock(), MemorySink()
    reg = make(clock, sink)
    with pytest.raises(ValueError, match=r"^duration_s: "):
        await reg.aforce_open("acme", "openai", duration_s=duration)  # type: ignore[arg-type]
    assert reg.get("acme", "openai").state is BreakerState.CLOSED
    assert sink.events == []


async def test_thirty_days_and_no_end_are_accepted() -> None:
    check_duration(None)
    check_duration(MAX_DURATION_S)
    check_duration(1e-3)
    clock = FakeClock()
    reg = make(clock)
    snapshot = await reg.aforce_open("acme", "openai", duration_s=MAX_DURATION_S)
    assert snapshot.retry_at is not None
    assert (snapshot.retry_at.timestamp() - clock.wall()) == pytest.approx(MAX_DURATION_S)


def test_a_cooldown_past_year_9999_still_snapshots_and_refuses_with_a_bounded_wait() -> None:
    """A config may set any finite cooldown: 1e12 s used to make every snapshot (and so
    `/metrics` and `GET /admin/circuits`) raise OverflowError."""
    clock = FakeClock()
    reg = BreakerRegistry(
        policy=BreakerPolicy(cooldown_s=1e12, max_cooldown_s=1e12),
        clock=clock,
        wall_clock=clock.wall,
    )
    open_breaker(reg)
    assert len(reg.circuits()) >= 1  # what `/metrics` and the admin listing read
    snapshot = reg.snapshot("acme", "openai")
    assert snapshot is not None
    assert snapshot.state is BreakerState.OPEN
    assert snapshot.retry_at is None  # no datetime holds it: shown as no known end
    assert snapshot.opened_at is not None
    with pytest.raises(CircuitOpenError) as refused:
        reg.get("acme", "openai").acquire()
    assert refused.value.retry_after_s == MAX_DURATION_S
    assert reg.get("acme", "openai").retry_after() == MAX_DURATION_S
