"""Idle breakers go on time, with no new pair to trigger it; breakers that are not closed stay."""

from __future__ import annotations

import asyncio

import pytest

from resilience import BreakerPolicy, BreakerRegistry, BreakerState, ErrorKind
from resilience.breaker.store import MemoryStore
from tests.support.clock import FakeClock
from tests.support.servers import until

TTL = 300.0


def registry(clock: FakeClock, **store: float) -> BreakerRegistry:
    memory = MemoryStore(
        policy_for=lambda p: BreakerPolicy(),
        emit=lambda e: None,
        clock=clock,
        wall_clock=clock.wall,
        idle_ttl_s=TTL,
        **store,
    )
    return BreakerRegistry(store=memory, clock=clock, wall_clock=clock.wall)


def listed(reg: BreakerRegistry) -> set[str]:
    return {s.tenant for s in reg.circuits() if s.tenant != "*"}  # not the provider gate


async def test_listing_forgets_idle_breakers_and_keeps_open_and_forced_open_ones() -> None:
    clock = FakeClock()
    reg = registry(clock)
    quiet = reg.get("quiet", "openai")
    quiet.record_success(quiet.acquire())
    broken = reg.get("broken", "openai")
    for _ in range(5):
        broken.record_failure(broken.acquire(), ErrorKind.SERVER_ERROR)
    await reg.aforce_open("locked", "openai")
    await reg.aforce_open("paused", "openai", duration_s=60.0)
    busy = reg.get("busy", "openai")
    assert listed(reg) == {"quiet", "broken", "locked", "paused", "busy"}
    for _ in range(4):
        clock.advance(TTL / 2 + 1)
        busy.record_success(reg.get("busy", "openai").acquire())  # an existing pair, in use
        listed(reg)  # no new pair: only the listing, as an admin would
    assert listed(reg) == {"broken", "locked", "paused", "busy"}
    assert reg.store.peek("quiet", "openai") is None
    assert reg.get("busy", "openai") is busy  # in use: never swept
    states = {s.tenant: s.state for s in reg.circuits() if s.tenant != "*"}
    # cooldowns ran out long ago: half-open, still not idle, still kept
    assert states == {
        "busy": BreakerState.CLOSED,
        "broken": BreakerState.HALF_OPEN,
        "locked": BreakerState.FORCED_OPEN,
        "paused": BreakerState.HALF_OPEN,
    }


async def test_the_background_sweep_forgets_idle_breakers_with_no_request_or_listing() -> None:
    clock = FakeClock()
    reg = registry(clock, sweep_every_s=0.001)
    reg.get("quiet", "openai")
    await reg.aforce_open("locked", "openai")
    await reg.start()

    def gone() -> bool:
        clock.advance(TTL + 1)  # time moves only here; the task reads it
        return reg.store.peek("quiet", "openai") is None

    try:
        await until(gone)
        assert reg.store.peek("locked", "openai") is not None
    finally:
        await reg.aclose()
    assert not [t for t in asyncio.all_tasks() if t.get_name() == "resilience-sweep"]


def test_the_sweep_interval_must_be_positive() -> None:
    with pytest.raises(ValueError, match="sweep_every_s: must be > 0, got 0"):
        MemoryStore(policy_for=lambda p: BreakerPolicy(), emit=lambda e: None, sweep_every_s=0)
