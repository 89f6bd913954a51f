"""The normalised model: its validation, its one finish vocabulary, its tool shapes."""

from __future__ import annotations

import dataclasses
import json
from typing import Any

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from resilience.models import (
    UNPARSED,
    ChatChunk,
    ChatRequest,
    EmbeddingRequest,
    Message,
    finish_reason,
    tool_arguments,
    tool_choice_spec,
    tool_input,
    tool_spec,
)


def test_values_are_frozen_and_slotted() -> None:
    message = Message(role="user", content="hi")
    with pytest.raises(dataclasses.FrozenInstanceError):
        message.content = "changed"  # type: ignore[misc]
    assert not hasattr(message, "__dict__")
    assert not hasattr(ChatChunk(), "__dict__")


@pytest.mark.parametrize(
    ("make", "error"),
    [
        (lambda: ChatRequest(messages=()), "messages: at least one message is required"),
        (lambda: EmbeddingRequest(inputs=()), "inputs: at least one input is required"),
        (lambda: Message(role="robot", content="x"), "role: expected one of user, assistant"),  # type: ignore[arg-type]
        (lambda: Message(role="tool", content="42"), "a tool message carries tool_result blocks"),
    ],
)
def test_invalid_values_are_refused_naming_the_field(make: Any, error: str) -> None:
    with pytest.raises(ValueError, match=error):
        make()


def test_message_text_joins_text_blocks_and_leaves_out_the_rest() -> None:
    blocks = (
        {"type": "text", "text": "a"},
        {"type": "tool_use", "id": "t", "name": "f", "input": {}},
        {"type": "text", "text": "b"},
    )
    assert Message(role="assistant", content=blocks).text == "ab"
    assert Message(role="user", content="plain").text == "plain"


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("end_turn", "stop"),
        ("stop_sequence", "stop"),
        ("stop", "stop"),
        ("max_tokens", "length"),
        ("model_context_window_exceeded", "length"),
        ("length", "length"),
        ("tool_use", "tool_calls"),
        ("tool_calls", "tool_calls"),
        ("function_call", "tool_calls"),
        ("refusal", "content_filter"),
        ("content_filter", "content_filter"),
        ("pause_turn", "other"),
        ("something_new", "other"),
        (None, "other"),
    ],
)
def test_both_providers_stop_reasons_map_to_one_vocabulary(raw: str | None, expected: str) -> None:
    assert finish_reason(raw) == expected


def test_an_openai_function_tool_becomes_the_normalised_shape() -> None:
    schema = {"type": "object", "properties": {"city": {"type": "string"}}}
    openai_tool = {
        "type": "function",
        "function": {"name": "weather", "description": "Weather now", "parameters": schema},
    }
    normalised = {"name": "weather", "description": "Weather now", "input_schema": schema}
    assert tool_spec(openai_tool) == normalised
    assert tool_spec(normalised) == normalised
    bare = tool_spec({"type": "function", "function": {"name": "ping"}})
    assert bare == {"name": "ping", "input_schema": {"type": "object", "properties": {}}}
    server_tool = {"type": "web_search_20250305", "name": "web_search"}
    assert tool_spec(server_tool) == server_tool  # a provider's own tool passes as it is


@pytest.mark.parametrize(
    ("tool", "error"),
    [
        ({"type": "function", "function": {"description": "x"}}, "function.name: expected a str"),
        ({"input_schema": {}}, "name: expected a string"),
        ({"name": "f", "input_schema": "object"}, "input_schema: expected a JSON schema object"),
    ],
)
def test_a_malformed_tool_is_refused_naming_the_field(tool: dict[str, Any], error: str) -> None:
    with pytest.raises(ValueError, match=error):
        tool_spec(tool)


@pytest.mark.parametrize(
    ("choice", "expected"),
    [
        (None, None),
        ("auto", {"type": "auto"}),
        ("none", {"type": "none"}),
        ("required", {"type": "any"}),
        ({"type": "function", "function": {"name": "f"}}, {"type": "tool", "name": "f"}),
        ({"type": "tool", "name": "f"}, {"type": "tool", "name": "f"}),
        (
            {"type": "any", "disable_parallel_tool_use": True},
            {"type": "any", "disable_parallel_tool_use": True},
        ),
    ],
)
def test_tool_choices_of_both_formats_become_the_normalised_shape(
    choice: Any, expected: dict[str, Any] | None
) -> None:
    assert tool_choice_spec(choice) == expected


@pytest.mark.parametrize(
    ("choice", "error"),
    [
        ("sometimes", "expected one of auto, none, required"),
        ({"type": "allowed_tools"}, "type: expected one of auto, any, none, tool"),
        ({"type": "tool"}, "name: expected a string"),
    ],
)
def test_an_unknown_tool_choice_is_refused(choice: Any, error: str) -> None:
    with pytest.raises(ValueError, match=error):
        tool_choice_spec(choice)


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(), inner, max_size=3),
    max_leaves=8,
)


@given(st.dictionaries(st.text(), JSON_VALUES, max_size=4))
def test_tool_arguments_and_input_round_trip_any_json_object(value: dict[str, Any]) -> None:
    assume(not (set(value) == {UNPARSED} and isinstance(value[UNPARSED], str)))  # the marker
    assert tool_input(tool_arguments(value)) == value


@given(st.text())
def test_arguments_that_are_not_a_json_object_come_back_unchanged(text: str) -> None:
    parsed = tool_input(text)
    try:
        is_object = isinstance(json.loads(text), dict)
    except ValueError:
        is_object = False
    if is_object:
        assert parsed == json.loads(text)
    elif text.strip():
        assert parsed == {UNPARSED: text} and tool_arguments(parsed) == text
    else:
        assert parsed == {}
