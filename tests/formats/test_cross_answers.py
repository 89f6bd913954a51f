"""Answers of a crossed request, back in the request's format: bodies (`answer_body`) and
streams (`frame_writer`), checked against the official OpenAI schemas and read by the SDKs."""

from __future__ import annotations

import json
from typing import Any

import anthropic
import openai
import pytest
from anthropic.types import Message as AnthropicMessage
from openai.types.chat import ChatCompletion, ChatCompletionChunk

from resilience.formats.cross import answer_body, frame_writer
from resilience.models import (
    ChatChunk,
    ChatResponse,
    EmbeddingResponse,
    FinishReason,
    ToolCallDelta,
    Usage,
)
from tests.gateway.schemas import assert_valid
from tests.support.providers import canned, sse_answer

OPENAI_BODY: dict[str, Any] = {"model": "chat", "messages": [{"role": "user", "content": "hi"}]}
ANTHROPIC_BODY: dict[str, Any] = {**OPENAI_BODY, "max_tokens": 50}
USAGE = Usage(11, 7)
TOOL_USE = {"type": "tool_use", "id": "toolu_1", "name": "weather", "input": {"city": "Paris"}}


def response(
    *blocks: dict[str, Any], finish: FinishReason = "stop", usage: Usage = USAGE
) -> ChatResponse:
    text = "".join(str(b.get("text", "")) for b in blocks if b.get("type") == "text")
    return ChatResponse(
        text=text,
        content=blocks,
        finish_reason=finish,
        raw_finish_reason=None,
        usage=usage,
        provider="p",
        model="upstream-model",
        response_id="resp_1",
    )


def test_an_anthropic_answer_reads_as_an_official_openai_completion() -> None:
    answer = response({"type": "text", "text": "checking"}, TOOL_USE, finish="tool_calls")
    body = answer_body("openai.chat", answer, model="gpt-4.1", body=OPENAI_BODY)
    assert_valid("CreateChatCompletionResponse", body)
    completion = ChatCompletion.model_validate(body)
    choice = completion.choices[0]
    assert choice.finish_reason == "tool_calls" and choice.message.content == "checking"
    call = (choice.message.tool_calls or [])[0]
    assert call.type == "function"
    assert (call.id, call.function.name, call.function.arguments) == (
        "toolu_1",
        "weather",
        '{"city":"Paris"}',
    )
    assert completion.usage is not None
    assert completion.usage.model_dump(
        include={"prompt_tokens", "completion_tokens", "total_tokens"}
    ) == {
        "prompt_tokens": 11,
        "completion_tokens": 7,
        "total_tokens": 18,
    }


def test_an_openai_answer_reads_as_an_anthropic_message() -> None:
    answer = response({"type": "text", "text": "checking"}, TOOL_USE, finish="tool_calls")
    body = answer_body("anthropic.messages", answer, model="claude-x", body=ANTHROPIC_BODY)
    message = AnthropicMessage.model_validate(body)
    assert message.stop_reason == "tool_use" and message.model == "claude-x"
    assert [b.type for b in message.content] == ["text", "tool_use"]
    assert (message.usage.input_tokens, message.usage.output_tokens) == (11, 7)


def test_an_openai_refusal_reaches_an_anthropic_client_as_text_with_stop_reason_refusal() -> None:
    answer = response(
        {"type": "refusal", "refusal": "I can't help with that."}, finish="content_filter"
    )
    body = answer_body("anthropic.messages", answer, model="claude-x", body=ANTHROPIC_BODY)
    message = AnthropicMessage.model_validate(body)
    assert message.stop_reason == "refusal"
    assert [b.model_dump(include={"type", "text"}) for b in message.content] == [
        {"type": "text", "text": "I can't help with that."}
    ]


def test_an_anthropic_refusal_reaches_an_openai_client_as_content_filter() -> None:
    answer = response({"type": "text", "text": "I can't"}, finish="content_filter")
    body = answer_body("openai.chat", answer, model="gpt-4.1", body=OPENAI_BODY)
    assert_valid("CreateChatCompletionResponse", body)
    assert body["choices"][0]["finish_reason"] == "content_filter"


@pytest.mark.parametrize(
    ("finish", "openai_reason", "anthropic_reason"),
    [
        ("stop", "stop", "end_turn"),
        ("length", "length", "max_tokens"),
        ("tool_calls", "tool_calls", "tool_use"),
        ("content_filter", "content_filter", "refusal"),
    ],
)
def test_finish_reasons_translate_both_ways(
    finish: FinishReason, openai_reason: str, anthropic_reason: str
) -> None:
    answer = response({"type": "text", "text": "x"}, finish=finish)
    as_openai = answer_body("openai.chat", answer, model="m", body=OPENAI_BODY)
    as_anthropic = answer_body("anthropic.messages", answer, model="m", body=ANTHROPIC_BODY)
    assert as_openai["choices"][0]["finish_reason"] == openai_reason
    assert as_anthropic["stop_reason"] == anthropic_reason


def test_an_embeddings_answer_follows_the_requested_encoding() -> None:
    """The official schema knows float arrays only; base64 is little-endian float32."""
    vectors = EmbeddingResponse(vectors=((0.5, -1.0),), usage=Usage(3, 0), provider="p", model="e")
    asked = {"model": "e", "input": "x"}
    floats = answer_body("openai.embeddings", vectors, model="e", body=asked)
    assert_valid("CreateEmbeddingResponse", floats)
    assert floats["data"][0]["embedding"] == [0.5, -1.0]
    packed = {**asked, "encoding_format": "base64"}
    as_base64 = answer_body("openai.embeddings", vectors, model="e", body=packed)
    assert as_base64["data"][0]["embedding"] == "AAAAPwAAgL8="


# -- streams --------------------------------------------------------------------------------

CHUNKS = (
    ChatChunk(text_delta="Hel"),
    ChatChunk(text_delta="lo"),
    ChatChunk(tool_calls=(ToolCallDelta(index=0, id="call_1", name="weather", arguments="{}"),)),
    ChatChunk(finish_reason="tool_calls", usage=Usage(5, 9)),
)


def openai_stream(body: dict[str, Any]) -> bytes:
    writer = frame_writer("openai.chat", body, model="gpt-4.1")
    return writer.start() + b"".join(writer.chunk(c) for c in CHUNKS) + writer.end()


def datas(frames: bytes) -> list[str]:
    return [e.removeprefix("data: ") for e in frames.decode().split("\n\n") if e]


def test_with_include_usage_the_last_chunk_holds_the_usage_and_no_choices() -> None:
    body = {**OPENAI_BODY, "stream": True, "stream_options": {"include_usage": True}}
    events = datas(openai_stream(body))
    assert events[-1] == "[DONE]"
    chunks = [json.loads(e) for e in events[:-1]]
    for chunk in chunks:
        assert_valid("CreateChatCompletionStreamResponse", chunk)
        ChatCompletionChunk.model_validate(chunk)
    *earlier, last = chunks
    assert all(c["usage"] is None and c["choices"] for c in earlier)
    assert set(last) == {"id", "object", "created", "model", "choices", "usage"}
    assert last["choices"] == [] and last["object"] == "chat.completion.chunk"
    assert last["usage"] == {"prompt_tokens": 5, "completion_tokens": 9, "total_tokens": 14}
    assert {c["id"] for c in chunks} == {last["id"]}


@pytest.mark.parametrize("options", [None, {"include_usage": False}])
def test_without_include_usage_no_chunk_has_a_usage_key(options: dict[str, Any] | None) -> None:
    body = {**OPENAI_BODY, "stream": True, "stream_options": options}
    chunks = [json.loads(e) for e in datas(openai_stream(body))[:-1]]
    for chunk in chunks:
        assert_valid("CreateChatCompletionStreamResponse", chunk)
    assert all("usage" not in c and c["choices"] for c in chunks)


async def test_the_openai_sdk_reads_the_usage_chunk_of_a_crossed_stream() -> None:
    body = {**OPENAI_BODY, "stream": True, "stream_options": {"include_usage": True}}
    upstream = canned(sse_answer(openai_stream(body)))
    async with upstream.http:
        sdk = openai.AsyncOpenAI(api_key="k", base_url="http://gw/v1", http_client=upstream.http)
        async with sdk.chat.completions.stream(
            model="chat", messages=[], stream_options={"include_usage": True}
        ) as stream:
            final = await stream.get_final_completion()
    assert final.choices[0].message.content == "Hello"
    assert final.usage is not None and final.usage.total_tokens == 14


async def test_an_openai_refusal_streams_to_an_anthropic_client_as_text() -> None:
    raw = {
        "id": "chatcmpl-1",
        "object": "chat.completion.chunk",
        "created": 0,
        "model": "gpt-4.1",
        "choices": [{"index": 0, "delta": {"refusal": "I can't."}}],
    }
    writer = frame_writer("anthropic.messages", ANTHROPIC_BODY, model="claude-x")
    frames = writer.start() + writer.chunk(ChatChunk(raw=raw))
    frames += writer.chunk(ChatChunk(finish_reason="content_filter", usage=Usage(3, 2)))
    upstream = canned(sse_answer(frames + writer.end()))
    async with upstream.http:
        sdk = anthropic.AsyncAnthropic(api_key="k", base_url="http://gw", http_client=upstream.http)
        async with sdk.messages.stream(model="claude", max_tokens=5, messages=[]) as stream:
            final = await stream.get_final_message()
    assert final.stop_reason == "refusal"
    assert [b.model_dump(include={"type", "text"}) for b in final.content] == [
        {"type": "text", "text": "I can't."}
    ]


def test_only_chat_apis_stream() -> None:
    with pytest.raises(ValueError, match="does not stream"):
        frame_writer("openai.embeddings", {"model": "e", "input": "x"}, model="e")
