"""An Anthropic Messages body for an OpenAI-kind provider: each field carried reaches the
adapter's SDK parameters (`resilience.providers.openai.to_params`) with its counterpart;
each field without one raises `CannotCarry` naming it."""

from __future__ import annotations

from typing import Any

import pytest

from resilience.formats.cross import CannotCarry, carried_request
from resilience.models import ChatRequest
from resilience.providers.openai import to_params

BASE: dict[str, Any] = {
    "model": "chat",
    "max_tokens": 100,
    "messages": [{"role": "user", "content": "hi"}],
}
WEATHER = {"type": "object", "properties": {"city": {"type": "string"}}}
TOOL = {"name": "weather", "input_schema": WEATHER}
EPHEMERAL = {"type": "ephemeral"}
PNG = "iVBORw0KGgo="


def request(**fields: Any) -> ChatRequest:
    carried = carried_request("anthropic.messages", {**BASE, **fields}, "openai")
    assert isinstance(carried, ChatRequest)
    return carried


def params(**fields: Any) -> dict[str, Any]:
    return to_params(request(**fields), "gpt-4.1")


def user(*blocks: dict[str, Any]) -> list[dict[str, Any]]:
    return [{"role": "user", "content": list(blocks)}]


@pytest.mark.parametrize(
    ("fields", "key", "expected"),
    [
        ({}, "max_tokens", 100),
        ({"temperature": 0.3}, "temperature", 0.3),
        ({"top_p": 0.8}, "top_p", 0.8),
        ({"stop_sequences": ["a", "b", "c", "d"]}, "stop", ["a", "b", "c", "d"]),
        ({"metadata": {"user_id": "user-1"}}, "user", "user-1"),
        (
            {"system": "be brief"},
            "messages",
            [{"role": "system", "content": "be brief"}, *BASE["messages"]],
        ),
        (
            {
                "system": [
                    {"type": "text", "text": "a"},
                    {"type": "text", "text": "b", "cache_control": EPHEMERAL},
                ]
            },
            "messages",
            [{"role": "system", "content": "ab"}, *BASE["messages"]],
        ),
        ({"tools": [TOOL], "tool_choice": {"type": "auto"}}, "tool_choice", "auto"),
        ({"tools": [TOOL], "tool_choice": {"type": "any"}}, "tool_choice", "required"),
        ({"tools": [TOOL], "tool_choice": {"type": "none"}}, "tool_choice", "none"),
        (
            {"tools": [TOOL], "tool_choice": {"type": "tool", "name": "weather"}},
            "tool_choice",
            {"type": "function", "function": {"name": "weather"}},
        ),
        (
            {"tools": [TOOL], "tool_choice": {"type": "auto", "disable_parallel_tool_use": True}},
            "parallel_tool_calls",
            False,
        ),
        ({"service_tier": "auto"}, "extra_body", {"service_tier": "auto"}),
        ({"service_tier": "standard_only"}, "extra_body", {"service_tier": "default"}),
    ],
)
def test_a_carried_field_reaches_the_openai_sdk_params(
    fields: dict[str, Any], key: str, expected: Any
) -> None:
    assert params(**fields)[key] == expected


def test_custom_tools_become_function_tools_strict_included() -> None:
    strict = {**TOOL, "description": "the weather", "strict": True, "cache_control": EPHEMERAL}
    assert params(
        tools=[strict, {"type": "custom", "name": "now", "input_schema": {"type": "object"}}]
    )["tools"] == [
        {
            "type": "function",
            "function": {
                "name": "weather",
                "parameters": WEATHER,
                "description": "the weather",
                "strict": True,
            },
        },
        {"type": "function", "function": {"name": "now", "parameters": {"type": "object"}}},
    ]


@pytest.mark.parametrize(
    "fields",
    [
        {"cache_control": EPHEMERAL},
        {"thinking": {"type": "disabled"}},
        {"stream": True},
        {"speed": "standard"},
        {"messages": user({"type": "text", "text": "hi", "cache_control": EPHEMERAL})},
        {"messages": user({"type": "text", "text": "hi", "citations": []})},
        {"top_k": None},
    ],
)
def test_cache_control_and_values_that_ask_for_nothing_leave_the_request_unchanged(
    fields: dict[str, Any],
) -> None:
    """OpenAI caches long prompt prefixes on its own: `cache_control` maps to that."""
    assert params(**fields) == params()


@pytest.mark.parametrize(
    ("source", "url"),
    [
        (
            {"type": "base64", "media_type": "image/png", "data": PNG},
            f"data:image/png;base64,{PNG}",
        ),
        ({"type": "url", "url": "https://example.com/cat.png"}, "https://example.com/cat.png"),
    ],
)
def test_image_blocks_become_image_url_parts(source: dict[str, Any], url: str) -> None:
    image = {"type": "image", "source": source, "cache_control": EPHEMERAL}
    sent = params(messages=user({"type": "text", "text": "what is this?"}, image))
    assert sent["messages"] == [
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "what is this?"},
                {"type": "image_url", "image_url": {"url": url}},
            ],
        }
    ]


def test_a_conversation_with_tool_use_crosses_as_tool_calls_and_tool_messages() -> None:
    messages = [
        {"role": "user", "content": "weather in Paris?"},
        {
            "role": "assistant",
            "content": [
                {"type": "text", "text": "checking"},
                {
                    "type": "tool_use",
                    "id": "toolu_1",
                    "name": "weather",
                    "input": {"city": "Paris"},
                },
            ],
        },
        {
            "role": "user",
            "content": [
                {
                    "type": "tool_result",
                    "tool_use_id": "toolu_1",
                    "content": [{"type": "text", "text": "rain"}],
                    "cache_control": EPHEMERAL,
                },
                {"type": "text", "text": "and tomorrow?"},
            ],
        },
    ]
    assert params(messages=messages, tools=[TOOL])["messages"] == [
        {"role": "user", "content": "weather in Paris?"},
        {
            "role": "assistant",
            "content": "checking",
            "tool_calls": [
                {
                    "id": "toolu_1",
                    "type": "function",
                    "function": {"name": "weather", "arguments": '{"city":"Paris"}'},
                }
            ],
        },
        {"role": "tool", "tool_call_id": "toolu_1", "content": "rain"},
        {"role": "user", "content": "and tomorrow?"},
    ]


DOCUMENT = {"type": "document", "source": {"type": "text", "media_type": "text/plain", "data": "x"}}
THINKING = {"type": "thinking", "thinking": "hmm", "signature": "sig"}


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"thinking": {"type": "enabled", "budget_tokens": 2048}}, "thinking"),
        ({"thinking": {"type": "adaptive"}}, "thinking"),
        ({"top_k": 40}, "top_k"),
        ({"stop_sequences": ["a", "b", "c", "d", "e"]}, "stop_sequences"),
        ({"mcp_servers": [{"type": "url", "url": "https://m", "name": "m"}]}, "mcp_servers"),
        ({"container": "container_1"}, "container"),
        ({"context_management": {"edits": []}}, "context_management"),
        ({"output_config": {"effort": "low"}}, "output_config"),
        ({"inference_geo": "us"}, "inference_geo"),
        ({"speed": "fast"}, "speed"),
        ({"service_tier": "priority"}, "service_tier"),
        ({"metadata": {"user_id": "u", "team": "x"}}, "metadata.team"),
        ({"a_field_from_the_future": True}, "a_field_from_the_future"),
        (
            {"messages": user({"type": "text", "text": "x"}, DOCUMENT)},
            "messages[0].content[1].document",
        ),
        (
            {
                "messages": user(
                    {"type": "search_result", "source": "s", "title": "t", "content": []}
                )
            },
            "messages[0].content[0].search_result",
        ),
        (
            {
                "messages": [
                    *BASE["messages"],
                    {"role": "assistant", "content": [THINKING, {"type": "text", "text": "a"}]},
                ]
            },
            "messages[1].content[0].thinking",
        ),
        (
            {
                "messages": [
                    *BASE["messages"],
                    {"role": "assistant", "content": [{"type": "redacted_thinking", "data": "x"}]},
                ]
            },
            "messages[1].content[0].redacted_thinking",
        ),
        (
            {
                "messages": user(
                    {"type": "text", "text": "x", "citations": [{"type": "char_location"}]}
                )
            },
            "messages[0].content[0].citations",
        ),
        (
            {"messages": user({"type": "image", "source": {"type": "file", "file_id": "f"}})},
            "messages[0].content[0].source",
        ),
        (
            {
                "messages": user(
                    {"type": "tool_result", "tool_use_id": "t", "content": "x", "is_error": True}
                )
            },
            "messages[0].content[0].is_error",
        ),
        (
            {
                "messages": user(
                    {
                        "type": "tool_result",
                        "tool_use_id": "t",
                        "content": [
                            {"type": "image", "source": {"type": "url", "url": "https://x/a.png"}}
                        ],
                    }
                )
            },
            "messages[0].content[0].content[0].image",
        ),
        (
            {"system": [{"type": "text", "text": "s", "citations": [{"type": "x"}]}]},
            "system[0].citations",
        ),
        ({"tools": [{"type": "web_search_20250305", "name": "web_search"}]}, "tools[0].type"),
        ({"tools": [{"type": "bash_20250124", "name": "bash"}]}, "tools[0].type"),
        ({"tools": [{**TOOL, "input_examples": [{"city": "Paris"}]}]}, "tools[0].input_examples"),
        ({"tools": [{**TOOL, "defer_loading": True}]}, "tools[0].defer_loading"),
        ({"tools": [{**TOOL, "eager_input_streaming": True}]}, "tools[0].eager_input_streaming"),
    ],
)
def test_a_field_openai_cannot_carry_is_named(fields: dict[str, Any], field: str) -> None:
    with pytest.raises(CannotCarry) as caught:
        request(**fields)
    assert caught.value.field == field
    assert str(caught.value).startswith(f"{field}: ")


def test_count_tokens_cannot_cross_to_openai() -> None:
    with pytest.raises(CannotCarry) as caught:
        carried_request("anthropic.count_tokens", BASE, "openai")
    assert caught.value.field == "count_tokens"


def test_a_cannot_carry_survives_pickling() -> None:
    import pickle

    exc = CannotCarry("top_k", "OpenAI has no top-k sampling")
    again = pickle.loads(pickle.dumps(exc))
    assert (again.field, str(again)) == ("top_k", "top_k: OpenAI has no top-k sampling")
