"""`Deadline`: one absolute time for the whole request, read from an injected clock."""

from __future__ import annotations

import dataclasses
import math

import pytest

from resilience.deadline import Deadline
from tests.support.clock import FakeClock


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


def test_deadline_reports_remaining_time_and_expiry(clock: FakeClock) -> None:
    deadline = Deadline.after(2.0, clock=clock)
    assert deadline.at == 1_002.0
    assert deadline.remaining() == 2.0 and not deadline.expired
    clock.advance(2.5)
    assert deadline.remaining() == 0.0 and deadline.expired


@pytest.mark.parametrize("seconds", [0.0, -1.0, math.nan])
def test_a_deadline_must_lie_in_the_future(clock: FakeClock, seconds: float) -> None:
    with pytest.raises(ValueError, match="deadline"):
        Deadline.after(seconds, clock=clock)


def test_a_wait_fits_only_if_time_is_left_after_it(clock: FakeClock) -> None:
    deadline = Deadline.after(3.0, clock=clock)
    assert deadline.fits(2.9)
    assert not deadline.fits(3.0)
    clock.advance(3.0)
    assert not deadline.fits(0.0)


def test_never_does_not_expire(clock: FakeClock) -> None:
    deadline = Deadline.never(clock=clock)
    clock.advance(1e12)
    assert not deadline.expired and deadline.fits(1e9)
    assert deadline.remaining() == math.inf


def test_a_deadline_is_a_frozen_value_with_a_readable_repr(clock: FakeClock) -> None:
    deadline = Deadline.after(5.0, clock=clock)
    assert repr(deadline) == "Deadline(at=1005.0)"
    assert deadline == Deadline(1_005.0)
    with pytest.raises(dataclasses.FrozenInstanceError):
        deadline.at = 0.0  # type: ignore[misc]
