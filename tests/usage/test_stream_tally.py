"""`StreamTally` on OpenAI chunks as the API streams them: what a stream reported wins;
a stream that asked for no usage is estimated from the text it carried, for tpm."""

from __future__ import annotations

import json
from typing import Any

from resilience.usage.estimate import unreported_prompt
from resilience.usage.tokens import StreamTally, TokenCounts


def frame(chunk: dict[str, Any]) -> bytes:
    return b"data: " + json.dumps(chunk).encode() + b"\n\n"


def chunk(*deltas: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": "chatcmpl-1",
        "object": "chat.completion.chunk",
        "created": 1,
        "model": "gpt-4.1",
        "choices": [{"index": i, "delta": d, "finish_reason": None} for i, d in enumerate(deltas)],
    }


CHUNKS = [
    chunk({"role": "assistant", "content": ""}),
    chunk({"content": "Hello, "}, {"content": "Bonjour"}),  # n=2: both choices count
    chunk({"reasoning_content": "thinking.."}),
    chunk({"refusal": "no"}),
    chunk(
        {
            "tool_calls": [
                {"index": 0, "id": "call_1", "type": "function", "function": {"name": "lookup"}},
            ]
        }
    ),
    chunk({"tool_calls": [{"index": 0, "function": {"arguments": '{"q": "x"}'}}]}),
    chunk({"audio": {"id": "a1", "transcript": "hi", "data": "AAAA"}}),
]
TEXT = "Hello, " + "Bonjour" + "thinking.." + "no" + "lookup" + '{"q": "x"}' + "hi"


def test_a_stream_that_reports_nothing_is_estimated_from_its_text() -> None:
    tally = StreamTally("openai.chat", prompt_tokens=12)
    for c in CHUNKS:
        tally.feed(frame(c))
    tally.feed(b"data: [DONE]\n\n")
    assert tally.counts is None  # the provider reported nothing: unknown, for the record
    assert tally.estimated == TokenCounts(input=12, output=-(-len(TEXT) // 4))


def test_what_the_stream_reports_wins_over_the_estimate() -> None:
    tally = StreamTally("openai.chat", prompt_tokens=12)
    for c in CHUNKS:
        tally.feed(frame(c))
    usage = {"prompt_tokens": 30, "completion_tokens": 7, "total_tokens": 37}
    tally.feed(frame({**chunk(), "choices": [], "usage": usage}))
    assert tally.counts == TokenCounts(input=30, output=7)


def test_without_a_prompt_estimate_nothing_is_estimated() -> None:
    tally = StreamTally("openai.chat")
    for c in CHUNKS:
        tally.feed(frame(c))
    assert (tally.counts, tally.estimated) == (None, None)


def test_events_that_are_not_chunks_are_passed_over() -> None:
    tally = StreamTally("openai.chat", prompt_tokens=1)
    for raw in (
        b"data: {not json\n\n",
        b'data: {"choices": "x"}\n\n',
        b'data: {"choices": [1, {"delta": 2}]}\n\n',
        b": comment\n\n",
        frame(chunk({"content": 5, "tool_calls": [{"function": {"arguments": None}}]})),
    ):
        tally.feed(raw)
    assert tally.estimated == TokenCounts(input=1, output=0)


def test_only_an_openai_chat_stream_without_include_usage_is_estimated() -> None:
    body: dict[str, Any] = {"messages": [{"role": "user", "content": "x" * 40}]}
    # 40 characters of content and 4 of its role, about four a token
    assert unreported_prompt("openai.chat", body) == 11
    assert unreported_prompt("openai.chat", {**body, "stream_options": {}}) == 11
    asked = {**body, "stream_options": {"include_usage": True}}
    assert unreported_prompt("openai.chat", asked) is None
    assert unreported_prompt("anthropic.messages", body) is None  # reports usage always
