"""A whole answer is read from its JSON, without the SDK's models: the same normalised
answer as those models give.

The reference is what the SDK makes of the same JSON (`construct`, as the SDK parses a
response: it keeps what a server sent even when it does not fit the types), normalised
from its dump, as the adapters once did.
"""

from __future__ import annotations

import warnings
from typing import Any

import pytest
from anthropic.types import Message as AnthropicMessage

from resilience.models import ChatResponse, Usage
from resilience.providers import anthropic as anthropic_adapter
from resilience.providers import openai as openai_adapter
from resilience.providers.anthropic import normalise_block

BLOCKS: list[dict[str, Any]] = [
    {"type": "text", "text": "hello"},
    {"type": "text", "text": ""},
    {"type": "text", "text": "cited", "citations": [{"type": "char_location", "cited_text": "x"}]},
    {"type": "text"},  # a server that left the text out
    {"type": "text", "text": None},
    {"type": "text", "text": 7},  # a server that sent a number: kept as sent, both ways
    {"type": "tool_use", "id": "t1", "name": "f", "input": {"a": 1, "b": None}},
    {"type": "thinking", "thinking": "hmm", "signature": "s"},
    {"type": "redacted_thinking", "data": "opaque"},
    {"type": "something_new", "payload": {"x": 1}, "note": None},
]

ANTHROPIC_ANSWER = {
    "id": "msg_1",
    "type": "message",
    "role": "assistant",
    "model": "claude-x",
    "stop_reason": "end_turn",
    "stop_sequence": None,
    "usage": {"input_tokens": 3, "output_tokens": 5, "cache_read_input_tokens": None},
}


@pytest.mark.parametrize("sent", BLOCKS, ids=[str(b) for b in BLOCKS])
def test_an_anthropic_block_reads_as_the_sdks_model_of_it(sent: dict[str, Any]) -> None:
    data: dict[str, Any] = {**ANTHROPIC_ANSWER, "content": [sent]}
    (block,) = AnthropicMessage.construct(**data).content
    with warnings.catch_warnings():  # pydantic warns while dumping a number as text
        warnings.simplefilter("ignore")
        dumped = normalise_block(block.model_dump(exclude_none=True))
    answer = anthropic_adapter.chat_response(data, "p", "asked")
    assert answer.content == (dumped,)


def test_an_anthropic_answer_reads_whole() -> None:
    data = {**ANTHROPIC_ANSWER, "content": [{"type": "text", "text": "hi"}, BLOCKS[6]]}
    assert anthropic_adapter.chat_response(data, "p", "asked") == ChatResponse(
        text="hi",
        content=({"type": "text", "text": "hi"}, BLOCKS[6]),
        finish_reason="stop",
        raw_finish_reason="end_turn",
        usage=Usage(3, 5),
        provider="p",
        model="claude-x",
        response_id="msg_1",
    )


OPENAI_ANSWER = {
    "id": "chatcmpl-1",
    "object": "chat.completion",
    "created": 1,
    "model": "gpt-x",
    "usage": {"prompt_tokens": 4, "completion_tokens": 6, "total_tokens": 10},
}


def _openai(message: dict[str, Any], finish: str | None = "stop") -> dict[str, Any]:
    choice = {"index": 0, "message": {"role": "assistant", **message}, "finish_reason": finish}
    return {**OPENAI_ANSWER, "choices": [choice]}


@pytest.mark.parametrize(
    ("message", "blocks", "finish"),
    [
        ({"content": "hi", "refusal": None}, ({"type": "text", "text": "hi"},), "stop"),
        (
            {"content": None, "refusal": "no"},
            ({"type": "refusal", "refusal": "no"},),
            "content_filter",
        ),
        (
            {
                "content": None,
                "tool_calls": [
                    {
                        "id": "c1",
                        "type": "function",
                        "function": {"name": "f", "arguments": '{"a":1}'},
                    },
                    {"id": "c2", "function": {"name": "g", "arguments": ""}},  # no type: a function
                    {
                        "id": "c3",
                        "type": "custom",
                        "custom": {"name": "h", "input": "x"},
                        "x": None,
                    },
                ],
            },
            (
                {"type": "tool_use", "id": "c1", "name": "f", "input": {"a": 1}},
                {"type": "tool_use", "id": "c2", "name": "g", "input": {}},
                {"id": "c3", "type": "custom", "custom": {"name": "h", "input": "x"}},
            ),
            "stop",
        ),
    ],
)
def test_an_openai_answer_reads_its_first_choice(
    message: dict[str, Any], blocks: tuple[dict[str, Any], ...], finish: str
) -> None:
    answer = openai_adapter.chat_response(_openai(message), "p", "asked")
    assert (answer.content, answer.finish_reason) == (blocks, finish)
    assert (answer.usage, answer.model, answer.response_id) == (Usage(4, 6), "gpt-x", "chatcmpl-1")


def test_an_answer_that_names_no_model_is_the_models_asked_for() -> None:
    openai_answer = _openai({"content": "hi"})
    del openai_answer["model"], openai_answer["usage"]
    answer = openai_adapter.chat_response(openai_answer, "p", "asked")
    assert (answer.model, answer.usage) == ("asked", Usage())


@pytest.mark.parametrize(
    "data",
    [
        {**OPENAI_ANSWER, "choices": []},
        {**OPENAI_ANSWER, "choices": [{"index": 0, "finish_reason": "stop"}]},
        _openai({"content": ["a", "list"]}),
        _openai({"content": "hi", "refusal": 3}),
    ],
)
def test_an_openai_answer_without_a_readable_message_is_refused(data: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match="provider 'p'"):
        openai_adapter.chat_response(data, "p", "asked")


@pytest.mark.parametrize("content", [None, "text", [{"type": "text"}, "not a block"]])
def test_an_anthropic_answer_without_its_blocks_is_refused(content: object) -> None:
    with pytest.raises(ValueError, match="provider 'p'"):
        anthropic_adapter.chat_response({**ANTHROPIC_ANSWER, "content": content}, "p", "asked")
