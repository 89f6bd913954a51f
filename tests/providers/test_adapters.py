"""Both adapters through the real SDKs against the chaos upstream (in-process, or a socket)."""

from __future__ import annotations

import asyncio
import dataclasses
import gc
import warnings
from collections.abc import AsyncIterator

import anthropic
import httpx2
import openai
import pytest

from resilience.chaos import ChaosUpstream, Fault
from resilience.errors import StreamTruncatedError
from resilience.models import ChatChunk, ChatRequest, EmbeddingRequest, Message, Usage
from resilience.providers import Provider, build_provider
from resilience.providers.anthropic import DEFAULT_MAX_TOKENS, AnthropicProvider
from resilience.providers.openai import OpenAIProvider
from resilience.providers.settings import ProviderSettings
from tests.support.providers import KINDS, Kind, Sent, Upstream, recording_client

HELLO = ChatRequest(messages=(Message(role="user", content="hello world"),))
ANSWER = "ok: hello world (answered by chaos)"
ANSWER_TOKENS = len(ANSWER.split())


async def collect(stream: AsyncIterator[ChatChunk]) -> list[ChatChunk]:
    return [chunk async for chunk in stream]


# -- happy paths -------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
async def test_complete_answers_in_the_normalised_shape(upstream: Upstream, kind: Kind) -> None:
    provider = upstream.provider(kind, "up")
    response = await provider.complete(HELLO, model="m-1")
    assert response.text == ANSWER
    assert response.content == ({"type": "text", "text": ANSWER},)
    assert (response.finish_reason, response.raw_finish_reason) == (
        "stop",
        "end_turn" if kind == "anthropic" else "stop",
    )
    assert response.usage == Usage(input_tokens=2, output_tokens=ANSWER_TOKENS)
    assert (response.provider, response.model) == ("up", "m-1")
    assert response.response_id


@pytest.mark.parametrize("kind", KINDS)
async def test_a_stream_yields_the_text_then_one_final_chunk_with_finish_and_usage(
    upstream: Upstream, kind: Kind
) -> None:
    chunks = await collect(upstream.provider(kind).stream(HELLO, model="m"))
    *pieces, last = chunks
    assert len(pieces) > 1 and "".join(c.text_delta for c in pieces) == ANSWER
    assert all(c.finish_reason is None and c.usage is None for c in pieces)
    assert (last.text_delta, last.finish_reason) == ("", "stop")
    assert last.usage == Usage(input_tokens=2, output_tokens=ANSWER_TOKENS)


async def test_openai_streams_ask_for_usage(upstream: Upstream) -> None:
    await collect(upstream.provider("openai").stream(HELLO, model="m"))
    assert upstream.sent[0].body["stream_options"] == {"include_usage": True}


async def test_a_stream_sends_nothing_until_it_is_iterated(
    upstream: Upstream, chaos: ChaosUpstream
) -> None:
    stream = upstream.provider("openai").stream(HELLO, model="m")
    assert chaos.hit_count() == 0
    await stream.aclose()
    assert chaos.hit_count() == 0


async def test_embeddings_come_back_as_floats_one_per_input_in_input_order(
    upstream: Upstream,
) -> None:
    provider = upstream.provider("openai", "emb")
    request = EmbeddingRequest(inputs=("x", "y", "x"), dimensions=8)
    result = await provider.embed(request, model="e-1")
    assert len(result.vectors) == 3 and result.vectors[0] == result.vectors[2] != result.vectors[1]
    assert all(type(v) is float for vector in result.vectors for v in vector)
    assert (result.provider, result.model, result.usage.input_tokens) == ("emb", "e-1", 3)
    body = upstream.sent[0].body
    assert (body["encoding_format"], body["dimensions"]) == ("float", 8)
    assert body["input"] == ["x", "y", "x"]


async def test_anthropic_cannot_embed_and_says_so_without_a_call(
    upstream: Upstream, chaos: ChaosUpstream
) -> None:
    provider = upstream.provider("anthropic", "claude")
    assert provider.can_embed is False
    with pytest.raises(NotImplementedError, match="'claude' is of kind anthropic"):
        await provider.embed(EmbeddingRequest(inputs=("x",)), model="m")
    assert chaos.hit_count() == 0


async def test_an_openai_provider_configured_without_embeddings_refuses_without_a_call(
    upstream: Upstream, chaos: ChaosUpstream
) -> None:
    provider = upstream.provider("openai", "chat-only", can_embed=False)
    with pytest.raises(NotImplementedError, match="without embeddings"):
        await provider.embed(EmbeddingRequest(inputs=("x",)), model="m")
    assert chaos.hit_count() == 0


# -- what goes on the wire ---------------------------------------------------------------------

FULL = ChatRequest(
    messages=(
        Message(role="system", content="be brief"),
        Message(role="user", content="hello world"),
        Message(role="assistant", content="hi"),
        Message(role="user", content="again"),
    ),
    system="you are a test",
    temperature=0.2,
    top_p=0.9,
    stop=("END", "STOP"),
    metadata={"user_id": "u-1", "ignored": "x"},
    extra={"vendor_flag": True},
)


async def test_anthropic_gets_system_prompts_in_system_and_stops_as_stop_sequences(
    upstream: Upstream,
) -> None:
    await upstream.provider("anthropic").complete(FULL, model="claude-x")
    body = upstream.sent[0].body
    assert body == {
        "model": "claude-x",
        "system": "you are a test\n\nbe brief",
        "messages": [
            {"role": "user", "content": "hello world"},
            {"role": "assistant", "content": "hi"},
            {"role": "user", "content": "again"},
        ],
        "max_tokens": DEFAULT_MAX_TOKENS,  # required by Anthropic, so a default is sent
        "stop_sequences": ["END", "STOP"],
        "metadata": {"user_id": "u-1"},
        "vendor_flag": True,
    }  # no temperature / top_p: the pinned anthropic SDK has no such parameters


async def test_openai_gets_system_messages_first_and_sampling_stop_and_user(
    upstream: Upstream,
) -> None:
    request = dataclasses.replace(FULL, max_tokens=77)
    await upstream.provider("openai").complete(request, model="gpt-x")
    body = upstream.sent[0].body
    assert body == {
        "model": "gpt-x",
        "messages": [
            {"role": "system", "content": "you are a test"},
            {"role": "system", "content": "be brief"},
            {"role": "user", "content": "hello world"},
            {"role": "assistant", "content": "hi"},
            {"role": "user", "content": "again"},
        ],
        "max_tokens": 77,
        "temperature": 0.2,
        "top_p": 0.9,
        "stop": ["END", "STOP"],
        "user": "u-1",
        "vendor_flag": True,
    }


@pytest.mark.parametrize("kind", KINDS)
async def test_sdk_clients_ignore_base_url_and_credential_environment_variables(
    upstream: Upstream, kind: Kind, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in {
        "ANTHROPIC_BASE_URL": "http://elsewhere",
        "OPENAI_BASE_URL": "http://elsewhere/v1",
        "ANTHROPIC_API_KEY": "env-key",
        "OPENAI_API_KEY": "env-key",
        "OPENAI_ORG_ID": "org-from-env",
        "OPENAI_PROJECT_ID": "proj-from-env",
    }.items():
        monkeypatch.setenv(name, value)
    await upstream.provider(kind, "p").complete(HELLO, model="m")
    sent = upstream.sent[0]
    assert sent.url.startswith("http://chaos/p/")
    assert sent.headers["authorization"] == "Bearer k-default"
    assert not {"openai-organization", "openai-project"} & set(sent.headers)
    default = build_provider("d", ProviderSettings(kind=kind, api_key="k"))
    assert isinstance(default, AnthropicProvider | OpenAIProvider)
    assert "elsewhere" not in default.base_url
    await default.aclose()


async def test_a_provider_without_a_key_sends_a_placeholder_not_an_environment_key(
    upstream: Upstream, chaos: ChaosUpstream, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "env-key")
    await upstream.provider("openai", "local", api_key=None, location="local").complete(
        HELLO, model="llama"
    )
    assert [h.api_key for h in chaos.hits] == ["unused"]


# -- per-tenant keys ---------------------------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
async def test_each_tenant_key_gets_its_own_sdk_client_on_the_one_shared_pool(
    upstream: Upstream, chaos: ChaosUpstream, kind: Kind
) -> None:
    provider = upstream.provider(kind)
    await provider.complete(HELLO, model="m")
    await provider.complete(HELLO, model="m", api_key="k-tenant-a")
    await collect(provider.stream(HELLO, model="m", api_key="k-tenant-b"))
    await provider.complete(HELLO, model="m", api_key="k-tenant-a")
    default, a, b = provider.client(), provider.client("k-tenant-a"), provider.client("k-tenant-b")
    assert len({id(default), id(a), id(b)}) == 3
    assert provider.client("k-tenant-a") is a and provider.client("k-default") is default
    assert default._client is a._client is b._client is upstream.http
    keys = [h.api_key for h in chaos.hits]
    assert keys == ["k-default", "k-tenant-a", "k-tenant-b", "k-tenant-a"]


async def test_sdk_clients_per_key_are_bounded_oldest_first(
    upstream: Upstream, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("resilience.providers.base.MAX_CLIENTS", 2)
    provider = upstream.provider("openai")
    first, second = provider.client("k-1"), provider.client("k-2")
    third = provider.client("k-3")
    assert provider.client("k-2") is second and provider.client("k-3") is third
    assert provider.client("k-1") is not first  # rebuilt: it had been dropped


async def test_closing_a_provider_closes_only_a_pool_it_created(upstream: Upstream) -> None:
    shared = upstream.provider("openai")
    await shared.aclose()
    assert not upstream.http.is_closed
    own = OpenAIProvider("own", ProviderSettings(kind="openai", base_url="http://chaos/own/v1"))
    await own.aclose()
    assert own.http_client.is_closed


# -- failures pass through unchanged, without SDK retries ----------------------------------------

RETRYABLE = [Fault(status=503), Fault(status=429, retry_after="0"), Fault(status=500)]


@pytest.mark.parametrize("call", ["complete", "stream"])
@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("fault", RETRYABLE)
async def test_a_retryable_status_is_one_hit_and_the_sdks_own_error(
    upstream: Upstream, chaos: ChaosUpstream, kind: Kind, fault: Fault, call: str
) -> None:
    """Chat is sent without the SDK (its JSON body on the provider's pool): nothing
    retries it, and a status error is still the one the SDK makes."""
    chaos.add_fault(fault)
    provider = upstream.provider(kind)
    with pytest.raises((anthropic.APIStatusError, openai.APIStatusError)) as info:
        if call == "complete":
            await provider.complete(HELLO, model="m")
        else:
            _ = [chunk async for chunk in provider.stream(HELLO, model="m")]
    assert getattr(info.value, "status_code", None) == fault.status
    assert chaos.hit_count() == 1


@pytest.mark.parametrize("fault", RETRYABLE)
async def test_sdk_retries_are_off_so_a_retryable_status_is_one_hit(
    upstream: Upstream, chaos: ChaosUpstream, fault: Fault
) -> None:
    """Embeddings go through the SDK client, with its retries off."""
    chaos.add_fault(fault)
    with pytest.raises(openai.APIStatusError) as info:
        await upstream.provider("openai").embed(EmbeddingRequest(inputs=("a",)), model="e")
    assert info.value.status_code == fault.status
    assert chaos.hit_count() == 1
    assert upstream.sent[0].headers["x-stainless-retry-count"] == "0"


@pytest.mark.parametrize(
    ("kind", "expected"),
    [("anthropic", anthropic.AuthenticationError), ("openai", openai.AuthenticationError)],
)
async def test_sdk_exceptions_reach_the_caller_unchanged(
    upstream: Upstream, chaos: ChaosUpstream, kind: Kind, expected: type[Exception]
) -> None:
    chaos.add_fault(Fault(status=401))
    with pytest.raises(expected):
        await upstream.provider(kind).complete(HELLO, model="m")


@pytest.mark.parametrize("kind", KINDS)
async def test_a_stream_without_its_end_marker_raises_truncated_after_every_chunk(
    upstream: Upstream, chaos: ChaosUpstream, kind: Kind
) -> None:
    chaos.add_fault(Fault(no_end_marker=True))
    texts: list[str] = []
    with pytest.raises(StreamTruncatedError) as info:
        async for chunk in upstream.provider(kind, "cut").stream(HELLO, model="m"):
            assert chunk.finish_reason is None
            texts.append(chunk.text_delta)
    assert "".join(texts) == ANSWER
    assert info.value.provider == "cut"


@pytest.mark.parametrize(
    ("kind", "expected"), [("anthropic", anthropic.APIStatusError), ("openai", openai.APIError)]
)
async def test_an_error_event_mid_stream_raises_the_sdk_error_after_the_chunks_before_it(
    upstream: Upstream, chaos: ChaosUpstream, kind: Kind, expected: type[Exception]
) -> None:
    chaos.add_fault(Fault(error_event_after_chunks=2, error_type="overloaded_error"))
    texts: list[str] = []
    with pytest.raises(expected):
        async for chunk in upstream.provider(kind).stream(HELLO, model="m"):
            texts.append(chunk.text_delta)  # noqa: PERF401 - the chunks before the error count
    assert "".join(texts) == "ok: hello "


# -- closing a stream early --------------------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
async def test_closing_a_stalled_stream_early_returns_at_once(
    upstream: Upstream, chaos: ChaosUpstream, kind: Kind
) -> None:
    chaos.add_fault(Fault(stall_after_chunks=2))
    stream = upstream.provider(kind).stream(HELLO, model="m")
    assert (await anext(stream)).text_delta == "ok: "
    assert (await anext(stream)).text_delta == "hello "
    await asyncio.wait_for(stream.aclose(), timeout=5)  # the stall would last the read timeout
    assert chaos.hit_count() == 1


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("how", ["aclose", "cancel"])
async def test_stopping_a_stream_early_gives_the_connection_back_at_once(
    chaos: ChaosUpstream, kind: Kind, how: str
) -> None:
    """Over a socket and a pool of ONE connection: if stopping the stream did not release
    it, the next call would wait for the pool and fail with a timeout."""
    chaos.add_fault(Fault(stall_after_chunks=2), times=1)
    sent: list[Sent] = []
    async with (
        chaos.serve() as root,
        recording_client(sent, limits=httpx2.Limits(max_connections=1)) as http,
    ):
        provider = Upstream(root, http, sent).provider(kind, timeout_s=3.0)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            stream = provider.stream(HELLO, model="m")
            if how == "aclose":
                await anext(stream)
                await anext(stream)
                await stream.aclose()
            else:
                second = asyncio.Event()

                async def consume() -> None:
                    async for chunk in stream:
                        if chunk.text_delta == "hello ":
                            second.set()

                task = asyncio.create_task(consume())
                await second.wait()
                task.cancel()
                with pytest.raises(asyncio.CancelledError):
                    await task
            response = await provider.complete(HELLO, model="m")
            gc.collect()
        assert response.text == ANSWER
        assert chaos.hit_count() == 2
        assert [str(w.message) for w in caught] == []


@pytest.mark.parametrize("kind", KINDS)
async def test_a_finished_stream_leaves_its_connection_to_the_next_call(
    chaos: ChaosUpstream, kind: Kind
) -> None:
    """Anthropic streams are read to EOF after `message_stop` (briefly), so HTTP/1.1 can
    reuse the connection instead of paying a new handshake per stream."""
    ports: list[int] = []

    async def port(response: httpx2.Response) -> None:
        stream = response.extensions["network_stream"]
        ports.append(stream.get_extra_info("client_addr")[1])

    async with chaos.serve() as root, httpx2.AsyncClient(event_hooks={"response": [port]}) as http:
        provider = Upstream(root, http).provider(kind)
        for _ in range(3):
            chunks = await collect(provider.stream(HELLO, model="m"))
            assert chunks[-1].finish_reason == "stop"
    assert len(ports) == 3 and len(set(ports)) == 1


# -- the factory -------------------------------------------------------------------------------


async def test_build_provider_makes_each_kind_with_its_settings() -> None:
    http = httpx2.AsyncClient()
    claude_settings = ProviderSettings(
        kind="anthropic", api_key="k", base_url="http://x/c", timeout_s=7
    )
    claude: Provider = build_provider("c", claude_settings, http_client=http)
    local: Provider = build_provider(
        "l",
        ProviderSettings(
            kind="openai", base_url="http://x/l/v1", location="local", embeddings=False
        ),
    )
    assert isinstance(claude, AnthropicProvider) and isinstance(local, OpenAIProvider)
    assert (claude.kind, claude.location, claude.can_embed, claude.base_url) == (
        "anthropic",
        "cloud",
        False,
        "http://x/c",
    )
    assert claude.timeout.read == 7 and claude.timeout.connect == 5
    assert claude.client()._client is http
    assert (local.kind, local.location, local.can_embed) == ("openai", "local", False)
    default = build_provider("o", ProviderSettings(kind="openai"))
    assert default.can_embed is True
    for provider in (claude, local, default):
        await provider.aclose()
    await http.aclose()
