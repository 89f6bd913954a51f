"""Native calls: a body in a provider's own format goes through the walk as it is.

Through the real SDK adapters to the chaos upstream: the upstream receives the body the
caller built, `model` aside; the answer and the stream come back as the upstream sent
them; breakers, retries and fallback behave as for the normalised calls.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from resilience.breaker.events import BreakerState
from resilience.chaos import Fault
from resilience.client.outcomes import OutcomeStatus
from resilience.errors import AllTargetsFailed, ErrorKind, ProviderError
from tests.support.client import Harness, drain, route

TENANT = "acme"

OPENAI_BODY: dict[str, Any] = {
    "model": "same",
    "messages": [{"role": "user", "content": "hello there"}],
    "seed": 7,
    "logit_bias": {"50256": -100},
    "response_format": {"type": "text"},
    "metadata": {"trace": "t-1"},
    "some_vendor_field": {"nested": [1, 2.5, None, True]},
}
ANTHROPIC_BODY: dict[str, Any] = {
    "model": "same",
    "max_tokens": 64,
    "system": [{"type": "text", "text": "be brief", "cache_control": {"type": "ephemeral"}}],
    "messages": [{"role": "user", "content": [{"type": "text", "text": "hello there"}]}],
    "top_k": 5,
    "metadata": {"user_id": "u-1"},
}


def sent_body(harness: Harness) -> Any:
    body = harness.chaos.hits[-1].body
    assert body is not None
    return body


@pytest.mark.parametrize(
    ("api", "body", "target"),
    [
        ("openai.chat", OPENAI_BODY, "primary:gpt-4.1"),
        ("anthropic.messages", ANTHROPIC_BODY, "fallback:claude-x"),
    ],
)
async def test_the_upstream_receives_the_body_as_sent_but_for_model(
    harness: Harness, api: Any, body: dict[str, Any], target: str
) -> None:
    client = await harness.client(routes={"same": route("same", target)})
    result = await client.complete_native(api, body, tenant=TENANT)
    assert sent_body(harness) == {**body, "model": target.split(":", 1)[1]}
    assert result.target.provider == target.split(":", 1)[0]
    assert json.loads(result.value.body) == result.value.data  # the bytes the upstream sent


async def test_an_answer_keeps_every_field_the_upstream_sent(harness: Harness) -> None:
    client = await harness.client(routes={"same": route("same", "primary:gpt-4.1")})
    result = await client.complete_native("openai.chat", OPENAI_BODY, tenant=TENANT)
    data = result.value.data
    assert data["object"] == "chat.completion"
    assert data["model"] == "gpt-4.1"  # the upstream's own, not the route's
    assert data["usage"]["prompt_tokens"] > 0


async def test_a_stream_passes_on_the_upstream_events_unchanged(harness: Harness) -> None:
    client = await harness.client(routes={"same": route("same", "fallback:claude-x")})
    body = {**ANTHROPIC_BODY, "stream": True}
    stream = await client.stream_native("anthropic.messages", body, tenant=TENANT)
    frames, error = await drain(stream)
    assert error is None
    assert frames[0].startswith(b"event: message_start\n")
    assert frames[-1].startswith(b"event: message_stop\n")
    assert all(f.endswith(b"\n\n") for f in frames)
    assert sent_body(harness) == {**body, "model": "claude-x"}
    breaker = client.registry.get(TENANT, "fallback")
    assert breaker.state is BreakerState.CLOSED


async def test_a_failure_before_the_first_event_falls_back_to_the_next_target(
    harness: Harness,
) -> None:
    client = await harness.client(routes={"two": route("two", "primary:gpt-4.1", "local:small")})
    harness.chaos.add_fault(Fault(status=503), upstream="primary")
    body = {**OPENAI_BODY, "model": "two", "stream": True}
    stream = await client.stream_native("openai.chat", body, tenant=TENANT)
    frames, error = await drain(stream)
    assert error is None
    assert stream.target.provider == "local"
    assert frames[-1] == b"data: [DONE]\n\n"
    assert [o.status for o in stream.outcomes] == [OutcomeStatus.FAILED, OutcomeStatus.SUCCEEDED]
    assert stream.outcomes[0].kind is ErrorKind.OVERLOADED


async def test_an_error_event_after_output_began_is_stream_interrupted(harness: Harness) -> None:
    client = await harness.client(routes={"same": route("same", "primary:gpt-4.1")})
    harness.chaos.add_fault(Fault(error_event_after_chunks=2), upstream="primary")
    stream = await client.stream_native(
        "openai.chat", {**OPENAI_BODY, "stream": True}, tenant=TENANT
    )
    frames, error = await drain(stream)
    assert error is not None and error.kind is ErrorKind.STREAM_INTERRUPTED
    assert len(frames) >= 2
    assert harness.chaos.hit_count(upstream="primary") == 1  # never repeated once output began


@pytest.mark.parametrize("target", ["primary:gpt-4.1", "fallback:claude-x"])
async def test_a_stream_without_its_end_marker_fails(harness: Harness, target: str) -> None:
    client = await harness.client(routes={"same": route("same", target)})
    harness.chaos.add_fault(Fault(no_end_marker=True, drop_after_chunks=None))
    is_openai = target.startswith("primary")
    body = {**(OPENAI_BODY if is_openai else ANTHROPIC_BODY), "stream": True}
    api: Any = "openai.chat" if is_openai else "anthropic.messages"
    stream = await client.stream_native(api, body, tenant=TENANT)
    _, error = await drain(stream)
    assert error is not None and error.kind is ErrorKind.STREAM_INTERRUPTED


async def test_failures_count_on_the_tenants_breaker(harness: Harness) -> None:
    client = await harness.client(routes={"same": route("same", "primary:gpt-4.1")})
    harness.chaos.add_fault(Fault(status=500), upstream="primary")
    for _ in range(8):
        with pytest.raises(AllTargetsFailed):
            await client.complete_native("openai.chat", OPENAI_BODY, tenant=TENANT)
    assert client.registry.get(TENANT, "primary").state is BreakerState.OPEN
    assert client.registry.get("quiet", "primary").state is BreakerState.CLOSED
    calls = harness.chaos.hit_count(upstream="primary")
    with pytest.raises(AllTargetsFailed) as refused:
        await client.complete_native("openai.chat", OPENAI_BODY, tenant=TENANT)
    assert harness.chaos.hit_count(upstream="primary") == calls  # refused without a call
    assert refused.value.outcomes[0].status is OutcomeStatus.BREAKER_OPEN


async def test_the_callers_own_error_is_not_retried_nor_falls_back(harness: Harness) -> None:
    client = await harness.client(routes={"two": route("two", "primary:gpt-4.1", "local:small")})
    harness.chaos.add_fault(Fault(status=400, message="messages: bad"), upstream="primary")
    with pytest.raises(ProviderError) as raised:
        await client.complete_native("openai.chat", {**OPENAI_BODY, "model": "two"}, tenant=TENANT)
    assert raised.value.kind is ErrorKind.BAD_REQUEST
    assert harness.chaos.hit_count(upstream="local") == 0
    assert client.registry.get(TENANT, "primary").state is BreakerState.CLOSED


async def test_count_tokens_goes_only_to_anthropic_targets(harness: Harness) -> None:
    client = await harness.client(
        routes={"count": route("count", "primary:gpt-4.1", "fallback:claude-x")}
    )
    body = {k: v for k, v in ANTHROPIC_BODY.items() if k != "max_tokens"} | {"model": "count"}
    result = await client.complete_native("anthropic.count_tokens", body, tenant=TENANT)
    assert result.value.data["input_tokens"] > 0
    assert result.outcomes[0].status is OutcomeStatus.CANNOT_CARRY
    assert result.outcomes[0].message.startswith("count_tokens: provider 'primary'")
    assert harness.chaos.hit_count(upstream="primary") == 0


async def test_a_route_with_no_target_that_can_carry_it_names_why(harness: Harness) -> None:
    client = await harness.client(routes={"count": route("count", "primary:gpt-4.1")})
    body = {"model": "count", "messages": [{"role": "user", "content": "hi"}]}
    with pytest.raises(AllTargetsFailed) as raised:
        await client.complete_native("anthropic.count_tokens", body, tenant=TENANT)
    assert [o.status for o in raised.value.outcomes] == [OutcomeStatus.CANNOT_CARRY]
    assert harness.chaos.hits == []


async def test_embeddings_go_as_sent_and_skip_targets_that_cannot_embed(harness: Harness) -> None:
    client = await harness.client(
        routes={"vectors": route("vectors", "fallback:claude-x", "primary:text-embedding-3")}
    )
    body = {"model": "vectors", "input": [[1, 2, 3], [4, 5]], "encoding_format": "base64"}
    result = await client.complete_native("openai.embeddings", body, tenant=TENANT)
    assert sent_body(harness) == {**body, "model": "text-embedding-3"}
    assert result.outcomes[0].status is OutcomeStatus.CANNOT_EMBED
    assert all(isinstance(d["embedding"], str) for d in result.value.data["data"])


async def test_a_429_is_read_with_its_retry_after_and_moves_on(harness: Harness) -> None:
    client = await harness.client(routes={"two": route("two", "primary:gpt-4.1", "local:small")})
    harness.chaos.add_fault(Fault(status=429, retry_after="7"), upstream="primary")
    body = {**OPENAI_BODY, "model": "two"}
    result = await client.complete_native("openai.chat", body, tenant=TENANT)
    first = result.outcomes[0]
    assert first.kind is ErrorKind.RATE_LIMITED and first.status_code == 429
    assert result.target.provider == "local"
    assert client.registry.get(TENANT, "primary").retry_after() == pytest.approx(7.0)


async def test_an_upstream_that_never_answers_is_a_timeout(harness: Harness) -> None:
    client = await harness.client(
        routes={"same": route("same", "primary:gpt-4.1")}, timeout_s=0.2, real_time=True
    )
    harness.chaos.add_fault(Fault(hang=True), upstream="primary")
    with pytest.raises(AllTargetsFailed) as raised:
        await client.complete_native("openai.chat", OPENAI_BODY, tenant=TENANT)
    assert {o.kind for o in raised.value.outcomes} == {ErrorKind.TIMEOUT}
