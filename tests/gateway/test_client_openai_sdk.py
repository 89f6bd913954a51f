"""The `openai` SDK as users run it, over a real socket: structured outputs, the model list,
embeddings with the SDK's default (base64) encoding, token arrays, `dimensions`, and streams
with usage, one of them served by an Anthropic fallback.

Each answer is held to what the chaos upstream answers the same request sent to it
directly (`real_clients.Served.direct_openai`): every field kept, `id` and `created` aside.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from openai import AsyncOpenAI
from openai.types.chat import ChatCompletionChunk, ChatCompletionMessageParam
from pydantic import BaseModel

from resilience.chaos import Fault
from tests.gateway.real_clients import FALLBACK_ROUTE, Served, served, without
from tests.gateway.schemas import assert_valid


class Forecast(BaseModel):
    city: str
    high_c: int
    windy: bool
    hazards: list[str]


PROMPT = "The forecast for Oslo, as JSON"
ASK: list[ChatCompletionMessageParam] = [{"role": "user", "content": PROMPT}]


@pytest.fixture
async def gateway(tmp_path: Path) -> AsyncIterator[Served]:
    async with served(tmp_path) as running:
        yield running


async def test_parse_with_a_pydantic_response_format_returns_the_parsed_object(
    gateway: Served,
) -> None:
    raw = await gateway.openai().chat.completions.with_raw_response.parse(
        model="solo", messages=ASK, response_format=Forecast
    )
    direct = await gateway.direct_openai().chat.completions.with_raw_response.parse(
        model="gpt-4.1", messages=ASK, response_format=Forecast
    )

    parsed = raw.parse().choices[0].message.parsed
    assert isinstance(parsed, Forecast)
    assert parsed == direct.parse().choices[0].message.parsed
    assert gateway.body_sent("primary") == gateway.body_sent("direct")
    assert gateway.body_sent("primary")["response_format"]["type"] == "json_schema"
    answer = raw.http_response.json()
    assert without(answer) == without(direct.http_response.json())
    assert answer["system_fingerprint"] and answer["usage"]["prompt_tokens_details"]


async def test_models_list_names_the_routes_and_targets_of_the_tenant(gateway: Served) -> None:
    client = gateway.openai()
    ids = [m.id async for m in client.models.list()]
    assert {"solo", "embed", FALLBACK_ROUTE, "primary:gpt-4.1", "claude:claude-sonnet-4-6"} <= set(
        ids
    )
    raw = await client.models.with_raw_response.list()
    assert_valid("ListModelsResponse", raw.http_response.json())


async def test_embeddings_in_the_sdks_default_base64_decode_to_the_upstreams_floats(
    gateway: Served,
) -> None:
    texts = ["hello", "a second text"]
    raw = await gateway.openai().embeddings.with_raw_response.create(model="embed", input=texts)
    direct = await gateway.direct_openai().embeddings.create(
        model="text-embedding-3-small", input=texts, encoding_format="float"
    )

    # the SDK asks for base64 when the caller names no encoding, and decodes what comes back
    assert gateway.body_sent("primary") == {
        "model": "text-embedding-3-small",
        "input": texts,
        "encoding_format": "base64",
    }
    answer = raw.parse()
    assert [e.embedding for e in answer.data] == [e.embedding for e in direct.data]
    assert answer.to_dict() == direct.to_dict()
    # base64 on the wire too: a client that decodes whatever comes back (the openai Node
    # SDK) would turn a float list into garbage
    assert all(isinstance(e["embedding"], str) for e in raw.http_response.json()["data"])


@pytest.mark.parametrize(
    "tokens",
    [[9906, 1917], [[9906, 1917], [15339, 11, 1917, 0]]],
    ids=["one-token-array", "token-arrays"],
)
async def test_token_array_input_embeds_as_the_upstream_does(
    gateway: Served, tokens: list[int] | list[list[int]]
) -> None:
    answer = await gateway.openai().embeddings.create(
        model="embed", input=tokens, encoding_format="float"
    )
    direct = await gateway.direct_openai().embeddings.create(
        model="text-embedding-3-small", input=tokens, encoding_format="float"
    )

    assert gateway.body_sent("primary")["input"] == tokens
    assert len(answer.data) == (1 if isinstance(tokens[0], int) else len(tokens))
    assert answer.to_dict() == direct.to_dict()


async def test_dimensions_shorten_the_vectors_as_the_upstream_does(gateway: Served) -> None:
    answer = await gateway.openai().embeddings.create(model="embed", input="hello", dimensions=4)
    direct = await gateway.direct_openai().embeddings.create(
        model="text-embedding-3-small", input="hello", dimensions=4, encoding_format="float"
    )

    assert gateway.body_sent("primary")["dimensions"] == 4
    assert [len(e.embedding) for e in answer.data] == [4]
    assert [e.embedding for e in answer.data] == [e.embedding for e in direct.data]
    assert answer.to_dict() == direct.to_dict()


async def streamed(client: AsyncOpenAI, model: str) -> list[ChatCompletionChunk]:
    """A stream with `include_usage`, read to its end."""
    stream = await client.chat.completions.create(
        model=model, messages=ASK, stream=True, stream_options={"include_usage": True}
    )
    return [chunk async for chunk in stream]


async def test_a_stream_with_include_usage_ends_with_the_usage_chunk(gateway: Served) -> None:
    chunks = await streamed(gateway.openai(), "solo")
    direct = await streamed(gateway.direct_openai(), "gpt-4.1")

    *content, last = chunks
    assert last.choices == [] and last.usage is not None
    assert last.usage.total_tokens == last.usage.prompt_tokens + last.usage.completion_tokens
    assert all(c.usage is None for c in content)
    assert gateway.body_sent("primary") == gateway.body_sent("direct")
    assert [without(c.to_dict()) for c in chunks] == [without(c.to_dict()) for c in direct]


async def test_a_stream_served_by_an_anthropic_fallback_ends_with_the_same_usage_chunk(
    gateway: Served,
) -> None:
    gateway.chaos.add_fault(Fault(status=500), upstream="primary")
    chunks = await streamed(gateway.openai(), FALLBACK_ROUTE)
    direct = await gateway.direct_anthropic().messages.create(
        model="claude-sonnet-4-6", max_tokens=1024, messages=[{"role": "user", "content": PROMPT}]
    )

    (served_by,) = gateway.hits("claude")
    assert served_by.stream
    *content, last = chunks
    assert last.choices == [] and last.usage is not None
    assert all(c.usage is None for c in content)
    assert all(c.object == "chat.completion.chunk" for c in chunks)
    assert (last.usage.prompt_tokens, last.usage.completion_tokens) == (
        direct.usage.input_tokens,
        direct.usage.output_tokens,
    )
    assert last.usage.total_tokens == last.usage.prompt_tokens + last.usage.completion_tokens
    text = "".join(c.choices[0].delta.content or "" for c in content if c.choices)
    assert [text] == [b.text for b in direct.content if b.type == "text"]
