"""A simulated fleet: many tenants, two providers, one outage, in virtual time (no network).

The real `ResilientClient` (breakers, tenacity retries, budget, fallback) runs on an
injected clock and sleep. `VirtualTime` moves the clock only when every simulated task
is waiting on it, so minutes of traffic from 1,000 tenants run in seconds and every run
with the same seed gives the same numbers.

Traffic: each tenant sends Poisson requests at `rate_per_tenant`; the route is
`primary:m` then `fallback:m`. The primary answers in `latency_s`; during the outage it
fails every call with a 503 after `fail_latency_s`, and outside it a share `error_rate`
of its calls (seeded) with a 500, as quickly. The fallback always answers.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import random
from collections import Counter
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any

from resilience import (
    AllTargetsFailed,
    BreakerPolicy,
    BreakerRegistry,
    ChatRequest,
    ChatResponse,
    ErrorKind,
    Message,
    ProviderError,
    ResilientClient,
    RetryPolicy,
    Route,
)
from resilience.breaker.events import BreakerState, BreakerTransition
from resilience.models import EmbeddingRequest, EmbeddingResponse, Usage
from resilience.types import PROVIDER_WIDE

BUCKET_S = 1.0


class VirtualTime:
    """A clock and a sleep for the client; time jumps to the next wake-up once all are idle."""

    def __init__(self) -> None:
        self.now = 0.0
        self._queue: list[tuple[float, int, Callable[[], None]]] = []
        self._order = itertools.count()
        self._alive = 0
        self._waiting = 0
        self._idle = asyncio.Event()
        """Set while every live task waits on this clock: only then may time move."""
        self._idle.set()

    def clock(self) -> float:
        return self.now

    def at(self, when: float, action: Callable[[], None]) -> None:
        heapq.heappush(self._queue, (when, next(self._order), action))

    async def sleep(self, seconds: float) -> None:
        woken = asyncio.get_running_loop().create_future()

        def wake() -> None:
            self._waiting -= 1  # counted as busy from now on, before the task resumes
            self._update()
            woken.set_result(None)

        self.at(self.now + max(seconds, 0.0), wake)
        self._waiting += 1
        self._update()
        await woken

    def spawn(self, work: Coroutine[Any, Any, None]) -> None:
        self._alive += 1
        self._update()

        async def tracked() -> None:
            try:
                await work
            finally:
                self._alive -= 1
                self._update()

        asyncio.get_running_loop().create_task(tracked())

    def _update(self) -> None:
        if self._waiting >= self._alive:
            self._idle.set()
        else:
            self._idle.clear()

    async def run(self, until: float) -> None:
        while True:
            await self._idle.wait()
            if not self._queue or self._queue[0][0] > until:
                return
            when, _, action = heapq.heappop(self._queue)
            self.now = when
            action()


@dataclass(frozen=True, kw_only=True)
class Scenario:
    tenants: int = 1_000
    rate_per_tenant: float = 0.2
    """Requests per second per tenant (1,000 tenants: 200 requests per second in all)."""
    outage_start: float = 60.0
    outage_end: float = 120.0
    end: float = 240.0
    latency_s: float = 0.3
    fail_latency_s: float = 0.05
    provider_wide: bool = True
    budget: bool = True
    seed: int = 1
    error_rate: float = 0.0
    """Share of the primary's calls answered with a 500 while it is up (bad luck, not an
    outage: the provider-wide gate must not open for it)."""
    breaker: dict[str, Any] = field(default_factory=dict)
    """Overrides of the default `BreakerPolicy` (a user's tuning)."""
    retry: dict[str, Any] = field(default_factory=dict)
    """Overrides of the default `RetryPolicy`."""


@dataclass
class Record:
    """What happened, bucketed per second of virtual time."""

    calls: Counter[tuple[int, str]] = field(default_factory=Counter)
    """(second, "primary_ok" | "primary_failed" | "fallback") -> upstream calls."""
    requests: Counter[int] = field(default_factory=Counter)
    failed_requests: int = 0
    open_tenants: dict[int, int] = field(default_factory=dict)
    """second -> tenants whose own primary breaker is not closed."""
    gate_open: dict[int, bool] = field(default_factory=dict)
    latencies: list[float] = field(default_factory=list)
    gate_opens: int = 0
    """Times the provider-wide gate opened (any reason)."""

    def emit(self, event: BreakerTransition) -> None:
        """The registry's audit sink: counts the gate's openings."""
        if event.tenant_id == PROVIDER_WIDE and event.to_state is BreakerState.OPEN:
            self.gate_opens += 1

    def total(self, kind: str, start: float, end: float) -> int:
        return sum(n for (s, k), n in self.calls.items() if k == kind and start <= s < end)

    def requests_in(self, start: float, end: float) -> int:
        return sum(n for s, n in self.requests.items() if start <= s < end)


class SimProvider:
    """A provider with no network: answers, or fails with a 503 while it is down."""

    kind = "openai"
    location = "cloud"
    can_embed = False

    def __init__(self, name: str, time: VirtualTime, scenario: Scenario, record: Record) -> None:
        self.name = name
        self._time = time
        self._scenario = scenario
        self._record = record
        self._luck = random.Random(f"{scenario.seed}:{name}")
        """Which calls fail by bad luck (`Scenario.error_rate`): its own, so the traffic's
        random numbers stay the same whatever the rate."""
        self._response = ChatResponse(
            text="ok",
            content=({"type": "text", "text": "ok"},),
            finish_reason="stop",
            raw_finish_reason="stop",
            usage=Usage(input_tokens=1, output_tokens=1),
            provider=name,
            model="m",
        )

    def down(self) -> bool:
        s = self._scenario
        return self.name == "primary" and s.outage_start <= self._time.now < s.outage_end

    async def complete(
        self, request: ChatRequest, *, model: str, api_key: str | None = None
    ) -> ChatResponse:
        second = int(self._time.now // BUCKET_S)
        if self.down():
            self._record.calls[(second, "primary_failed")] += 1
            await self._time.sleep(self._scenario.fail_latency_s)
            raise ProviderError("503 overloaded", kind=ErrorKind.OVERLOADED, status_code=503)
        error_rate = self._scenario.error_rate
        if self.name == "primary" and error_rate and self._luck.random() < error_rate:
            self._record.calls[(second, "primary_failed")] += 1
            await self._time.sleep(self._scenario.fail_latency_s)
            raise ProviderError("500 internal error", kind=ErrorKind.SERVER_ERROR, status_code=500)
        label = "primary_ok" if self.name == "primary" else "fallback"
        self._record.calls[(second, label)] += 1
        await self._time.sleep(self._scenario.latency_s)
        return self._response

    def stream(self, request: ChatRequest, *, model: str, api_key: str | None = None) -> Any:
        raise NotImplementedError("the simulation sends no streams")

    async def embed(
        self, request: EmbeddingRequest, *, model: str, api_key: str | None = None
    ) -> EmbeddingResponse:
        raise NotImplementedError("the simulation sends no embeddings")

    async def aclose(self) -> None:
        return None


def build_client(time: VirtualTime, scenario: Scenario, record: Record) -> ResilientClient:
    """The client as users build it: default policies, but for provider-wide and budget."""
    breaker = {"provider_wide_min_tenants": 3, **scenario.breaker}
    if not scenario.provider_wide:
        breaker["provider_wide_min_tenants"] = 0
    policy = BreakerPolicy(**breaker)
    retry = dict(scenario.retry)
    if not scenario.budget:  # a budget that never runs out
        retry.update(budget_ratio=1_000.0, budget_min_retries=1_000_000)
    providers = {
        name: SimProvider(name, time, scenario, record) for name in ("primary", "fallback")
    }
    return ResilientClient(
        providers=providers,  # type: ignore[arg-type]  # structural: SimProvider is a Provider
        routes={"chat": Route.of("chat", "primary:m", "fallback:m")},
        registry=BreakerRegistry(
            policy=policy, sinks=[record], clock=time.clock, wall_clock=time.clock
        ),
        retry=RetryPolicy(**retry),
        clock=time.clock,
        sleep=time.sleep,
        rng=random.Random(scenario.seed),
    )


async def simulate(scenario: Scenario) -> Record:
    """Run the scenario from t=0 to `scenario.end`; returns what happened."""
    time = VirtualTime()
    record = Record()
    client = build_client(time, scenario, record)
    request = ChatRequest(messages=(Message(role="user", content="hi"),), max_tokens=8)
    rng = random.Random(scenario.seed)
    names = [f"tenant-{i:04d}" for i in range(scenario.tenants)]

    async def send(tenant: str) -> None:
        started = time.now
        record.requests[int(started // BUCKET_S)] += 1
        try:
            await client.complete(request, route="chat", tenant=tenant)
        except (AllTargetsFailed, ProviderError):
            record.failed_requests += 1
        record.latencies.append(time.now - started)

    def arrive(tenant: str, when: float) -> None:
        time.spawn(send(tenant))
        following = when + rng.expovariate(scenario.rate_per_tenant)
        if following < scenario.end:
            time.at(following, lambda: arrive(tenant, following))

    for name in names:
        first = rng.expovariate(scenario.rate_per_tenant)
        time.at(first, lambda name=name, first=first: arrive(name, first))  # type: ignore[misc]

    def observe(second: int) -> None:
        registry = client.registry
        record.open_tenants[second] = sum(
            1
            for name in names
            if (snap := registry.snapshot(name, "primary")) is not None
            and snap.state is not BreakerState.CLOSED
        )
        gate = registry.snapshot("*", "primary")
        record.gate_open[second] = gate is not None and gate.state is not BreakerState.CLOSED
        if second + 1 < scenario.end:
            time.at(second + 1.0, lambda: observe(second + 1))

    time.at(0.0, lambda: observe(0))
    await time.run(until=scenario.end)
    return record
