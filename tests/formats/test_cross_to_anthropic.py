"""An OpenAI chat body for an Anthropic-kind provider: each field carried reaches the
adapter's SDK parameters (`resilience.providers.anthropic.to_params`) with its counterpart;
each field without one raises `CannotCarry` naming it."""

from __future__ import annotations

from typing import Any

import pytest

from resilience.formats.cross import CannotCarry, carried_request
from resilience.formats.wire import WireError
from resilience.models import ChatRequest
from resilience.providers.anthropic import to_params

BASE: dict[str, Any] = {"model": "chat", "messages": [{"role": "user", "content": "hi"}]}
WEATHER = {"type": "object", "properties": {"city": {"type": "string"}}}
FUNCTION = {"type": "function", "function": {"name": "weather", "parameters": WEATHER}}
PNG = "iVBORw0KGgo="


def request(**fields: Any) -> ChatRequest:
    carried = carried_request("openai.chat", {**BASE, **fields}, "anthropic")
    assert isinstance(carried, ChatRequest)
    return carried


def params(**fields: Any) -> dict[str, Any]:
    return to_params(request(**fields), "claude-sonnet-4-6")


def user(*parts: dict[str, Any]) -> list[dict[str, Any]]:
    return [{"role": "user", "content": list(parts)}]


@pytest.mark.parametrize(
    ("fields", "key", "expected"),
    [
        ({"max_tokens": 50}, "max_tokens", 50),
        ({"max_completion_tokens": 60}, "max_tokens", 60),
        ({"stop": "END"}, "stop_sequences", ["END"]),
        ({"stop": ["a", "b"]}, "stop_sequences", ["a", "b"]),
        ({"user": "user-1"}, "metadata", {"user_id": "user-1"}),
        ({"safety_identifier": "hash-1"}, "metadata", {"user_id": "hash-1"}),
        ({"user": "u", "safety_identifier": "u"}, "metadata", {"user_id": "u"}),
        ({"tools": [FUNCTION], "tool_choice": "auto"}, "tool_choice", {"type": "auto"}),
        ({"tools": [FUNCTION], "tool_choice": "none"}, "tool_choice", {"type": "none"}),
        ({"tools": [FUNCTION], "tool_choice": "required"}, "tool_choice", {"type": "any"}),
        (
            {"tools": [FUNCTION], "tool_choice": {"type": "function", "function": {"name": "f"}}},
            "tool_choice",
            {"type": "tool", "name": "f"},
        ),
        (
            {"tools": [FUNCTION], "parallel_tool_calls": False},
            "tool_choice",
            {"type": "auto", "disable_parallel_tool_use": True},
        ),
        (
            {"messages": [{"role": "developer", "content": "be brief"}, *BASE["messages"]]},
            "system",
            "be brief",
        ),
        (
            {
                "messages": [
                    {"role": "system", "content": [{"type": "text", "text": "a"}]},
                    {"role": "system", "content": "b"},
                    *BASE["messages"],
                ]
            },
            "system",
            "a\n\nb",
        ),
    ],
)
def test_a_carried_field_reaches_the_anthropic_sdk_params(
    fields: dict[str, Any], key: str, expected: Any
) -> None:
    assert params(**fields)[key] == expected


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({"temperature": 0.4}, {"temperature": 0.4}),
        ({"temperature": 1}, {"temperature": 1}),
        ({"top_p": 0.9}, {"top_p": 0.9}),
        ({"service_tier": "auto"}, {"service_tier": "auto"}),
        ({"service_tier": "default"}, {"service_tier": "standard_only"}),
    ],
)
def test_fields_the_pinned_sdk_has_no_parameter_for_travel_as_body_fields(
    fields: dict[str, Any], expected: dict[str, Any]
) -> None:
    assert params(**fields)["extra_body"] == expected


def test_function_tools_become_anthropic_tools_strict_included() -> None:
    strict = {
        "type": "function",
        "function": {
            "name": "weather",
            "description": "the weather",
            "parameters": WEATHER,
            "strict": True,
        },
    }
    bare = {"type": "function", "function": {"name": "now"}}
    assert params(tools=[strict, bare])["tools"] == [
        {"name": "weather", "input_schema": WEATHER, "description": "the weather", "strict": True},
        {"name": "now", "input_schema": {"type": "object", "properties": {}}},
    ]


@pytest.mark.parametrize(
    "fields",
    [
        {"n": 1},
        {"metadata": {}},
        {"store": False},
        {"logprobs": False},
        {"presence_penalty": 0},
        {"frequency_penalty": 0.0},
        {"logit_bias": {}},
        {"modalities": ["text"]},
        {"response_format": {"type": "text"}},
        {"stream_options": {"include_usage": True, "include_obfuscation": False}},
        {"stream": True},
        {"seed": None, "top_logprobs": None, "audio": None},
    ],
)
def test_values_that_ask_for_nothing_cross_without_changing_the_request(
    fields: dict[str, Any],
) -> None:
    assert params(**fields) == params()


def test_a_conversation_with_tool_calls_crosses_as_tool_use_and_tool_result() -> None:
    messages = [
        {"role": "user", "content": "weather in Paris?"},
        {
            "role": "assistant",
            "content": "checking",
            "tool_calls": [
                {
                    "id": "call_1",
                    "type": "function",
                    "function": {"name": "weather", "arguments": '{"city":"Paris"}'},
                }
            ],
        },
        {"role": "tool", "tool_call_id": "call_1", "content": [{"type": "text", "text": "rain"}]},
    ]
    assert params(messages=messages, tools=[FUNCTION])["messages"] == [
        {"role": "user", "content": "weather in Paris?"},
        {
            "role": "assistant",
            "content": [
                {"type": "text", "text": "checking"},
                {"type": "tool_use", "id": "call_1", "name": "weather", "input": {"city": "Paris"}},
            ],
        },
        {
            "role": "user",
            "content": [{"type": "tool_result", "tool_use_id": "call_1", "content": "rain"}],
        },
    ]


@pytest.mark.parametrize(
    ("url", "source"),
    [
        (
            f"data:image/png;base64,{PNG}",
            {"type": "base64", "media_type": "image/png", "data": PNG},
        ),
        (
            f"data:image/jpg;base64,{PNG}",
            {"type": "base64", "media_type": "image/jpeg", "data": PNG},
        ),
        ("https://example.com/cat.webp", {"type": "url", "url": "https://example.com/cat.webp"}),
    ],
)
def test_image_url_parts_become_anthropic_image_blocks(url: str, source: dict[str, Any]) -> None:
    image = {"type": "image_url", "image_url": {"url": url, "detail": "high"}}
    sent = params(messages=user({"type": "text", "text": "what is this?"}, image))
    assert sent["messages"][0]["content"] == [
        {"type": "text", "text": "what is this?"},
        {"type": "image", "source": source},
    ]


def test_a_cache_breakpoint_on_a_part_becomes_cache_control() -> None:
    part = {"type": "text", "text": "long", "prompt_cache_breakpoint": {"mode": "explicit"}}
    sent = params(messages=user(part, {"type": "text", "text": "question"}))
    assert sent["messages"][0]["content"][0] == {
        "type": "text",
        "text": "long",
        "cache_control": {"type": "ephemeral"},
    }


AUDIO = {"type": "input_audio", "input_audio": {"data": "UklGRg==", "format": "wav"}}
FILE = {"type": "file", "file": {"file_id": "file-1"}}


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"response_format": {"type": "json_object"}}, "response_format"),
        (
            {
                "response_format": {
                    "type": "json_schema",
                    "json_schema": {"name": "x", "schema": WEATHER},
                }
            },
            "response_format",
        ),
        ({"logprobs": True}, "logprobs"),
        ({"top_logprobs": 3}, "top_logprobs"),
        ({"n": 2}, "n"),
        ({"seed": 7}, "seed"),
        ({"logit_bias": {"50256": -100}}, "logit_bias"),
        ({"presence_penalty": 0.5}, "presence_penalty"),
        ({"frequency_penalty": -1}, "frequency_penalty"),
        ({"prediction": {"type": "content", "content": "x"}}, "prediction"),
        ({"modalities": ["text", "audio"]}, "modalities"),
        ({"audio": {"voice": "alloy", "format": "wav"}}, "audio"),
        ({"reasoning_effort": "low"}, "reasoning_effort"),
        ({"verbosity": "low"}, "verbosity"),
        ({"service_tier": "flex"}, "service_tier"),
        ({"service_tier": "priority"}, "service_tier"),
        ({"web_search_options": {}}, "web_search_options"),
        ({"store": True}, "store"),
        ({"metadata": {"project": "x"}}, "metadata"),
        ({"temperature": 1.5}, "temperature"),
        ({"functions": [{"name": "f"}]}, "functions"),
        ({"function_call": "auto"}, "function_call"),
        ({"prompt_cache_key": "k"}, "prompt_cache_key"),
        ({"stream_options": {"include_obfuscation": True}}, "stream_options.include_obfuscation"),
        ({"user": "a", "safety_identifier": "b"}, "safety_identifier"),
        ({"a_field_from_the_future": 1}, "a_field_from_the_future"),
        ({"messages": user(AUDIO)}, "messages[0].content[0].input_audio"),
        ({"messages": user({"type": "text", "text": "x"}, FILE)}, "messages[0].content[1].file"),
        (
            {"messages": user({"type": "image_url", "image_url": {"url": "x", "detail": "low"}})},
            "messages[0].content[0].image_url.detail",
        ),
        (
            {"messages": user({"type": "image_url", "image_url": {"url": "ftp://h/a.png"}})},
            "messages[0].content[0].image_url.url",
        ),
        (
            {
                "messages": user(
                    {"type": "image_url", "image_url": {"url": "data:image/bmp;base64,AA"}}
                )
            },
            "messages[0].content[0].image_url.url",
        ),
        ({"messages": [{"role": "user", "content": "x", "name": "ann"}]}, "messages[0].name"),
        (
            {"messages": [*BASE["messages"], {"role": "function", "name": "f", "content": "1"}]},
            "messages[1].role",
        ),
        (
            {"messages": [*BASE["messages"], {"role": "assistant", "refusal": "no"}]},
            "messages[1].refusal",
        ),
        (
            {"messages": [*BASE["messages"], {"role": "assistant", "audio": {"id": "a1"}}]},
            "messages[1].audio",
        ),
        (
            {
                "messages": [
                    *BASE["messages"],
                    {"role": "assistant", "content": [{"type": "refusal", "refusal": "no"}]},
                ]
            },
            "messages[1].content[0].refusal",
        ),
        (
            {
                "messages": [
                    {
                        "role": "system",
                        "content": [
                            {
                                "type": "text",
                                "text": "s",
                                "prompt_cache_breakpoint": {"mode": "explicit"},
                            }
                        ],
                    },
                    *BASE["messages"],
                ]
            },
            "messages[0].content[0].prompt_cache_breakpoint",
        ),
        (
            {
                "messages": [
                    *BASE["messages"],
                    {
                        "role": "assistant",
                        "tool_calls": [
                            {"id": "c", "type": "custom", "custom": {"name": "f", "input": "x"}}
                        ],
                    },
                ]
            },
            "messages[1].tool_calls[0].custom",
        ),
        ({"tools": [{"type": "custom", "custom": {"name": "grammar"}}]}, "tools[0].type"),
        (
            {"tools": [{"type": "function", "function": {"name": "f", "extra_thing": 1}}]},
            "tools[0].function.extra_thing",
        ),
        (
            {
                "tool_choice": {
                    "type": "allowed_tools",
                    "allowed_tools": {"mode": "auto", "tools": []},
                }
            },
            "tool_choice.type",
        ),
    ],
)
def test_a_field_anthropic_cannot_carry_is_named(fields: dict[str, Any], field: str) -> None:
    with pytest.raises(CannotCarry) as caught:
        request(**fields)
    assert caught.value.field == field
    assert str(caught.value).startswith(f"{field}: ")


def test_a_body_invalid_in_its_own_format_is_a_wire_error() -> None:
    with pytest.raises(WireError, match=r"messages\[0\].role"):
        carried_request("openai.chat", {"model": "m", "messages": [{"role": "x"}]}, "anthropic")
    with pytest.raises(WireError, match=r"image_url\.url"):
        request(messages=user({"type": "image_url", "image_url": {}}))


def test_embeddings_cannot_cross_to_anthropic() -> None:
    with pytest.raises(CannotCarry) as caught:
        carried_request("openai.embeddings", {"model": "e", "input": "x"}, "anthropic")
    assert caught.value.field == "input"


def test_the_reason_speaks_of_the_target_api() -> None:
    """`top_k` (vLLM clients send it in OpenAI bodies) has no Anthropic counterpart either."""
    with pytest.raises(CannotCarry, match=r"^top_k: no counterpart in Anthropic's Messages API$"):
        request(top_k=40)
