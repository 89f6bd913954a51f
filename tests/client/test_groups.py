"""Groups of equivalent targets, through the real SDKs to the chaos upstream.

Each member is its own upstream of the chaos server (`m0`, `m1`, ...), so the upstream's
hit counts say exactly which member took each call. Latency is injected by the chaos
upstream through the same fake clock the client measures with, so `least_latency`
sees exact 10 ms / 100 ms figures and the tests take no real time.
"""

from __future__ import annotations

import asyncio
import math
import random
from collections import Counter
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import AsyncExitStack

import httpx2
import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from resilience.breaker.events import BreakerState
from resilience.breaker.policy import BreakerPolicy
from resilience.breaker.registry import BreakerRegistry
from resilience.chaos import ChaosUpstream, Fault
from resilience.client.outcomes import OutcomeStatus
from resilience.client.resilient import ResilientClient, TenantPolicy
from resilience.errors import ErrorKind
from resilience.providers.anthropic import AnthropicProvider
from resilience.providers.base import Provider
from resilience.providers.openai import OpenAIProvider
from resilience.providers.settings import ProviderSettings
from resilience.retry import RetryPolicy
from resilience.routing.routes import Group, Route, Strategy
from resilience.routing.strategies import EXPLORE_EVERY
from resilience.types import Sleep
from tests.support.client import CHAT
from tests.support.clock import FakeClock

TENANT = "acme"


class Rig:
    """A chaos upstream with `n` OpenAI-compatible members and one Anthropic fallback."""

    def __init__(self, stack: AsyncExitStack) -> None:
        self.clock = FakeClock()
        self.chaos = ChaosUpstream(clock=self.clock, sleep=self.clock.sleep)
        self._stack = stack

    async def client(
        self,
        group: Group,
        *,
        fallback: bool = False,
        tenants: Mapping[str, TenantPolicy] | None = None,
        rpm: Mapping[str, float] | None = None,
        breaker: BreakerPolicy | None = None,
        sleep: Sleep | None = None,
        tracer_provider: TracerProvider | None = None,
    ) -> ResilientClient:
        http = httpx2.AsyncClient(transport=self.chaos.transport())
        self._stack.push_async_callback(http.aclose)
        providers: dict[str, Provider] = {
            m.provider: OpenAIProvider(
                m.provider,
                ProviderSettings(
                    kind="openai", api_key="shared", base_url=f"http://chaos/{m.provider}/v1"
                ),
                http_client=http,
            )
            for m in group.members
        }
        providers["fallback"] = AnthropicProvider(
            "fallback",
            ProviderSettings(kind="anthropic", api_key="shared", base_url="http://chaos/fallback"),
            http_client=http,
        )
        steps: tuple[Group | str, ...] = (group, "fallback:claude-x") if fallback else (group,)
        registry = BreakerRegistry(
            policy=breaker or BreakerPolicy(), clock=self.clock, wall_clock=self.clock.wall
        )
        return ResilientClient(
            providers=providers,
            routes={"chat": Route.of("chat", *steps)},
            tenants=tenants,
            registry=registry,
            rpm=rpm,
            tracer_provider=tracer_provider,
            clock=self.clock,
            sleep=sleep or self.clock.sleep,
            rng=random.Random(1234),
        )

    def hits(self, n: int) -> list[int]:
        return [self.chaos.hit_count(upstream=f"m{i}") for i in range(n)]


@pytest.fixture
async def rig() -> AsyncIterator[Rig]:
    async with AsyncExitStack() as stack:
        yield Rig(stack)


def group(n: int, strategy: Strategy, weights: Sequence[float] | None = None) -> Group:
    return Group.of(*(f"m{i}:gpt-4.1" for i in range(n)), strategy=strategy, weights=weights)


async def calls(client: ResilientClient, n: int, tenant: str = TENANT) -> list[str]:
    """`n` sequential calls; the member that answered each."""
    answered = []
    for _ in range(n):
        result = await client.complete(CHAT, route="chat", tenant=tenant)
        answered.append(result.target.provider)
    return answered


# -- strategies -----------------------------------------------------------------------------


async def test_round_robin_is_exact_over_1000_calls(rig: Rig) -> None:
    client = await rig.client(group(4, Strategy.ROUND_ROBIN))
    answered = await calls(client, 1000)
    assert rig.hits(4) == [250, 250, 250, 250]
    assert answered[:8] == ["m1", "m2", "m3", "m0", "m1", "m2", "m3", "m0"]


async def test_priority_sends_everything_to_the_first_healthy_member(rig: Rig) -> None:
    client = await rig.client(group(3, Strategy.PRIORITY))
    await calls(client, 100)
    assert rig.hits(3) == [100, 0, 0]


async def test_weighted_follows_the_weights_over_1000_calls(rig: Rig) -> None:
    weights = [1.0, 2.0, 5.0]
    client = await rig.client(group(3, Strategy.WEIGHTED, weights))
    await calls(client, 1000)
    # Each count is binomial(1000, w / 8). Allowing 4.5 standard deviations makes a false
    # failure less likely than 1 in 100,000 whatever the seed, while a strategy that
    # ignored the weights (333 each) would miss m0 and m2 by more than 13 deviations.
    for hits, weight in zip(rig.hits(3), weights, strict=True):
        p = weight / sum(weights)
        sd = math.sqrt(1000 * p * (1 - p))
        assert abs(hits - 1000 * p) <= 4.5 * sd, (hits, 1000 * p)


async def test_least_latency_moves_traffic_to_a_10x_faster_member_and_back(rig: Rig) -> None:
    client = await rig.client(group(2, Strategy.LEAST_LATENCY))
    slow = rig.chaos.add_fault(Fault(latency_s=0.100), upstream="m0")
    fast = rig.chaos.add_fault(Fault(latency_s=0.010), upstream="m1")
    answered = await calls(client, 1000)
    share = Counter(answered)["m1"] / 1000
    assert share >= 0.90, share
    # m0 recovers and m1 degrades: exploration measures m0 again, and traffic returns to it
    # within a bounded number of calls (two exploration rounds).
    rig.chaos.remove_fault(slow)
    rig.chaos.remove_fault(fast)
    rig.chaos.add_fault(Fault(latency_s=0.010), upstream="m0")
    rig.chaos.add_fault(Fault(latency_s=0.100), upstream="m1")
    bound = 2 * EXPLORE_EVERY
    after = await calls(client, bound + 200)
    assert "m0" in after[:bound]
    settled = Counter(after[bound:])["m0"] / 200
    assert settled >= 0.90, settled


async def test_least_busy_spreads_100_concurrent_calls(rig: Rig) -> None:
    # Real (short) latency, so that the 100 calls overlap.
    rig.chaos = ChaosUpstream(clock=rig.clock, sleep=asyncio.sleep)
    rig.chaos.add_fault(Fault(latency_s=0.02), upstream=None)
    client = await rig.client(group(4, Strategy.LEAST_BUSY), sleep=asyncio.sleep)
    await asyncio.gather(*(client.complete(CHAT, route="chat", tenant=TENANT) for _ in range(100)))
    hits = rig.hits(4)
    assert sum(hits) == 100
    assert max(hits) - min(hits) <= 2, hits


async def test_least_busy_avoids_a_member_that_holds_calls_longer(rig: Rig) -> None:
    rig.chaos = ChaosUpstream(clock=rig.clock, sleep=asyncio.sleep)
    rig.chaos.add_fault(Fault(latency_s=0.2), upstream="m0")
    rig.chaos.add_fault(Fault(latency_s=0.005), upstream=None)
    client = await rig.client(group(2, Strategy.LEAST_BUSY), sleep=asyncio.sleep)

    async def caller() -> None:
        for _ in range(10):
            await client.complete(CHAT, route="chat", tenant=TENANT)

    await asyncio.gather(*(caller() for _ in range(10)))  # 10 callers, 100 calls
    slow, fast = rig.hits(2)
    assert slow + fast == 100
    assert fast >= 4 * slow, (slow, fast)


async def test_hash_is_stable_per_tenant_and_spreads_tenants(rig: Rig) -> None:
    client = await rig.client(group(4, Strategy.HASH))
    first_member: Counter[str] = Counter()
    for t in range(60):
        answered = await calls(client, 5, tenant=f"tenant-{t}")
        assert len(set(answered)) == 1, answered
        first_member[answered[0]] += 1
    assert sorted(first_member) == ["m0", "m1", "m2", "m3"]
    assert min(first_member.values()) >= 5, first_member


async def test_hash_moves_only_the_tenants_of_a_removed_member(rig: Rig) -> None:
    client = await rig.client(group(4, Strategy.HASH))
    before = {f"t{i}": (await calls(client, 1, tenant=f"t{i}"))[0] for i in range(80)}
    await client.registry.aforce_open("*", "m2", actor="test")  # m2 is gone for everyone
    after = {t: (await calls(client, 1, tenant=t))[0] for t in before}
    moved = {t for t in before if before[t] != after[t]}
    assert moved == {t for t, m in before.items() if m == "m2"}
    assert moved  # the test means something only if some tenant had m2 first


# -- breakers and failures --------------------------------------------------------------------


async def test_a_member_whose_breaker_is_open_receives_zero_calls(rig: Rig) -> None:
    client = await rig.client(group(3, Strategy.ROUND_ROBIN))
    await client.registry.aforce_open(TENANT, "m1", actor="test")
    await calls(client, 300)
    assert rig.hits(3) == [150, 0, 150]


async def test_a_failing_member_trips_then_gets_nothing_and_the_caller_sees_no_error(
    rig: Rig,
) -> None:
    rig.chaos.add_fault(Fault(status=503), upstream="m0")
    client = await rig.client(group(2, Strategy.ROUND_ROBIN))
    answered = await calls(client, 200)
    assert set(answered) == {"m1"}
    assert client.registry.get(TENANT, "m0").state is BreakerState.OPEN
    tripped_after = rig.chaos.hit_count(upstream="m0")
    assert tripped_after == BreakerPolicy().failure_threshold  # then not one call more
    assert rig.clock.sleeps == []  # each failure went straight to the other member


async def test_a_retry_goes_to_another_member_before_the_same_one(rig: Rig) -> None:
    client = await rig.client(group(2, Strategy.PRIORITY))
    rig.chaos.add_fault(Fault(status=503), upstream="m0", times=1)
    result = await client.complete(CHAT, route="chat", tenant=TENANT)
    assert result.target.provider == "m1"
    assert rig.clock.sleeps == []
    assert [(str(o.target), o.status) for o in result.outcomes] == [
        ("m0:gpt-4.1", OutcomeStatus.FAILED),
        ("m1:gpt-4.1", OutcomeStatus.SUCCEEDED),
    ]
    # Both members fail once: the whole pass is retried after one backoff.
    rig.chaos.add_fault(Fault(status=503), upstream="m0", times=1)
    rig.chaos.add_fault(Fault(status=503), upstream="m1", times=1)
    result = await client.complete(CHAT, route="chat", tenant=TENANT)
    assert result.target.provider == "m0"
    assert len(rig.clock.sleeps) == 1
    assert result.attempts == 3


async def test_the_route_moves_on_only_when_the_whole_group_failed(rig: Rig) -> None:
    rig.chaos.add_fault(Fault(status=503), upstream="m0")
    rig.chaos.add_fault(Fault(status=503), upstream="m1")
    retry = RetryPolicy(max_attempts=2)
    client = await rig.client(group(2, Strategy.ROUND_ROBIN), fallback=True)
    client.retry = retry
    result = await client.complete(CHAT, route="chat", tenant=TENANT)
    assert result.target.provider == "fallback"
    statuses = [(o.target.provider, o.status, o.attempts) for o in result.outcomes]
    assert statuses == [
        ("m1", OutcomeStatus.FAILED, 2),
        ("m0", OutcomeStatus.FAILED, 2),
        ("fallback", OutcomeStatus.SUCCEEDED, 1),
    ]


async def test_a_caller_error_stops_the_group_at_once(rig: Rig) -> None:
    rig.chaos.add_fault(Fault(status=400, message="messages: bad"), upstream="m0")
    client = await rig.client(group(2, Strategy.PRIORITY), fallback=True)
    with pytest.raises(Exception) as raised:
        await client.complete(CHAT, route="chat", tenant=TENANT)
    assert getattr(raised.value, "kind", None) is ErrorKind.BAD_REQUEST
    assert rig.hits(2) == [1, 0]
    assert rig.chaos.hit_count(upstream="fallback") == 0


async def test_one_tenants_failing_key_does_not_move_another_tenants_traffic(rig: Rig) -> None:
    tenants = {
        "a": TenantPolicy(api_keys={"m0": "key-of-a"}),
        "b": TenantPolicy(api_keys={"m0": "key-of-b"}),
    }
    rig.chaos.add_fault(Fault(status=401), upstream="m0", api_key="key-of-a")
    client = await rig.client(group(2, Strategy.PRIORITY), tenants=tenants)
    for _ in range(50):
        assert (await calls(client, 1, tenant="a")) == ["m1"]
        assert (await calls(client, 1, tenant="b")) == ["m0"]
    assert client.registry.get("a", "m0").state is BreakerState.OPEN
    assert client.registry.get("b", "m0").state is BreakerState.CLOSED
    assert rig.chaos.hit_count(upstream="m0", api_key="key-of-b") == 50


# -- request-rate limits ------------------------------------------------------------------------


async def test_rpm_keeps_a_burst_of_100_within_the_bucket_and_no_429_reaches_anyone(
    rig: Rig,
) -> None:
    # m0 really does allow 60 requests a minute (plus the one the bucket refills in a
    # second); beyond that the upstream answers 429. m1 has no limit.
    rig.chaos.add_fault(None, upstream="m0", times=61)
    rig.chaos.add_fault(Fault(status=429, retry_after="30"), upstream="m0")
    client = await rig.client(group(2, Strategy.PRIORITY), rpm={"m0": 60})
    answered = []
    for _ in range(100):  # 100 calls in one second
        answered.append((await client.complete(CHAT, route="chat", tenant=TENANT)).target.provider)
        rig.clock.advance(0.01)
    to_m0, to_m1 = rig.hits(2)
    assert to_m0 <= 61 and to_m0 + to_m1 == 100
    assert to_m0 >= 60
    assert all(hit.fault is None for hit in rig.chaos.hits)  # not one 429 was served
    assert client.rate_limit_skips == {"m0": to_m1}
    skipped = await client.complete(CHAT, route="chat", tenant=TENANT)
    assert skipped.outcomes[0].status is OutcomeStatus.RPM_LIMITED
    assert skipped.outcomes[0].retry_after_s is not None and skipped.outcomes[0].retry_after_s > 0


async def test_rpm_bucket_refills_with_time(rig: Rig) -> None:
    client = await rig.client(group(2, Strategy.PRIORITY), rpm={"m0": 6})
    assert await calls(client, 8) == ["m0"] * 6 + ["m1"] * 2
    rig.clock.advance(10.0)  # 6 per minute: one token per 10 s
    assert await calls(client, 2) == ["m0", "m1"]


async def test_a_tenants_own_rpm_limits_only_that_tenant(rig: Rig) -> None:
    tenants = {"small": TenantPolicy(rpm={"m0": 5})}
    client = await rig.client(group(2, Strategy.PRIORITY), tenants=tenants)
    assert Counter(await calls(client, 10, tenant="small")) == {"m0": 5, "m1": 5}
    assert Counter(await calls(client, 10, tenant="big")) == {"m0": 10}


async def test_all_members_rate_limited_fails_with_the_wait_until_a_token(rig: Rig) -> None:
    from resilience.errors import AllTargetsFailed

    client = await rig.client(group(2, Strategy.PRIORITY), rpm={"m0": 1, "m1": 1})
    await calls(client, 2)
    with pytest.raises(AllTargetsFailed) as raised:
        await client.complete(CHAT, route="chat", tenant=TENANT)
    assert [o.status for o in raised.value.outcomes] == [OutcomeStatus.RPM_LIMITED] * 2
    assert raised.value.retry_after_s == pytest.approx(60.0)
    assert sum(rig.hits(2)) == 2


# -- health and tracing -----------------------------------------------------------------------


async def test_health_reports_latency_errors_and_nothing_in_flight_after(rig: Rig) -> None:
    rig.chaos.add_fault(Fault(latency_s=0.050), upstream="m0")
    rig.chaos.add_fault(Fault(status=503), upstream="m1", times=3)
    rig.chaos.add_fault(Fault(latency_s=0.010), upstream="m1")
    client = await rig.client(group(2, Strategy.ROUND_ROBIN))
    await calls(client, 20)
    figures = {s.provider: s for s in client.health.snapshot()}
    assert figures["m0"].p50_ms == pytest.approx(50.0)
    assert figures["m0"].error_rate == 0.0
    assert figures["m1"].errors == 3
    assert figures["m1"].error_rate == pytest.approx(3 / figures["m1"].calls)
    assert figures["m1"].p99_ms == pytest.approx(10.0)
    assert all(s.in_flight == 0 for s in figures.values())


async def test_spans_carry_tenant_provider_model_attempt_error_kind_and_breaker_state(
    rig: Rig,
) -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    rig.chaos.add_fault(Fault(status=503), upstream="m0", times=1)
    client = await rig.client(group(2, Strategy.PRIORITY), tracer_provider=provider)
    await client.complete(CHAT, route="chat", tenant=TENANT)
    spans = {s.name: s for s in exporter.get_finished_spans()}
    assert set(spans) == {"resilience chat chat", "chat gpt-4.1"} or len(spans) == 2
    finished = exporter.get_finished_spans()
    whole = [s for s in finished if s.name == "resilience chat chat"]
    attempts = [s for s in finished if s.name == "chat gpt-4.1"]
    assert len(whole) == 1 and len(attempts) == 2
    assert whole[0].attributes is not None
    assert whole[0].attributes["resilience.tenant"] == TENANT
    assert whole[0].attributes["resilience.target"] == "m1:gpt-4.1"
    assert whole[0].attributes["resilience.attempts"] == 2
    failed, answered = (dict(s.attributes or {}) for s in attempts)
    assert failed["gen_ai.provider.name"] == "openai"
    assert failed["gen_ai.request.model"] == "gpt-4.1"
    assert failed["resilience.provider"] == "m0"
    assert failed["resilience.tenant"] == TENANT
    assert failed["resilience.attempt"] == 1
    assert failed["resilience.breaker.state"] == "closed"
    assert failed["error.type"] == "overloaded"
    assert answered["resilience.provider"] == "m1"
    assert "error.type" not in answered
    assert answered["gen_ai.usage.output_tokens"] > 0  # type: ignore[operator]
    assert all(
        s.parent is not None and s.parent.span_id == whole[0].context.span_id for s in attempts
    )


async def test_without_a_tracer_provider_nothing_is_traced(rig: Rig) -> None:
    client = await rig.client(group(2, Strategy.PRIORITY))
    assert client.tracing.tracer() is None
    await calls(client, 3)
