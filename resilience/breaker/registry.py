"""`BreakerRegistry`: the breakers of every (tenant, provider) pair, and who hears of changes.

The registry is the public face of the breakers: it picks each provider's
policy, hands every transition to the audit sinks (a failing sink is logged,
never raised into a request), and offers the admin operations.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import replace
from types import MappingProxyType

from resilience.breaker.events import AuditSink, BreakerState, BreakerTransition
from resilience.breaker.machine import BreakerSnapshot, CircuitBreaker
from resilience.breaker.policy import BreakerPolicy
from resilience.breaker.store.base import BreakerStore
from resilience.breaker.store.memory import MemoryStore
from resilience.types import PROVIDER_WIDE, Clock, ProviderName, TenantId

logger = logging.getLogger("resilience.breaker.registry")

RequestIdGetter = Callable[[], str | None]


def _no_request_id() -> str | None:
    return None


class BreakerRegistry:
    """Breakers keyed by (tenant, provider), with provider-wide gates under tenant `*`.

    Args:
        policy: defaults for every pair.
        provider_policies: per-provider overrides (`[providers.X.breaker]`; see
            docs/architecture.md, "Breaker rules").
        sinks: audit sinks; each transition goes to every one of them.
        clock: monotonic seconds, for cooldowns and windows.
        wall_clock: epoch seconds, for audit timestamps.
        idle_ttl_s: closed breakers untouched for this long may be forgotten.
        request_id: returns the current request's id, stamped on transitions.
        store: where breakers live; by default this process's memory.
        redis_url: share the breakers of every process through this Redis
            (`resilience.breaker.store.redis`); ignored when `store` is given.
        redis_prefix: the namespace of this deployment's keys in that Redis.
    """

    def __init__(
        self,
        *,
        policy: BreakerPolicy | None = None,
        provider_policies: Mapping[ProviderName, BreakerPolicy] | None = None,
        sinks: Iterable[AuditSink] = (),
        clock: Clock = time.monotonic,
        wall_clock: Clock = time.time,
        idle_ttl_s: float = 300.0,
        request_id: RequestIdGetter = _no_request_id,
        store: BreakerStore | None = None,
        redis_url: str | None = None,
        redis_prefix: str = "resilience",
    ) -> None:
        self.policy = policy if policy is not None else BreakerPolicy()
        self.provider_policies = MappingProxyType(dict(provider_policies or {}))
        self._sinks: list[AuditSink] = list(sinks)
        self._request_id = request_id
        if store is None and redis_url:
            from resilience.breaker.store.redis.store import RedisStore

            store = RedisStore(
                redis_url,
                policy_for=self.policy_for,
                emit=self._emit,
                clock=clock,
                wall_clock=wall_clock,
                idle_ttl_s=idle_ttl_s,
                prefix=redis_prefix,
            )
        if store is None:  # not `store or ...`: an empty store is falsy (it has __len__)
            store = MemoryStore(
                policy_for=self.policy_for,
                emit=self._emit,
                clock=clock,
                wall_clock=wall_clock,
                idle_ttl_s=idle_ttl_s,
            )
        self.store: BreakerStore = store
        self.get: Callable[[TenantId, ProviderName], CircuitBreaker] = self.store.get
        """The breaker of a pair, created on first use: the per-request lookup."""

    def policy_for(self, provider: ProviderName) -> BreakerPolicy:
        return self.provider_policies.get(provider, self.policy)

    # -- admin -------------------------------------------------------------------------------

    async def start(self) -> None:
        """Connect the store to shared state, if it has any (Redis)."""
        await self.store.start()

    async def aclose(self) -> None:
        """Hand the store's pending work over and disconnect it."""
        await self.store.aclose()

    async def areset(
        self,
        tenant: TenantId,
        provider: ProviderName,
        *,
        actor: str | None = None,
        note: str | None = None,
    ) -> BreakerSnapshot:
        """Close a breaker (tenant `*` closes the provider-wide one); done on the shared
        state when there is one, so every process sees it."""
        breaker = self._breaker(tenant, provider)
        await breaker.areset(actor=actor, note=note)
        return breaker.snapshot()

    async def aforce_open(
        self,
        tenant: TenantId,
        provider: ProviderName,
        *,
        actor: str | None = None,
        duration_s: float | None = None,
        note: str | None = None,
    ) -> BreakerSnapshot:
        """Isolate a pair (tenant `*`: the provider for everyone) until reset or
        `duration_s`; done on the shared state when there is one."""
        breaker = self._breaker(tenant, provider)
        await breaker.aforce_open(actor=actor, duration_s=duration_s, note=note)
        return breaker.snapshot()

    def restore_forced_open(
        self,
        tenant: TenantId,
        provider: ProviderName,
        *,
        remaining_s: float | None,
        opened_ago_s: float,
    ) -> BreakerSnapshot:
        """Take over an admin isolation an earlier process left, without a new transition
        (`resilience.audit.restore`); for a process-local store."""
        breaker = self._breaker(tenant, provider)
        breaker.restore_forced_open(remaining_s=remaining_s, opened_ago_s=opened_ago_s)
        if isinstance(self.store, MemoryStore):
            self.store.hold(breaker)
        return breaker.snapshot()

    def snapshot(self, tenant: TenantId, provider: ProviderName) -> BreakerSnapshot | None:
        """A live breaker's state, or None if the pair has none (it would start closed)."""
        breaker = self.store.peek(tenant, provider)
        return breaker.snapshot() if breaker is not None else None

    def circuits(
        self,
        *,
        tenant: TenantId | None = None,
        provider: ProviderName | None = None,
        state: BreakerState | None = None,
    ) -> list[BreakerSnapshot]:
        """Live breakers, filtered, sorted by (tenant, provider)."""
        found = []
        for breaker in self.store.breakers():
            if tenant is not None and breaker.tenant != tenant:
                continue
            if provider is not None and breaker.provider != provider:
                continue
            snap = breaker.snapshot()
            if state is None or snap.state is state:
                found.append(snap)
        found.sort(key=lambda s: (s.tenant, s.provider))
        return found

    def __len__(self) -> int:
        return len(self.store)

    def __repr__(self) -> str:
        return f"BreakerRegistry(breakers={len(self.store)}, sinks={len(self._sinks)})"

    # -- internals ---------------------------------------------------------------------------

    def _breaker(self, tenant: TenantId, provider: ProviderName) -> CircuitBreaker:
        if tenant == PROVIDER_WIDE:
            return self.store.gate(provider)
        return self.store.get(tenant, provider)

    def _emit(self, event: BreakerTransition) -> None:
        if event.request_id is None:
            request_id = self._request_id()
            if request_id is not None:
                event = replace(event, request_id=request_id)
        for sink in self._sinks:
            try:
                sink.emit(event)
            except Exception:
                logger.exception("audit sink %r failed on %s", sink, event.id)
