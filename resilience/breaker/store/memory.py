"""Breakers in this process's memory, with idle eviction and provider-wide opening.

Breakers are held in an `IdleMap` (`resilience.idle`), two generations turned every
`idle_ttl_s`: a closed breaker untouched for between one and two TTLs is forgotten and
comes back closed when its tenant returns. Breakers that are not closed are pinned and
never dropped. Memory follows active tenants, with O(1) work per lookup and no sweep over
every breaker.

Generations turn on time, not only when a new pair arrives: a lookup that misses,
listing the breakers (`GET /admin/circuits`, a metrics scrape) and a background task
started by `start()` (every `sweep_every_s`) each turn them once the injected clock says
they are due. Without them an idle breaker stayed listed for as long as no new tenant came.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator
from typing import Any

from resilience.breaker.events import BreakerState, BreakerTransition
from resilience.breaker.machine import CircuitBreaker
from resilience.breaker.policy import BreakerPolicy
from resilience.errors import ErrorKind
from resilience.idle import IdleMap
from resilience.routing.ratelimit import WINDOW_S, RateLimits
from resilience.types import PROVIDER_WIDE, BreakerKey, Clock, ProviderName, TenantId

Emit = Callable[[BreakerTransition], None]


class MemoryStore:
    """The default `BreakerStore`: one process, one event loop."""

    def __init__(
        self,
        *,
        policy_for: Callable[[ProviderName], BreakerPolicy],
        emit: Emit,
        clock: Clock = time.monotonic,
        wall_clock: Clock = time.time,
        idle_ttl_s: float = 300.0,
        sweep_every_s: float | None = None,
    ) -> None:
        if not idle_ttl_s > 0:
            raise ValueError(f"idle_ttl_s: must be > 0, got {idle_ttl_s!r}")
        if sweep_every_s is None:
            sweep_every_s = min(idle_ttl_s / 10.0, 30.0)
        if not sweep_every_s > 0:
            raise ValueError(f"sweep_every_s: must be > 0, got {sweep_every_s!r}")
        self._policy_for = policy_for
        self._emit = emit
        self._clock = clock
        self._wall_clock = wall_clock
        self._idle: IdleMap[BreakerKey, CircuitBreaker] = IdleMap(idle_ttl_s, clock=clock)
        self._gates: dict[ProviderName, CircuitBreaker] = {}
        self._sweep_every_s = sweep_every_s
        self._sweeper: asyncio.Task[None] | None = None
        self._trips: dict[ProviderName, dict[TenantId, float]] = {}
        self._limits = RateLimits(clock=clock)
        self.take_token = self._limits.take
        self.token_wait_s: Callable[[BreakerKey], float] = self._limits.wait_s
        self._tpm = RateLimits(clock=clock, idle_s=2 * WINDOW_S)
        self.charge_tpm: Callable[[BreakerKey, float, float], None] = self._tpm.charge
        self.tpm_wait_s: Callable[[BreakerKey, float], float] = self._tpm.wait_s

    def get(self, tenant: TenantId, provider: ProviderName) -> CircuitBreaker:
        breaker = self._idle.current.get((tenant, provider))
        if breaker is None:
            breaker = self._miss(tenant, provider)
        return breaker

    def peek(self, tenant: TenantId, provider: ProviderName) -> CircuitBreaker | None:
        if tenant == PROVIDER_WIDE:
            return self._gates.get(provider)
        return self._idle.peek((tenant, provider))

    def gate(self, provider: ProviderName) -> CircuitBreaker:
        gate = self._gates.get(provider)
        if gate is None:
            gate = self._gates[provider] = self._new(PROVIDER_WIDE, provider, None)
        return gate

    def breakers(self) -> Iterator[CircuitBreaker]:
        self.sweep()
        yield from self._gates.values()
        yield from self._idle.values()

    def sweep(self) -> int:
        """Drop the previous generation if `idle_ttl_s` has passed since the last turn;
        returns how many breakers went."""
        return self._idle.turn_if_due()

    async def atake_token(self, key: BreakerKey, rpm: float) -> bool:
        return self._limits.take(key, rpm)

    async def atake_tpm(self, key: BreakerKey, tpm: float, n: float) -> bool:
        return self._tpm.take(key, tpm, n)

    async def start(self) -> None:
        """Start the background sweep, so idle breakers go while no request comes."""
        if self._sweeper is None or self._sweeper.done():
            self._sweeper = asyncio.create_task(self._sweep_forever(), name="resilience-sweep")

    async def aclose(self) -> None:
        """Stop the background sweep."""
        sweeper, self._sweeper = self._sweeper, None
        if sweeper is not None:
            sweeper.cancel()
            await asyncio.gather(sweeper, return_exceptions=True)

    def status(self) -> dict[str, Any]:
        return {"kind": "memory", "shared": False}

    def hold(self, breaker: CircuitBreaker) -> None:
        """Keep a breaker that changed state without a transition (restored at start) out of
        eviction, as a transition would have."""
        self._pin(breaker)

    def __len__(self) -> int:
        return len(self._idle)

    # -- BreakerObserver ---------------------------------------------------------------------

    def transitioned(self, breaker: CircuitBreaker, event: BreakerTransition) -> None:
        if breaker.tenant != PROVIDER_WIDE:
            self._pin(breaker)
        elif event.to_state is BreakerState.OPEN:
            self._trips.pop(breaker.provider, None)
        self._emit(event)

    def tripped(self, breaker: CircuitBreaker, kind: ErrorKind, now: float) -> None:
        """A tenant's breaker opened on a provider-scoped error: maybe the provider is down."""
        policy = self._policy_for(breaker.provider)
        if policy.provider_wide_min_tenants == 0 or breaker.tenant == PROVIDER_WIDE:
            return
        trips = self._trips.setdefault(breaker.provider, {})
        trips[breaker.tenant] = now
        horizon = now - policy.window_s
        for tenant in [t for t, at in trips.items() if at < horizon]:
            del trips[tenant]
        if len(trips) >= policy.provider_wide_min_tenants:
            tenants = sorted(trips)
            self.gate(breaker.provider).open_provider_wide(now, tenants)

    # -- internals -------------------------------------------------------------------------

    async def _sweep_forever(self) -> None:
        # only the cadence is real time; whether a generation is due is the injected clock's
        while True:
            await asyncio.sleep(self._sweep_every_s)
            self.sweep()

    def _miss(self, tenant: TenantId, provider: ProviderName) -> CircuitBreaker:
        key = (tenant, provider)
        breaker = self._idle.find(key)
        if breaker is None:
            breaker = self._new(tenant, provider, self.gate(provider))
            self._idle.put(key, breaker)
        return breaker

    def _new(
        self, tenant: TenantId, provider: ProviderName, gate: CircuitBreaker | None
    ) -> CircuitBreaker:
        """A closed breaker for the pair (the Redis store makes one that shares its state)."""
        return CircuitBreaker(
            tenant,
            provider,
            policy=self._policy_for(provider),
            clock=self._clock,
            wall_clock=self._wall_clock,
            observer=self,
            gate=gate,
        )

    def _pin(self, breaker: CircuitBreaker) -> None:
        """Keep a breaker that is not closed out of eviction; let a closed one go again."""
        if breaker.tenant == PROVIDER_WIDE:
            return
        key = (breaker.tenant, breaker.provider)
        if breaker.idle:
            self._idle.unpin(key)
        else:
            self._idle.pin(key, breaker)
