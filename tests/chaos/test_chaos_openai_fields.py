"""The OpenAI fields real clients send, answered so those clients parse the answer: structured
outputs, forced tool calls, logprobs, usage details, service tier, embeddings' options."""

from __future__ import annotations

import base64
import json
import struct
from typing import Any

import jsonschema_rs
import openai
import pytest
from openai.lib._pydantic import to_strict_json_schema
from pydantic import BaseModel

from resilience.chaos import Fault
from resilience.chaos.schema_instance import instance
from tests.gateway.schemas import assert_valid
from tests.support.chaos import ANSWER, ANSWER_WORDS, MESSAGES, Upstream

CHAT = "http://chaos/u/v1/chat/completions"


class Step(BaseModel):
    explanation: str
    output: int


class Reasoning(BaseModel):
    steps: list[Step]
    final_answer: str


class GetWeather(BaseModel):
    city: str
    unit: str = "celsius"


WEATHER_TOOL: Any = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "parameters": {
            "type": "object",
            "properties": {
                "city": {"type": "string"},
                "days": {"type": "integer", "minimum": 1},
                "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
            },
            "required": ["city", "days"],
        },
    },
}
TIME_TOOL: Any = {"type": "function", "function": {"name": "get_time"}}


async def sse_chunks(up: Upstream, body: dict[str, Any]) -> list[dict[str, Any]]:
    """The raw `chat.completion.chunk` objects of a stream, `[DONE]` checked and left off."""
    response = await up.http.post(CHAT, json={"model": "m", "stream": True, **body})
    lines = [line for line in response.text.split("\n") if line]
    assert lines[-1] == "data: [DONE]"
    return [json.loads(line.removeprefix("data: ")) for line in lines[:-1]]


# -- structured outputs ---------------------------------------------------------------------


async def test_parse_with_a_pydantic_model_gets_a_valid_parsed_instance(inproc: Upstream) -> None:
    completion = await inproc.openai().chat.completions.parse(
        model="m", messages=MESSAGES, response_format=Reasoning
    )
    [choice] = completion.choices
    assert choice.finish_reason == "stop" and choice.message.refusal is None
    assert choice.message.parsed == Reasoning.model_validate(
        instance(to_strict_json_schema(Reasoning))
    )
    assert choice.message.parsed == Reasoning(
        steps=[Step(explanation="ok", output=0)], final_answer="ok"
    )
    body = inproc.chaos.hits[-1].body
    assert body is not None and body["response_format"]["type"] == "json_schema"


async def test_the_stream_helper_parses_a_streamed_structured_answer(inproc: Upstream) -> None:
    async with inproc.openai().chat.completions.stream(
        model="m", messages=MESSAGES, response_format=Reasoning
    ) as stream:
        deltas = [e.delta async for e in stream if e.type == "content.delta"]
        final = await stream.get_final_completion()
    assert len(deltas) > 1  # the JSON text comes in several chunks
    assert final.choices[0].message.parsed == Reasoning(
        steps=[Step(explanation="ok", output=0)], final_answer="ok"
    )


async def test_json_object_format_answers_a_json_object(inproc: Upstream) -> None:
    completion = await inproc.openai().chat.completions.create(
        model="m", messages=MESSAGES, response_format={"type": "json_object"}
    )
    content = completion.choices[0].message.content
    assert content is not None and json.loads(content) == {"answer": ANSWER}


async def test_json_mode_answers_an_instance_of_a_schema_written_in_the_prompt(
    inproc: Upstream,
) -> None:
    """instructor's `Mode.JSON` writes the schema into a system message: that is all JSON
    mode gets, and the client parses the answer with it."""
    schema = json.dumps(Step.model_json_schema())
    messages: Any = [
        {"role": "system", "content": f"Answer {{in}} JSON matching this schema: {schema}."},
        *MESSAGES,
    ]
    completion = await inproc.openai().chat.completions.create(
        model="m", messages=messages, response_format={"type": "json_object"}
    )
    content = completion.choices[0].message.content
    assert content is not None and json.loads(content) == {"explanation": "ok", "output": 0}


async def test_text_format_and_no_format_answer_the_plain_text(inproc: Upstream) -> None:
    sdk = inproc.openai()
    text = await sdk.chat.completions.create(
        model="m", messages=MESSAGES, response_format={"type": "text"}
    )
    plain = await sdk.chat.completions.create(model="m", messages=MESSAGES)
    assert text.choices[0].message.content == plain.choices[0].message.content == ANSWER


# -- forced tool calls ------------------------------------------------------------------------


async def test_a_function_forced_by_name_is_called_with_valid_arguments(inproc: Upstream) -> None:
    completion = await inproc.openai().chat.completions.create(
        model="m",
        messages=MESSAGES,
        tools=[TIME_TOOL, WEATHER_TOOL],
        tool_choice={"type": "function", "function": {"name": "get_weather"}},
    )
    [choice] = completion.choices
    assert choice.finish_reason == "tool_calls" and choice.message.content is None
    [call] = choice.message.tool_calls or []
    assert call.type == "function" and call.id.startswith("call_")
    assert call.function.name == "get_weather"
    arguments = json.loads(call.function.arguments)
    assert arguments == {"city": "ok", "days": 1, "unit": "celsius"}
    jsonschema_rs.validate(WEATHER_TOOL["function"]["parameters"], arguments)


async def test_required_calls_the_first_tool_and_a_tool_without_parameters_gets_none(
    inproc: Upstream,
) -> None:
    completion = await inproc.openai().chat.completions.create(
        model="m", messages=MESSAGES, tools=[TIME_TOOL, WEATHER_TOOL], tool_choice="required"
    )
    [call] = completion.choices[0].message.tool_calls or []
    assert (call.function.name, call.function.arguments) == ("get_time", "{}")  # type: ignore[union-attr]


@pytest.mark.parametrize("tool_choice", [None, "auto", "none"])
async def test_a_choice_that_forces_nothing_gets_the_text_answer(
    inproc: Upstream, tool_choice: str | None
) -> None:
    choice: Any = {} if tool_choice is None else {"tool_choice": tool_choice}
    completion = await inproc.openai().chat.completions.create(
        model="m", messages=MESSAGES, tools=[WEATHER_TOOL], **choice
    )
    assert completion.choices[0].message.content == ANSWER
    assert completion.choices[0].finish_reason == "stop"


async def test_parse_turns_a_forced_pydantic_tools_arguments_into_the_model(
    inproc: Upstream,
) -> None:
    completion = await inproc.openai().chat.completions.parse(
        model="m",
        messages=MESSAGES,
        tools=[openai.pydantic_function_tool(GetWeather)],
        tool_choice={"type": "function", "function": {"name": "GetWeather"}},
    )
    [call] = completion.choices[0].message.tool_calls or []
    assert call.function.parsed_arguments == GetWeather(city="ok", unit="ok")


async def test_a_streamed_tool_call_comes_as_openai_streams_it(inproc: Upstream) -> None:
    chunks = await sse_chunks(
        inproc, {"messages": MESSAGES, "tools": [WEATHER_TOOL], "tool_choice": "required"}
    )
    first, *arguments, last = [c["choices"][0] for c in chunks]
    [opening] = first["delta"]["tool_calls"]
    assert first["delta"]["role"] == "assistant" and first["delta"]["content"] is None
    assert opening["id"].startswith("call_") and opening["type"] == "function"
    assert opening["function"] == {"name": "get_weather", "arguments": ""}
    assert len(arguments) >= 2
    pieces = [a["delta"]["tool_calls"][0]["function"]["arguments"] for a in arguments]
    assert json.loads("".join(pieces)) == {"city": "ok", "days": 1, "unit": "celsius"}
    assert last == {"index": 0, "delta": {}, "finish_reason": "tool_calls", "logprobs": None}


async def test_the_stream_helper_parses_a_streamed_tool_call(inproc: Upstream) -> None:
    async with inproc.openai().chat.completions.stream(
        model="m",
        messages=MESSAGES,
        tools=[openai.pydantic_function_tool(GetWeather)],
        tool_choice="required",
    ) as stream:
        done = [e async for e in stream if e.type == "tool_calls.function.arguments.done"]
        final = await stream.get_final_completion()
    assert [e.parsed_arguments for e in done] == [GetWeather(city="ok", unit="ok")]
    assert final.choices[0].finish_reason == "tool_calls"
    [call] = final.choices[0].message.tool_calls or []
    assert call.function.parsed_arguments == GetWeather(city="ok", unit="ok")


async def test_a_mid_stream_fault_counts_argument_chunks(inproc: Upstream) -> None:
    inproc.chaos.add_fault(Fault(error_event_after_chunks=1))
    response = await inproc.http.post(
        CHAT,
        json={"model": "m", "stream": True, "messages": MESSAGES, "tools": [WEATHER_TOOL],
              "tool_choice": "required"},
    )  # fmt: skip
    events = [e for e in response.text.split("\n\n") if e]
    assert len(events) == 3  # the opening chunk, one argument chunk, the error
    assert json.loads(events[-1].removeprefix("data: "))["error"]["type"] == "server_error"


# -- usage, fingerprint, service tier, logprobs ----------------------------------------------


async def test_usage_carries_the_details_openai_sends(inproc: Upstream) -> None:
    response = await inproc.http.post(CHAT, json={"model": "m", "messages": MESSAGES})
    answer = response.json()
    assert answer["usage"] == {
        "prompt_tokens": 3,
        "completion_tokens": 7,
        "total_tokens": 10,
        "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
        "completion_tokens_details": {
            "reasoning_tokens": 0,
            "audio_tokens": 0,
            "accepted_prediction_tokens": 0,
            "rejected_prediction_tokens": 0,
        },
    }
    assert answer["system_fingerprint"].startswith("fp_") and "service_tier" not in answer
    completion = await inproc.openai().chat.completions.create(model="m", messages=MESSAGES)
    assert completion.usage is not None
    assert completion.usage.prompt_tokens_details is not None
    assert completion.usage.prompt_tokens_details.cached_tokens == 0
    assert completion.usage.completion_tokens_details is not None
    assert completion.usage.completion_tokens_details.reasoning_tokens == 0


async def test_the_service_tier_sent_is_echoed_in_answers_and_chunks(inproc: Upstream) -> None:
    completion = await inproc.openai().chat.completions.create(
        model="m", messages=MESSAGES, service_tier="flex"
    )
    assert completion.service_tier == "flex"
    chunks = await sse_chunks(inproc, {"messages": MESSAGES, "service_tier": "priority"})
    assert {c["service_tier"] for c in chunks} == {"priority"}
    assert len({c["system_fingerprint"] for c in chunks}) == 1


async def test_logprobs_list_every_token_with_the_asked_alternatives(inproc: Upstream) -> None:
    completion = await inproc.openai().chat.completions.create(
        model="m", messages=MESSAGES, logprobs=True, top_logprobs=3
    )
    logprobs = completion.choices[0].logprobs
    assert logprobs is not None and logprobs.content is not None and logprobs.refusal is None
    assert [t.token for t in logprobs.content] == ANSWER_WORDS
    for token in logprobs.content:
        assert token.bytes == list(token.token.encode()) and token.logprob < 0
        assert len(token.top_logprobs) == 3 and token.top_logprobs[0].token == token.token
    without = await inproc.openai().chat.completions.create(
        model="m", messages=MESSAGES, logprobs=True
    )
    assert without.choices[0].logprobs is not None
    assert all(t.top_logprobs == [] for t in without.choices[0].logprobs.content or [])
    plain = await inproc.openai().chat.completions.create(model="m", messages=MESSAGES)
    assert plain.choices[0].logprobs is None


async def test_streamed_logprobs_come_with_their_chunk(inproc: Upstream) -> None:
    chunks = await sse_chunks(inproc, {"messages": MESSAGES, "logprobs": True, "top_logprobs": 2})
    content = [c["choices"][0] for c in chunks[1:-1]]
    assert [c["delta"]["content"] for c in content] == ANSWER_WORDS
    for choice in content:
        [token] = choice["logprobs"]["content"]
        assert token["token"] == choice["delta"]["content"] and len(token["top_logprobs"]) == 2


async def test_the_usage_chunk_is_openais_and_every_other_chunk_has_usage_null(
    inproc: Upstream,
) -> None:
    chunks = await sse_chunks(
        inproc, {"messages": MESSAGES, "stream_options": {"include_usage": True}}
    )
    *others, last = chunks
    assert all("usage" in c and c["usage"] is None and c["choices"] for c in others)
    assert last["choices"] == [] and last["usage"]["total_tokens"] == 10
    assert last["usage"]["prompt_tokens_details"] == {"cached_tokens": 0, "audio_tokens": 0}
    assert last["usage"]["completion_tokens_details"]["reasoning_tokens"] == 0
    assert {c["id"] for c in chunks} == {last["id"]}


# -- the official schemas ---------------------------------------------------------------------

BODIES: dict[str, dict[str, Any]] = {
    "plain": {},
    "json_schema": {
        "response_format": {
            "type": "json_schema",
            "json_schema": {
                "name": "r",
                "schema": to_strict_json_schema(Reasoning),
                "strict": True,
            },
        }
    },
    "json_object": {"response_format": {"type": "json_object"}},
    "forced tool": {"tools": [WEATHER_TOOL], "tool_choice": "required"},
    "logprobs": {"logprobs": True, "top_logprobs": 2, "service_tier": "default"},
}


@pytest.mark.parametrize("extra", BODIES.values(), ids=BODIES.keys())
async def test_answers_and_chunks_match_the_official_openai_schemas(
    inproc: Upstream, extra: dict[str, Any]
) -> None:
    body = {"model": "m", "messages": MESSAGES, **extra}
    response = await inproc.http.post(CHAT, json=body)
    assert_valid("CreateChatCompletionResponse", response.json())
    for chunk in await sse_chunks(inproc, {**body, "stream_options": {"include_usage": True}}):
        assert_valid("CreateChatCompletionStreamResponse", chunk)


async def test_the_model_list_is_openais_or_anthropics_by_the_request(inproc: Upstream) -> None:
    models = await inproc.openai().models.list()
    assert [m.id for m in models.data] == ["chaos-model", "chaos-embedding"]
    response = await inproc.http.get("http://chaos/u/v1/models")
    assert_valid("ListModelsResponse", response.json())
    claude = await inproc.anthropic().models.list()
    assert [m.id for m in claude.data] == ["chaos-model", "chaos-embedding"]
    assert inproc.chaos.hits == []  # not recorded, never faulted


# -- embeddings -------------------------------------------------------------------------------


async def test_base64_embeddings_decode_to_the_float_vectors(inproc: Upstream) -> None:
    sdk = inproc.openai()
    floats = await sdk.embeddings.create(
        model="e", input=["alpha", "beta"], encoding_format="float"
    )
    encoded = await sdk.embeddings.create(
        model="e", input=["alpha", "beta"], encoding_format="base64"
    )
    decoded: list[list[float]] = []
    for item in encoded.data:
        assert isinstance(item.embedding, str)  # asked explicitly, the SDK leaves it encoded
        raw = base64.b64decode(item.embedding)
        decoded.append(list(struct.unpack(f"<{len(raw) // 4}f", raw)))
    assert decoded == [d.embedding for d in floats.data]


@pytest.mark.parametrize(
    ("given", "vectors", "tokens"),
    [
        ("one two three", 1, 3),
        (["one two", "three"], 2, 3),
        ([15339, 1917, 0], 1, 3),
        ([[15339, 1917], [0]], 2, 3),
    ],
    ids=["string", "strings", "token array", "token arrays"],
)
async def test_every_input_shape_gets_one_vector_each_and_counts_its_tokens(
    inproc: Upstream, given: Any, vectors: int, tokens: int
) -> None:
    answer = await inproc.openai().embeddings.create(model="e", input=given)
    assert [d.index for d in answer.data] == list(range(vectors))
    assert all(len(d.embedding) == 8 for d in answer.data)
    assert answer.usage.prompt_tokens == answer.usage.total_tokens == tokens
    response = await inproc.http.post(
        "http://chaos/u/v1/embeddings", json={"model": "e", "input": given}
    )
    assert_valid("CreateEmbeddingResponse", response.json())


async def test_a_token_array_is_one_input_not_one_per_token(inproc: Upstream) -> None:
    sdk = inproc.openai()
    array = await sdk.embeddings.create(model="e", input=[1, 2])
    nested = await sdk.embeddings.create(model="e", input=[[1, 2], [1, 2]])
    assert [d.embedding for d in nested.data] == [array.data[0].embedding] * 2


async def test_dimensions_sets_the_vector_length(inproc: Upstream) -> None:
    sdk = inproc.openai()
    default = await sdk.embeddings.create(model="e", input="alpha")
    long = await sdk.embeddings.create(model="e", input="alpha", dimensions=40)
    short = await sdk.embeddings.create(model="e", input="alpha", dimensions=3)
    assert len(long.data[0].embedding) == 40 and len(short.data[0].embedding) == 3
    assert long.data[0].embedding[:8] == default.data[0].embedding
    assert short.data[0].embedding == default.data[0].embedding[:3]
    assert len(set(long.data[0].embedding)) > 20  # not the same 32 bytes over again
