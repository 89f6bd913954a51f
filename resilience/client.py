"""`ResilientClient`: walk a route's targets with breakers, retries and fallback.

For each target of the route, in order:

- skipped without a call when the tenant is `local_only` and the provider is
  in the cloud, when an embedding call meets a provider that cannot embed, or
  when the (tenant, provider) breaker or the provider-wide one refuses;
- otherwise called, each attempt one call on the breaker, retried through the
  retry policy (jittered backoff, Retry-After, per-pair budget);
- a failure whose kind allows fallback moves on to the next target; one that
  does not (the caller's own error, a content filter) is raised at once.

A rate-limited target is left at once for the next one. When no later target
answers, the client waits out the shortest Retry-After (when it fits
`max_retry_after_s` and the deadline) and tries that target once more, as the
breaker's half-open probe. One deadline covers the whole walk; for streams it
bounds the time to the first chunk. When nothing answers: `AllTargetsFailed`.
"""

from __future__ import annotations

import asyncio
import os
import random
import time
from collections.abc import AsyncGenerator, Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Generic, TypeVar

import httpx2

from resilience.attempt import DeadlineExceeded, attempt
from resilience.breaker import CircuitBreaker, Permit
from resilience.deadline import Deadline
from resilience.errors import ErrorKind
from resilience.events import AuditSink
from resilience.exceptions import (
    AllTargetsFailed,
    CircuitOpenError,
    ProviderError,
    UnknownRouteError,
)
from resilience.models import (
    ChatChunk,
    ChatRequest,
    ChatResponse,
    EmbeddingRequest,
    EmbeddingResponse,
)
from resilience.outcomes import OutcomeStatus, Result, TargetOutcome
from resilience.policies import RetryPolicy
from resilience.providers.base import Provider, build_provider
from resilience.registry import BreakerRegistry
from resilience.retry import RetryBudgets, retry_call, wait_retry_after
from resilience.routes import Route, Target
from resilience.streaming import ResilientStream
from resilience.tenancy import current_request_id, current_tenant
from resilience.types import Clock, ProviderName, Sleep, TenantId

if TYPE_CHECKING:
    from resilience.config import Config

T = TypeVar("T")
Call = Callable[[], Awaitable[T]]
"""One provider call for one target, ready to run."""


@dataclass(frozen=True, slots=True, kw_only=True)
class TenantPolicy:
    """What one tenant may use: its own routes, its own provider keys, cloud or not."""

    local_only: bool = False
    routes: Mapping[str, Route] = field(default_factory=dict)
    api_keys: Mapping[ProviderName, str] = field(default_factory=dict)

    def __repr__(self) -> str:
        keys = sorted(self.api_keys)
        routes = sorted(self.routes)
        return f"TenantPolicy(local_only={self.local_only}, routes={routes}, api_keys_for={keys})"


_DEFAULT_TENANT = TenantPolicy()


@dataclass(slots=True)
class _Won(Generic[T]):
    value: T
    permit: Permit
    breaker: CircuitBreaker
    target: Target
    attempts: int
    outcomes: tuple[TargetOutcome, ...]


class _TargetFailed(Exception):
    def __init__(self, outcome: TargetOutcome) -> None:
        super().__init__(str(outcome.status))
        self.outcome = outcome


class ResilientClient:
    """Calls LLM providers for tenants; see the module docstring for the walk.

    Args:
        providers: adapters by provider name (`resilience.providers`).
        routes: named routes; a call may also name `provider:model` directly.
        tenants: per-tenant policies; unlisted tenants get the defaults.
        registry: the breakers; by default an in-memory registry with default policy.
        retry: retry and deadline policy.
        clock: monotonic seconds, for deadlines and budgets.
        sleep: how to wait (tests pass a recorder).
        rng: randomness for jitter.
    """

    def __init__(
        self,
        *,
        providers: Mapping[ProviderName, Provider],
        routes: Mapping[str, Route] | None = None,
        tenants: Mapping[TenantId, TenantPolicy] | None = None,
        registry: BreakerRegistry | None = None,
        retry: RetryPolicy | None = None,
        clock: Clock = time.monotonic,
        sleep: Sleep = asyncio.sleep,
        rng: random.Random | None = None,
    ) -> None:
        self.providers = dict(providers)
        self.routes = dict(routes or {})
        self.tenants = dict(tenants or {})
        if registry is None:
            registry = BreakerRegistry(clock=clock, request_id=current_request_id)
        self.registry = registry
        self.retry = retry if retry is not None else RetryPolicy()
        self.budgets = RetryBudgets(self.retry, clock=clock)
        self._clock = clock
        self._sleep = sleep
        self._rng = rng or random.Random()
        self._direct_routes: dict[str, Route] = {}
        for route in self.routes.values():
            self._check_route(route)
        for policy in self.tenants.values():
            for route in policy.routes.values():
                self._check_route(route)

    @classmethod
    def from_config(
        cls,
        config: Config,
        *,
        environ: Mapping[str, str] = os.environ,
        sinks: Iterable[AuditSink] = (),
        http_client: httpx2.AsyncClient | None = None,
        clock: Clock = time.monotonic,
        sleep: Sleep = asyncio.sleep,
    ) -> ResilientClient:
        """Build providers, breakers, routes and tenant policies from a loaded `Config`.

        `http_client` (optional) is shared by every provider, e.g. one on the chaos
        upstream's transport in tests; by default each provider has its own pool.
        """
        providers = {
            name: build_provider(
                name,
                kind=p.kind,
                api_key=p.api_key(environ),
                base_url=p.base_url,
                timeout_s=p.timeout_s,
                location=p.location,
                can_embed=p.embeddings,
                http_client=http_client,
            )
            for name, p in config.providers.items()
        }
        registry = BreakerRegistry(
            policy=config.breaker,
            provider_policies={name: p.breaker for name, p in config.providers.items()},
            sinks=sinks,
            clock=clock,
            request_id=current_request_id,
        )
        tenants = {
            tenant_id: TenantPolicy(
                local_only=t.local_only,
                routes=t.routes,
                api_keys={p: environ[env] for p, env in t.provider_keys.items() if env in environ},
            )
            for tenant_id, t in config.tenants.items()
        }
        return cls(
            providers=providers,
            routes=config.routes,
            tenants=tenants,
            registry=registry,
            retry=config.retry,
            clock=clock,
            sleep=sleep,
        )

    # -- the three calls ---------------------------------------------------------------------

    async def complete(
        self, request: ChatRequest, *, route: str, tenant: TenantId | None = None
    ) -> Result[ChatResponse]:
        """One chat completion through the route."""

        def call(provider: Provider, target: Target, key: str | None) -> Call[ChatResponse]:
            return lambda: provider.complete(request, model=target.model, api_key=key)

        won = await self._walk(route, tenant, call, embed=False, hold=False)
        return Result(won.value, won.target, won.attempts, won.outcomes)

    async def embed(
        self, request: EmbeddingRequest, *, route: str, tenant: TenantId | None = None
    ) -> Result[EmbeddingResponse]:
        """Embeddings through the route; targets that cannot embed are skipped."""

        def call(provider: Provider, target: Target, key: str | None) -> Call[EmbeddingResponse]:
            return lambda: provider.embed(request, model=target.model, api_key=key)

        won = await self._walk(route, tenant, call, embed=True, hold=False)
        return Result(won.value, won.target, won.attempts, won.outcomes)

    async def stream(
        self, request: ChatRequest, *, route: str, tenant: TenantId | None = None
    ) -> ResilientStream:
        """Open a stream: returns once the first chunk has arrived from some target."""
        Opened = tuple[AsyncGenerator[ChatChunk, None], ChatChunk | None]

        def call(provider: Provider, target: Target, key: str | None) -> Call[Opened]:
            async def open_stream() -> Opened:
                upstream = provider.stream(request, model=target.model, api_key=key)
                try:
                    first = await anext(upstream)
                except StopAsyncIteration:
                    return upstream, None
                except BaseException:
                    await upstream.aclose()
                    raise
                return upstream, first

            return open_stream

        won = await self._walk(route, tenant, call, embed=False, hold=True)
        upstream, first = won.value
        return ResilientStream(
            upstream,
            first,
            permit=won.permit,
            breaker=won.breaker,
            target=won.target,
            attempts=won.attempts,
            outcomes=won.outcomes,
        )

    # -- routing -----------------------------------------------------------------------------

    def route_for(self, tenant: TenantId, name: str) -> Route:
        """The tenant's override, else the named route, else `provider:model` as a route."""
        policy = self.tenants.get(tenant, _DEFAULT_TENANT)
        found = policy.routes.get(name) or self.routes.get(name)
        if found is not None:
            return found
        direct = self._direct_routes.get(name)
        if direct is not None:
            return direct
        if ":" in name:
            target = Target.parse(name)
            if target.provider in self.providers:
                route = Route(name=name, targets=(target,))
                if len(self._direct_routes) < 10_000:  # names come from callers: stay bounded
                    self._direct_routes[name] = route
                return route
        raise UnknownRouteError(
            f"unknown route {name!r}: not a configured route, nor provider:model of a "
            f"configured provider ({', '.join(sorted(self.providers))})",
            tenant=tenant,
        )

    async def aclose(self) -> None:
        """Close every provider's connection pool."""
        await asyncio.gather(*(p.aclose() for p in self.providers.values()))

    # -- the walk ----------------------------------------------------------------------------

    async def _walk(
        self,
        route_name: str,
        tenant: TenantId | None,
        call: Callable[[Provider, Target, str | None], Call[T]],
        *,
        embed: bool,
        hold: bool,
    ) -> _Won[T]:
        tenant = tenant if tenant is not None else current_tenant()
        route = self.route_for(tenant, route_name)
        policy = self.tenants.get(tenant, _DEFAULT_TENANT)
        deadline = Deadline.after(self.retry.deadline_s, clock=self._clock)
        outcomes: list[TargetOutcome] = []
        for target in route.targets:
            provider = self.providers[target.provider]
            skip = self._skip_reason(provider, policy, embed=embed)
            if skip is not None:
                outcomes.append(TargetOutcome(target, skip))
                continue
            if deadline.expired:
                outcomes.append(TargetOutcome(target, OutcomeStatus.DEADLINE))
                continue
            breaker = self.registry.get(tenant, target.provider)
            run = call(provider, target, policy.api_keys.get(target.provider))
            try:
                value, permit, made = await self._try_target(run, target, breaker, deadline, hold)
            except _TargetFailed as failed:
                outcomes.append(failed.outcome)
                continue
            outcomes.append(TargetOutcome(target, OutcomeStatus.SUCCEEDED, attempts=made))
            return self._won(value, permit, breaker, target, outcomes)
        won = await self._last_resort(tenant, route, policy, call, outcomes, deadline, hold)
        if won is not None:
            return won
        raise AllTargetsFailed(
            route.name, outcomes, tenant=tenant, retry_after_s=self._soonest(tenant, route)
        )

    async def _try_target(
        self,
        run: Call[T],
        target: Target,
        breaker: CircuitBreaker,
        deadline: Deadline,
        hold: bool,
    ) -> tuple[T, Permit, int]:
        """Retry one target; raise `_TargetFailed` to move on, `ProviderError` to stop the walk."""
        made = 0
        last: ProviderError | None = None

        async def once(number: int) -> tuple[T, Permit]:
            nonlocal made, last
            made += 1
            try:
                return await attempt(
                    run, breaker=breaker, deadline=deadline, number=number, settle=not hold
                )
            except CircuitOpenError:
                made -= 1
                raise
            except ProviderError as exc:
                last = exc
                raise

        budget = self.budgets.get((breaker.tenant, breaker.provider))
        try:
            value, permit = await retry_call(
                once,
                policy=self.retry,
                deadline=deadline,
                budget=budget,
                sleep=self._sleep,
                rng=self._rng,
            )
        except CircuitOpenError as refused:
            status = OutcomeStatus.BREAKER_OPEN if last is None else OutcomeStatus.FAILED
            raise _TargetFailed(
                _outcome(target, status, made, last, refused.retry_after_s)
            ) from None
        except DeadlineExceeded:
            raise _TargetFailed(_outcome(target, OutcomeStatus.DEADLINE, made, last)) from None
        except ProviderError as exc:
            if not exc.kind.policy.fallback:
                raise
            raise _TargetFailed(_outcome(target, OutcomeStatus.FAILED, made, exc)) from None
        return value, permit, made

    async def _last_resort(
        self,
        tenant: TenantId,
        route: Route,
        policy: TenantPolicy,
        call: Callable[[Provider, Target, str | None], Call[T]],
        outcomes: list[TargetOutcome],
        deadline: Deadline,
        hold: bool,
    ) -> _Won[T] | None:
        """Every target failed: wait out the shortest Retry-After and probe that target once."""
        limited = [
            (i, o)
            for i, o in enumerate(outcomes)
            if o.kind is ErrorKind.RATE_LIMITED and o.status is OutcomeStatus.FAILED
        ]
        if not limited:
            return None
        index, outcome = min(limited, key=lambda item: item[1].retry_after_s or 0.0)
        target = route.targets[index]
        breaker = self.registry.get(tenant, target.provider)
        wait_s = breaker.retry_after()
        if not await wait_retry_after(
            wait_s, policy=self.retry, deadline=deadline, sleep=self._sleep
        ):
            return None
        run = call(self.providers[target.provider], target, policy.api_keys.get(target.provider))
        number = outcome.attempts + 1
        try:
            value, permit = await attempt(
                run, breaker=breaker, deadline=deadline, number=number, settle=not hold
            )
        except (CircuitOpenError, DeadlineExceeded):
            return None
        except ProviderError as exc:
            if not exc.kind.policy.fallback:
                raise
            outcomes[index] = _outcome(target, OutcomeStatus.FAILED, number, exc)
            return None
        outcomes[index] = TargetOutcome(target, OutcomeStatus.SUCCEEDED, attempts=number)
        return self._won(value, permit, breaker, target, outcomes)

    # -- helpers -------------------------------------------------------------------------------

    def _won(
        self,
        value: T,
        permit: Permit,
        breaker: CircuitBreaker,
        target: Target,
        outcomes: list[TargetOutcome],
    ) -> _Won[T]:
        attempts = sum(o.attempts for o in outcomes)
        return _Won(value, permit, breaker, target, attempts, tuple(outcomes))

    @staticmethod
    def _skip_reason(
        provider: Provider, policy: TenantPolicy, *, embed: bool
    ) -> OutcomeStatus | None:
        if policy.local_only and provider.location == "cloud":
            return OutcomeStatus.LOCAL_ONLY
        if embed and not provider.can_embed:
            return OutcomeStatus.CANNOT_EMBED
        return None

    def _soonest(self, tenant: TenantId, route: Route) -> float | None:
        """Seconds until the first of the route's breakers may admit a call again."""
        waits = [
            self.registry.get(tenant, t.provider).retry_after()
            for t in route.targets
            if t.provider in self.providers
        ]
        positive = [w for w in waits if w > 0]
        return min(positive) if positive else None

    def _check_route(self, route: Route) -> None:
        for target in route.targets:
            if target.provider not in self.providers:
                raise ValueError(f"route {route.name!r}: unknown provider {target.provider!r}")


def _outcome(
    target: Target,
    status: OutcomeStatus,
    attempts: int,
    error: ProviderError | None,
    retry_after_s: float | None = None,
) -> TargetOutcome:
    if error is None:
        return TargetOutcome(target, status, attempts=attempts, retry_after_s=retry_after_s)
    return TargetOutcome(
        target,
        status,
        attempts=attempts,
        kind=error.kind,
        status_code=error.status_code,
        retry_after_s=retry_after_s if retry_after_s is not None else error.retry_after_s,
        message=error.message,
    )
