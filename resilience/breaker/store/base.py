"""The `BreakerStore` protocol: how the registry finds, lists and forgets breakers."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, Protocol

from resilience.breaker.machine import CircuitBreaker
from resilience.types import BreakerKey, ProviderName, TenantId


class BreakerStore(Protocol):
    """Holds the breakers of every (tenant, provider) pair and the provider-wide gates."""

    def get(self, tenant: TenantId, provider: ProviderName) -> CircuitBreaker:
        """The breaker for the pair, created closed on first use. Called on every request."""
        ...

    def peek(self, tenant: TenantId, provider: ProviderName) -> CircuitBreaker | None:
        """The breaker if it is live, without creating it."""
        ...

    def gate(self, provider: ProviderName) -> CircuitBreaker:
        """The provider-wide breaker (tenant `*`) of a provider."""
        ...

    def breakers(self) -> Iterator[CircuitBreaker]:
        """Every live breaker, provider-wide gates included; idle ones whose time to live
        is up are forgotten first, so a listing never shows them."""
        ...

    def take_token(self, key: BreakerKey, rpm: float) -> bool:
        """Take one token from `key`'s requests-per-minute bucket (`resilience.routing.ratelimit`);
        False when it is empty. `rpm <= 0` is unlimited."""
        ...

    def token_wait_s(self, key: BreakerKey) -> float:
        """Seconds until `key`'s bucket has a token again."""
        ...

    async def atake_token(self, key: BreakerKey, rpm: float) -> bool:
        """`take_token`, from a bucket every process shares where the store is shared
        (one round trip to Redis); the client uses this one."""
        ...

    async def atake_tpm(self, key: BreakerKey, tpm: float, n: float) -> bool:
        """Take `n` tokens (a call's estimate) from `key`'s tokens-per-minute bucket, shared
        where the store is shared; False when it does not hold that much."""
        ...

    def charge_tpm(self, key: BreakerKey, tpm: float, n: float) -> None:
        """Settle an attempt: `n` more tokens from `key`'s tpm bucket, or given back when
        negative; never waits (a shared store sends it from a task)."""
        ...

    def tpm_wait_s(self, key: BreakerKey, n: float) -> float:
        """Seconds until `key`'s tpm bucket holds `n` again."""
        ...

    async def start(self) -> None:
        """Connect to shared state, if any; the client calls it before its first request."""
        ...

    async def aclose(self) -> None:
        """Hand over what is pending and disconnect."""
        ...

    def status(self) -> dict[str, Any]:
        """What `/readyz` shows of the store: at least `kind` and `shared`."""
        ...

    def __len__(self) -> int: ...
