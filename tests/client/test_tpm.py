"""tpm through the client: a call is admitted on its estimate, the bucket is settled with
what the provider reported when the attempt ends; one tenant's burst of large prompts is
cut at its own bucket while the other tenants on the same key go on."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack

import httpx2
import pytest

from resilience.breaker.registry import BreakerRegistry
from resilience.chaos import ChaosUpstream, Fault
from resilience.client.outcomes import OutcomeStatus
from resilience.client.resilient import ResilientClient, TenantPolicy
from resilience.errors import AllTargetsFailed
from resilience.models import ChatRequest, Message
from resilience.retry import RetryPolicy
from resilience.types import PROVIDER_WIDE
from resilience.usage.estimate import estimate_chat, estimate_prompt
from tests.support.client import drain, providers_for, route
from tests.support.clock import FakeClock

WORDS = 1000
BIG = ChatRequest(messages=(Message(role="user", content="abc " * WORDS),))
"""4,000 characters: an estimate of 1,000 tokens; the chaos upstream counts 1,000 words."""
SMALL = ChatRequest(messages=(Message(role="user", content="hello"),), max_tokens=16)


class Setup:
    def __init__(self, client: ResilientClient, chaos: ChaosUpstream, clock: FakeClock) -> None:
        self.client, self.chaos, self.clock = client, chaos, clock

    def held(self, key: tuple[str, str], limit: float, n: float) -> float:
        """What `key`'s bucket holds now, from the wait for `n` (which must be above it)."""
        wait = self.client.registry.store.tpm_wait_s(key, n)
        assert wait > 0
        return n - wait * limit / 60


@pytest.fixture
async def setup() -> AsyncIterator[Setup]:
    async with AsyncExitStack() as stack:
        yield await make(stack)


async def make(stack: AsyncExitStack, *, own: float = 2500, shared: float = 0) -> Setup:
    chaos = ChaosUpstream()
    clock = FakeClock()
    http = httpx2.AsyncClient(transport=chaos.transport())
    stack.push_async_callback(http.aclose)
    client = ResilientClient(
        providers=providers_for("http://chaos", http, 5.0),
        routes={
            "openai": route("openai", "primary:gpt-4.1"),
            "both": route("both", "primary:gpt-4.1", "fallback:claude-x"),
        },
        tenants={"big": TenantPolicy(tpm={"primary": own})},
        tpm={"primary": shared},
        registry=BreakerRegistry(clock=clock, wall_clock=clock.wall),
        retry=RetryPolicy(max_attempts=1),
        clock=clock,
        sleep=clock.sleep,
    )
    stack.push_async_callback(client.aclose)
    return Setup(client, chaos, clock)


async def test_a_burst_of_large_prompts_is_cut_at_the_tenants_bucket(setup: Setup) -> None:
    client, chaos = setup.client, setup.chaos
    assert estimate_chat(BIG) == 1000

    async def big() -> bool:
        try:
            await client.complete(BIG, route="openai", tenant="big")
        except AllTargetsFailed as exc:
            (outcome,) = exc.outcomes
            assert (outcome.status, outcome.message) == (OutcomeStatus.TPM_LIMITED, "tenant_limit")
            assert outcome.retry_after_s is not None and outcome.retry_after_s > 0
            return False
        return True

    async def small(tenant: str) -> None:
        result = await client.complete(SMALL, route="openai", tenant=tenant)
        assert result.value.text

    bigs = asyncio.gather(*(big() for _ in range(50)))
    smalls = asyncio.gather(*(small(f"t{i % 5}") for i in range(100)))
    results, _ = await asyncio.gather(bigs, smalls)
    assert sum(results) == 2  # 2,500 a minute: two calls of 1,000
    assert chaos.hit_count(upstream="primary") == 2 + 100  # the rest never called
    assert client.token_limit_skips == {"primary": 48}


async def test_the_bucket_is_charged_what_the_provider_reported(setup: Setup) -> None:
    client = setup.client
    result = await client.complete(BIG, route="openai", tenant="big")
    used = result.value.usage.input_tokens + result.value.usage.output_tokens
    assert result.value.usage.input_tokens == WORDS
    assert setup.held(("big", "primary"), 2500, 2500) == pytest.approx(2500 - used)


async def test_a_failed_attempt_gives_its_estimate_back(setup: Setup) -> None:
    setup.chaos.add_fault(Fault(status=503), times=1)
    with pytest.raises(AllTargetsFailed):
        await setup.client.complete(BIG, route="openai", tenant="big")
    # nothing was taken for good: the bucket is full
    assert setup.client.registry.store.tpm_wait_s(("big", "primary"), 2500) == 0.0


async def test_a_fallback_is_charged_at_the_target_that_answered(setup: Setup) -> None:
    """`fallback` has no limit: the failed primary attempt is refunded, nothing else held."""
    setup.chaos.add_fault(Fault(status=503), upstream="primary")
    result = await setup.client.complete(BIG, route="both", tenant="big")
    assert result.target.provider == "fallback"
    assert setup.client.registry.store.tpm_wait_s(("big", "primary"), 2500) == 0.0


@pytest.mark.parametrize("native", [False, True])
async def test_a_stream_is_charged_when_it_ends(setup: Setup, native: bool) -> None:
    client = setup.client
    if native:
        body = {
            "model": "openai",
            "stream": True,
            "stream_options": {"include_usage": True},
            "messages": [{"role": "user", "content": "abc " * WORDS}],
        }
        frames = await client.stream_native("openai.chat", body, tenant="big")
        assert setup.held(("big", "primary"), 2500, 2500) == pytest.approx(1500, abs=2)
        _, error = await drain(frames)
    else:
        chunks = await client.stream(BIG, route="openai", tenant="big")
        # open: the estimate is held
        assert setup.held(("big", "primary"), 2500, 2500) == pytest.approx(1500, abs=2)
        _, error = await drain(chunks)
    assert error is None
    held = setup.held(("big", "primary"), 2500, 2500)
    assert 2500 - WORDS - 20 < held < 2500 - WORDS  # the reported input and a short answer


def streamed_text(frames: list[bytes]) -> str:
    """The content an OpenAI chat stream's frames carried."""
    text = ""
    for frame in frames:
        for line in frame.decode().splitlines():
            if line.startswith("data: {"):
                for choice in json.loads(line[6:])["choices"]:
                    text += choice["delta"].get("content") or ""
    return text


async def test_a_stream_that_reports_no_usage_is_charged_its_text(setup: Setup) -> None:
    """No `include_usage`, no `max_tokens`: the estimate taken was the prompt alone; the
    output is charged too, about four characters a token of the text streamed."""
    body = {
        "model": "openai",
        "stream": True,
        "messages": [{"role": "user", "content": "abc " * WORDS}],
    }
    stream = await setup.client.stream_native("openai.chat", body, tenant="big")
    frames, error = await drain(stream)
    assert error is None
    text = streamed_text(frames)
    assert len(text) > 20
    output = -(-len(text) // 4)
    held = setup.held(("big", "primary"), 2500, 2500)
    assert held == pytest.approx(2500 - estimate_prompt(body) - output, abs=1e-6)


async def test_streams_without_usage_cannot_take_a_tenant_past_its_bucket() -> None:
    """A tenant streaming short prompts without `include_usage` or `max_tokens` is held to
    its tpm by what the streams carried, not let through on prompts of three tokens."""
    async with AsyncExitStack() as stack:
        setup = await make(stack, own=100)
        body = {
            "model": "openai",
            "stream": True,
            "messages": [{"role": "user", "content": "hello"}],
        }
        answered: list[str] = []
        refused = None
        for _ in range(60):
            try:
                stream = await setup.client.stream_native("openai.chat", body, tenant="big")
            except AllTargetsFailed as exc:
                (refused,) = exc.outcomes
                break
            frames, error = await drain(stream)
            assert error is None
            answered.append(streamed_text(frames))
        assert refused is not None
        assert (refused.status, refused.message) == (OutcomeStatus.TPM_LIMITED, "tenant_limit")
        prompt = estimate_prompt(body)  # "hello" and its role: three tokens
        assert prompt == 3
        per_call = prompt + -(-len(answered[0]) // 4)
        assert len(set(answered)) == 1  # the same answer each time
        # admitted while the bucket held the prompt's estimate; each left it `per_call` less
        assert len(answered) == (100 - prompt) // per_call + 1
        assert setup.chaos.hit_count(upstream="primary") == len(answered)


async def test_a_stream_closed_early_without_usage_gives_the_estimate_back(setup: Setup) -> None:
    stream = await setup.client.stream(BIG, route="openai", tenant="big")
    await stream.aclose()
    assert setup.client.registry.store.tpm_wait_s(("big", "primary"), 2500) == 0.0


async def test_the_providers_bucket_holds_for_every_tenant() -> None:
    async with AsyncExitStack() as stack:
        setup = await make(stack, own=0, shared=2500)
        client = setup.client
        for tenant in ("a", "b"):
            await client.complete(BIG, route="openai", tenant=tenant)
        with pytest.raises(AllTargetsFailed) as info:
            await client.complete(BIG, route="openai", tenant="c")
        (outcome,) = info.value.outcomes
        assert (outcome.status, outcome.message) == (OutcomeStatus.TPM_LIMITED, "provider_limit")
        assert client.registry.store.tpm_wait_s((PROVIDER_WIDE, "primary"), 1000) > 0
