"""The fake APIs as the real SDKs see them: healthy answers, error statuses, broken bodies."""

from __future__ import annotations

import asyncio
import base64
import json
import struct

import anthropic
import httpx2
import openai
import pytest

from resilience.chaos import ChaosUpstream, Fault
from tests.support.chaos import ANSWER, ANSWER_WORDS, MESSAGES, PROMPT, Upstream

# -- healthy answers ---------------------------------------------------------------------------


async def test_anthropic_message_is_complete_and_deterministic(inproc: Upstream) -> None:
    message = await inproc.anthropic().messages.create(
        model="claude-x", max_tokens=50, messages=MESSAGES
    )
    assert message.id.startswith("msg_") and message.type == "message"
    assert (message.role, message.model, message.stop_reason) == (
        "assistant",
        "claude-x",
        "end_turn",
    )
    assert [(b.type, getattr(b, "text", None)) for b in message.content] == [("text", ANSWER)]
    assert (message.usage.input_tokens, message.usage.output_tokens) == (3, 7)


async def test_anthropic_stream_sends_the_whole_event_sequence_word_by_word(
    inproc: Upstream,
) -> None:
    async with inproc.anthropic().messages.stream(
        model="claude-x", max_tokens=50, messages=MESSAGES
    ) as stream:
        events = [event async for event in stream]
        final = await stream.get_final_message()
    raw = [e.type for e in events if e.type not in ("text",)]
    assert raw == [
        "message_start",
        "content_block_start",
        *["content_block_delta"] * len(ANSWER_WORDS),
        "content_block_stop",
        "message_delta",
        "message_stop",
    ]
    deltas = [e.delta.text for e in events if e.type == "content_block_delta"]  # type: ignore[union-attr]
    assert deltas == ANSWER_WORDS
    assert final.content[0].text == ANSWER  # type: ignore[union-attr]
    assert final.stop_reason == "end_turn"
    assert (final.usage.input_tokens, final.usage.output_tokens) == (3, 7)


async def test_anthropic_sse_names_every_event_on_an_event_line(inproc: Upstream) -> None:
    response = await inproc.http.post(
        "http://chaos/u/v1/messages",
        json={"model": "m", "max_tokens": 5, "messages": MESSAGES, "stream": True},
    )
    assert response.headers["content-type"].startswith("text/event-stream")
    blocks = [b for b in response.text.split("\n\n") if b]
    for block in blocks:
        event_line, data_line = block.split("\n")
        name = event_line.removeprefix("event: ")
        assert json.loads(data_line.removeprefix("data: "))["type"] == name
    assert blocks[-1].startswith("event: message_stop")


async def test_openai_completion_is_complete_and_deterministic(inproc: Upstream) -> None:
    completion = await inproc.openai().chat.completions.create(model="gpt-x", messages=MESSAGES)
    assert completion.id.startswith("chatcmpl-") and completion.object == "chat.completion"
    assert completion.model == "gpt-x" and completion.created > 0
    [choice] = completion.choices
    assert (choice.index, choice.finish_reason, choice.message.role) == (0, "stop", "assistant")
    assert choice.message.content == ANSWER
    assert completion.usage is not None
    assert (completion.usage.prompt_tokens, completion.usage.completion_tokens) == (3, 7)
    assert completion.usage.total_tokens == 10


async def test_openai_stream_ends_with_a_finish_chunk_usage_and_done(inproc: Upstream) -> None:
    stream = await inproc.openai().chat.completions.create(
        model="gpt-x", messages=MESSAGES, stream=True, stream_options={"include_usage": True}
    )
    chunks = [chunk async for chunk in stream]
    assert {c.object for c in chunks} == {"chat.completion.chunk"}
    assert len({c.id for c in chunks}) == 1
    assert chunks[0].choices[0].delta.role == "assistant"
    texts = [c.choices[0].delta.content for c in chunks[1:-2]]
    assert texts == ANSWER_WORDS
    assert chunks[-2].choices[0].finish_reason == "stop"
    assert chunks[-1].choices == [] and chunks[-1].usage is not None
    assert chunks[-1].usage.completion_tokens == 7


async def test_openai_stream_has_usage_only_when_asked_and_ends_with_done(
    inproc: Upstream,
) -> None:
    response = await inproc.http.post(
        "http://chaos/u/v1/chat/completions",
        json={"model": "m", "messages": MESSAGES, "stream": True},
    )
    lines = [line for line in response.text.split("\n") if line]
    assert all(line.startswith("data: ") for line in lines)
    assert lines[-1] == "data: [DONE]"
    chunks = [json.loads(line.removeprefix("data: ")) for line in lines[:-1]]
    assert all("usage" not in c for c in chunks)
    assert chunks[-1]["choices"][0]["finish_reason"] == "stop"


async def test_embeddings_are_deterministic_and_the_same_as_floats_and_base64(
    inproc: Upstream,
) -> None:
    sdk = inproc.openai()
    default = await sdk.embeddings.create(model="e", input=["alpha", "beta", "alpha"])
    floats = await sdk.embeddings.create(model="e", input="alpha", encoding_format="float")
    vectors = [d.embedding for d in default.data]
    assert [d.index for d in default.data] == [0, 1, 2]
    assert len(vectors[0]) == 8 and vectors[0] == vectors[2] != vectors[1]
    assert floats.data[0].embedding == vectors[0]
    assert all(-1.0 <= x < 1.0 for x in vectors[0])
    assert default.usage.prompt_tokens == 3


async def test_embeddings_base64_is_little_endian_float32(inproc: Upstream) -> None:
    raw = await inproc.http.post(
        "http://chaos/u/v1/embeddings",
        json={"model": "e", "input": "alpha", "encoding_format": "base64"},
    )
    floats = await inproc.http.post(
        "http://chaos/u/v1/embeddings", json={"model": "e", "input": "alpha"}
    )
    encoded = raw.json()["data"][0]["embedding"]
    assert isinstance(encoded, str)
    decoded = list(struct.unpack("<8f", base64.b64decode(encoded)))
    assert decoded == floats.json()["data"][0]["embedding"]


async def test_the_api_key_is_recorded_from_bearer_or_x_api_key(inproc: Upstream) -> None:
    await inproc.anthropic(key="a-key").messages.create(model="m", max_tokens=5, messages=MESSAGES)
    await inproc.openai(key="o-key").chat.completions.create(model="m", messages=MESSAGES)
    await inproc.http.post(
        "http://chaos/u/v1/messages",
        headers={"x-api-key": "x-key"},
        json={"model": "m", "max_tokens": 5, "messages": MESSAGES},
    )
    await inproc.http.post("http://chaos/u/v1/messages", json={"model": "m", "messages": []})
    assert [h.api_key for h in inproc.chaos.hits] == ["a-key", "o-key", "x-key", None]


# -- error statuses ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "a_class", "a_type", "o_class", "o_type", "o_code"),
    [
        (400, anthropic.BadRequestError, "invalid_request_error",
         openai.BadRequestError, "invalid_request_error", None),
        (401, anthropic.AuthenticationError, "authentication_error",
         openai.AuthenticationError, "invalid_request_error", "invalid_api_key"),
        (403, anthropic.PermissionDeniedError, "permission_error",
         openai.PermissionDeniedError, "permission_error", None),
        (404, anthropic.NotFoundError, "not_found_error",
         openai.NotFoundError, "invalid_request_error", "model_not_found"),
        (413, anthropic.ContentTooLargeError, "request_too_large",
         openai.APIStatusError, "invalid_request_error", None),
        (429, anthropic.RateLimitError, "rate_limit_error",
         openai.RateLimitError, "requests", "rate_limit_exceeded"),
        (500, anthropic.InternalServerError, "api_error",
         openai.InternalServerError, "server_error", None),
        (503, anthropic.ServiceUnavailableError, "overloaded_error",
         openai.InternalServerError, "server_error", None),
        (529, anthropic.OverloadedError, "overloaded_error",
         openai.InternalServerError, "server_error", None),
    ],
)  # fmt: skip
async def test_a_status_fault_raises_the_sdk_class_with_the_default_type(
    inproc: Upstream,
    status: int,
    a_class: type[anthropic.APIStatusError],
    a_type: str,
    o_class: type[openai.APIStatusError],
    o_type: str,
    o_code: str | None,
) -> None:
    inproc.chaos.add_fault(Fault(status=status))
    with pytest.raises(a_class) as a_info:
        await inproc.anthropic().messages.create(model="m", max_tokens=5, messages=MESSAGES)
    with pytest.raises(o_class) as o_info:
        await inproc.openai().chat.completions.create(model="m", messages=MESSAGES)
    a_error, o_error = a_info.value, o_info.value
    assert a_error.status_code == o_error.status_code == status
    assert a_error.type == a_type
    assert a_error.request_id is not None and a_error.request_id.startswith("req_")
    assert a_error.request_id == a_error.response.json()["request_id"]
    assert (o_error.type, o_error.code, o_error.param) == (o_type, o_code, None)


async def test_a_given_type_code_and_message_reach_the_sdk_exceptions(inproc: Upstream) -> None:
    inproc.chaos.add_fault(
        Fault(status=400, error_code="context_length_exceeded", message="too long"), api="chat"
    )
    inproc.chaos.add_fault(
        Fault(status=429, error_type="rate_limit_error", error_code="org_limit", message="slow"),
        api="messages",
    )
    with pytest.raises(openai.BadRequestError) as o_info:
        await inproc.openai().chat.completions.create(model="m", messages=MESSAGES)
    assert (o_info.value.code, o_info.value.type) == (
        "context_length_exceeded",
        "invalid_request_error",
    )
    assert o_info.value.body == {
        "message": "too long",
        "type": "invalid_request_error",
        "param": None,
        "code": "context_length_exceeded",
    }
    with pytest.raises(anthropic.RateLimitError) as a_info:
        await inproc.anthropic().messages.create(model="m", max_tokens=5, messages=MESSAGES)
    assert (a_info.value.type, a_info.value.api_message) == ("rate_limit_error", "slow")
    assert a_info.value.error_code == "org_limit"


@pytest.mark.parametrize(
    ("retry_after", "retry_after_ms"),
    [("5", None), ("1.5", "1500"), ("Wed, 21 Oct 2026 07:28:00 GMT", None), (None, "250")],
)
async def test_retry_after_headers_are_sent_raw(
    inproc: Upstream, retry_after: str | None, retry_after_ms: str | None
) -> None:
    inproc.chaos.add_fault(
        Fault(status=429, retry_after=retry_after, retry_after_ms=retry_after_ms)
    )
    errors: list[anthropic.APIStatusError | openai.APIStatusError] = []
    with pytest.raises(anthropic.RateLimitError) as a_info:
        await inproc.anthropic().messages.create(model="m", max_tokens=5, messages=MESSAGES)
    errors.append(a_info.value)
    with pytest.raises(openai.RateLimitError) as o_info:
        await inproc.openai().chat.completions.create(model="m", messages=MESSAGES)
    errors.append(o_info.value)
    for error in errors:
        assert error.response.headers.get("retry-after") == retry_after
        assert error.response.headers.get("retry-after-ms") == retry_after_ms


async def test_an_embeddings_error_has_the_openai_shape(inproc: Upstream) -> None:
    inproc.chaos.add_fault(Fault(status=503, retry_after="2"), api="embeddings")
    with pytest.raises(openai.InternalServerError) as info:
        await inproc.openai().embeddings.create(model="e", input="x")
    assert info.value.status_code == 503 and info.value.type == "server_error"
    assert info.value.response.headers["retry-after"] == "2"


async def test_a_request_that_is_not_json_gets_a_400_in_the_provider_shape(
    inproc: Upstream,
) -> None:
    inproc.chaos.add_fault(Fault(status=503), times=1)  # not consumed by the bad request
    messages = await inproc.http.post("http://chaos/u/v1/messages", content=b"{nope")
    chat = await inproc.http.post("http://chaos/u/v1/chat/completions", content=b"[1, 2]")
    assert messages.status_code == chat.status_code == 400
    assert messages.json()["type"] == "error"
    assert messages.json()["error"]["type"] == "invalid_request_error"
    assert messages.headers["request-id"] == messages.json()["request_id"]
    assert chat.json()["error"]["type"] == "invalid_request_error"
    assert [(h.api, h.fault) for h in inproc.chaos.hits] == [("messages", None), ("chat", None)]
    with pytest.raises(openai.InternalServerError):
        await inproc.openai().chat.completions.create(model="m", messages=MESSAGES)


# -- broken bodies ------------------------------------------------------------------------------


@pytest.mark.parametrize("fault", [Fault(malformed_body=True), Fault(truncated_body=True)])
async def test_a_200_whose_json_does_not_parse_raises_json_decode_error_in_both_sdks(
    inproc: Upstream, fault: Fault
) -> None:
    inproc.chaos.add_fault(fault)
    with pytest.raises(json.JSONDecodeError):
        await inproc.anthropic().messages.create(model="m", max_tokens=5, messages=MESSAGES)
    with pytest.raises(json.JSONDecodeError):
        await inproc.openai().chat.completions.create(model="m", messages=MESSAGES)
    with pytest.raises(json.JSONDecodeError):
        await inproc.openai().embeddings.create(model="e", input="x")


async def test_a_200_html_page_comes_back_from_both_sdks_as_a_plain_string(
    inproc: Upstream,
) -> None:
    """Neither SDK raises: with a non-JSON content type `create()` returns the text itself."""
    inproc.chaos.add_fault(Fault(wrong_content_type=True))
    message: object = await inproc.anthropic().messages.create(
        model="m", max_tokens=5, messages=MESSAGES
    )
    completion: object = await inproc.openai().chat.completions.create(model="m", messages=MESSAGES)
    for answer in (message, completion):
        assert isinstance(answer, str) and answer.startswith("<html>")


# -- time: latency and hangs -----------------------------------------------------------------


async def test_latency_waits_through_the_injected_sleep(inproc: Upstream) -> None:
    inproc.chaos.add_fault(Fault(latency_s=2.5))
    completion = await inproc.openai().chat.completions.create(model="m", messages=MESSAGES)
    assert completion.choices[0].message.content == ANSWER
    assert inproc.clock.sleeps == [2.5]


async def test_latency_past_the_read_timeout_is_an_sdk_timeout() -> None:
    chaos = ChaosUpstream()  # the real asyncio.sleep: the SDK's own timeout has to fire
    chaos.add_fault(Fault(latency_s=30.0))
    async with httpx2.AsyncClient(transport=chaos.transport()) as http:
        sdk = openai.AsyncOpenAI(
            api_key="k", base_url="http://c/u/v1", max_retries=0, timeout=0.1, http_client=http
        )
        with pytest.raises(openai.APITimeoutError):
            await sdk.chat.completions.create(model="m", messages=MESSAGES)
    assert chaos.hit_count() == 1


async def test_a_hang_ends_in_an_sdk_timeout_and_leaves_no_task_behind(
    either: Upstream,
) -> None:
    either.chaos.add_fault(Fault(hang=True))
    before = asyncio.all_tasks()
    with pytest.raises(anthropic.APITimeoutError) as a_info:
        await either.anthropic(timeout=0.1).messages.create(
            model="m", max_tokens=5, messages=MESSAGES
        )
    with pytest.raises(openai.APITimeoutError):
        await either.openai(timeout=0.1).chat.completions.create(model="m", messages=MESSAGES)
    assert isinstance(a_info.value.__cause__, httpx2.ReadTimeout)
    for _ in range(100):  # the server side notices the disconnect on its next loop turns
        if asyncio.all_tasks() <= before:
            break
        await asyncio.sleep(0.01)
    assert asyncio.all_tasks() <= before
    assert either.chaos.hit_count() == 2


async def test_a_model_missing_from_the_request_is_answered_as_chaos_model(
    inproc: Upstream,
) -> None:
    response = await inproc.http.post(
        "http://chaos/u/v1/chat/completions",
        json={"messages": [{"role": "user", "content": PROMPT}]},
    )
    assert response.json()["model"] == "chaos-model"
    assert inproc.chaos.hits[0].model is None
