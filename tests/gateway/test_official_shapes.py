"""Every answer and stream chunk of the OpenAI endpoints validates against the official
component schema (tests/gateway/specs/, with its provenance): representative requests
(plain, tools, streamed, embeddings, the model list) and every error status the gateway
gives (400, 401, 404, 413, 429, 503)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, cast

import openai
import pytest
from openai.types.chat import ChatCompletionMessageParam, ChatCompletionUserMessageParam

from resilience.chaos import Fault
from resilience.formats.wire import OpenAIStreamWriter, chat_response_to_openai, openai_error
from resilience.models import ChatChunk, ChatResponse, ToolCallDelta, Usage
from tests.gateway.configured import auth, openai_sdk, serve
from tests.gateway.schemas import assert_valid, problems
from tests.support.gateway import Running

HELLO = [{"role": "user", "content": "hello gateway"}]
SDK_HELLO: list[ChatCompletionUserMessageParam] = [{"role": "user", "content": "hello gateway"}]
TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "the weather in a city",
            "parameters": {
                "type": "object",
                "properties": {"city": {"type": "string"}},
                "required": ["city"],
            },
        },
    }
]
REQUESTS: dict[str, dict[str, Any]] = {
    "plain": {"model": "chat", "messages": HELLO},
    "tools": {"model": "chat", "messages": HELLO, "tools": TOOLS, "tool_choice": "auto"},
    "anthropic_fallback": {"model": "cloud", "messages": HELLO, "max_tokens": 20},
    "system_and_options": {
        "model": "solo",
        "messages": [{"role": "system", "content": "be brief"}, *HELLO],
        "temperature": 0.2,
        "max_completion_tokens": 30,
        "stop": ["\n\n"],
        "user": "user-1",
    },
}


@pytest.fixture
async def running(tmp_path: Path) -> AsyncIterator[Running]:
    async with serve(tmp_path) as (running, _):
        yield running


def frames(body: str) -> list[Any]:
    """The JSON of each `data:` line of an SSE body, `[DONE]` left out."""
    return [
        json.loads(line.removeprefix("data: "))
        for line in body.splitlines()
        if line.startswith("data: ") and line != "data: [DONE]"
    ]


def test_the_schemas_are_strict_enough_to_catch_a_missing_key() -> None:
    """The validator is not vacuous: the gateway's old bodies fail it."""
    assert problems("ErrorResponse", {"error": {"message": "m", "type": "t", "code": None}})
    message = {"role": "assistant", "content": "hi"}
    choice = {"index": 0, "message": message, "finish_reason": "stop", "logprobs": None}
    old = {"id": "c", "object": "chat.completion", "created": 1, "model": "m", "choices": [choice]}
    assert problems("CreateChatCompletionResponse", old) == [
        'choices/0/message: "refusal" is a required property'
    ]


@pytest.mark.parametrize("name", REQUESTS)
async def test_chat_completions_validate(running: Running, name: str) -> None:
    response = await running.http.post(
        "/v1/chat/completions", headers=auth("acme"), json=REQUESTS[name]
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert_valid("CreateChatCompletionResponse", body)
    assert body["choices"][0]["message"]["refusal"] is None


@pytest.mark.parametrize("name", REQUESTS)
async def test_every_stream_chunk_validates(running: Running, name: str) -> None:
    request = {**REQUESTS[name], "stream": True}
    response = await running.http.post("/v1/chat/completions", headers=auth("acme"), json=request)
    assert response.status_code == 200
    chunks = frames(response.text)
    assert len(chunks) >= 3 and response.text.endswith("data: [DONE]\n\n")
    for chunk in chunks:
        assert_valid("CreateChatCompletionStreamResponse", chunk)


async def test_a_stream_cut_after_output_began_ends_with_a_valid_error_frame(
    running: Running,
) -> None:
    running.chaos.add_fault(Fault(drop_after_chunks=2), upstream="primary")
    request = {"model": "solo", "messages": HELLO, "stream": True}
    response = await running.http.post("/v1/chat/completions", headers=auth("acme"), json=request)
    *chunks, last = frames(response.text)
    for chunk in chunks:
        assert_valid("CreateChatCompletionStreamResponse", chunk)
    assert_valid("ErrorResponse", last)
    assert last["error"]["code"] == "stream_interrupted"


@pytest.mark.parametrize("model", ["embed", "primary:text-embedding-3-small"])
async def test_embeddings_validate(running: Running, model: str) -> None:
    for given in ("one text", ["a", "b", "c"]):
        response = await running.http.post(
            "/v1/embeddings", headers=auth("acme"), json={"model": model, "input": given}
        )
        assert response.status_code == 200
        assert_valid("CreateEmbeddingResponse", response.json())


async def test_the_model_list_and_entries_validate(running: Running) -> None:
    listed = (await running.http.get("/v1/models", headers=auth("acme"))).json()
    assert_valid("ListModelsResponse", listed)
    for entry in listed["data"]:
        one = await running.http.get(f"/v1/models/{entry['id']}", headers=auth("acme"))
        assert one.json() == entry
        assert_valid("Model", one.json())


ERRORS: list[tuple[str, str, dict[str, Any], int, str | None]] = [
    ("bad_role", "/v1/chat/completions", {"model": "chat", "messages": [{"role": "x"}]}, 400, ""),
    # the upstream refuses it (the body goes on as sent): its message names the field
    ("bad_input", "/v1/embeddings", {"model": "embed", "input": 7}, 400, None),
    ("unknown_route", "/v1/chat/completions", {"model": "nope", "messages": HELLO}, 404, "model"),
    ("unknown_embed", "/v1/embeddings", {"model": "nope", "input": "a"}, 404, "model"),
]


@pytest.mark.parametrize(("name", "path", "body", "status", "param"), ERRORS)
async def test_caller_errors_validate_and_name_the_field(
    running: Running, name: str, path: str, body: dict[str, Any], status: int, param: str | None
) -> None:
    response = await running.http.post(path, headers=auth("acme"), json=body)
    assert response.status_code == status
    assert_valid("ErrorResponse", response.json())
    expected = "messages[0].role" if param == "" else param
    assert response.json()["error"]["param"] == expected
    relayed = name == "bad_input"  # the upstream's refusal, after the walk
    assert response.headers.get("x-should-retry") == ("false" if relayed else None)


@pytest.mark.parametrize("path", ["/v1/chat/completions", "/v1/embeddings", "/v1/models"])
async def test_the_tenancy_refusals_validate(running: Running, path: str) -> None:
    for headers in ({}, {"authorization": "Bearer wrong"}):
        response = await running.http.request(
            "GET" if path == "/v1/models" else "POST", path, headers=headers, json={}
        )
        assert response.status_code == 401
        assert_valid("ErrorResponse", response.json())
        assert response.json()["error"]["param"] is None


async def test_every_target_down_is_a_valid_503_that_tells_sdks_not_to_retry(
    running: Running,
) -> None:
    running.chaos.add_fault(Fault(status=503), upstream="primary")
    running.chaos.add_fault(Fault(status=529), upstream="claude")
    for path, body in [
        ("/v1/chat/completions", REQUESTS["plain"]),
        ("/v1/chat/completions", {**REQUESTS["plain"], "stream": True}),
        ("/v1/embeddings", {"model": "embed", "input": "a"}),
    ]:
        response = await running.http.post(path, headers=auth("acme"), json=body)
        assert response.status_code == 503, response.text
        assert_valid("ErrorResponse", response.json())
        assert response.json()["error"]["code"] == "all_targets_failed"
        assert int(response.headers["retry-after"]) >= 1
        assert response.headers["x-should-retry"] == "false"


async def test_a_tenant_over_its_own_rpm_gets_a_valid_429(running: Running) -> None:
    first = await running.http.post(
        "/v1/chat/completions", headers=auth("globex"), json={"model": "solo", "messages": HELLO}
    )
    assert first.status_code == 200
    for path, body in [
        ("/v1/chat/completions", {"model": "solo", "messages": HELLO}),
        ("/v1/embeddings", {"model": "embed", "input": "a"}),
    ]:
        response = await running.http.post(path, headers=auth("globex"), json=body)
        assert response.status_code == 429, response.text
        assert_valid("ErrorResponse", response.json())


async def test_a_body_over_the_limit_is_a_valid_413(tmp_path: Path) -> None:
    async with serve(tmp_path, server={"max_body_bytes": 2048}) as (running, _):
        big = {"model": "chat", "messages": [{"role": "user", "content": "x" * 4096}]}
        response = await running.http.post("/v1/chat/completions", headers=auth("acme"), json=big)
        assert response.status_code == 413
        assert_valid("ErrorResponse", response.json())


def test_rendered_tool_calls_refusals_and_usage_validate() -> None:
    """What the chaos upstream never sends (tool calls, a refusal), rendered directly."""
    calls = ChatResponse(
        text="",
        content=(
            {"type": "tool_use", "id": "call_1", "name": "get_weather", "input": {"city": "Oslo"}},
            {"type": "tool_use", "id": "call_2", "name": "get_weather", "input": {}},
        ),
        finish_reason="tool_calls",
        raw_finish_reason="tool_use",
        usage=Usage(input_tokens=12, output_tokens=7),
        provider="claude",
        model="claude-sonnet-4-6",
    )
    body = chat_response_to_openai(calls, model="chat")
    assert_valid("CreateChatCompletionResponse", body)
    assert body["choices"][0]["message"]["content"] is None
    refused = ChatResponse(
        text="",
        content=({"type": "refusal", "refusal": "I can't help with that."},),
        finish_reason="content_filter",
        raw_finish_reason="refusal",
        usage=Usage(),
        provider="primary",
        model="gpt-4.1",
    )
    body = chat_response_to_openai(refused, model="chat")
    assert_valid("CreateChatCompletionResponse", body)
    assert body["choices"][0]["message"]["refusal"] == "I can't help with that."
    writer = OpenAIStreamWriter("chat")
    stream = writer.start() + writer.chunk(
        ChatChunk(tool_calls=(ToolCallDelta(index=0, id="call_1", name="get_weather"),))
    )
    stream += writer.chunk(ChatChunk(tool_calls=(ToolCallDelta(index=0, arguments='{"c'),)))
    stream += writer.chunk(ChatChunk(finish_reason="tool_calls", usage=Usage(input_tokens=3)))
    stream += writer.error("upstream went away", "stream_interrupted") + writer.end()
    *chunks, error = frames(stream.decode())
    assert len(chunks) == 4
    for chunk in chunks:
        assert_valid("CreateChatCompletionStreamResponse", chunk)
    assert_valid("ErrorResponse", error)
    assert_valid("ErrorResponse", openai_error("m", type_="t", code=None, param="messages"))


async def test_the_openai_sdk_parses_what_the_schemas_accept(running: Running) -> None:
    """The same bodies, read by the official client as a user would."""
    client = openai_sdk(running, "acme")
    completion = await client.chat.completions.create(model="chat", messages=SDK_HELLO)
    assert completion.choices[0].message.refusal is None
    robot = cast(list[ChatCompletionMessageParam], [{"role": "robot", "content": "x"}])
    with pytest.raises(openai.BadRequestError) as info:
        await client.chat.completions.create(model="chat", messages=robot)
    assert info.value.param == "messages[0].role"
    assert info.value.code == "invalid_body"
