"""The wire parsers refuse what cannot travel, naming the field; nothing else escapes them.

What they return is sent by an SDK as strict JSON in UTF-8: a lone surrogate, NaN or an
infinity anywhere in it would fail the call before it left, and used to be blamed on the
provider. The hypothesis test drives the parsers with arbitrary JSON-ish values.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from resilience.formats.wire import (
    WireError,
    chat_request_from_anthropic,
    chat_request_from_openai,
    embedding_request_from_openai,
)
from resilience.models import MAX_JSON_DEPTH, ChatRequest, EmbeddingRequest
from resilience.providers import anthropic as anthropic_adapter
from resilience.providers import openai as openai_adapter

USER = {"role": "user", "content": "hi"}


def openai_chat(**fields: Any) -> dict[str, Any]:
    return {"model": "openai:gpt-4.1", "messages": [USER], **fields}


def anthropic_chat(**fields: Any) -> dict[str, Any]:
    return {"model": "claude:claude-sonnet-4-6", "max_tokens": 16, "messages": [USER], **fields}


def nested(depth: int) -> Any:
    value: Any = "leaf"
    for _ in range(depth):
        value = {"x": [value]}
    return value


REFUSED = [
    (openai_chat(messages=[{"role": "user", "content": "hi \udc80"}]), "messages[0].content"),
    (openai_chat(temperature=float("nan")), "temperature: not a finite number"),
    (openai_chat(top_p=float("-inf")), "top_p: not a finite number"),
    (openai_chat(temperature=10**400), "temperature: not a finite number"),
    (openai_chat(model="openai:x\udc80"), "model: "),
    (openai_chat(model="openai:gpt-4.1\r\nx: y"), "model: "),
    (openai_chat(model="openai:gpt-4.1\x00"), "model: "),
    (openai_chat(model="openai:模型"), "model: "),
    (openai_chat(model="m" * 257), "model: "),
    (openai_chat(user="u\x1b"), "user: control character"),
    (openai_chat(response_format={"\ud800key": 1}), "response_format.\\ud800key: lone surrogate"),
    (openai_chat(seed=[1, {"a": float("inf")}]), "seed[1].a: not a finite number"),
    (openai_chat(extra=nested(MAX_JSON_DEPTH + 1)), "extra"),
    (
        openai_chat(tools=[{"type": "function", "function": {"name": "f\n"}}]),
        "tools[0].function.name",
    ),
    (openai_chat(tools=[{"name": "f\x7f", "input_schema": {}}]), "tools[0].name: control"),
    (openai_chat(tool_choice={"type": "tool", "name": "f\x00"}), "tool_choice.name: control"),
    (
        openai_chat(
            messages=[
                {
                    "role": "assistant",
                    "tool_calls": [{"id": "c\r", "function": {"name": "f", "arguments": "{}"}}],
                },
                {"role": "tool", "tool_call_id": "c", "content": "x"},
            ]
        ),
        "messages[0].tool_calls[0].id: control character",
    ),
    (
        openai_chat(messages=[USER, {"role": "tool", "tool_call_id": "c\x00", "content": "x"}]),
        "messages[1].tool_call_id: control character",
    ),
]
ANTHROPIC_REFUSED = [
    (anthropic_chat(metadata={"user_id": "u\n"}), "metadata.user_id: control character"),
    (anthropic_chat(metadata={"user_id": 7}), "metadata.user_id: expected a string"),
    (anthropic_chat(system="s\udfff"), "system: lone surrogate"),
    (
        anthropic_chat(
            messages=[{"role": "user", "content": [{"type": "tool_result", "tool_use_id": "\x01"}]}]
        ),
        "messages[0].content[0].tool_use_id: control character",
    ),
    (
        anthropic_chat(
            messages=[
                {
                    "role": "user",
                    "content": [{"type": "tool_result", "tool_use_id": "t", "content": [1, None]}],
                }
            ]
        ),
        "messages[0].content[0].content[0]: expected an object with a string type",
    ),
]


@pytest.mark.parametrize(("body", "named"), REFUSED)
def test_openai_bodies_that_cannot_travel_are_refused_naming_the_field(
    body: dict[str, Any], named: str
) -> None:
    with pytest.raises(WireError) as raised:
        chat_request_from_openai(body)
    assert str(raised.value).startswith(named)
    str(raised.value).encode("utf-8")  # the message itself can travel


@pytest.mark.parametrize(("body", "named"), ANTHROPIC_REFUSED)
def test_anthropic_bodies_that_cannot_travel_are_refused_naming_the_field(
    body: dict[str, Any], named: str
) -> None:
    with pytest.raises(WireError) as raised:
        chat_request_from_anthropic(body)
    assert str(raised.value).startswith(named)


@pytest.mark.parametrize(
    ("inputs", "named"), [(["ok", "\udc80"], "input[1]: lone surrogate"), ("\ud800", "input: ")]
)
def test_embedding_inputs_that_cannot_travel_are_refused(inputs: Any, named: str) -> None:
    with pytest.raises(WireError, match=r"^" + named.replace("[", r"\[").replace("]", r"\]")):
        embedding_request_from_openai({"model": "openai:e", "input": inputs})


@pytest.mark.parametrize(
    "model",
    [
        "chat",
        "openai:gpt-4.1-2025-04-14",
        "vertex:claude-sonnet-4-6@20250514",
        "fireworks:accounts/fireworks/models/llama-v3p1-8b-instruct",
        "local:llama3.1:8b",
        "m" * 256,
    ],
)
def test_real_model_ids_and_route_names_are_accepted(model: str) -> None:
    assert chat_request_from_openai(openai_chat(model=model))[0] == model


def test_emoji_and_escaped_pairs_are_text_not_surrogates() -> None:
    body = json.loads(
        '{"model": "chat", "messages": [{"role": "user", "content": "\\ud83d\\ude00 ok"}]}'
    )
    _, _, request = chat_request_from_openai(body)
    assert request.messages[0].content == "\U0001f600 ok"


def test_tool_arguments_that_parse_to_nan_stay_text() -> None:
    body = openai_chat(
        messages=[
            {
                "role": "assistant",
                "tool_calls": [{"id": "c", "function": {"name": "f", "arguments": '{"x": NaN}'}}],
            },
            {"role": "tool", "tool_call_id": "c", "content": "1"},
        ]
    )
    _, _, request = chat_request_from_openai(body)
    block = request.messages[0].content[0]
    assert isinstance(block, dict) and block["input"] == {"_unparsed_arguments": '{"x": NaN}'}
    strict(anthropic_adapter.to_params(request, "m"))


# -- hypothesis: nothing but WireError, and what comes back can be sent -----------------------

ANY_CHAR = st.characters(codec=None, exclude_categories=())
"""Every code point, lone surrogates and control characters included."""


def mostly(valid: st.SearchStrategy[Any], other: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """`valid` four times in five: a body must pass every field's check to reach the
    adapters, so each field is usually valid and sometimes anything at all."""
    return st.sampled_from([True, True, True, True, False]).flatmap(
        lambda usual: valid if usual else other
    )


NAME = st.sampled_from(["f", "hi", "user", "text", "tool_use", "c-1"])
TEXT = mostly(st.text(max_size=8) | NAME, st.text(ANY_CHAR, max_size=12))
NUMBER = (
    st.integers()
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.sampled_from([2**63, 1e308, 0, 1, -1])
    | st.builds(pow, st.sampled_from([10, -10]), st.sampled_from([400, 5000]))  # past float, str
)
LEAF = st.none() | st.booleans() | NUMBER | TEXT
JSONISH = st.recursive(
    LEAF,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(TEXT, inner, max_size=4),
    max_leaves=20,
)
DEEP = st.integers(0, 150).map(nested)

ROLE = mostly(st.sampled_from(["user", "assistant", "system", "developer", "tool"]), JSONISH)
BLOCK: st.SearchStrategy[Any] = mostly(
    st.fixed_dictionaries({"type": st.just("text"), "text": TEXT})
    | st.fixed_dictionaries(
        {"type": st.just("tool_use"), "id": TEXT, "name": TEXT, "input": JSONISH}
    )
    | st.fixed_dictionaries(
        {"type": st.just("tool_result"), "tool_use_id": TEXT},
        optional={
            "content": TEXT
            | st.lists(st.deferred(lambda: BLOCK), max_size=2)
            | st.lists(JSONISH, max_size=2),
            "is_error": JSONISH,
        },
    )
    | st.fixed_dictionaries({"type": st.just("image"), "source": JSONISH}),
    st.dictionaries(TEXT, JSONISH, max_size=3) | JSONISH,
)
CONTENT = mostly(TEXT | st.lists(BLOCK, max_size=3), JSONISH)
TOOL_CALL = st.fixed_dictionaries(
    {
        "id": mostly(TEXT, JSONISH),
        "function": st.fixed_dictionaries(
            {"name": TEXT, "arguments": mostly(st.sampled_from(["{}", '{"a": [1, 2.5]}']), TEXT)}
        ),
    }
)
MESSAGE = st.fixed_dictionaries(
    {"role": ROLE, "content": CONTENT},
    optional={
        "tool_calls": mostly(st.lists(TOOL_CALL, max_size=2), JSONISH),
        "tool_call_id": mostly(NAME, JSONISH),
    },
)
TOOL = mostly(
    st.fixed_dictionaries(
        {"type": st.just("function"), "function": st.fixed_dictionaries({"name": NAME})},
        optional={"parameters": JSONISH},
    )
    | st.fixed_dictionaries({"name": NAME}, optional={"input_schema": JSONISH, "type": TEXT}),
    JSONISH,
)
CHOICE = st.sampled_from(["auto", "none", "required"]) | st.fixed_dictionaries(
    {"type": st.sampled_from(["auto", "any", "none", "tool", "function"])},
    optional={"name": TEXT, "function": st.fixed_dictionaries({"name": TEXT})},
)
MODEL = mostly(st.sampled_from(["chat", "openai:gpt-4.1", "claude:c@1"]), TEXT)
SHAPED = st.fixed_dictionaries(
    {
        "model": MODEL,
        "messages": mostly(st.lists(MESSAGE, min_size=1, max_size=3), JSONISH),
        "max_tokens": mostly(st.integers(1, 4096), NUMBER | JSONISH),
    },
    optional={
        "temperature": mostly(st.floats(0, 2), NUMBER),
        "top_p": mostly(st.floats(0, 1), NUMBER | JSONISH),
        "stream": mostly(st.booleans(), JSONISH),
        "stop": mostly(TEXT | st.lists(TEXT, max_size=2), JSONISH),
        "stop_sequences": mostly(st.lists(TEXT, max_size=2), JSONISH),
        "tools": mostly(st.lists(TOOL, max_size=2), JSONISH),
        "tool_choice": mostly(CHOICE, JSONISH),
        "parallel_tool_calls": st.booleans(),
        "user": mostly(TEXT, JSONISH),
        "metadata": mostly(st.fixed_dictionaries({}, optional={"user_id": TEXT}), JSONISH),
        "system": CONTENT,
        "input": mostly(TEXT | st.lists(TEXT, min_size=1, max_size=3), JSONISH),
        "dimensions": mostly(st.integers(1, 4096), NUMBER),
        "encoding_format": mostly(st.sampled_from(["float", "base64"]), JSONISH),
        "n": mostly(st.just(1), NUMBER),
        "response_format": mostly(JSONISH, DEEP),
    },
)
BODY = mostly(SHAPED, JSONISH | DEEP)


def strict(value: Any) -> None:
    """What an SDK does with it: strict JSON, then UTF-8."""
    json.dumps(value, allow_nan=False).encode("utf-8")


def as_json(request: ChatRequest | EmbeddingRequest) -> Any:
    return dataclasses.asdict(request)


Parse = Callable[[Any], Any]


@pytest.mark.parametrize(
    "parse",
    [chat_request_from_openai, chat_request_from_anthropic, embedding_request_from_openai],
    ids=["openai_chat", "anthropic_messages", "openai_embeddings"],
)
@settings(max_examples=600, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(body=BODY)
def test_the_parsers_return_a_sendable_request_or_raise_wire_error(parse: Parse, body: Any) -> None:
    try:
        parsed = parse(body)
    except WireError as exc:
        str(exc).encode("utf-8")  # the message, naming the field, can be sent back
        return
    model, request = parsed[0], parsed[-1]
    strict(model)
    strict(as_json(request))
    if isinstance(request, ChatRequest):
        strict(openai_adapter.to_params(request, model))
        strict(anthropic_adapter.to_params(request, model))
