"""Tool calls and stop reasons across both kinds, through the real SDKs.

The chaos upstream answers text only, so these use a canned upstream that
answers with fixed bodies written here by hand in each provider's format.
"""

from __future__ import annotations

import json
from typing import Any

import anthropic
import pytest

from resilience.formats.wire import (
    AnthropicStreamWriter,
    chat_request_from_anthropic,
    chat_request_from_openai,
)
from resilience.models import ChatChunk, ChatRequest, Message, ToolCallDelta, Usage
from resilience.providers.anthropic import to_params as anthropic_params
from resilience.providers.openai import to_params as openai_params
from tests.support.providers import Kind, canned, json_answer, sse_answer

WEATHER = {"type": "object", "properties": {"city": {"type": "string"}}}
ASK = ChatRequest(messages=(Message(role="user", content="weather in Paris?"),))


def frame(data: Any, event: str | None = None) -> bytes:
    head = f"event: {event}\n" if event else ""
    return f"{head}data: {json.dumps(data)}\n\n".encode()


def anthropic_message(content: list[dict[str, Any]], stop_reason: str | None) -> dict[str, Any]:
    return {
        "id": "msg_1",
        "type": "message",
        "role": "assistant",
        "model": "claude-x",
        "content": content,
        "stop_reason": stop_reason,
        "stop_sequence": None,
        "usage": {"input_tokens": 11, "output_tokens": 7},
    }


def openai_completion(message: dict[str, Any], finish_reason: str) -> dict[str, Any]:
    return {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "created": 1,
        "model": "gpt-x",
        "choices": [{"index": 0, "message": message, "finish_reason": finish_reason}],
        "usage": {"prompt_tokens": 11, "completion_tokens": 7, "total_tokens": 18},
    }


def function_call(call_id: str, name: str, arguments: str) -> dict[str, Any]:
    return {"id": call_id, "type": "function", "function": {"name": name, "arguments": arguments}}


def tool_use(call_id: str, name: str, input_: dict[str, Any]) -> dict[str, Any]:
    return {"type": "tool_use", "id": call_id, "name": name, "input": input_}


# -- complete() --------------------------------------------------------------------------------


async def test_an_anthropic_tool_use_answer_is_normalised() -> None:
    content: list[dict[str, Any]] = [
        {"type": "text", "text": "Checking.", "citations": None},
        tool_use("tu_1", "weather", {"city": "Paris"}),
    ]
    upstream = canned(json_answer(anthropic_message(content, "tool_use")))
    async with upstream.http:
        response = await upstream.provider("anthropic").complete(ASK, model="claude-x")
    assert response.content == (
        {"type": "text", "text": "Checking."},
        tool_use("tu_1", "weather", {"city": "Paris"}),
    )
    assert (response.text, response.finish_reason, response.raw_finish_reason) == (
        "Checking.",
        "tool_calls",
        "tool_use",
    )
    assert response.usage == Usage(11, 7)


async def test_openai_tool_calls_are_normalised_to_tool_use_blocks() -> None:
    calls = [
        function_call("c1", "weather", '{"city":"Paris"}'),
        function_call("c2", "weather", "{oops"),
    ]
    message = {"role": "assistant", "content": None, "tool_calls": calls}
    upstream = canned(json_answer(openai_completion(message, "tool_calls")))
    async with upstream.http:
        response = await upstream.provider("openai").complete(ASK, model="gpt-x")
    assert response.content == (
        tool_use("c1", "weather", {"city": "Paris"}),
        tool_use("c2", "weather", {"_unparsed_arguments": "{oops"}),
    )
    assert (response.text, response.finish_reason) == ("", "tool_calls")


@pytest.mark.parametrize(
    ("stop_reason", "expected"),
    [
        ("end_turn", "stop"),
        ("stop_sequence", "stop"),
        ("max_tokens", "length"),
        ("refusal", "content_filter"),
        ("pause_turn", "other"),
    ],
)
async def test_anthropic_stop_reasons_are_normalised(stop_reason: str, expected: str) -> None:
    body = anthropic_message([{"type": "text", "text": "x"}], stop_reason)
    upstream = canned(json_answer(body))
    async with upstream.http:
        response = await upstream.provider("anthropic").complete(ASK, model="claude-x")
    assert (response.finish_reason, response.raw_finish_reason) == (expected, stop_reason)


@pytest.mark.parametrize(
    ("finish", "expected"),
    [("stop", "stop"), ("length", "length"), ("content_filter", "content_filter")],
)
async def test_openai_finish_reasons_are_normalised(finish: str, expected: str) -> None:
    body = openai_completion({"role": "assistant", "content": "x"}, finish)
    upstream = canned(json_answer(body))
    async with upstream.http:
        response = await upstream.provider("openai").complete(ASK, model="gpt-x")
    assert (response.finish_reason, response.raw_finish_reason) == (expected, finish)


async def test_an_openai_refusal_counts_as_content_filter_and_keeps_its_text() -> None:
    message = {"role": "assistant", "content": None, "refusal": "I can't help with that."}
    upstream = canned(json_answer(openai_completion(message, "stop")))
    async with upstream.http:
        response = await upstream.provider("openai").complete(ASK, model="gpt-x")
    assert (response.finish_reason, response.raw_finish_reason, response.text) == (
        "content_filter",
        "stop",
        "",
    )
    assert response.content == ({"type": "refusal", "refusal": "I can't help with that."},)


# -- stream() ----------------------------------------------------------------------------------


def block_event(kind: str, index: int, **fields: Any) -> bytes:
    return frame({"type": kind, "index": index, **fields}, kind)


ANTHROPIC_TOOL_STREAM = b"".join(
    [
        frame({"type": "message_start", "message": anthropic_message([], None)}, "message_start"),
        block_event("content_block_start", 0, content_block={"type": "text", "text": ""}),
        block_event("content_block_delta", 0, delta={"type": "text_delta", "text": "Checking."}),
        block_event("content_block_stop", 0),
        frame({"type": "ping"}, "ping"),
        block_event("content_block_start", 1, content_block=tool_use("tu_1", "weather", {})),
        block_event(
            "content_block_delta", 1, delta={"type": "input_json_delta", "partial_json": '{"city":'}
        ),
        block_event(
            "content_block_delta", 1, delta={"type": "input_json_delta", "partial_json": '"Paris"}'}
        ),
        block_event("content_block_stop", 1),
        frame(
            {
                "type": "message_delta",
                "delta": {"stop_reason": "tool_use", "stop_sequence": None},
                "usage": {"output_tokens": 9},
            },
            "message_delta",
        ),
        frame({"type": "message_stop"}, "message_stop"),
    ]
)


def openai_chunk(delta: dict[str, Any], finish: str | None = None, **extra: Any) -> bytes:
    choice = {"index": 0, "delta": delta, "finish_reason": finish}
    body = {"id": "c", "object": "chat.completion.chunk", "created": 1, "model": "gpt-x"}
    return frame({**body, "choices": [choice] if delta or finish else [], **extra})


def call_delta(**fields: Any) -> dict[str, Any]:
    return {"tool_calls": [{"index": 0, **fields}]}


OPENAI_TOOL_STREAM = b"".join(
    [
        openai_chunk({"role": "assistant", "content": "Checking."}),
        openai_chunk(call_delta(id="c1", type="function", function={"name": "weather"})),
        openai_chunk(call_delta(function={"arguments": '{"city":'})),
        openai_chunk(call_delta(function={"arguments": '"Paris"}'})),
        openai_chunk({}, "tool_calls"),
        openai_chunk({}, usage={"prompt_tokens": 11, "completion_tokens": 9, "total_tokens": 20}),
        b"data: [DONE]\n\n",
    ]
)


def streamed(call_id: str) -> list[ChatChunk]:
    return [
        ChatChunk(text_delta="Checking."),
        ChatChunk(tool_calls=(ToolCallDelta(index=0, id=call_id, name="weather"),)),
        ChatChunk(tool_calls=(ToolCallDelta(index=0, arguments='{"city":'),)),
        ChatChunk(tool_calls=(ToolCallDelta(index=0, arguments='"Paris"}'),)),
        ChatChunk(finish_reason="tool_calls", usage=Usage(11, 9)),
    ]


@pytest.mark.parametrize(
    ("kind", "frames", "call_id"),
    [("anthropic", ANTHROPIC_TOOL_STREAM, "tu_1"), ("openai", OPENAI_TOOL_STREAM, "c1")],
)
async def test_streamed_tool_calls_come_out_as_tool_call_deltas(
    kind: Kind, frames: bytes, call_id: str
) -> None:
    upstream = canned(sse_answer(frames))
    async with upstream.http:
        chunks = [c async for c in upstream.provider(kind).stream(ASK, model="m")]
    assert chunks == streamed(call_id)


async def test_an_openai_tool_stream_reaches_an_anthropic_caller_as_tool_use() -> None:
    """Fallback across kinds: an OpenAI upstream's streamed tool call, written out as
    Anthropic events, is assembled by the anthropic SDK into a tool_use block."""
    upstream = canned(sse_answer(OPENAI_TOOL_STREAM))
    writer = AnthropicStreamWriter("claude")
    async with upstream.http:
        frames = writer.start()
        async for chunk in upstream.provider("openai").stream(ASK, model="gpt-x"):
            frames += writer.chunk(chunk)
        frames += writer.end()
    gateway = canned(sse_answer(frames))
    async with gateway.http:
        sdk = anthropic.AsyncAnthropic(api_key="k", base_url="http://gw", http_client=gateway.http)
        async with sdk.messages.stream(model="claude", max_tokens=5, messages=[]) as stream:
            final = await stream.get_final_message()
    assert final.stop_reason == "tool_use"
    assert [(b.type, getattr(b, "input", None)) for b in final.content] == [
        ("text", None),
        ("tool_use", {"city": "Paris"}),
    ]


# -- requests across kinds ---------------------------------------------------------------------

OPENAI_CONVERSATION: list[dict[str, Any]] = [
    {"role": "system", "content": "be brief"},
    {"role": "user", "content": "weather in Paris and Rome?"},
    {
        "role": "assistant",
        "content": "Checking both.",
        "tool_calls": [
            function_call("c1", "weather", '{"city":"Paris"}'),
            function_call("c2", "weather", '{"city":"Rome"}'),
        ],
    },
    {"role": "tool", "tool_call_id": "c1", "content": "sunny"},
    {"role": "tool", "tool_call_id": "c2", "content": "rain"},
    {"role": "user", "content": "thanks"},
]
OPENAI_TOOLS = [
    {
        "type": "function",
        "function": {"name": "weather", "description": "Now", "parameters": WEATHER},
    }
]


def test_an_openai_conversation_with_tools_goes_back_to_openai_unchanged() -> None:
    body = {"model": "m", "messages": OPENAI_CONVERSATION, "tools": OPENAI_TOOLS}
    _, _, request = chat_request_from_openai({**body, "tool_choice": "auto"})
    params = openai_params(request, "gpt-x")
    assert params["messages"] == OPENAI_CONVERSATION
    assert params["tools"] == OPENAI_TOOLS
    assert params["tool_choice"] == "auto"


def test_an_openai_conversation_with_tools_becomes_a_valid_anthropic_one() -> None:
    _, _, request = chat_request_from_openai(
        {
            "model": "m",
            "messages": OPENAI_CONVERSATION,
            "tools": OPENAI_TOOLS,
            "tool_choice": {"type": "function", "function": {"name": "weather"}},
            "parallel_tool_calls": False,
        }
    )
    params = anthropic_params(request, "claude-x")
    assert params["system"] == "be brief"
    assert params["messages"] == [
        {"role": "user", "content": "weather in Paris and Rome?"},
        {
            "role": "assistant",
            "content": [
                {"type": "text", "text": "Checking both."},
                tool_use("c1", "weather", {"city": "Paris"}),
                tool_use("c2", "weather", {"city": "Rome"}),
            ],
        },
        {  # both results and the next user turn in one user turn, results first
            "role": "user",
            "content": [
                {"type": "tool_result", "tool_use_id": "c1", "content": "sunny"},
                {"type": "tool_result", "tool_use_id": "c2", "content": "rain"},
                {"type": "text", "text": "thanks"},
            ],
        },
    ]
    assert params["tools"] == [{"name": "weather", "description": "Now", "input_schema": WEATHER}]
    assert params["tool_choice"] == {
        "type": "tool",
        "name": "weather",
        "disable_parallel_tool_use": True,
    }


ANTHROPIC_CONVERSATION: list[dict[str, Any]] = [
    {"role": "user", "content": "weather in Paris?"},
    {"role": "assistant", "content": [tool_use("tu_1", "weather", {"city": "Paris"})]},
    {
        "role": "user",
        "content": [
            {
                "type": "tool_result",
                "tool_use_id": "tu_1",
                "content": [{"type": "text", "text": "sunny"}],
            },
            {"type": "text", "text": "and tomorrow?"},
        ],
    },
]
ANTHROPIC_TOOLS = [{"name": "weather", "description": "Now", "input_schema": WEATHER}]


def test_an_anthropic_conversation_with_tools_goes_back_to_anthropic_unchanged() -> None:
    _, _, request = chat_request_from_anthropic(
        {
            "model": "m",
            "max_tokens": 9,
            "system": "be brief",
            "messages": ANTHROPIC_CONVERSATION,
            "tools": ANTHROPIC_TOOLS,
            "tool_choice": {"type": "any"},
        }
    )
    params = anthropic_params(request, "claude-x")
    assert (params["system"], params["max_tokens"]) == ("be brief", 9)
    assert params["messages"] == ANTHROPIC_CONVERSATION
    assert (params["tools"], params["tool_choice"]) == (ANTHROPIC_TOOLS, {"type": "any"})


def test_an_anthropic_conversation_with_tools_becomes_a_valid_openai_one() -> None:
    body = {"model": "m", "max_tokens": 9, "messages": ANTHROPIC_CONVERSATION}
    _, _, request = chat_request_from_anthropic({**body, "tools": ANTHROPIC_TOOLS})
    params = openai_params(request, "gpt-x")
    assert params["messages"] == [
        {"role": "user", "content": "weather in Paris?"},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [function_call("tu_1", "weather", '{"city":"Paris"}')],
        },
        {"role": "tool", "tool_call_id": "tu_1", "content": "sunny"},
        {"role": "user", "content": "and tomorrow?"},
    ]
    assert params["tools"] == OPENAI_TOOLS
