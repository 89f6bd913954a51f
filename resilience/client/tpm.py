"""Tokens-per-minute admission for one attempt: taken on an estimate, settled at its end.

The client takes a call's estimate (`resilience.usage.estimate`) from the tenant's own tpm
bucket for the provider, then from the provider's over all tenants (`[providers.X] tpm`),
before the call; an empty bucket skips the target without a call. When the attempt ends,
`TokenCharge.settle` charges each bucket the difference between what the provider reported
and what was taken, or gives the whole take back when the attempt failed (or a stream was
cut) with nothing reported. An answer that reported nothing keeps its estimate as charged.
"""

from __future__ import annotations

from dataclasses import dataclass

from resilience.breaker.store.base import BreakerStore
from resilience.types import PROVIDER_WIDE, BreakerKey, ProviderName, TenantId
from resilience.usage.tokens import TokenCounts

TENANT_LIMIT = "tenant_limit"
"""A refusal by the tenant's own bucket (the gateway answers 429)."""
PROVIDER_LIMIT = "provider_limit"
"""A refusal by the provider's bucket over all tenants (the key's capacity: an outage)."""


class TokenCharge:
    """What one attempt took from which tpm buckets; settled once."""

    __slots__ = ("_settled", "_store", "_takes")

    def __init__(self, store: BreakerStore, takes: tuple[tuple[BreakerKey, float, float], ...]):
        self._store = store
        self._takes = takes
        """(bucket, its limit, what was taken from it)."""
        self._settled = False

    def settle(self, counts: TokenCounts | None, *, answered: bool) -> None:
        """The attempt ended: charge what the provider reported (input and output), keep
        the estimate for an answer that reported nothing, give it back for a failure."""
        if self._settled:
            return
        self._settled = True
        for key, limit, taken in self._takes:
            if counts is not None:
                delta = counts.input + counts.output - taken
            else:
                delta = 0.0 if answered else -taken
            if delta:
                self._store.charge_tpm(key, limit, delta)

    def settle_stream(self, counts: TokenCounts | None, whole: bool) -> None:
        """A stream ended (`whole`: at its end marker) with what its events reported."""
        self.settle(counts, answered=whole)

    def refund(self) -> None:
        """The attempt was not made, or failed with nothing reported."""
        self.settle(None, answered=False)


@dataclass(frozen=True, slots=True)
class TokenRefusal:
    """Why the attempt may not go: `reason` (`TENANT_LIMIT` or `PROVIDER_LIMIT`), and how
    long until that bucket holds the estimate."""

    reason: str
    wait_s: float


async def take(
    store: BreakerStore,
    tenant: TenantId,
    provider: ProviderName,
    *,
    own: float | None,
    shared: float | None,
    estimate: int,
) -> TokenCharge | TokenRefusal:
    """Take `estimate` from the tenant's bucket (limit `own`) and the provider's (`shared`),
    where set; one round trip each with the Redis store."""
    takes: list[tuple[BreakerKey, float, float]] = []
    if own:
        key = (tenant, provider)
        if not await store.atake_tpm(key, own, estimate):
            return TokenRefusal(TENANT_LIMIT, store.tpm_wait_s(key, estimate))
        takes.append((key, own, min(float(estimate), own)))
    if shared:
        key = (PROVIDER_WIDE, provider)
        if not await store.atake_tpm(key, shared, estimate):
            TokenCharge(store, tuple(takes)).refund()
            return TokenRefusal(PROVIDER_LIMIT, store.tpm_wait_s(key, estimate))
        takes.append((key, shared, min(float(estimate), shared)))
    return TokenCharge(store, tuple(takes))
