"""Gigantic upstream answers: failed at `max_response_bytes`, classified, never read whole."""

from __future__ import annotations

import anthropic
import httpx2
import openai
import pytest

from resilience.chaos import Fault
from resilience.classify import classify
from resilience.client.outcomes import OutcomeStatus
from resilience.errors import ErrorKind, ResponseTooLarge
from resilience.providers.limits import cap_response_size
from tests.support.client import CHAT, Harness, route

TENANT = "acme"
LIMIT = 256 * 1024
HUGE = Fault(body_bytes=4 * 1024 * 1024)
PROVIDERS = [("primary:gpt-4.1", "fallback:claude-x"), ("fallback:claude-x", "primary:gpt-4.1")]


@pytest.mark.parametrize(("first", "second"), PROVIDERS)
@pytest.mark.parametrize("served", [False, True], ids=["asgi", "loopback"])
async def test_a_gigantic_answer_fails_the_attempt_and_falls_back(
    harness: Harness, first: str, second: str, served: bool
) -> None:
    client = await harness.client(
        served=served, routes={"r": route("r", first, second)}, max_response_bytes=LIMIT
    )
    upstream = first.split(":")[0]
    harness.chaos.add_fault(HUGE, upstream=upstream)
    result = await client.complete(CHAT, route="r", tenant=TENANT)
    assert result.target.provider == second.split(":")[0]
    failed = result.outcomes[0]
    assert (failed.status, failed.kind) == (OutcomeStatus.FAILED, ErrorKind.INVALID_RESPONSE)
    assert failed.attempts == 3  # retried like any invalid answer, then moved on
    assert client.registry.get(TENANT, upstream).failures_in_window() == 3


@pytest.mark.parametrize(("first", "second"), PROVIDERS)
async def test_a_gigantic_stream_fails_before_its_first_chunk_and_falls_back(
    harness: Harness, first: str, second: str
) -> None:
    client = await harness.client(
        served=True, routes={"r": route("r", first, second)}, max_response_bytes=LIMIT
    )
    harness.chaos.add_fault(HUGE, upstream=first.split(":")[0])
    async with await client.stream(CHAT, route="r", tenant=TENANT) as stream:
        text = "".join([c.text_delta async for c in stream if c.text_delta])
    assert text and stream.target.provider == second.split(":")[0]
    assert stream.outcomes[0].kind is ErrorKind.INVALID_RESPONSE


async def test_an_answer_under_the_limit_is_served(harness: Harness) -> None:
    client = await harness.client(
        served=True, routes={"r": route("r", "primary:gpt-4.1")}, max_response_bytes=LIMIT
    )
    harness.chaos.add_fault(Fault(body_bytes=LIMIT // 2), upstream="primary")
    result = await client.complete(CHAT, route="r", tenant=TENANT)
    assert result.target.provider == "primary" and result.value.text


async def test_the_connection_of_a_cut_answer_is_closed_not_pooled(harness: Harness) -> None:
    client = await harness.client(
        served=True, routes={"r": route("r", "primary:gpt-4.1")}, max_response_bytes=LIMIT
    )
    harness.chaos.add_fault(HUGE, upstream="primary", times=1)
    await client.complete(CHAT, route="r", tenant=TENANT)  # the retry is answered healthily
    pool = client.providers["primary"].http_client._transport._pool  # type: ignore[attr-defined]
    assert [c for c in pool.connections if not c.is_idle()] == []
    assert len(pool.connections) <= 1


def test_sdk_errors_that_wrap_a_too_large_answer_are_invalid_responses() -> None:
    request = httpx2.Request("POST", "http://upstream/v1/chat/completions")
    for sdk_error in (
        openai.APIConnectionError(request=request),
        anthropic.APIConnectionError(request=request),
    ):
        try:
            try:
                raise ResponseTooLarge(LIMIT)
            except ResponseTooLarge as cause:
                raise sdk_error from cause
        except Exception as exc:
            found = classify(exc)
        assert found.kind is ErrorKind.INVALID_RESPONSE, sdk_error
        assert str(LIMIT) in found.message


async def test_a_shared_pool_keeps_the_smallest_limit() -> None:
    async with httpx2.AsyncClient() as http:
        cap_response_size(http, 10_000)
        cap_response_size(http, 2_000)
        cap_response_size(http, 50_000)
        assert len(http.event_hooks["response"]) == 1
    with pytest.raises(ValueError, match="max_response_bytes"):
        cap_response_size(httpx2.AsyncClient(), 0)
