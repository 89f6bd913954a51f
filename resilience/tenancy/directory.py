"""Where tenants come from: a lookup the app implements (a query into its own tenants table),
a bounded TTL cache in front of it, and the TOML `[tenants]` as one more such lookup.

    tenants = CachedTenants(MyTenantsTable(engine), ttl_s=30)
    app.add_middleware(TenantMiddleware, resolver=ApiKeyResolver(tenants))
    client = ResilientClient.from_config(config, tenants=tenants)

A tenant added to the table is served, and a deleted key refused, within `ttl_s` (misses
are cached too, for `negative_ttl_s`), without a restart. A flood of unknown keys costs one
lookup per distinct key per TTL, never one per request, and the cache holds at most
`max_entries` answers per method. A lookup that raises is not cached: the error reaches the
caller (`TenantMiddleware` answers 503 `tenant_lookup_failed`, not 401: the database being
down is not the key being wrong).
"""

from __future__ import annotations

import asyncio
import math
import os
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Generic, Protocol, TypeVar, runtime_checkable

from resilience.tenancy.policy import TenantPolicy
from resilience.types import Clock, TenantId

if TYPE_CHECKING:
    from resilience.config.schema import Config

K = TypeVar("K")
V = TypeVar("V")


@runtime_checkable
class TenantLookup(Protocol):
    """Who owns a gateway key, and what a tenant may use; both asked per request (behind
    `CachedTenants`), both async so they can query a database."""

    async def tenant_for_key(self, key_sha256: str) -> TenantId | None:
        """The tenant owning the key whose SHA-256 hex digest (`hash_key`) this is; None: no
        such key. The digest of a high-entropy key is an index: look it up directly."""
        ...

    async def policy_for(self, tenant: TenantId) -> TenantPolicy | None:
        """The tenant's policy; None: the defaults (no overrides, no limits of its own)."""
        ...


@dataclass(frozen=True, slots=True)
class CacheStats:
    """What a `CachedTenants` did: lookups it made, answers it gave from the cache (hits) or
    not (misses: each waited for a lookup, its own or a concurrent one), answers held."""

    lookups: int = 0
    hits: int = 0
    misses: int = 0
    entries: int = 0

    def __add__(self, other: CacheStats) -> CacheStats:
        return CacheStats(
            self.lookups + other.lookups,
            self.hits + other.hits,
            self.misses + other.misses,
            self.entries + other.entries,
        )


class _TtlCache(Generic[K, V]):
    """One method's answers: LRU-bounded, each fresh for a TTL from when its lookup began,
    one lookup in flight per key shared by every asker (single flight)."""

    def __init__(
        self,
        load: Callable[[K], Awaitable[V | None]],
        *,
        ttl_s: float,
        negative_ttl_s: float,
        max_entries: int,
        clock: Clock,
    ) -> None:
        self._load = load
        self._ttl_s = ttl_s
        self._negative_ttl_s = negative_ttl_s
        self._max_entries = max_entries
        self._clock = clock
        self._entries: OrderedDict[K, tuple[float, V | None]] = OrderedDict()
        self._pending: dict[K, asyncio.Task[V | None]] = {}
        self.lookups = 0
        self.hits = 0
        self.misses = 0

    async def get(self, key: K) -> V | None:
        found = self._entries.get(key)
        if found is not None and self._clock() < found[0]:
            self._entries.move_to_end(key)
            self.hits += 1
            return found[1]
        self.misses += 1
        task = self._pending.get(key)
        if task is None:
            # A task of its own, so an asker that goes away (a client disconnecting) cancels
            # only its own wait, never the lookup the others share.
            task = asyncio.ensure_future(self._looked_up(key))
            self._pending[key] = task
            task.add_done_callback(lambda done: self._settled(key, done))
        return await asyncio.shield(task)

    def fresh(self, key: K) -> V | None:
        """The cached answer if still fresh, without asking or counting."""
        found = self._entries.get(key)
        return found[1] if found is not None and self._clock() < found[0] else None

    def fresh_items(self) -> Iterator[tuple[K, V]]:
        now = self._clock()
        for key, (expires, value) in list(self._entries.items()):
            if now < expires and value is not None:
                yield key, value

    def stats(self) -> CacheStats:
        return CacheStats(self.lookups, self.hits, self.misses, len(self._entries))

    def clear(self) -> None:
        self._entries.clear()

    async def _looked_up(self, key: K) -> V | None:
        started = self._clock()  # fresh for the TTL from here: a change made after the
        self.lookups += 1  # lookup began is seen within the TTL, however long it took
        value = await self._load(key)
        ttl_s = self._ttl_s if value is not None else self._negative_ttl_s
        if ttl_s > 0:
            entries = self._entries
            entries[key] = (started + ttl_s, value)
            entries.move_to_end(key)
            while len(entries) > self._max_entries:
                entries.popitem(last=False)
        return value

    def _settled(self, key: K, task: asyncio.Task[V | None]) -> None:
        if self._pending.get(key) is task:
            del self._pending[key]
        if not task.cancelled():
            task.exception()  # retrieved: every asker may have gone; the error is not cached


class CachedTenants(Mapping[TenantId, TenantPolicy]):
    """A `TenantLookup` in front of another, caching its answers.

    Args:
        lookup: what is asked on a miss (the app's query).
        ttl_s: how long an answer is used before the lookup is asked again: the longest a
            change to the table takes to be seen.
        negative_ttl_s: the same for "no such key" / "no policy" (default: `ttl_s`).
        max_entries: answers kept per method; past it the least recently used goes.
        clock: monotonic seconds (tests pass a fake one).

    As a `Mapping`, the policies it holds fresh now, for code that cannot wait.
    """

    def __init__(
        self,
        lookup: TenantLookup,
        *,
        ttl_s: float = 30.0,
        negative_ttl_s: float | None = None,
        max_entries: int = 10_000,
        clock: Clock = time.monotonic,
    ) -> None:
        negative = ttl_s if negative_ttl_s is None else negative_ttl_s
        for name, value in (("ttl_s", ttl_s), ("negative_ttl_s", negative)):
            if not (isinstance(value, int | float) and math.isfinite(value) and value >= 0):
                raise ValueError(f"{name}: expected seconds >= 0, got {value!r}")
        if isinstance(max_entries, bool) or not isinstance(max_entries, int) or max_entries < 1:
            raise ValueError(f"max_entries: expected a whole number >= 1, got {max_entries!r}")
        self.lookup = lookup
        self.ttl_s = float(ttl_s)
        self.negative_ttl_s = float(negative)
        self.max_entries = max_entries
        self._owners: _TtlCache[str, TenantId] = _TtlCache(
            lookup.tenant_for_key,
            ttl_s=self.ttl_s,
            negative_ttl_s=self.negative_ttl_s,
            max_entries=max_entries,
            clock=clock,
        )
        self._policies: _TtlCache[TenantId, TenantPolicy] = _TtlCache(
            lookup.policy_for,
            ttl_s=self.ttl_s,
            negative_ttl_s=self.negative_ttl_s,
            max_entries=max_entries,
            clock=clock,
        )

    async def tenant_for_key(self, key_sha256: str) -> TenantId | None:
        return await self._owners.get(key_sha256)

    async def policy_for(self, tenant: TenantId) -> TenantPolicy | None:
        return await self._policies.get(tenant)

    @property
    def stats(self) -> CacheStats:
        """Both methods together; `key_stats` and `policy_stats` apart."""
        return self._owners.stats() + self._policies.stats()

    @property
    def key_stats(self) -> CacheStats:
        return self._owners.stats()

    @property
    def policy_stats(self) -> CacheStats:
        return self._policies.stats()

    def clear(self) -> None:
        """Forget every answer: the next ask of each key or tenant looks it up."""
        self._owners.clear()
        self._policies.clear()

    def __getitem__(self, tenant: TenantId) -> TenantPolicy:
        policy = self._policies.fresh(tenant)
        if policy is None:
            raise KeyError(tenant)
        return policy

    def __iter__(self) -> Iterator[TenantId]:
        return (tenant for tenant, _ in self._policies.fresh_items())

    def __len__(self) -> int:
        return sum(1 for _ in self._policies.fresh_items())

    def __bool__(self) -> bool:
        return True  # a directory, even one holding nothing yet: `tenants or {}` keeps it

    def __repr__(self) -> str:
        return (
            f"CachedTenants({self.lookup!r}, ttl_s={self.ttl_s:g}, "
            f"negative_ttl_s={self.negative_ttl_s:g}, max_entries={self.max_entries})"
        )


@dataclass(frozen=True, slots=True)
class _Tables:
    owners: Mapping[str, TenantId]
    policies: Mapping[TenantId, TenantPolicy]


class ConfigTenants(Mapping[TenantId, TenantPolicy]):
    """The TOML `[tenants]` as a `TenantLookup`: what the gateway and
    `ResilientClient.from_config` use. Tenants' own provider keys are read from `environ`.

    `replace(config)` takes another config's tenants in one step (the gateway's reload): an
    answer comes wholly from the old tables or wholly from the new. As a `Mapping`, the
    current policies.
    """

    def __init__(self, config: Config, *, environ: Mapping[str, str] = os.environ) -> None:
        self._environ = environ
        self._tables = _tables(config, environ)

    def replace(self, config: Config) -> None:
        self._tables = _tables(config, self._environ)  # built first, then one assignment

    async def tenant_for_key(self, key_sha256: str) -> TenantId | None:
        return self._tables.owners.get(key_sha256)

    async def policy_for(self, tenant: TenantId) -> TenantPolicy | None:
        return self._tables.policies.get(tenant)

    def __getitem__(self, tenant: TenantId) -> TenantPolicy:
        return self._tables.policies[tenant]

    def __iter__(self) -> Iterator[TenantId]:
        return iter(self._tables.policies)

    def __len__(self) -> int:
        return len(self._tables.policies)

    def __bool__(self) -> bool:
        return True  # a directory, even an empty one: `tenants or {}` keeps it

    def __repr__(self) -> str:
        tables = self._tables
        return f"ConfigTenants({len(tables.policies)} tenants, {len(tables.owners)} keys)"


def _tables(config: Config, environ: Mapping[str, str]) -> _Tables:
    policies = {
        tenant_id: TenantPolicy(
            local_only=t.local_only,
            routes=t.routes,
            api_keys={p: environ[env] for p, env in t.provider_keys.items() if env in environ},
            rpm=t.rpm,
            tpm=t.tpm,
            max_concurrent=t.max_concurrent,
        )
        for tenant_id, t in config.tenants.items()
    }
    return _Tables(owners=config.tenant_by_key_hash(), policies=policies)
