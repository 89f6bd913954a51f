"""`GET /v1/models` and `/v1/models/{id}` through the real openai and anthropic SDKs:
the routes and targets each tenant may use, in each vendor's shape."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import anthropic
import openai
import pytest

from tests.gateway.configured import anthropic_sdk, auth, openai_sdk, serve
from tests.gateway.schemas import assert_valid
from tests.support.gateway import Running

ACME = [
    "capped",
    "chat",
    "cloud",
    "embed",
    "mixed",
    "solo",
    "capped:gpt-4.1",
    "claude:claude-haiku-4-5",
    "claude:claude-sonnet-4-6",
    "local:meta-llama/Llama-3.1-8B",
    "primary:gpt-4.1",
    "primary:text-embedding-3-small",
]
"""Routes by name, then targets by name; acme's own `chat` (claude-haiku) hides the global
one, so the global chat's targets appear only where another route names them."""


@pytest.fixture
async def running(tmp_path: Path) -> AsyncIterator[Running]:
    async with serve(tmp_path) as (running, _):
        yield running


async def test_the_openai_sdk_lists_the_routes_and_targets_of_the_tenant(running: Running) -> None:
    client = openai_sdk(running, "acme")
    models = [m async for m in client.models.list()]
    assert [m.id for m in models] == ACME
    owners = {m.id: m.owned_by for m in models}
    assert owners["chat"] == "resilience" and owners["claude:claude-haiku-4-5"] == "claude"
    assert {m.object for m in models} == {"model"}
    raw = await running.http.get("/v1/models", headers=auth("acme"))
    assert_valid("ListModelsResponse", raw.json())


async def test_a_local_only_tenant_sees_only_what_it_may_call(running: Running) -> None:
    models = [m.id async for m in openai_sdk(running, "bank").models.list()]
    assert models == ["mixed", "local:meta-llama/Llama-3.1-8B"]


async def test_the_openai_sdk_retrieves_a_route_and_a_target_with_a_slash(
    running: Running,
) -> None:
    client = openai_sdk(running, "acme")
    route = await client.models.retrieve("chat")
    assert (route.id, route.owned_by, route.object) == ("chat", "resilience", "model")
    target = await client.models.retrieve("local:meta-llama/Llama-3.1-8B")
    assert (target.id, target.owned_by) == ("local:meta-llama/Llama-3.1-8B", "local")
    raw = await running.http.get("/v1/models/primary:gpt-4.1", headers=auth("acme"))
    assert_valid("Model", raw.json())


async def test_an_unknown_or_forbidden_model_is_openai_shaped_404(running: Running) -> None:
    client = openai_sdk(running, "bank")
    for name in ("nope", "chat", "primary:gpt-4.1"):  # chat and primary: cloud, bank is local
        with pytest.raises(openai.NotFoundError) as info:
            await client.models.retrieve(name)
        body = info.value.response.json()
        assert_valid("ErrorResponse", body)
        assert (body["error"]["code"], body["error"]["param"]) == ("model_not_found", "model")


async def test_the_anthropic_sdk_lists_every_page_in_anthropics_shape(running: Running) -> None:
    client = anthropic_sdk(running, "acme")
    pages = await client.models.list(limit=5)
    first = pages.data
    assert [m.id for m in first] == ACME[:5] and pages.has_more is True
    assert (pages.first_id, pages.last_id) == (ACME[0], ACME[4])
    assert [m.id async for m in await client.models.list(limit=5)] == ACME  # every page
    assert {(m.type, m.display_name == m.id) for m in first} == {("model", True)}
    assert first[0].created_at.tzinfo is not None
    before = await client.models.list(before_id=ACME[3], limit=2)
    assert [m.id for m in before.data] == ACME[1:3] and before.has_more is True


async def test_the_anthropic_sdk_retrieves_one_model_and_gets_its_404(running: Running) -> None:
    client = anthropic_sdk(running, "acme")
    model = await client.models.retrieve("claude:claude-haiku-4-5")
    assert (model.type, model.id) == ("model", "claude:claude-haiku-4-5")
    with pytest.raises(anthropic.NotFoundError) as info:
        await client.models.retrieve("nope")
    body = info.value.body
    assert isinstance(body, dict)
    assert body["type"] == "error" and body["error"]["type"] == "not_found_error"
    assert info.value.request_id == info.value.response.headers["x-request-id"]


async def test_bad_paging_is_refused_in_the_shape_of_the_caller(running: Running) -> None:
    with pytest.raises(anthropic.BadRequestError) as info:
        await anthropic_sdk(running, "acme").models.list(after_id="nope")
    assert info.value.body == {
        "type": "error",
        "error": {"type": "invalid_request_error", "message": "after_id: no model with this id"},
        "request_id": info.value.response.headers["request-id"],
    }
    for limit in ("0", "1001", "-1", "x", "9" * 5000, "\u0663"):
        refused = await running.http.get(
            "/v1/models", params={"limit": limit}, headers=auth("acme")
        )
        assert refused.status_code == 400 and refused.json()["error"]["param"] == "limit"
        assert_valid("ErrorResponse", refused.json())


async def test_listing_needs_a_tenant_and_refuses_in_the_callers_shape(running: Running) -> None:
    with pytest.raises(openai.AuthenticationError) as openai_refused:
        await openai.AsyncOpenAI(
            api_key="wrong", base_url="http://gateway/v1", max_retries=0, http_client=running.http
        ).models.list()
    assert_valid("ErrorResponse", openai_refused.value.response.json())
    with pytest.raises(anthropic.AuthenticationError) as anthropic_refused:
        await anthropic.AsyncAnthropic(
            api_key="wrong", base_url="http://gateway", max_retries=0, http_client=running.http
        ).models.list()
    body = anthropic_refused.value.body
    assert isinstance(body, dict) and body["error"]["type"] == "authentication_error"
