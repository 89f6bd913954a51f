"""The gateway's wire formats: bodies in (validated), bodies and SSE frames out.

What goes out is checked by the real SDKs: response bodies with their pydantic
models, SSE frames by streaming them through the SDK over a canned upstream.
"""

from __future__ import annotations

from typing import Any

import anthropic
import openai
import pytest
from openai.types import CreateEmbeddingResponse
from openai.types.chat import ChatCompletion

from resilience.formats.wire import (
    AnthropicStreamWriter,
    OpenAIStreamWriter,
    WireError,
    chat_request_from_anthropic,
    chat_request_from_openai,
    chat_response_to_anthropic,
    chat_response_to_openai,
    embedding_request_from_openai,
    embedding_response_to_openai,
    openai_error,
)
from resilience.models import (
    ChatChunk,
    ChatResponse,
    EmbeddingResponse,
    Message,
    ToolCallDelta,
    Usage,
)
from tests.support.providers import canned, json_answer, sse_answer

WEATHER = {"type": "object", "properties": {"city": {"type": "string"}}}


def result(call_id: str, text: str) -> dict[str, Any]:
    return {"type": "tool_result", "tool_use_id": call_id, "content": text}


# -- OpenAI requests ---------------------------------------------------------------------------


def test_an_openai_body_becomes_a_normalised_request() -> None:
    model, stream, request = chat_request_from_openai(
        {
            "model": "chat",
            "stream": True,
            "messages": [
                {"role": "developer", "content": "be brief"},
                {"role": "user", "content": [{"type": "text", "text": "hi"}]},
            ],
            "max_tokens": 10,
            "max_completion_tokens": 20,
            "temperature": 0,
            "top_p": 1,
            "stop": "END",
            "user": "u-1",
            "seed": 7,  # no counterpart: ignored
        }
    )
    assert (model, stream) == ("chat", True)
    assert request.messages == (
        Message(role="system", content="be brief"),
        Message(role="user", content=({"type": "text", "text": "hi"},)),
    )
    assert (request.max_tokens, request.temperature, request.top_p) == (20, 0.0, 1.0)
    assert (request.stop, request.metadata) == (("END",), {"user_id": "u-1"})


def test_openai_tool_calls_and_tool_messages_become_tool_blocks() -> None:
    _, stream, request = chat_request_from_openai(
        {
            "model": "chat",
            "messages": [
                {"role": "user", "content": "weather in Paris and Rome?"},
                {
                    "role": "assistant",
                    "content": None,
                    "tool_calls": [
                        {
                            "id": "call_1",
                            "type": "function",
                            "function": {"name": "weather", "arguments": '{"city":"Paris"}'},
                        },
                        {
                            "id": "call_2",
                            "type": "function",
                            "function": {"name": "weather", "arguments": "{not json"},
                        },
                    ],
                },
                {"role": "tool", "tool_call_id": "call_1", "content": "sunny"},
                {
                    "role": "tool",
                    "tool_call_id": "call_2",
                    "content": [{"type": "text", "text": "?"}],
                },
            ],
            "tools": [{"type": "function", "function": {"name": "weather", "parameters": WEATHER}}],
            "tool_choice": "required",
            "parallel_tool_calls": False,
        }
    )
    assert stream is False
    assert request.messages[1] == Message(
        role="assistant",
        content=(
            {"type": "tool_use", "id": "call_1", "name": "weather", "input": {"city": "Paris"}},
            {
                "type": "tool_use",
                "id": "call_2",
                "name": "weather",
                "input": {"_unparsed_arguments": "{not json"},
            },
        ),
    )
    assert request.messages[2:] == (
        Message(role="tool", content=(result("call_1", "sunny"),)),
        Message(role="tool", content=(result("call_2", "?"),)),
    )
    assert request.tools == ({"name": "weather", "input_schema": WEATHER},)
    assert request.tool_choice == {"type": "any", "disable_parallel_tool_use": True}


def _openai(**overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"model": "chat", "messages": [{"role": "user", "content": "hi"}]}
    body.update(overrides)
    return body


def _turns(*messages: Any) -> dict[str, Any]:
    return _openai(messages=list(messages))


USER = {"role": "user", "content": "a"}


@pytest.mark.parametrize(
    ("body", "error"),
    [
        ([], "body: expected a JSON object"),
        ({"messages": []}, "model: expected a non-empty string"),
        (_openai(messages="hi"), "messages: expected a list"),
        (_turns({"role": "system", "content": "x"}), "at least one non-system message"),
        (_turns(USER, "b"), r"messages\[1\]: expected a JSON object"),
        (
            _turns(USER, {"role": "robot", "content": "b"}),
            r"messages\[1\]\.role: expected one of system, developer, user, assistant, tool, "
            "got 'robot'",
        ),
        (_turns({"role": "user", "content": 42}), r"messages\[0\]\.content: expected a string"),
        (
            _turns({"role": "user", "content": [{"type": "text"}]}),
            r"messages\[0\]\.content\[0\]\.text: expected a string",
        ),
        (
            _turns(USER, {"role": "tool", "content": "b"}),
            r"messages\[1\]\.tool_call_id: expected a non-empty string",
        ),
        (
            _turns({"role": "assistant", "tool_calls": [{"id": "c", "function": {"name": 1}}]}),
            r"messages\[0\]\.tool_calls\[0\]: expected a string id and function.name",
        ),
        (_openai(tools={"name": "x"}), "tools: expected a list"),
        (
            _openai(tools=[{"type": "function", "function": {}}]),
            r"tools\[0\]\.function\.name: expected a string",
        ),
        (_openai(tool_choice="sometimes"), "tool_choice: expected one of auto, none, required"),
        (_openai(tool_choice=3), "tool_choice: expected a string or a JSON object"),
        (_openai(stream="yes"), "stream: expected true or false, got 'yes'"),
        (_openai(n=2), "n: only 1 is supported, got 2"),
        (_openai(max_tokens=0), "max_tokens: expected a positive integer, got 0"),
        (_openai(max_tokens=True), "max_tokens: expected a positive integer, got True"),
        (_openai(temperature="hot"), "temperature: expected a number, got 'hot'"),
        (_openai(stop=["a", 1]), "stop: expected a list of strings"),
    ],
)
def test_a_bad_openai_body_is_refused_naming_the_field(body: Any, error: str) -> None:
    with pytest.raises(WireError, match=error):
        chat_request_from_openai(body)


# -- Anthropic requests ------------------------------------------------------------------------


def test_an_anthropic_body_becomes_a_normalised_request() -> None:
    tool_use = {"type": "tool_use", "id": "tu_1", "name": "weather", "input": {"city": "Paris"}}
    model, stream, request = chat_request_from_anthropic(
        {
            "model": "claude",
            "max_tokens": 50,
            "stream": True,
            "system": [{"type": "text", "text": "be "}, {"type": "text", "text": "brief"}],
            "messages": [
                {"role": "user", "content": "weather?"},
                {"role": "assistant", "content": [tool_use]},
                {"role": "user", "content": [result("tu_1", "sunny")]},
            ],
            "tools": [{"name": "weather", "input_schema": WEATHER}],
            "tool_choice": {"type": "tool", "name": "weather"},
            "stop_sequences": ["END"],
            "metadata": {"user_id": "u-1"},
            "temperature": 0.5,
        }
    )
    assert (model, stream, request.system, request.max_tokens) == ("claude", True, "be brief", 50)
    assert request.messages == (
        Message(role="user", content="weather?"),
        Message(role="assistant", content=(tool_use,)),
        Message(role="user", content=(result("tu_1", "sunny"),)),
    )
    assert request.tools == ({"name": "weather", "input_schema": WEATHER},)
    assert request.tool_choice == {"type": "tool", "name": "weather"}
    assert (request.stop, request.metadata) == (("END",), {"user_id": "u-1"})
    assert request.temperature == 0.5


def _anthropic(**overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "model": "claude",
        "max_tokens": 5,
        "messages": [{"role": "user", "content": "hi"}],
    }
    body.update(overrides)
    return body


@pytest.mark.parametrize(
    ("body", "error"),
    [
        ({"model": "claude", "messages": []}, "max_tokens: required"),
        (_anthropic(messages=[]), "messages: at least one message is required"),
        (
            _anthropic(messages=[{"role": "system", "content": "x"}]),
            r"messages\[0\]\.role: expected one of user, assistant, got 'system'",
        ),
        (_anthropic(system=[{"type": "image"}]), r"system\[0\]\.type: expected text, got 'image'"),
        (_anthropic(metadata="u-1"), "metadata: expected a JSON object"),
        (_anthropic(tools=[{"input_schema": {}}]), r"tools\[0\]\.name: expected a string"),
        (_anthropic(tool_choice={"type": "tool"}), "tool_choice.name: expected a string"),
        (_anthropic(stop_sequences="END"), "stop_sequences: expected a list of strings"),
    ],
)
def test_a_bad_anthropic_body_is_refused_naming_the_field(body: Any, error: str) -> None:
    with pytest.raises(WireError, match=error):
        chat_request_from_anthropic(body)


# -- embeddings --------------------------------------------------------------------------------


def test_an_embeddings_body_takes_one_input_or_a_list() -> None:
    assert embedding_request_from_openai({"model": "e", "input": "x"})[1].inputs == ("x",)
    body = {"model": "e", "input": ["a", "b"], "dimensions": 4}
    model, request = embedding_request_from_openai(body)
    assert (model, request.inputs, request.dimensions) == ("e", ("a", "b"), 4)
    for bad in ([], [1, 2], None):
        with pytest.raises(WireError, match="input: expected a string or a non-empty list"):
            embedding_request_from_openai({"model": "e", "input": bad})
    with pytest.raises(WireError, match="encoding_format: expected float or base64"):
        embedding_request_from_openai({"model": "e", "input": "x", "encoding_format": "int8"})


VECTORS = ((0.5, -0.25, 1.0), (0.125, 0.0, -1.0))  # exact in float32


@pytest.mark.parametrize("encoding", ["float", "base64"])
async def test_an_embeddings_answer_is_read_back_exactly_by_the_openai_sdk(encoding: str) -> None:
    response = EmbeddingResponse(vectors=VECTORS, usage=Usage(4, 0), provider="p", model="m")
    body = embedding_response_to_openai(response, model="emb", encoding_format=encoding)
    if encoding == "float":  # the model types only the float form; the SDK decodes base64
        CreateEmbeddingResponse.model_validate(body)
    upstream = canned(json_answer(body))
    async with upstream.http:
        sdk = openai.AsyncOpenAI(api_key="k", base_url="http://gw/v1", http_client=upstream.http)
        answer = await sdk.embeddings.create(model="emb", input=["a", "b"])  # the SDK asks base64
    assert tuple(tuple(d.embedding) for d in answer.data) == VECTORS
    assert (answer.model, answer.usage.prompt_tokens) == ("emb", 4)


# -- responses ---------------------------------------------------------------------------------

TEXT = ChatResponse(
    text="Hello.",
    content=({"type": "text", "text": "Hello."},),
    finish_reason="stop",
    raw_finish_reason="end_turn",
    usage=Usage(3, 2),
    provider="p",
    model="upstream-model",
    response_id="id-1",
)
TOOL = ChatResponse(
    text="",
    content=(
        {"type": "tool_use", "id": "c1", "name": "weather", "input": {"city": "Paris"}},
        {"type": "tool_use", "id": "c2", "name": "weather", "input": {"_unparsed_arguments": "{x"}},
    ),
    finish_reason="tool_calls",
    raw_finish_reason="tool_use",
    usage=Usage(3, 2),
    provider="p",
    model="upstream-model",
)


def test_a_text_answer_is_a_valid_openai_chat_completion() -> None:
    completion = ChatCompletion.model_validate(chat_response_to_openai(TEXT, model="chat"))
    choice = completion.choices[0]
    assert (completion.id, completion.model, choice.message.content) == ("id-1", "chat", "Hello.")
    assert choice.finish_reason == "stop" and choice.message.tool_calls is None
    assert completion.usage is not None and completion.usage.total_tokens == 5


def test_tool_calls_are_a_valid_openai_chat_completion_with_their_arguments_intact() -> None:
    completion = ChatCompletion.model_validate(chat_response_to_openai(TOOL, model="chat"))
    message = completion.choices[0].message
    assert completion.choices[0].finish_reason == "tool_calls" and message.content is None
    calls = [(c.id, c.function.name, c.function.arguments) for c in message.tool_calls or []]  # type: ignore[union-attr]
    assert calls == [("c1", "weather", '{"city":"Paris"}'), ("c2", "weather", "{x")]


@pytest.mark.parametrize(
    ("finish", "openai_finish", "anthropic_stop"),
    [
        ("stop", "stop", "end_turn"),
        ("length", "length", "max_tokens"),
        ("tool_calls", "tool_calls", "tool_use"),
        ("content_filter", "content_filter", "refusal"),
        ("other", "stop", "end_turn"),
    ],
)
def test_finish_reasons_map_to_each_format(
    finish: Any, openai_finish: str, anthropic_stop: str
) -> None:
    response = ChatResponse(**{**_as_dict(TEXT), "finish_reason": finish})
    as_openai = chat_response_to_openai(response, model="m")
    assert as_openai["choices"][0]["finish_reason"] == openai_finish
    assert chat_response_to_anthropic(response, model="m")["stop_reason"] == anthropic_stop


def _as_dict(response: ChatResponse) -> dict[str, Any]:
    return {f: getattr(response, f) for f in response.__dataclass_fields__}


def test_answers_are_valid_anthropic_messages_with_text_and_tool_use_blocks() -> None:
    text = anthropic.types.Message.model_validate(chat_response_to_anthropic(TEXT, model="claude"))
    assert (text.model, text.stop_reason, text.usage.input_tokens) == ("claude", "end_turn", 3)
    blocks = [b.model_dump(exclude_none=True) for b in text.content]
    assert blocks == [{"type": "text", "text": "Hello."}]
    tool = anthropic.types.Message.model_validate(chat_response_to_anthropic(TOOL, model="claude"))
    assert tool.stop_reason == "tool_use"
    assert [(b.type, getattr(b, "input", None)) for b in tool.content] == [
        ("tool_use", {"city": "Paris"}),
        ("tool_use", {"_unparsed_arguments": "{x"}),
    ]


def test_the_openai_error_body_has_the_documented_shape() -> None:
    assert openai_error("no", type_="invalid_request_error", code="bad") == {
        "error": {"message": "no", "type": "invalid_request_error", "param": None, "code": "bad"}
    }


# -- SSE, read back by the SDKs ----------------------------------------------------------------

TEXT_CHUNKS = (
    ChatChunk(text_delta="Hel"),
    ChatChunk(text_delta="lo."),
    ChatChunk(finish_reason="stop", usage=Usage(3, 2)),
)
TOOL_CHUNKS = (
    ChatChunk(text_delta="Let me check."),
    ChatChunk(tool_calls=(ToolCallDelta(index=0, id="c1", name="weather"),)),
    ChatChunk(tool_calls=(ToolCallDelta(index=0, arguments='{"city":'),)),
    ChatChunk(tool_calls=(ToolCallDelta(index=0, arguments='"Paris"}'),)),
    ChatChunk(tool_calls=(ToolCallDelta(index=1, id="c2", name="time", arguments="{}"),)),
    ChatChunk(finish_reason="tool_calls", usage=Usage(5, 7)),
)


def openai_frames(chunks: tuple[ChatChunk, ...], *, error: bool = False) -> bytes:
    writer = OpenAIStreamWriter("chat")
    frames = writer.start() + b"".join(writer.chunk(c) for c in chunks)
    end = writer.error("upstream broke", "stream_interrupted") if error else writer.end()
    return frames + end


def anthropic_frames(chunks: tuple[ChatChunk, ...], *, error: str | None = None) -> bytes:
    writer = AnthropicStreamWriter("claude")
    frames = writer.start() + b"".join(writer.chunk(c) for c in chunks)
    return frames + (writer.error("upstream broke", error) if error else writer.end())


async def test_openai_frames_stream_through_the_openai_sdk_with_tool_calls_assembled() -> None:
    upstream = canned(sse_answer(openai_frames(TOOL_CHUNKS)))
    async with upstream.http:
        sdk = openai.AsyncOpenAI(api_key="k", base_url="http://gw/v1", http_client=upstream.http)
        async with sdk.chat.completions.stream(model="chat", messages=[]) as stream:
            final = await stream.get_final_completion()
    choice = final.choices[0]
    assert choice.finish_reason == "tool_calls" and choice.message.content == "Let me check."
    calls = [(c.id, c.function.name, c.function.arguments) for c in choice.message.tool_calls or []]
    assert calls == [("c1", "weather", '{"city":"Paris"}'), ("c2", "time", "{}")]
    assert final.usage is not None
    assert (final.usage.prompt_tokens, final.usage.completion_tokens) == (5, 7)


async def test_openai_frames_end_with_done_or_with_an_error_the_sdk_raises() -> None:
    assert openai_frames(TEXT_CHUNKS).endswith(b"data: [DONE]\n\n")
    upstream = canned(sse_answer(openai_frames(TEXT_CHUNKS[:2], error=True)))
    texts: list[str] = []
    async with upstream.http:
        sdk = openai.AsyncOpenAI(api_key="k", base_url="http://gw/v1", http_client=upstream.http)
        stream = await sdk.chat.completions.create(model="chat", messages=[], stream=True)
        with pytest.raises(openai.APIError, match="upstream broke") as info:
            async for chunk in stream:
                texts.extend(c.delta.content or "" for c in chunk.choices)
    assert "".join(texts) == "Hello." and info.value.code == "stream_interrupted"


async def test_anthropic_frames_stream_through_the_anthropic_sdk_with_tool_use_assembled() -> None:
    upstream = canned(sse_answer(anthropic_frames(TOOL_CHUNKS)))
    async with upstream.http:
        sdk = anthropic.AsyncAnthropic(api_key="k", base_url="http://gw", http_client=upstream.http)
        async with sdk.messages.stream(model="claude", max_tokens=5, messages=[]) as stream:
            final = await stream.get_final_message()
    assert final.stop_reason == "tool_use" and final.model == "claude"
    blocks = [b.model_dump(include={"type", "text", "id", "name", "input"}) for b in final.content]
    assert blocks == [
        {"type": "text", "text": "Let me check."},
        {"type": "tool_use", "id": "c1", "name": "weather", "input": {"city": "Paris"}},
        {"type": "tool_use", "id": "c2", "name": "time", "input": {}},
    ]
    assert (final.usage.input_tokens, final.usage.output_tokens) == (5, 7)


@pytest.mark.parametrize(
    ("code", "error_type"), [("overloaded", "overloaded_error"), ("network", "api_error")]
)
async def test_anthropic_frames_end_with_an_error_event_the_sdk_raises(
    code: str, error_type: str
) -> None:
    upstream = canned(sse_answer(anthropic_frames(TEXT_CHUNKS[:2], error=code)))
    texts: list[str] = []
    async with upstream.http:
        sdk = anthropic.AsyncAnthropic(api_key="k", base_url="http://gw", http_client=upstream.http)
        stream = await sdk.messages.create(model="claude", max_tokens=5, messages=[], stream=True)
        with pytest.raises(anthropic.APIStatusError) as info:
            async for event in stream:
                if event.type == "content_block_delta" and event.delta.type == "text_delta":
                    texts.append(event.delta.text)  # noqa: PERF401 - up to the error
    assert "".join(texts) == "Hello."
    assert info.value.type == error_type


def test_sse_frames_are_event_and_data_lines() -> None:
    writer = AnthropicStreamWriter("claude")
    assert writer.end() == b'event: message_stop\ndata: {"type":"message_stop"}\n\n'
    assert OpenAIStreamWriter("chat").end() == b"data: [DONE]\n\n"
