"""Breakers built for tests on a fake clock."""

from __future__ import annotations

from resilience import (
    BreakerPolicy,
    BreakerRegistry,
    BreakerState,
    ErrorKind,
)
from resilience.breaker.events import MemorySink
from tests.support.clock import FakeClock


def make(clock: FakeClock, sink: MemorySink | None = None, **policy: float) -> BreakerRegistry:
    return BreakerRegistry(
        policy=BreakerPolicy(**policy),  # type: ignore[arg-type]
        sinks=[sink] if sink is not None else [],
        clock=clock,
        wall_clock=clock.wall,
    )


def open_breaker(reg: BreakerRegistry, tenant: str = "acme", provider: str = "openai") -> None:
    fail(reg, tenant, provider, n=reg.policy.failure_threshold)
    assert reg.get(tenant, provider).state is OPEN


CLOSED, OPEN, HALF_OPEN, FORCED = (
    BreakerState.CLOSED,
    BreakerState.OPEN,
    BreakerState.HALF_OPEN,
    BreakerState.FORCED_OPEN,
)


def succeed(
    reg: BreakerRegistry, tenant: str = "acme", provider: str = "openai", n: int = 1
) -> None:
    breaker = reg.get(tenant, provider)
    for _ in range(n):
        breaker.record_success(breaker.acquire())


def fail(
    reg: BreakerRegistry,
    tenant: str = "acme",
    provider: str = "openai",
    n: int = 1,
    kind: ErrorKind = ErrorKind.SERVER_ERROR,
) -> None:
    breaker = reg.get(tenant, provider)
    for _ in range(n):
        breaker.record_failure(breaker.acquire(), kind)
