"""`ResilientClient`: walk a route's steps with breakers, retries and fallback.

Each step of the route is a target or a group of equivalent targets, whose strategy
(`resilience.routing.strategies`) orders its members for this call. For each target of a step:

- skipped without a call when the tenant is `local_only` and the provider is
  in the cloud, when an embedding call meets a provider that cannot embed, when
  the tenant's or the provider's tokens-per-minute bucket does not hold the call's
  estimate (`resilience.client.tpm`: settled with what the provider reported when
  the attempt ends) or its requests-per-minute bucket is empty, or when the
  (tenant, provider) breaker or the provider-wide one refuses;
- otherwise called, each attempt one call on the breaker, recorded in the
  target's health (latency, errors, in flight) and, with OpenTelemetry, a span;
- a failure whose kind allows fallback moves on to the step's next member, then
  the route's next step; one that does not (the caller's own error, a content
  filter) is raised at once. Retryable failures are retried through the retry
  policy (jittered backoff, Retry-After, per-pair budget) once every member of
  the step has had its turn (see `_try_step`).

A rate-limited target is left at once for the next one. When no later target
answers, the client waits out the shortest Retry-After (when it fits
`max_retry_after_s` and the deadline) and tries that target once more, as the
breaker's half-open probe. One deadline covers the whole walk; for streams it
bounds the time to the first chunk. When nothing answers: `AllTargetsFailed`.

With usage sinks, every call that reached its route ends in one `UsageRecord`
(`resilience.usage`): the answering target and the tokens it reported, or the failure
and the last target tried; a stream's at its end, failure or abandonment.
"""

from __future__ import annotations

import asyncio
import os
import random
import time
from collections.abc import AsyncGenerator, Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Generic, TypeVar

import httpx2

from resilience.breaker.events import AuditSink
from resilience.breaker.machine import CircuitBreaker, Permit
from resilience.breaker.registry import BreakerRegistry
from resilience.client.attempt import DeadlineExceeded, attempt
from resilience.client.native import NativePlan
from resilience.client.outcomes import OutcomeStatus, Result, TargetOutcome
from resilience.client.streaming import ResilientStream, first_of
from resilience.client.tpm import TokenCharge, TokenRefusal
from resilience.client.tpm import take as take_tpm
from resilience.client.tracing import AttributeValue, Tracing, set_attributes, set_error
from resilience.deadline import Deadline
from resilience.errors import (
    AllTargetsFailed,
    CircuitOpenError,
    ErrorKind,
    InvalidRequestError,
    ProviderError,
    ResilienceError,
    TenantLookupFailed,
    UnknownRouteError,
)
from resilience.models import (
    ChatChunk,
    ChatRequest,
    ChatResponse,
    EmbeddingRequest,
    EmbeddingResponse,
    model_name_problem,
    request_problem,
    shown,
)
from resilience.providers import Provider, build_provider
from resilience.providers.native import NativeAnswer, NativeApi
from resilience.retry import RetryBudgets, RetryPolicy, retry_rest, wait_retry_after
from resilience.routing.bulkhead import Bulkheads, Refusal, Slot, slot_outcome
from resilience.routing.health import HealthBoard
from resilience.routing.routes import Group, Route, Target
from resilience.routing.strategies import Balancer
from resilience.tenancy.context import current_request_id, current_tenant
from resilience.tenancy.directory import ConfigTenants, TenantLookup
from resilience.tenancy.policy import DEFAULT_POLICY as _DEFAULT_TENANT
from resilience.tenancy.policy import TenantPolicy as TenantPolicy  # re-exported
from resilience.types import PROVIDER_WIDE, Clock, ProviderName, Sleep, TenantId
from resilience.usage.estimate import (
    estimate_chat,
    estimate_embedding,
    estimate_native,
    unreported_prompt,
)
from resilience.usage.meter import (
    ABANDONED,
    ChunkUsage,
    FrameUsage,
    OpenCall,
    StreamUsage,
    UsageMeter,
    normalised,
)
from resilience.usage.record import SUCCEEDED, UsageSink
from resilience.usage.tokens import TokenCounts, from_native

if TYPE_CHECKING:
    from opentelemetry.trace import TracerProvider

    from resilience.config.schema import Config

T = TypeVar("T")
Call = Callable[[Provider, Target, str | None], Awaitable[T]]
"""One provider call: `call(provider, target, api_key)`, made once the breaker admits it."""
Carry = Callable[[Provider, Target], str | None]
"""Why a target cannot take a call ("<field>: <why>"), or None: checked before any call."""
Count = Callable[[Any], TokenCounts | None]
"""The tokens an answer (not a stream) reports, for its tpm charge."""


@dataclass(slots=True)
class _Won(Generic[T]):
    value: T
    permit: Permit
    breaker: CircuitBreaker
    target: Target
    attempts: int
    outcomes: tuple[TargetOutcome, ...]
    slot: Slot | None = None
    """The bulkhead slot a stream holds until it ends."""
    walk: _Walk[T] | None = None


class ResilientClient:
    """Calls LLM providers for tenants; see the module docstring for the walk.

    Args:
        providers: adapters by provider name (`resilience.providers`).
        routes: named routes; a call may also name `provider:model` directly.
        tenants: per-tenant policies, unlisted tenants getting the defaults; or a
            `TenantLookup` (`resilience.tenancy.directory`: the app's own table behind
            `CachedTenants`, the TOML's `ConfigTenants`), asked `policy_for(tenant)` once per
            call, so a changed policy applies within the cache's TTL without a restart.
            `self.tenants` is the policies known without waiting: a mapping's, or a
            lookup's that is itself a mapping (`ConfigTenants`, `CachedTenants`' fresh ones).
        registry: the breakers; by default an in-memory registry with default policy.
        retry: retry and deadline policy.
        rpm: requests per minute each provider accepts (0 or absent: unlimited); a provider
            whose bucket is empty is skipped without a call.
        tpm: tokens per minute each provider accepts over all tenants (0 or absent:
            unlimited); a call is admitted on an estimate and charged what the provider
            reported (`resilience.client.tpm`).
        health: latency and error figures per target; by default a new board.
        tracer_provider: where spans go; by default the global OpenTelemetry provider
            once an SDK has set one (nothing is traced without the `otel` extra).
        clock: monotonic seconds, for deadlines and budgets.
        sleep: how to wait (tests pass a recorder).
        rng: randomness for jitter and the `weighted` strategy.
        bulkheads: concurrency gates per provider (`resilience.routing.bulkhead`); None: no
            limit but the connection pool's. `from_config` builds them from `[bulkhead]`.
        usage_sinks: where each finished call's `UsageRecord` goes (`emit_usage`); none: no
            record is made. `from_config` passes those of its `sinks` that have `emit_usage`.
    """

    def __init__(
        self,
        *,
        providers: Mapping[ProviderName, Provider],
        routes: Mapping[str, Route] | None = None,
        tenants: Mapping[TenantId, TenantPolicy] | TenantLookup | None = None,
        registry: BreakerRegistry | None = None,
        retry: RetryPolicy | None = None,
        rpm: Mapping[ProviderName, float] | None = None,
        tpm: Mapping[ProviderName, float] | None = None,
        health: HealthBoard | None = None,
        tracer_provider: TracerProvider | None = None,
        clock: Clock = time.monotonic,
        sleep: Sleep = asyncio.sleep,
        rng: random.Random | None = None,
        bulkheads: Bulkheads | None = None,
        usage_sinks: Iterable[UsageSink] = (),
    ) -> None:
        self.providers = dict(providers)
        usage = list(usage_sinks)
        self.usage: UsageMeter | None = UsageMeter(usage, clock=clock) if usage else None
        """Makes the usage records; None without usage sinks (then calls make none)."""
        self.bulkheads = bulkheads
        self.routes = dict(routes or {})
        self._lookup: TenantLookup | None = None
        self.tenants: Mapping[TenantId, TenantPolicy]
        if isinstance(tenants, TenantLookup):
            self._lookup = tenants
            self.tenants = tenants if isinstance(tenants, Mapping) else {}
        else:
            self.tenants = dict(tenants or {})
        if registry is None:
            registry = BreakerRegistry(clock=clock, request_id=current_request_id)
        self.registry = registry
        self.retry = retry if retry is not None else RetryPolicy()
        self.budgets = RetryBudgets(self.retry, clock=clock)
        self.rpm = {name: float(limit) for name, limit in (rpm or {}).items() if limit}
        self.rate_limit_skips: dict[ProviderName, int] = {}
        """Calls skipped because a requests-per-minute bucket was empty, by provider."""
        self.tpm = {name: float(limit) for name, limit in (tpm or {}).items() if limit}
        self.token_limit_skips: dict[ProviderName, int] = {}
        """Calls skipped because a tokens-per-minute bucket could not hold the estimate."""
        self.health = health if health is not None else HealthBoard(clock=clock)
        self.tracing = Tracing(tracer_provider)
        self._clock = clock
        self._sleep = sleep
        self._rng = rng or random.Random()
        self._started = False
        self.balancer = Balancer(self.health, rng=self._rng)
        self._direct_routes: dict[str, Route] = {}
        for route in self.routes.values():
            self._check_route(route)
        for policy in self.tenants.values():  # a lookup's are checked again as they are used
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
        tracer_provider: TracerProvider | None = None,
        tenants: TenantLookup | None = None,
    ) -> ResilientClient:
        """Build providers, breakers, routes and tenant policies from a loaded `Config`.

        `http_client` (optional) is shared by every provider, e.g. one on the chaos
        upstream's transport in tests; by default each provider has its own pool.
        `tenants` (optional) replaces the config's `[tenants]` (`ConfigTenants`) with
        another lookup, such as the app's own table behind `CachedTenants`.
        `sinks` get the breaker transitions (`emit`); those with `emit_usage` get the
        usage records too (`DatabaseSink`, `GatewayMetrics`).
        """
        sinks = list(sinks)
        providers = {
            name: build_provider(name, p.settings_for(environ), http_client=http_client)
            for name, p in config.providers.items()
        }
        registry = BreakerRegistry(
            policy=config.breaker,
            provider_policies={name: p.breaker for name, p in config.providers.items()},
            sinks=sinks,
            clock=clock,
            request_id=current_request_id,
            redis_url=config.redis_url,
            redis_prefix=config.redis_prefix,
        )
        return cls(
            providers=providers,
            routes=config.routes,
            tenants=tenants if tenants is not None else ConfigTenants(config, environ=environ),
            registry=registry,
            retry=config.retry,
            rpm={name: p.rpm for name, p in config.providers.items()},
            tpm={name: p.tpm for name, p in config.providers.items()},
            tracer_provider=tracer_provider,
            clock=clock,
            sleep=sleep,
            bulkheads=Bulkheads(config.bulkhead, clock=clock) if config.bulkhead else None,
            usage_sinks=[s for s in sinks if isinstance(s, UsageSink)],
        )

    # -- the three calls ---------------------------------------------------------------------

    async def complete(
        self, request: ChatRequest, *, route: str, tenant: TenantId | None = None
    ) -> Result[ChatResponse]:
        """One chat completion through the route."""

        def call(provider: Provider, target: Target, key: str | None) -> Awaitable[ChatResponse]:
            return provider.complete(request, model=target.model, api_key=key)

        won = await self._walk(
            route,
            tenant,
            call,
            request,
            embed=False,
            hold=False,
            estimate=lambda: estimate_chat(request),
            count=_normalised_count,
        )
        if self.usage is not None:
            self._answered(won, normalised(won.value.usage), cached_known=False)
        return Result(won.value, won.target, won.attempts, won.outcomes)

    async def embed(
        self, request: EmbeddingRequest, *, route: str, tenant: TenantId | None = None
    ) -> Result[EmbeddingResponse]:
        """Embeddings through the route; targets that cannot embed are skipped."""

        def call(
            provider: Provider, target: Target, key: str | None
        ) -> Awaitable[EmbeddingResponse]:
            return provider.embed(request, model=target.model, api_key=key)

        won = await self._walk(
            route,
            tenant,
            call,
            request,
            embed=True,
            hold=False,
            estimate=lambda: estimate_embedding(request),
            count=_normalised_count,
        )
        if self.usage is not None:
            self._answered(won, normalised(won.value.usage), cached_known=False)
        return Result(won.value, won.target, won.attempts, won.outcomes)

    async def stream(
        self, request: ChatRequest, *, route: str, tenant: TenantId | None = None
    ) -> ResilientStream[ChatChunk]:
        """Open a stream: returns once the first chunk has arrived from some target."""
        Opened = tuple[AsyncGenerator[ChatChunk, None], ChatChunk | None]

        def call(provider: Provider, target: Target, key: str | None) -> Awaitable[Opened]:
            return first_of(provider.stream(request, model=target.model, api_key=key))

        won = await self._walk(
            route,
            tenant,
            call,
            request,
            embed=False,
            hold=True,
            estimate=lambda: estimate_chat(request),
        )
        charge = won.walk.charge if won.walk is not None else None
        if self.usage is not None or charge is not None:
            settle = charge.settle_stream if charge is not None else None
            return _stream_of(won, ChunkUsage(self.usage, self._open_call(won), settle))
        return _stream_of(won)

    # -- native calls: a body in a provider's own format --------------------------------------

    async def complete_native(
        self,
        api: NativeApi,
        body: Mapping[str, Any],
        *,
        route: str | None = None,
        tenant: TenantId | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> Result[NativeAnswer]:
        """A body in a provider's own format (`api`), answered in that format.

        A target of the body's kind receives the body as it is, `model` aside, and its answer
        comes back as it sent it; a target of the other kind receives a translation, or is
        skipped (outcome `cannot_carry`, naming the field) when a field has no counterpart
        there (`resilience.client.native`). Breakers, retries and fallback are as for
        `complete`. `route` defaults to the body's `model`; `headers` (such as
        `anthropic-beta`) go with the request to targets of the body's kind.
        """
        plan = NativePlan(api, body, headers)
        won = await self._walk(
            route or plan.route,
            tenant,
            plan.complete,
            None,
            embed=api == "openai.embeddings",
            hold=False,
            carry=plan.cannot_carry,
            estimate=lambda: estimate_native(body),
            count=lambda answer: from_native(api, answer.data),
        )
        if self.usage is not None:
            self._answered(won, from_native(api, won.value.data), cached_known=True)
        return Result(won.value, won.target, won.attempts, won.outcomes)

    async def stream_native(
        self,
        api: NativeApi,
        body: Mapping[str, Any],
        *,
        route: str | None = None,
        tenant: TenantId | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> ResilientStream[bytes]:
        """`complete_native` as a stream of server-sent events in the body's format, passed
        on as they arrive; returns once the first event has arrived from some target."""
        plan = NativePlan(api, body, headers)
        won = await self._walk(
            route or plan.route,
            tenant,
            plan.open,
            None,
            embed=False,
            hold=True,
            carry=plan.cannot_carry,
            estimate=lambda: estimate_native(body),
        )
        charge = won.walk.charge if won.walk is not None else None
        if self.usage is None and charge is None:
            return _stream_of(won)
        settle = prompt = None
        if charge is not None:  # tpm: a stream that will report no usage is estimated
            settle, prompt = charge.settle_stream, unreported_prompt(api, body)
        usage = FrameUsage(self.usage, self._open_call(won), api, settle, prompt_tokens=prompt)
        return _stream_of(won, usage)

    # -- routing -----------------------------------------------------------------------------

    async def policy_for(self, tenant: TenantId) -> TenantPolicy:
        """The tenant's policy as a call now sees it: the lookup's answer (through its
        cache), else the mapping's; the defaults for a tenant neither lists."""
        if self._lookup is None:
            return self.tenants.get(tenant, _DEFAULT_TENANT)
        try:
            policy = await self._lookup.policy_for(tenant)
        except Exception as exc:
            raise TenantLookupFailed(tenant) from exc
        return policy or _DEFAULT_TENANT

    def route_for(
        self, tenant: TenantId, name: str, *, policy: TenantPolicy | None = None
    ) -> Route:
        """The tenant's override, else the named route, else `provider:model` as a route.

        `policy` is the tenant's (by default what `tenants` holds now; a call passes the
        one `policy_for` gave it). A name that is not a route is checked (charset, length)
        before anything is made for it: `InvalidRequestError` naming `model` when no
        provider could have it."""
        if policy is None:
            policy = self.tenants.get(tenant, _DEFAULT_TENANT)
        own = policy.routes.get(name) if policy.routes else None
        if own is not None:
            if self._lookup is not None:  # a lookup's policy may name a provider not here
                self._check_route(own)
            return own
        found = self.routes.get(name)
        if found is not None:
            return found
        direct = self._direct_routes.get(name)
        if direct is not None:
            return direct
        problem = model_name_problem(name)
        if problem is not None:
            raise InvalidRequestError("model", problem, tenant=tenant)
        if ":" in name:
            try:
                target = Target.parse(name)
            except ValueError as exc:
                raise InvalidRequestError("model", str(exc), tenant=tenant) from None
            if target.provider in self.providers:
                route = Route(name=name, targets=(target,))
                if len(self._direct_routes) < 10_000:  # names come from callers: stay bounded
                    self._direct_routes[name] = route
                return route
        raise UnknownRouteError(
            f"unknown route '{shown(name, 80)}': not a configured route, nor provider:model "
            f"of a configured provider ({', '.join(sorted(self.providers))})",
            tenant=tenant,
        )

    async def start(self) -> None:
        """Connect the breaker store (Redis, when shared); the first call does it otherwise."""
        self._started = True
        await self.registry.start()

    async def aclose(self) -> None:
        """Hand the breaker store's pending verdicts over; close every provider's pool."""
        await self.registry.aclose()
        await asyncio.gather(*(p.aclose() for p in self.providers.values()))

    async def __aenter__(self) -> ResilientClient:
        """`async with ResilientClient.from_config(...) as client:` in an app's lifespan."""
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    # -- the walk ----------------------------------------------------------------------------

    async def _walk(
        self,
        route_name: str,
        tenant: TenantId | None,
        call: Call[T],
        request: ChatRequest | EmbeddingRequest | None,
        *,
        embed: bool,
        hold: bool,
        carry: Carry | None = None,
        estimate: Callable[[], int] | None = None,
        count: Count | None = None,
    ) -> _Won[T]:
        if not self._started:
            await self.start()
        tenant = tenant if tenant is not None else current_tenant()
        if self._lookup is None:  # no await on the path without a lookup
            policy = self.tenants.get(tenant, _DEFAULT_TENANT)
        else:  # asked once per call: its cache makes that cheap
            policy = await self.policy_for(tenant)
        route = self.route_for(tenant, route_name, policy=policy)
        traced = self.tracing.tracer() is not None
        now = self._clock()
        walk = _Walk(
            tenant=tenant,
            policy=policy,
            call=call,
            # `Deadline.after`, whose check `RetryPolicy` has made already
            deadline=Deadline(now + self.retry.deadline_s, self._clock),
            hold=hold,
            embed=embed,
            operation="embeddings" if embed else "chat",
            traced=traced,
            carry=carry,
            started=now,
            route=route.name,
            estimate=estimate,
            count=count,
        )
        try:
            if traced:
                return await self._traced_walk(route, walk)
            return await self._walk_steps(route, walk)
        except ProviderError as exc:
            named = _named(exc, request) if request is not None else exc
            if self.usage is not None:
                self._failed(walk, named)
            if named is exc:
                raise
            raise named from exc.__cause__
        except BaseException as exc:
            if self.usage is not None:
                self._failed(walk, exc)
            raise

    async def _traced_walk(self, route: Route, walk: _Walk[T]) -> _Won[T]:
        """`_walk_steps` in a span for the whole call."""
        attributes: dict[str, AttributeValue] = {
            "resilience.tenant": walk.tenant,
            "resilience.route": route.name,
            "gen_ai.operation.name": walk.operation,
        }
        with self.tracing.span(
            f"resilience {walk.operation} {route.name}", client=False, attributes=attributes
        ) as span:
            try:
                won = await self._walk_steps(route, walk)
            except ResilienceError as exc:
                set_error(span, getattr(exc, "kind", None) or type(exc).__name__, str(exc))
                raise
            set_attributes(
                span,
                {
                    "resilience.target": str(won.target),
                    "resilience.attempts": won.attempts,
                    "resilience.fallbacks": len(won.outcomes) - 1,
                },
            )
            return won

    async def _walk_steps(self, route: Route, walk: _Walk[T]) -> _Won[T]:
        for step in route.targets:
            if isinstance(step, Group):
                won = await self._try_step(self.balancer.order(step, walk.tenant), step.label, walk)
                if won is not None:
                    self.balancer.answered(step, won.target)
            else:
                won = await self._try_step((step,), step.provider, walk)
            if won is not None:
                return won
        won = await self._last_resort(walk)
        if won is not None:
            return won
        raise AllTargetsFailed(
            route.name,
            walk.outcomes,
            tenant=walk.tenant,
            retry_after_s=self._soonest(walk.tenant, route, walk.outcomes),
        )

    async def _try_step(
        self, members: Sequence[Target], budget_name: str, walk: _Walk[T]
    ) -> _Won[T] | None:
        """Try one step: a target, or a group's members in the strategy's order.

        The step is tried in passes (`_pass`): a pass calls the remaining members in
        order, one attempt each, moving to the next member at once on failure, so a retry
        goes to another healthy member before the same one again. The first pass runs
        here; one that failed retryably is retried after the backoff, with the members
        whose failure is retryable, under tenacity (`retry_rest`) until the retry policy
        stops; then the route moves to its next step.
        Raises `ProviderError` for a failure that must not fall back.
        """
        tallies: list[_Tally] = []
        skipping = walk.policy.local_only or walk.embed
        carry = walk.carry
        for target in members:
            skip = (
                self._skip_reason(self.providers[target.provider], walk.policy, embed=walk.embed)
                if skipping
                else None
            )
            uncarried = None
            if skip is None and carry is not None:
                uncarried = carry(self.providers[target.provider], target)
                if uncarried is not None:
                    skip = OutcomeStatus.CANNOT_CARRY
            if skip is None and walk.deadline.expired:
                skip = OutcomeStatus.DEADLINE
            if skip is not None:
                walk.outcomes.append(TargetOutcome(target, skip, message=uncarried or ""))
            else:
                tallies.append(_Tally(target))
        if not tallies:
            return None
        candidates = tallies.copy()  # the members the next pass calls
        budget = self.budgets.requested((walk.tenant, budget_name))
        try:
            try:
                value, permit, breaker, target = await self._pass(walk, candidates)
            except ProviderError as exc:
                if not exc.kind.policy.retryable:
                    raise
                value, permit, breaker, target = await retry_rest(
                    lambda _: self._pass(walk, candidates),
                    exc,
                    policy=self.retry,
                    deadline=walk.deadline,
                    budget=budget,
                    sleep=self._sleep,
                    rng=self._rng,
                )
        except ProviderError as exc:
            if not exc.kind.policy.fallback:
                raise
        except (_StepFailed, DeadlineExceeded):
            pass
        else:
            for tally in tallies:
                if tally.reached:
                    walk.outcomes.append(tally.outcome())
            return self._won(value, permit, breaker, target, walk)
        walk.outcomes.extend([t.outcome() for t in tallies if t.reached])
        for tally in candidates:  # the deadline ran out before their turn
            if not tally.reached:
                walk.outcomes.append(TargetOutcome(tally.target, OutcomeStatus.DEADLINE))
        return None

    async def _pass(
        self, walk: _Walk[T], candidates: list[_Tally]
    ) -> tuple[T, Permit, CircuitBreaker, Target]:
        """One attempt at each of `candidates` in turn, until one answers.

        Leaves in `candidates` the members whose failure is retryable and raises the last
        such failure, else `_StepFailed`; raises a failure that must not fall back at once.
        """
        again: list[_Tally] = []
        retryable: ProviderError | None = None
        attempt_at = self._traced_attempt if walk.traced else self._measured_attempt
        for tally in candidates:
            tally.reached = True
            target = tally.target
            admitted = await self._admit(walk, target.provider)
            if not isinstance(admitted, tuple):
                if isinstance(admitted, TokenRefusal):
                    tally.tpm_limited(admitted)
                elif isinstance(admitted, Refusal):
                    assert self.bulkheads is not None
                    tally.bulkhead_full(admitted, self.bulkheads.gate(target.provider).hold_s)
                else:
                    tally.rate_limited(self._token_wait_s(target.provider, walk))
                continue
            charge, slot = admitted
            breaker = self.registry.get(walk.tenant, target.provider)
            tally.attempts += 1
            walk.last = target
            attempting = attempt_at(walk, target, breaker, tally.attempts)
            if charge is not None:
                attempting = self._charged(walk, charge, attempting)
            try:
                value, permit = await self._in_slot(walk, slot, attempting)
            except CircuitOpenError as refused:
                tally.refused(refused.retry_after_s)
                continue
            except DeadlineExceeded:
                tally.status = OutcomeStatus.DEADLINE
                raise
            except ProviderError as exc:
                tally.failed(exc)
                if not exc.kind.policy.fallback:
                    raise
                if exc.kind.policy.retryable:
                    again.append(tally)
                    retryable = exc
                continue
            tally.status = OutcomeStatus.SUCCEEDED
            return value, permit, breaker, target
        candidates[:] = again
        if retryable is not None:
            raise retryable
        raise _StepFailed

    async def _admit(
        self, walk: _Walk[T], provider: ProviderName
    ) -> tuple[TokenCharge | None, Slot | None] | TokenRefusal | Refusal | _RateLimited:
        """What an attempt at `provider` takes before it goes, in this order: the call's
        estimate from the tpm buckets, a token from the rpm buckets, a bulkhead slot (each
        where a limit is set); or the refusal that stops it, with what it took given back."""
        charge: TokenCharge | None = None
        if self.tpm or walk.policy.tpm:
            metered = await self._within_tpm(walk, provider)
            if isinstance(metered, TokenRefusal):
                return metered
            charge = metered
        if (
            (self.rpm or walk.policy.rpm)
            and self._rated(provider, walk.policy)
            and not await self._within_rate(walk.tenant, provider, walk.policy)
        ):
            if charge is not None:
                charge.refund()
            return _RATE_LIMITED
        slot: Slot | None = None
        if self.bulkheads is not None:
            got = await self._slot(walk, provider)
            if isinstance(got, Refusal):
                if charge is not None:
                    charge.refund()
                return got
            slot = got
        return charge, slot

    def _slot(self, walk: _Walk[T], provider: ProviderName) -> Awaitable[Slot | Refusal]:
        """A bulkhead slot at `provider`, waiting at most the policy's `max_wait_s` and never
        past the deadline; or why there is none."""
        assert self.bulkheads is not None
        gate = self.bulkheads.gate(provider)
        wait_s = min(gate.policy.max_wait_s, walk.deadline.remaining())
        return gate.acquire(
            walk.tenant, max_wait_s=wait_s, tenant_limit=walk.policy.max_concurrent.get(provider)
        )

    @staticmethod
    async def _in_slot(
        walk: _Walk[T], slot: Slot | None, attempting: Awaitable[tuple[T, Permit]]
    ) -> tuple[T, Permit]:
        """`attempting`, awaited while holding `slot` (when there is one), which it ends by
        its outcome: a failure as `slot_outcome` says, anything else that stops it (a
        breaker's refusal, the deadline, a cancellation) neutral, a success as one, or for
        a held stream not yet: `walk.slot` keeps it until the stream ends."""
        if slot is None:
            return await attempting
        try:
            answered = await attempting
        except ProviderError as exc:
            slot.release(slot_outcome(exc.kind))
            raise
        except BaseException:
            slot.release("neutral")
            raise
        if walk.hold:
            walk.slot = slot
        else:
            slot.release("success")
        return answered

    def _attempt(
        self, walk: _Walk[T], target: Target, breaker: CircuitBreaker, number: int
    ) -> Awaitable[tuple[T, Permit]]:
        """One attempt at `target` (in a span when tracing is on)."""
        if walk.traced:
            return self._traced_attempt(walk, target, breaker, number)
        return self._measured_attempt(walk, target, breaker, number)

    def _measured_attempt(
        self, walk: _Walk[T], target: Target, breaker: CircuitBreaker, number: int
    ) -> Awaitable[tuple[T, Permit]]:
        """`attempt()`, with the call's latency and verdict recorded in the target's health."""
        provider = target.provider
        return attempt(
            walk.call,
            self.providers[provider],
            target,
            walk.policy.api_keys.get(provider),
            breaker=breaker,
            deadline=walk.deadline,
            number=number,
            settle=not walk.hold,
            health=self.health.member(target),
        )

    async def _traced_attempt(
        self, walk: _Walk[T], target: Target, breaker: CircuitBreaker, number: int
    ) -> tuple[T, Permit]:
        attributes: dict[str, AttributeValue] = {
            "gen_ai.operation.name": walk.operation,
            "gen_ai.provider.name": self.providers[target.provider].kind,
            "gen_ai.request.model": target.model,
            "resilience.provider": target.provider,
            "resilience.tenant": walk.tenant,
            "resilience.attempt": number,
            "resilience.breaker.state": str(breaker.state),
        }
        with self.tracing.span(
            f"{walk.operation} {target.model}", client=True, attributes=attributes
        ) as span:
            try:
                value, permit = await self._measured_attempt(walk, target, breaker, number)
            except CircuitOpenError as exc:
                set_error(span, "circuit_open", str(exc))
                raise
            except ProviderError as exc:
                set_error(span, str(exc.kind), exc.message)
                raise
            except DeadlineExceeded as exc:
                set_error(span, "deadline", str(exc))
                raise
            set_attributes(span, _response_attributes(value))
            return value, permit

    async def _last_resort(self, walk: _Walk[T]) -> _Won[T] | None:
        """Every target failed: wait out the shortest Retry-After and probe that target once."""
        outcomes = walk.outcomes
        limited = [
            (i, o)
            for i, o in enumerate(outcomes)
            if o.kind is ErrorKind.RATE_LIMITED and o.status is OutcomeStatus.FAILED
        ]
        if not limited:
            return None
        index, outcome = min(limited, key=lambda item: item[1].retry_after_s or 0.0)
        target = outcome.target
        breaker = self.registry.get(walk.tenant, target.provider)
        wait_s = breaker.retry_after()
        if not await wait_retry_after(
            wait_s, policy=self.retry, deadline=walk.deadline, sleep=self._sleep
        ):
            return None
        admitted = await self._admit(walk, target.provider)  # a call like any other
        if not isinstance(admitted, tuple):
            return None
        charge, slot = admitted
        number = outcome.attempts + 1
        walk.last = target
        attempting = self._attempt(walk, target, breaker, number)
        if charge is not None:
            attempting = self._charged(walk, charge, attempting)
        try:
            value, permit = await self._in_slot(walk, slot, attempting)
        except (CircuitOpenError, DeadlineExceeded):
            return None
        except ProviderError as exc:
            if not exc.kind.policy.fallback:
                raise
            outcomes[index] = _outcome(target, OutcomeStatus.FAILED, number, exc)
            return None
        outcomes[index] = TargetOutcome(target, OutcomeStatus.SUCCEEDED, attempts=number)
        return self._won(value, permit, breaker, target, walk)

    # -- rate limits ---------------------------------------------------------------------------

    def _rated(self, provider: ProviderName, policy: TenantPolicy) -> bool:
        """Whether a request-rate limit applies (only then is a bucket asked)."""
        return bool(self.rpm.get(provider) or policy.rpm.get(provider))

    async def _within_rate(
        self, tenant: TenantId, provider: ProviderName, policy: TenantPolicy
    ) -> bool:
        """Take a token from the tenant's and the provider's rpm buckets, where limits are set
        (shared by every process with the Redis store: one round trip each).

        Refused: the call is skipped, and counted in `rate_limit_skips`."""
        limit = self.rpm.get(provider)
        own = policy.rpm.get(provider)
        take = self.registry.store.atake_token
        if (own and not await take((tenant, provider), own)) or (
            limit and not await take((PROVIDER_WIDE, provider), limit)
        ):
            self.rate_limit_skips[provider] = self.rate_limit_skips.get(provider, 0) + 1
            return False
        return True

    def _token_wait_s(self, provider: ProviderName, walk: _Walk[T]) -> float:
        wait = self.registry.store.token_wait_s
        own = wait((walk.tenant, provider)) if walk.policy.rpm.get(provider) else 0.0
        shared = wait((PROVIDER_WIDE, provider)) if self.rpm.get(provider) else 0.0
        return max(own, shared)

    async def _within_tpm(
        self, walk: _Walk[T], provider: ProviderName
    ) -> TokenCharge | TokenRefusal | None:
        """Take the call's estimate from the tenant's and the provider's tpm buckets, where
        limits are set (None: no limit here). Refused: counted in `token_limit_skips`."""
        own = walk.policy.tpm.get(provider)
        shared = self.tpm.get(provider)
        if not own and not shared:
            return None
        admitted = await take_tpm(
            self.registry.store,
            walk.tenant,
            provider,
            own=own,
            shared=shared,
            estimate=walk.tokens_estimate(),
        )
        if isinstance(admitted, TokenRefusal):
            self.token_limit_skips[provider] = self.token_limit_skips.get(provider, 0) + 1
        return admitted

    @staticmethod
    async def _charged(
        walk: _Walk[T], charge: TokenCharge, attempting: Awaitable[tuple[T, Permit]]
    ) -> tuple[T, Permit]:
        """`attempting`, its tpm take settled when it ends: given back on any failure,
        charged the answer's reported tokens; a stream's charge goes with the stream."""
        try:
            value, permit = await attempting
        except BaseException:
            charge.refund()
            raise
        if walk.hold:
            walk.charge = charge
        else:
            count = walk.count
            charge.settle(count(value) if count is not None else None, answered=True)
        return value, permit

    # -- helpers -------------------------------------------------------------------------------

    def _won(
        self, value: T, permit: Permit, breaker: CircuitBreaker, target: Target, walk: _Walk[T]
    ) -> _Won[T]:
        """The answer and how the walk got there; a held stream takes its bulkhead slot."""
        attempts = 0
        for outcome in walk.outcomes:
            attempts += outcome.attempts
        slot, walk.slot = walk.slot, None
        return _Won(value, permit, breaker, target, attempts, tuple(walk.outcomes), slot, walk)

    # -- usage -------------------------------------------------------------------------------

    def _answered(self, won: _Won[Any], counts: TokenCounts | None, *, cached_known: bool) -> None:
        """The record of a call answered whole (not a stream)."""
        walk = won.walk
        assert self.usage is not None and walk is not None
        target = won.target
        self.usage.emit(
            walk.tenant,
            walk.route,
            target.provider,
            target.model,
            counts,
            cached_known,
            walk.started,
            SUCCEEDED,
            current_request_id(),
            False,
        )

    def _open_call(self, won: _Won[Any]) -> OpenCall:
        """What the record of a stream just opened will say of its call."""
        walk = won.walk
        assert walk is not None
        return OpenCall(
            walk.tenant,
            walk.route,
            won.target.provider,
            won.target.model,
            walk.started,
            current_request_id(),
        )

    def _failed(self, walk: _Walk[Any], exc: BaseException) -> None:
        """The record of a call no target answered: the last one tried, and why."""
        assert self.usage is not None
        last = walk.last
        self.usage.emit(
            walk.tenant,
            walk.route,
            last.provider if last is not None else None,
            last.model if last is not None else None,
            None,
            False,
            walk.started,
            _failure_outcome(exc),
            current_request_id(),
            walk.hold,
        )

    @staticmethod
    def _skip_reason(
        provider: Provider, policy: TenantPolicy, *, embed: bool
    ) -> OutcomeStatus | None:
        if policy.local_only and provider.location == "cloud":
            return OutcomeStatus.LOCAL_ONLY
        if embed and not provider.can_embed:
            return OutcomeStatus.CANNOT_EMBED
        return None

    def _soonest(
        self, tenant: TenantId, route: Route, outcomes: Sequence[TargetOutcome]
    ) -> float | None:
        """Seconds until the first of the route's targets may take a call again: its breaker
        admits, its rate limit has a token, or its bulkhead frees a slot (a call's typical
        hold there)."""
        waits = [
            self.registry.get(tenant, t.provider).retry_after()
            for t in route.iter_targets()
            if t.provider in self.providers
        ]
        waits += [
            o.retry_after_s
            for o in outcomes
            if o.status in _WAITED_OUT and o.retry_after_s is not None
        ]
        positive = [w for w in waits if w > 0]
        return min(positive) if positive else None

    def _check_route(self, route: Route) -> None:
        for target in route.iter_targets():
            if target.provider not in self.providers:
                raise ValueError(f"route {route.name!r}: unknown provider {target.provider!r}")


_WAITED_OUT = frozenset(
    {OutcomeStatus.RPM_LIMITED, OutcomeStatus.TPM_LIMITED, OutcomeStatus.BULKHEAD_FULL}
)
"""Skips that end on their own after a known wait, which `_soonest` counts."""


@dataclass(slots=True, kw_only=True)
class _Walk(Generic[T]):
    """One call's walk along its route: who, what, until when, and what happened so far."""

    tenant: TenantId
    policy: TenantPolicy
    call: Call[T]
    deadline: Deadline
    hold: bool
    embed: bool
    operation: str
    traced: bool
    carry: Carry | None = None
    """For a native call: why a target cannot take it (`NativePlan.cannot_carry`)."""
    outcomes: list[TargetOutcome] = field(default_factory=list)
    slot: Slot | None = None
    """The bulkhead slot of the attempt that opened a held stream, for `_Won`."""
    started: float = 0.0
    """On the client's clock, for the usage record's latency."""
    route: str = ""
    last: Target | None = None
    """The target of the latest attempt: a failed call's usage record names it."""
    estimate: Callable[[], int] | None = None
    """The call's tokens before it is sent (`resilience.usage.estimate`), for tpm."""
    count: Count | None = None
    charge: TokenCharge | None = None
    """The tpm take of the attempt that opened a held stream, settled at its end."""
    _estimated: int = -1

    def tokens_estimate(self) -> int:
        """`estimate()`, worked out once per call."""
        if self._estimated < 0:
            self._estimated = self.estimate() if self.estimate is not None else 1
        return self._estimated


@dataclass(slots=True)
class _Tally:
    """What happened at one target during one step, folded into its `TargetOutcome`."""

    target: Target
    status: OutcomeStatus = OutcomeStatus.FAILED
    attempts: int = 0
    error: ProviderError | None = None
    retry_after_s: float | None = None
    reached: bool = False
    """Whether a pass got to it (only those have an outcome; the rest ran out of time)."""
    reason: str = ""
    """Why a bulkhead refused it (`Refusal`), or which tpm bucket did, as the outcome's
    message."""

    def refused(self, retry_after_s: float | None) -> None:
        self.attempts -= 1  # nothing was called
        self.status = OutcomeStatus.BREAKER_OPEN if self.error is None else OutcomeStatus.FAILED
        self.retry_after_s = retry_after_s

    def rate_limited(self, wait_s: float) -> None:
        if self.error is None:
            self.status = OutcomeStatus.RPM_LIMITED
            self.retry_after_s = wait_s

    def tpm_limited(self, refusal: TokenRefusal) -> None:
        if self.error is None:
            self.status = OutcomeStatus.TPM_LIMITED
            self.reason = refusal.reason
            self.retry_after_s = refusal.wait_s

    def bulkhead_full(self, refusal: Refusal, hold_s: float | None) -> None:
        if self.error is None:
            self.status = OutcomeStatus.BULKHEAD_FULL
            self.reason = str(refusal)
            self.retry_after_s = hold_s

    def failed(self, error: ProviderError) -> None:
        self.status = OutcomeStatus.FAILED
        self.error = error
        self.retry_after_s = None

    def outcome(self) -> TargetOutcome:
        if self.error is None:
            if (
                self.status is OutcomeStatus.SUCCEEDED
                and self.attempts == 1
                and self.retry_after_s is None
            ):
                return _answered_at_once(self.target)
            return TargetOutcome(
                self.target,
                self.status,
                attempts=self.attempts,
                retry_after_s=self.retry_after_s,
                message=self.reason,
            )
        return _outcome(self.target, self.status, self.attempts, self.error, self.retry_after_s)


ItemT = TypeVar("ItemT")


def _stream_of(
    won: _Won[tuple[AsyncGenerator[ItemT, None], ItemT | None]],
    usage: StreamUsage | None = None,
) -> ResilientStream[ItemT]:
    """The stream a walk opened, holding its permit and bulkhead slot until it ends."""
    upstream, first = won.value
    return ResilientStream(
        upstream,
        first,
        permit=won.permit,
        breaker=won.breaker,
        target=won.target,
        attempts=won.attempts,
        outcomes=won.outcomes,
        slot=won.slot,
        usage=usage,
    )


def _normalised_count(answer: ChatResponse | EmbeddingResponse) -> TokenCounts | None:
    return normalised(answer.usage)


def _failure_outcome(exc: BaseException) -> str:
    """A failed call's usage `outcome`: the error's kind, `all_targets_failed`, or
    `abandoned` when the caller went away."""
    if isinstance(exc, AllTargetsFailed):
        return "all_targets_failed"
    if isinstance(exc, asyncio.CancelledError):
        return ABANDONED
    kind = getattr(exc, "kind", None)
    return str(kind) if kind is not None else type(exc).__name__


class _RateLimited:
    """An rpm bucket refused the attempt (`ResilientClient._admit`)."""


_RATE_LIMITED = _RateLimited()


class _StepFailed(Exception):
    """A pass over a step's members ended with nothing left worth retrying."""


def _named(exc: ProviderError, request: ChatRequest | EmbeddingRequest) -> ProviderError:
    """A failure before the request left, named at the field that could not be sent.

    The request is walked only here, on that failure, never on the way out."""
    problem = None if exc.sent else request_problem(request)
    if problem is None:
        return exc
    return ProviderError(
        f"{problem} (request not sent)",
        kind=exc.kind,
        status_code=exc.status_code,
        code=exc.code,
        tenant=exc.tenant,
        provider=exc.provider,
        attempt=exc.attempt,
        sent=False,
    )


def _response_attributes(value: object) -> dict[str, object]:
    if isinstance(value, ChatResponse):
        return {
            "gen_ai.response.model": value.model,
            "gen_ai.usage.input_tokens": value.usage.input_tokens,
            "gen_ai.usage.output_tokens": value.usage.output_tokens,
        }
    if isinstance(value, EmbeddingResponse):
        return {"gen_ai.response.model": value.model}
    return {}


_ANSWERED_AT_ONCE: dict[int, TargetOutcome] = {}
"""The usual outcome, a frozen value, built once per target rather than per call (a frozen
dataclass pays a call per field). By the target's identity, checked on the way out:
hashing a `Target` is a Python call, and routes keep their targets. Bounded: targets come
from callers."""


def _answered_at_once(target: Target) -> TargetOutcome:
    """`TargetOutcome(target, SUCCEEDED, attempts=1)`."""
    found = _ANSWERED_AT_ONCE.get(id(target))
    if found is None or found.target is not target:
        found = TargetOutcome(target, OutcomeStatus.SUCCEEDED, attempts=1)
        if len(_ANSWERED_AT_ONCE) < 10_000:
            _ANSWERED_AT_ONCE[id(target)] = found
    return found


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
