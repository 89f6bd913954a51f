"""429 when a tenant's own `rpm` is all that held a request back, 503 when targets are down
or the provider's own limit is spent, and `x-should-retry: false` once the gateway has
spent its retries: the official SDKs then do not walk the route again."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import anthropic
import openai
import pytest
from anthropic.types import MessageParam
from openai.types.chat import ChatCompletionUserMessageParam

from resilience.chaos import Fault
from tests.gateway.configured import anthropic_sdk, auth, openai_sdk, serve
from tests.support.clock import FakeClock
from tests.support.gateway import Running

HELLO: list[ChatCompletionUserMessageParam] = [{"role": "user", "content": "hello"}]
ANTHROPIC_HELLO: list[MessageParam] = [{"role": "user", "content": "hello"}]


@pytest.fixture
async def served(tmp_path: Path) -> AsyncIterator[tuple[Running, FakeClock]]:
    async with serve(tmp_path) as pair:
        yield pair


async def test_a_tenant_over_its_own_rpm_gets_429_with_retry_after_until_a_token_is_back(
    served: tuple[Running, FakeClock],
) -> None:
    running, clock = served
    client = openai_sdk(running, "globex")
    await client.chat.completions.create(model="solo", messages=HELLO)
    with pytest.raises(openai.RateLimitError) as info:
        await client.chat.completions.create(model="solo", messages=HELLO)
    response = info.value.response
    assert response.headers["retry-after"] == "60"  # rpm 1: a token a minute
    assert "x-should-retry" not in response.headers  # nothing was tried: the SDK may wait
    error = response.json()["error"]
    assert (error["type"], error["code"]) == ("rate_limit_error", "rate_limit_exceeded")
    assert "globex" in error["message"] and "primary: 1 requests per minute" in error["message"]
    assert running.chaos.hit_count(upstream="primary") == 1
    clock.advance(60)
    await client.chat.completions.create(model="solo", messages=HELLO)
    assert running.chaos.hit_count(upstream="primary") == 2


async def test_the_anthropic_sdk_gets_its_own_rate_limit_error(
    served: tuple[Running, FakeClock],
) -> None:
    running, _ = served
    client = anthropic_sdk(running, "globex")
    await client.messages.create(model="solo", max_tokens=20, messages=ANTHROPIC_HELLO)
    with pytest.raises(anthropic.RateLimitError) as info:
        await client.messages.create(model="solo", max_tokens=20, messages=ANTHROPIC_HELLO)
    body = info.value.body
    assert isinstance(body, dict) and body["type"] == "error"
    assert body["error"]["type"] == "rate_limit_error"
    assert info.value.response.headers["retry-after"] == "60"


async def test_another_target_answers_rather_than_a_429(served: tuple[Running, FakeClock]) -> None:
    running, _ = served
    client = openai_sdk(running, "globex")
    await client.chat.completions.create(model="solo", messages=HELLO)  # globex's token spent
    raw = await client.chat.completions.with_raw_response.create(model="chat", messages=HELLO)
    assert raw.headers["x-resilience-provider"] == "claude"


async def test_the_providers_own_limit_spent_is_503_even_for_a_tenant_with_a_limit(
    served: tuple[Running, FakeClock],
) -> None:
    """`capped` takes 1 request a minute over all tenants; initech's own limit there is 5."""
    running, _ = served
    await openai_sdk(running, "initech").chat.completions.create(model="capped", messages=HELLO)
    for tenant in ("acme", "initech"):
        response = await running.http.post(
            "/v1/chat/completions",
            headers=auth(tenant),
            json={"model": "capped", "messages": HELLO},
        )
        assert response.status_code == 503, (tenant, response.text)
        assert response.json()["error"]["code"] == "all_targets_failed"


async def test_the_own_limit_beside_a_target_that_failed_is_503(
    served: tuple[Running, FakeClock],
) -> None:
    running, _ = served
    client = openai_sdk(running, "initech")
    await client.chat.completions.create(model="solo", messages=HELLO)  # initech's token spent
    running.chaos.add_fault(Fault(status=529), upstream="claude")
    with pytest.raises(openai.InternalServerError) as info:
        await client.chat.completions.create(model="chat", messages=HELLO)
    assert info.value.status_code == 503


async def test_after_the_gateways_own_retries_the_sdk_does_not_walk_the_route_again(
    served: tuple[Running, FakeClock],
) -> None:
    """The SDK is left at its default retries: `x-should-retry: false` stops them, so the
    upstream sees one walk (2 attempts), not three."""
    running, _ = served
    running.chaos.add_fault(Fault(status=503), upstream="primary")
    with pytest.raises(openai.InternalServerError) as info:
        await openai_sdk(running, "acme", max_retries=2).chat.completions.create(
            model="solo", messages=HELLO
        )
    assert info.value.response.headers["x-should-retry"] == "false"
    assert running.chaos.hit_count(upstream="primary") == 2
    with pytest.raises(anthropic.InternalServerError) as refused:
        await anthropic_sdk(running, "acme", max_retries=2).messages.create(
            model="solo", max_tokens=20, messages=ANTHROPIC_HELLO
        )
    assert refused.value.response.headers["x-should-retry"] == "false"
    assert running.chaos.hit_count(upstream="primary") == 4


async def test_an_upstream_failure_passed_on_also_says_not_to_retry(
    served: tuple[Running, FakeClock],
) -> None:
    running, _ = served
    running.chaos.add_fault(Fault(status=400, message="bad role"), upstream="primary")
    response = await running.http.post(
        "/v1/chat/completions", headers=auth("acme"), json={"model": "solo", "messages": HELLO}
    )
    assert response.status_code == 400 and response.headers["x-should-retry"] == "false"


async def test_sdk_should_retry_true_leaves_the_decision_to_the_sdks(tmp_path: Path) -> None:
    async with serve(tmp_path, server={"sdk_should_retry": True}) as (running, _):
        running.chaos.add_fault(Fault(status=503), upstream="primary")
        response = await running.http.post(
            "/v1/chat/completions", headers=auth("acme"), json={"model": "solo", "messages": HELLO}
        )
        assert response.status_code == 503
        assert "x-should-retry" not in response.headers
        assert int(response.headers["retry-after"]) >= 1
