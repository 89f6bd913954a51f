"""The Anthropic fields real clients send, answered so the `anthropic` SDK parses the answer:
`count_tokens`, extended thinking, forced tool use, prompt caching, structured outputs; and
the request body each hit records."""

from __future__ import annotations

import json
from typing import Any

import anthropic
import jsonschema_rs
import pytest
from pydantic import BaseModel

from resilience.chaos import Fault
from tests.support.chaos import ANSWER, ANSWER_WORDS, MESSAGES, Upstream

THINKING: Any = {"type": "enabled", "budget_tokens": 1024}
WEATHER_TOOL: Any = {
    "name": "get_weather",
    "description": "The weather in a city",
    "input_schema": {
        "type": "object",
        "properties": {"city": {"type": "string"}, "days": {"type": "integer", "minimum": 1}},
        "required": ["city"],
    },
}
TIME_TOOL: Any = {"name": "get_time", "input_schema": {"type": "object", "properties": {}}}
EPHEMERAL: Any = {"type": "ephemeral"}


class Verdict(BaseModel):
    verdict: str
    confidence: float


def cached_system(text: str) -> Any:
    return [{"type": "text", "text": text, "cache_control": EPHEMERAL}]


# -- count_tokens -----------------------------------------------------------------------------


async def test_count_tokens_counts_the_words_of_the_system_and_every_message(
    inproc: Upstream,
) -> None:
    counted = await inproc.anthropic().messages.count_tokens(
        model="claude-x",
        system=[{"type": "text", "text": "be very brief"}],
        messages=[
            {"role": "user", "content": "hello big world"},
            {"role": "assistant", "content": [{"type": "text", "text": "ok then"}]},
            {"role": "user", "content": "and again"},
        ],
    )
    assert counted.input_tokens == 3 + 3 + 2 + 2
    [hit] = inproc.chaos.hits
    assert (hit.api, hit.model, hit.stream) == ("count_tokens", "claude-x", False)


async def test_count_tokens_is_at_least_one(inproc: Upstream) -> None:
    counted = await inproc.anthropic().messages.count_tokens(
        model="m", messages=[{"role": "user", "content": " "}]
    )
    assert counted.input_tokens == 1


async def test_faults_apply_to_count_tokens_by_its_api_name(inproc: Upstream) -> None:
    inproc.chaos.add_fault(Fault(status=529, retry_after="3"), api="count_tokens")
    sdk = inproc.anthropic()
    with pytest.raises(anthropic.OverloadedError) as info:
        await sdk.messages.count_tokens(model="m", messages=MESSAGES)
    assert info.value.type == "overloaded_error" and info.value.request_id is not None
    assert info.value.response.headers["retry-after"] == "3"
    message = await sdk.messages.create(model="m", max_tokens=5, messages=MESSAGES)
    assert message.content[0].type == "text"
    assert inproc.chaos.hit_count(api="count_tokens") == 1


# -- extended thinking ------------------------------------------------------------------------


async def test_thinking_puts_a_signed_thinking_block_before_the_text(inproc: Upstream) -> None:
    message = await inproc.anthropic().messages.create(
        model="m", max_tokens=2000, thinking=THINKING, messages=MESSAGES
    )
    thinking, text = message.content
    assert thinking.type == "thinking" and text.type == "text"
    assert thinking.thinking.startswith("The user wrote: hello big world")
    assert thinking.signature and text.text == ANSWER
    assert message.stop_reason == "end_turn"
    assert message.usage.output_tokens > 7  # the thinking is billed as output


async def test_a_thinking_stream_round_trips_through_the_stream_helper(inproc: Upstream) -> None:
    sdk = inproc.anthropic()
    async with sdk.messages.stream(
        model="m", max_tokens=2000, thinking=THINKING, messages=MESSAGES
    ) as stream:
        events = [event async for event in stream]
        final = await stream.get_final_message()
    whole = await sdk.messages.create(
        model="m", max_tokens=2000, thinking=THINKING, messages=MESSAGES
    )
    assert [b.to_dict() for b in final.content] == [b.to_dict() for b in whole.content]
    assert final.usage.output_tokens == whole.usage.output_tokens
    deltas = [e.delta.type for e in events if e.type == "content_block_delta"]
    thinking_words = len(whole.content[0].thinking.split())  # type: ignore[union-attr]
    assert deltas == [
        *["thinking_delta"] * thinking_words,
        "signature_delta",
        *["text_delta"] * len(ANSWER_WORDS),
    ]
    starts = [(e.index, e.content_block.type) for e in events if e.type == "content_block_start"]
    stops = [e.index for e in events if e.type == "content_block_stop"]
    assert (starts, stops) == ([(0, "thinking"), (1, "text")], [0, 1])


@pytest.mark.parametrize("thinking", [None, THINKING], ids=["plain", "thinking"])
async def test_the_raw_event_order_is_anthropics_with_a_ping_after_the_first_start(
    inproc: Upstream, thinking: Any
) -> None:
    extra = {} if thinking is None else {"thinking": thinking}
    response = await inproc.http.post(
        "http://chaos/u/v1/messages",
        json={"model": "m", "max_tokens": 2000, "stream": True, "messages": MESSAGES, **extra},
    )
    events = [json.loads(e.split("\ndata: ")[1]) for e in response.text.split("\n\n") if e]
    names = [e["type"] if "delta" not in e or "index" not in e else e["delta"]["type"]
             for e in events]  # fmt: skip
    text = ["content_block_start", *["text_delta"] * len(ANSWER_WORDS), "content_block_stop"]
    if thinking is None:
        text.insert(1, "ping")
        head = ["message_start"]
    else:
        words = 11  # "The user wrote: hello big world. A short answer will do."
        thinking_block = ["content_block_start", "ping", *["thinking_delta"] * words]
        head = ["message_start", *thinking_block, "signature_delta", "content_block_stop"]
    assert names == [*head, *text, "message_delta", "message_stop"]


async def test_omitted_thinking_sends_only_the_signature(inproc: Upstream) -> None:
    thinking: Any = {"type": "adaptive", "display": "omitted"}
    async with inproc.anthropic().messages.stream(
        model="m", max_tokens=2000, thinking=thinking, messages=MESSAGES
    ) as stream:
        final = await stream.get_final_message()
    block = final.content[0]
    assert block.type == "thinking" and block.thinking == "" and block.signature


async def test_disabled_thinking_answers_the_plain_text(inproc: Upstream) -> None:
    message = await inproc.anthropic().messages.create(
        model="m", max_tokens=5, thinking={"type": "disabled"}, messages=MESSAGES
    )
    assert [b.type for b in message.content] == ["text"]


async def test_a_mid_stream_fault_counts_thinking_deltas_as_chunks(inproc: Upstream) -> None:
    inproc.chaos.add_fault(Fault(error_event_after_chunks=2))
    events = []
    with pytest.raises(anthropic.APIStatusError):
        async with inproc.anthropic().messages.stream(
            model="m", max_tokens=2000, thinking=THINKING, messages=MESSAGES
        ) as stream:
            async for event in stream:
                events.append(event)  # noqa: PERF401 (the list must hold what came before the raise)
    deltas = [e.delta for e in events if e.type == "content_block_delta"]
    assert [d.type for d in deltas] == ["thinking_delta"] * 2


# -- forced tool use --------------------------------------------------------------------------


async def test_a_tool_forced_by_name_is_used_with_a_valid_input(inproc: Upstream) -> None:
    message = await inproc.anthropic().messages.create(
        model="m",
        max_tokens=100,
        messages=MESSAGES,
        tools=[TIME_TOOL, WEATHER_TOOL],
        tool_choice={"type": "tool", "name": "get_weather"},
    )
    [block] = message.content
    assert block.type == "tool_use" and block.name == "get_weather"
    assert block.id.startswith("toolu_") and block.input == {"city": "ok", "days": 1}
    jsonschema_rs.validate(WEATHER_TOOL["input_schema"], block.input)
    assert message.stop_reason == "tool_use"


@pytest.mark.parametrize(("choice", "used"), [({"type": "any"}, "get_time"), (None, None)])
async def test_any_uses_the_first_tool_and_auto_answers_text(
    inproc: Upstream, choice: Any, used: str | None
) -> None:
    extra: Any = {} if choice is None else {"tool_choice": choice}
    message = await inproc.anthropic().messages.create(
        model="m", max_tokens=100, messages=MESSAGES, tools=[TIME_TOOL, WEATHER_TOOL], **extra
    )
    block = message.content[0]
    assert getattr(block, "name", None) == used
    assert message.stop_reason == ("tool_use" if used else "end_turn")


async def test_a_streamed_tool_use_comes_as_input_json_deltas(inproc: Upstream) -> None:
    sdk = inproc.anthropic()
    async with sdk.messages.stream(
        model="m",
        max_tokens=100,
        messages=MESSAGES,
        tools=[WEATHER_TOOL],
        tool_choice={"type": "tool", "name": "get_weather"},
    ) as stream:
        events = [event async for event in stream]
        final = await stream.get_final_message()
    pieces = [
        e.delta.partial_json
        for e in events
        if e.type == "content_block_delta" and e.delta.type == "input_json_delta"
    ]
    assert len([p for p in pieces if p]) >= 2
    assert json.loads("".join(pieces)) == {"city": "ok", "days": 1}
    [block] = final.content
    assert block.type == "tool_use" and block.input == {"city": "ok", "days": 1}
    assert final.stop_reason == "tool_use"
    [start] = [e for e in events if e.type == "content_block_start"]
    assert start.content_block.type == "tool_use" and start.content_block.input == {}


# -- prompt caching ---------------------------------------------------------------------------


async def test_a_cached_prefix_is_written_once_then_read(inproc: Upstream) -> None:
    sdk = inproc.anthropic()

    async def usage(system: Any, upstream: str = "u") -> tuple[int | None, int | None]:
        message = await inproc.anthropic(upstream).messages.create(
            model="m", max_tokens=5, system=system, messages=MESSAGES
        )
        return message.usage.cache_creation_input_tokens, message.usage.cache_read_input_tokens

    long_system = cached_system("you are a careful assistant who answers in French")
    assert await usage(long_system) == (9, 0)
    assert await usage(long_system) == (0, 9)
    assert await usage(cached_system("another prompt")) == (2, 0)  # another prefix
    assert await usage(long_system, upstream="other") == (9, 0)  # another upstream
    plain = await sdk.messages.create(model="m", max_tokens=5, messages=MESSAGES)
    assert (plain.usage.cache_creation_input_tokens, plain.usage.cache_read_input_tokens) == (0, 0)
    inproc.chaos.reset()
    assert await usage(long_system) == (9, 0)


async def test_cache_control_on_messages_and_tools_marks_the_prefix_too(inproc: Upstream) -> None:
    sdk = inproc.anthropic()
    marked: Any = [
        {
            "role": "user",
            "content": [{"type": "text", "text": "a b c", "cache_control": EPHEMERAL}],
        },
        {"role": "assistant", "content": "d"},
        {"role": "user", "content": "hello big world"},
    ]
    first = await sdk.messages.create(model="m", max_tokens=5, messages=marked)
    again = await sdk.messages.create(model="m", max_tokens=5, messages=marked)
    assert (first.usage.cache_creation_input_tokens, again.usage.cache_read_input_tokens) == (3, 3)
    tools: Any = [{**WEATHER_TOOL, "cache_control": EPHEMERAL}]
    first = await sdk.messages.create(model="m", max_tokens=5, messages=MESSAGES, tools=tools)
    again = await sdk.messages.create(model="m", max_tokens=5, messages=MESSAGES, tools=tools)
    assert first.usage.cache_creation_input_tokens == again.usage.cache_read_input_tokens
    assert (first.usage.cache_creation_input_tokens or 0) > 0


async def test_a_streamed_answer_reports_the_cache_in_message_start(inproc: Upstream) -> None:
    system = cached_system("stream this prompt please")
    for expected in ((4, 0), (0, 4)):
        async with inproc.anthropic().messages.stream(
            model="m", max_tokens=5, system=system, messages=MESSAGES
        ) as stream:
            final = await stream.get_final_message()
        usage = final.usage
        assert (usage.cache_creation_input_tokens, usage.cache_read_input_tokens) == expected


# -- structured outputs -----------------------------------------------------------------------


async def test_parse_with_an_output_format_gets_the_parsed_model(inproc: Upstream) -> None:
    message = await inproc.anthropic().messages.parse(
        model="m", max_tokens=100, messages=MESSAGES, output_format=Verdict
    )
    assert message.parsed_output == Verdict(verdict="ok", confidence=0)


# -- the recorded body ------------------------------------------------------------------------


async def test_each_hit_records_the_body_exactly_as_received(inproc: Upstream) -> None:
    body = {
        "model": "m",
        "max_tokens": 5,
        "system": cached_system("s"),
        "messages": MESSAGES,
        "metadata": {"user_id": "u-1"},
        "top_k": 3,
        "unknown_field": {"nested": [1, 2.5, None, True]},
    }
    await inproc.http.post("http://chaos/u/v1/messages", json=body)
    await inproc.http.post("http://chaos/u/v1/messages", content=b"{not json")
    await inproc.http.post("http://chaos/u/v1/messages/count_tokens", content=b"[1]")
    sent, broken, listed = inproc.chaos.hits
    assert sent.body == body and broken.body is None and listed.body is None
    assert (broken.api, listed.api) == ("messages", "count_tokens")
    assert sent.as_dict()["body"] == body
    hits = (await inproc.http.get("http://chaos/_chaos/hits")).json()["hits"]
    assert [h["body"] for h in hits] == [body, None, None]
