"""ResilientClient over the real SDKs and the chaos upstream: retries, fallback, breakers."""

from __future__ import annotations

import time

import pytest

from resilience.breaker.events import BreakerState
from resilience.chaos import Fault
from resilience.client.outcomes import OutcomeStatus
from resilience.client.resilient import TenantPolicy
from resilience.errors import AllTargetsFailed, ErrorKind, ProviderError, UnknownRouteError
from resilience.models import EmbeddingRequest
from resilience.retry import RetryPolicy
from tests.support.client import CHAT, Harness, route

TENANT = "acme"


# -- happy paths ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("target", "upstream"), [("primary:gpt-4.1", "primary"), ("fallback:claude-x", "fallback")]
)
async def test_complete_answers_from_each_provider_kind(
    harness: Harness, target: str, upstream: str
) -> None:
    client = await harness.client()
    result = await client.complete(CHAT, route=target, tenant=TENANT)
    assert result.value.text
    assert result.value.usage.output_tokens > 0
    assert (result.target.provider, result.attempts) == (upstream, 1)
    assert harness.chaos.hit_count(upstream=upstream) == 1


@pytest.mark.parametrize("target", ["primary:gpt-4.1", "fallback:claude-x"])
async def test_stream_answers_from_each_provider_kind(harness: Harness, target: str) -> None:
    client = await harness.client()
    async with await client.stream(CHAT, route=target, tenant=TENANT) as stream:
        chunks = [chunk async for chunk in stream]
    text = "".join(c.text_delta for c in chunks)
    assert len(chunks) >= 3 and text
    assert chunks[-1].finish_reason == "stop"
    assert client.registry.get(TENANT, target.split(":")[0]).calls_in_window() == 1


async def test_embeddings_use_only_targets_that_can_embed(harness: Harness) -> None:
    routes = {"emb": route("emb", "fallback:claude-x", "primary:text-embedding-3-small")}
    client = await harness.client(routes=routes)
    result = await client.embed(EmbeddingRequest(inputs=("a", "b")), route="emb", tenant=TENANT)
    assert len(result.value.vectors) == 2
    assert result.target.provider == "primary"
    assert [o.status for o in result.outcomes] == [
        OutcomeStatus.CANNOT_EMBED,
        OutcomeStatus.SUCCEEDED,
    ]
    assert harness.chaos.hit_count(upstream="fallback") == 0


async def test_tenant_comes_from_the_context_when_not_given(harness: Harness) -> None:
    from resilience.tenancy.context import tenant_scope

    client = await harness.client()
    with tenant_scope("ctx-tenant"):
        await client.complete(CHAT, route="chat")
    assert client.registry.store.peek("ctx-tenant", "primary") is not None


async def test_unknown_route_names_the_route(harness: Harness) -> None:
    client = await harness.client()
    with pytest.raises(UnknownRouteError, match="'nope'"):
        await client.complete(CHAT, route="nope", tenant=TENANT)


# -- retries and fallback -----------------------------------------------------------------


async def test_503_twice_then_success_on_the_same_target(harness: Harness) -> None:
    client = await harness.client()
    harness.chaos.add_fault(Fault(status=503), upstream="primary", times=2)
    result = await client.complete(CHAT, route="chat", tenant=TENANT)
    assert (result.target.provider, result.attempts) == ("primary", 3)
    assert harness.chaos.hit_count(upstream="primary") == 3
    assert harness.chaos.hit_count(upstream="fallback") == 0
    assert len(harness.clock.sleeps) == 2  # jittered backoff, recorded instead of slept


async def test_503_always_falls_back_and_returns_the_fallback_answer(harness: Harness) -> None:
    client = await harness.client()
    harness.chaos.add_fault(Fault(status=503), upstream="primary")
    result = await client.complete(CHAT, route="chat", tenant=TENANT)
    assert result.target.provider == "fallback"
    assert result.attempts == 4
    first = result.outcomes[0]
    assert (first.status, first.kind, first.attempts) == (
        OutcomeStatus.FAILED,
        ErrorKind.OVERLOADED,
        3,
    )
    assert harness.chaos.hit_count(upstream="primary") == 3


async def test_open_breaker_skips_the_target_with_zero_hits(harness: Harness) -> None:
    client = await harness.client()
    harness.chaos.add_fault(Fault(status=500), upstream="primary")
    await client.complete(CHAT, route="chat", tenant=TENANT)  # 3 failures
    await client.complete(CHAT, route="chat", tenant=TENANT)  # 2 more: 5 of 5 -> open
    assert client.registry.get(TENANT, "primary").state is BreakerState.OPEN
    hits = harness.chaos.hit_count(upstream="primary")
    result = await client.complete(CHAT, route="chat", tenant=TENANT)
    assert harness.chaos.hit_count(upstream="primary") == hits
    assert result.outcomes[0].status is OutcomeStatus.BREAKER_OPEN
    assert 25.0 < (result.outcomes[0].retry_after_s or 0) <= 30.0  # cooldown less backoff waited
    assert result.target.provider == "fallback"


async def test_bad_request_is_raised_with_one_hit_no_fallback_breaker_untouched(
    harness: Harness,
) -> None:
    client = await harness.client()
    harness.chaos.add_fault(Fault(status=400, message="messages: bad role"), upstream="primary")
    with pytest.raises(ProviderError) as info:
        await client.complete(CHAT, route="chat", tenant=TENANT)
    assert (info.value.kind, info.value.status_code) == (ErrorKind.BAD_REQUEST, 400)
    assert harness.chaos.hit_count(upstream="primary") == 1
    assert harness.chaos.hit_count(upstream="fallback") == 0
    breaker = client.registry.get(TENANT, "primary")
    assert breaker.failures_in_window() == 0 and breaker.calls_in_window() == 0


@pytest.mark.parametrize(
    ("first", "second", "fault"),
    [
        (
            "primary:gpt-4.1",
            "fallback:claude-x",
            Fault(status=400, error_code="context_length_exceeded"),
        ),
        (
            "fallback:claude-x",
            "primary:gpt-4.1",
            Fault(
                status=400,
                error_type="invalid_request_error",
                message="prompt is too long: 210000 tokens > 200000 maximum",
            ),
        ),
    ],
)
async def test_context_length_falls_back_without_retry(
    harness: Harness, first: str, second: str, fault: Fault
) -> None:
    client = await harness.client(routes={"long": route("long", first, second)})
    upstream = first.split(":")[0]
    harness.chaos.add_fault(fault, upstream=upstream)
    result = await client.complete(CHAT, route="long", tenant=TENANT)
    assert result.target == route("x", second).targets[0]
    assert result.outcomes[0].kind is ErrorKind.CONTEXT_LENGTH
    assert harness.chaos.hit_count(upstream=upstream) == 1
    assert client.registry.get(TENANT, upstream).failures_in_window() == 0


async def test_401_on_a_tenants_own_key_opens_only_that_tenants_breaker(harness: Harness) -> None:
    tenants = {"a": TenantPolicy(api_keys={"primary": "key-of-a"})}
    client = await harness.client(tenants=tenants)
    harness.chaos.add_fault(Fault(status=401), upstream="primary", api_key="key-of-a")
    for _ in range(5):
        result = await client.complete(CHAT, route="chat", tenant="a")
        assert result.target.provider == "fallback"
    assert harness.chaos.hit_count(upstream="primary", api_key="key-of-a") == 5  # auth: no retry
    assert client.registry.get("a", "primary").state is BreakerState.OPEN
    result_b = await client.complete(CHAT, route="chat", tenant="b")
    assert result_b.target.provider == "primary"
    assert client.registry.get("b", "primary").state is BreakerState.CLOSED
    assert harness.chaos.hit_count(upstream="primary", api_key="shared-key") == 1
    assert all(e.tenant_id == "a" for e in harness.sink.events)


# -- rate limits ----------------------------------------------------------------------------


async def test_429_with_a_fallback_is_answered_by_the_fallback_without_waiting(
    harness: Harness,
) -> None:
    client = await harness.client()
    harness.chaos.add_fault(Fault(status=429, retry_after="5"), upstream="primary")
    result = await client.complete(CHAT, route="chat", tenant=TENANT)
    assert result.target.provider == "fallback"
    assert harness.clock.sleeps == []
    assert harness.chaos.hit_count(upstream="primary") == 1
    breaker = client.registry.get(TENANT, "primary")
    assert breaker.state is BreakerState.OPEN
    assert breaker.retry_after() == pytest.approx(5.0)


async def test_429_on_a_single_target_route_waits_retry_after_once_then_succeeds(
    harness: Harness,
) -> None:
    client = await harness.client()
    harness.chaos.add_fault(Fault(status=429, retry_after="5"), upstream="primary", times=1)
    result = await client.complete(CHAT, route="primary:gpt-4.1", tenant=TENANT)
    assert result.target.provider == "primary"
    assert harness.clock.sleeps == [5.0]
    assert result.attempts == 2
    assert client.registry.get(TENANT, "primary").state is BreakerState.CLOSED
    reasons = [e.reason for e in harness.sink.events]
    assert reasons == ["retry_after", "cooldown_elapsed", "probe_succeeded"]


async def test_429_retry_after_too_long_is_not_waited(harness: Harness) -> None:
    client = await harness.client()
    harness.chaos.add_fault(Fault(status=429, retry_after="120"), upstream="primary")
    with pytest.raises(AllTargetsFailed) as info:
        await client.complete(CHAT, route="primary:gpt-4.1", tenant=TENANT)
    assert harness.clock.sleeps == []
    assert info.value.retry_after_s == pytest.approx(120.0)


async def test_all_targets_failed_carries_outcomes_and_the_soonest_retry(harness: Harness) -> None:
    client = await harness.client()
    harness.chaos.add_fault(Fault(status=503), upstream="primary")
    harness.chaos.add_fault(Fault(status=429, retry_after="60"), upstream="fallback")
    with pytest.raises(AllTargetsFailed) as info:
        await client.complete(CHAT, route="chat", tenant=TENANT)
    statuses = [(o.target.provider, o.status, o.kind) for o in info.value.outcomes]
    assert statuses == [
        ("primary", OutcomeStatus.FAILED, ErrorKind.OVERLOADED),
        ("fallback", OutcomeStatus.FAILED, ErrorKind.RATE_LIMITED),
    ]
    assert info.value.retry_after_s == pytest.approx(60.0)


# -- tenancy limits -------------------------------------------------------------------------


async def test_local_only_tenant_never_reaches_a_cloud_provider(harness: Harness) -> None:
    routes = {"chat": route("chat", "primary:gpt-4.1", "fallback:claude-x", "local:llama3.1")}
    client = await harness.client(routes=routes, tenants={"onprem": TenantPolicy(local_only=True)})
    result = await client.complete(CHAT, route="chat", tenant="onprem")
    assert result.target.provider == "local"
    harness.chaos.add_fault(Fault(status=500), upstream="local")
    with pytest.raises(AllTargetsFailed) as info:
        await client.complete(CHAT, route="chat", tenant="onprem")
    assert [o.status for o in info.value.outcomes] == [
        OutcomeStatus.LOCAL_ONLY,
        OutcomeStatus.LOCAL_ONLY,
        OutcomeStatus.FAILED,
    ]
    assert harness.chaos.hit_count(upstream="primary") == 0
    assert harness.chaos.hit_count(upstream="fallback") == 0


async def test_tenant_route_override_wins(harness: Harness) -> None:
    tenants = {"vip": TenantPolicy(routes={"chat": route("chat", "fallback:claude-x")})}
    client = await harness.client(tenants=tenants)
    assert (await client.complete(CHAT, route="chat", tenant="vip")).target.provider == "fallback"
    assert (await client.complete(CHAT, route="chat", tenant="std")).target.provider == "primary"


# -- deadline ------------------------------------------------------------------------------


async def test_a_hanging_first_target_ends_within_the_deadline_and_falls_back(
    harness: Harness,
) -> None:
    retry = RetryPolicy(deadline_s=2.0, max_attempts=2, base_delay_s=0.01, max_delay_s=0.02)
    # over a real socket, so the SDK's own read timeout (0.4 s) is what ends each attempt
    client = await harness.client(served=True, retry=retry, timeout_s=0.4, real_time=True)
    harness.chaos.add_fault(Fault(hang=True), upstream="primary")
    started = time.monotonic()
    result = await client.complete(CHAT, route="chat", tenant=TENANT)
    elapsed = time.monotonic() - started
    assert result.target.provider == "fallback"
    assert result.outcomes[0].kind is ErrorKind.TIMEOUT
    assert elapsed < 2.0 + 0.5  # loosely: within the deadline, not the 5 s SDK default


async def test_the_deadline_stops_the_whole_walk(harness: Harness) -> None:
    retry = RetryPolicy(deadline_s=0.5, max_attempts=1)
    client = await harness.client(retry=retry, timeout_s=5.0, real_time=True)
    harness.chaos.add_fault(Fault(hang=True))
    started = time.monotonic()
    with pytest.raises(AllTargetsFailed) as info:
        await client.complete(CHAT, route="chat", tenant=TENANT)
    assert time.monotonic() - started < 0.5 + 0.5
    assert [o.status for o in info.value.outcomes] == [
        OutcomeStatus.DEADLINE,
        OutcomeStatus.DEADLINE,
    ]
    # a call cut by our own deadline says nothing about the provider
    assert client.registry.get(TENANT, "primary").failures_in_window() == 0
