"""Provider adapters over the real SDKs: normalisation, per-tenant keys, no SDK retries."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Literal

import anthropic
import httpx2
import openai
import pytest

from resilience.chaos import ChaosUpstream, Fault
from resilience.client.resilient import ResilientClient
from resilience.config.load import parse_config
from resilience.errors import StreamTruncatedError
from resilience.models import ChatRequest, EmbeddingRequest, Message
from resilience.providers.anthropic import AnthropicProvider
from resilience.providers.anthropic import to_params as anthropic_params
from resilience.providers.openai import OpenAIProvider
from resilience.providers.openai import to_params as openai_params
from resilience.providers.settings import ProviderSettings

REQUEST = ChatRequest(
    messages=(
        Message(role="system", content="be brief"),
        Message(role="user", content="hello world"),
    ),
    system="you are a test",
    max_tokens=20,
    temperature=0.2,
    stop=("END",),
    metadata={"user_id": "u-1"},
)


def settings(
    kind: Literal["anthropic", "openai"], base_url: str, *, api_key: str = "k"
) -> ProviderSettings:
    return ProviderSettings(kind=kind, api_key=api_key, base_url=base_url)


@pytest.fixture
async def chaos_http() -> AsyncIterator[tuple[ChaosUpstream, httpx2.AsyncClient]]:
    chaos = ChaosUpstream()
    async with httpx2.AsyncClient(transport=chaos.transport()) as http:
        yield chaos, http


def test_anthropic_params_move_system_messages_and_map_stop_sequences() -> None:
    params = anthropic_params(REQUEST, "claude-x")
    assert params["system"] == "you are a test\n\nbe brief"
    assert params["messages"] == [{"role": "user", "content": "hello world"}]
    assert params["stop_sequences"] == ["END"]
    assert params["metadata"] == {"user_id": "u-1"}
    assert params["max_tokens"] == 20
    assert "temperature" not in params  # the pinned anthropic SDK has no sampling parameters


def test_openai_params_keep_system_first_and_pass_stop() -> None:
    params = openai_params(REQUEST, "gpt-4.1")
    assert [m["role"] for m in params["messages"]] == ["system", "system", "user"]
    assert params["stop"] == ["END"] and params["user"] == "u-1"


async def test_both_kinds_normalise_responses(
    chaos_http: tuple[ChaosUpstream, httpx2.AsyncClient],
) -> None:
    _, http = chaos_http
    claude = AnthropicProvider("a", settings("anthropic", "http://c/a"), http_client=http)
    gpt = OpenAIProvider("o", settings("openai", "http://c/o/v1"), http_client=http)
    for provider in (claude, gpt):
        response = await provider.complete(REQUEST, model="m-1")
        assert response.text.startswith("ok: hello world")
        assert response.finish_reason == "stop"
        assert response.usage.input_tokens == 2 and response.usage.output_tokens > 0
        assert (response.provider, response.model) == (provider.name, "m-1")
        assert response.content == ({"type": "text", "text": response.text},)


async def test_embeddings_come_back_as_floats_in_input_order(
    chaos_http: tuple[ChaosUpstream, httpx2.AsyncClient],
) -> None:
    _, http = chaos_http
    provider = OpenAIProvider("o", settings("openai", "http://c/o/v1"), http_client=http)
    result = await provider.embed(EmbeddingRequest(inputs=("x", "y", "x")), model="e")
    assert len(result.vectors) == 3 and result.vectors[0] == result.vectors[2]
    assert all(isinstance(v, float) for v in result.vectors[1])


async def test_per_tenant_keys_get_their_own_sdk_client_on_the_shared_pool(
    chaos_http: tuple[ChaosUpstream, httpx2.AsyncClient],
) -> None:
    chaos, http = chaos_http
    provider = OpenAIProvider(
        "o", settings("openai", "http://c/o/v1", api_key="shared"), http_client=http
    )
    await provider.complete(REQUEST, model="m")
    await provider.complete(REQUEST, model="m", api_key="tenant-key")
    assert provider.client() is not provider.client("tenant-key")
    assert provider.client()._client is provider.client("tenant-key")._client is http
    assert [h.api_key for h in chaos.hits] == ["shared", "tenant-key"]


@pytest.mark.parametrize("kind", ["anthropic", "openai"])
async def test_sdk_retries_are_off(
    chaos_http: tuple[ChaosUpstream, httpx2.AsyncClient], kind: str
) -> None:
    chaos, http = chaos_http
    chaos.add_fault(Fault(status=503))
    provider = (
        AnthropicProvider("p", settings("anthropic", "http://c/p"), http_client=http)
        if kind == "anthropic"
        else OpenAIProvider("p", settings("openai", "http://c/p/v1"), http_client=http)
    )
    with pytest.raises((anthropic.InternalServerError, openai.InternalServerError)) as info:
        await provider.complete(REQUEST, model="m")
    assert getattr(info.value, "status_code", None) == 503
    assert chaos.hit_count() == 1


@pytest.mark.parametrize("kind", ["anthropic", "openai"])
async def test_a_stream_without_its_end_marker_raises_after_its_chunks(
    chaos_http: tuple[ChaosUpstream, httpx2.AsyncClient], kind: str
) -> None:
    chaos, http = chaos_http
    chaos.add_fault(Fault(no_end_marker=True))
    provider = (
        AnthropicProvider("p", settings("anthropic", "http://c/p"), http_client=http)
        if kind == "anthropic"
        else OpenAIProvider("p", settings("openai", "http://c/p/v1"), http_client=http)
    )
    texts: list[str] = []
    with pytest.raises(StreamTruncatedError):
        async for chunk in provider.stream(REQUEST, model="m"):
            texts.append(chunk.text_delta)  # noqa: PERF401 - keep what came before the error
    assert "".join(texts).startswith("ok: hello world")


async def test_a_client_built_from_config_routes_through_the_configured_providers(
    chaos_http: tuple[ChaosUpstream, httpx2.AsyncClient],
) -> None:
    chaos, http = chaos_http
    environ = {"PRIMARY_KEY": "k-primary", "ACME_KEY": "k-acme"}
    config = parse_config(
        {
            "breaker": {"failure_threshold": 2},
            "retry": {"max_attempts": 1},
            "providers": {
                "primary": {
                    "kind": "openai",
                    "api_key_env": "PRIMARY_KEY",
                    "base_url": "http://c/primary/v1",
                },
                "backup": {"kind": "anthropic", "base_url": "http://c/backup"},
            },
            "routes": {"chat": {"targets": ["primary:gpt-4.1", "backup:claude-x"]}},
            "tenants": {"acme": {"providers": {"primary": {"api_key_env": "ACME_KEY"}}}},
        },
        environ=environ,
    )
    client = ResilientClient.from_config(config, environ=environ, http_client=http)
    chaos.add_fault(Fault(status=401), api_key="k-acme")
    for _ in range(2):
        result = await client.complete(REQUEST, route="chat", tenant="acme")
        assert result.target.provider == "backup"
    assert client.registry.get("acme", "primary").policy.failure_threshold == 2
    assert str(client.registry.get("acme", "primary").state) == "open"
    other = await client.complete(REQUEST, route="chat", tenant="globex")
    assert other.target.provider == "primary"
    assert [h.api_key for h in chaos.hits if h.upstream == "primary"] == [
        "k-acme",
        "k-acme",
        "k-primary",
    ]
