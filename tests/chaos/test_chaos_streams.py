"""Mid-stream faults as the real SDKs see them, in-process and over a loopback socket alike."""

from __future__ import annotations

import json
from typing import Any

import anthropic
import httpx2
import openai
import pytest

from resilience.chaos import Fault
from tests.support.chaos import ANSWER_WORDS, MESSAGES, Upstream

Events = list[Any]


async def anthropic_stream(up: Upstream, read_s: float = 5.0) -> tuple[Events, Exception | None]:
    """Every event the SDK yields, and what it raised (None: the stream ended quietly)."""
    events: Events = []
    try:
        stream = await up.anthropic(timeout=read_s).messages.create(
            model="m", max_tokens=50, messages=MESSAGES, stream=True
        )
        async with stream:
            async for event in stream:
                events.append(event)
    except Exception as exc:
        return events, exc
    return events, None


async def openai_stream(
    up: Upstream, read_s: float = 5.0, include_usage: bool = True
) -> tuple[Events, Exception | None]:
    chunks: Events = []
    try:
        stream = await up.openai(timeout=read_s).chat.completions.create(
            model="m",
            messages=MESSAGES,
            stream=True,
            stream_options={"include_usage": include_usage},
        )
        async with stream:
            async for chunk in stream:
                chunks.append(chunk)
    except Exception as exc:
        return chunks, exc
    return chunks, None


def anthropic_texts(events: Events) -> list[str]:
    return [e.delta.text for e in events if e.type == "content_block_delta"]


def openai_texts(chunks: Events) -> list[str]:
    return [c.choices[0].delta.content for c in chunks if c.choices and c.choices[0].delta.content]


async def test_an_error_event_after_n_chunks_is_an_api_error_after_exactly_n(
    either: Upstream,
) -> None:
    either.chaos.add_fault(Fault(error_event_after_chunks=2))
    events, a_error = await anthropic_stream(either)
    chunks, o_error = await openai_stream(either)
    assert anthropic_texts(events) == openai_texts(chunks) == ANSWER_WORDS[:2]
    assert type(a_error) is anthropic.APIStatusError
    assert (a_error.status_code, a_error.type) == (200, "overloaded_error")
    assert type(o_error) is openai.APIError  # no status: the HTTP answer was a 200
    assert (o_error.type, o_error.code) == ("server_error", None)


async def test_an_error_event_carries_the_given_type_code_and_message(either: Upstream) -> None:
    fault = Fault(
        error_event_after_chunks=1, error_type="rate_limit_error", error_code="c", message="m"
    )
    either.chaos.add_fault(fault)
    _, a_error = await anthropic_stream(either)
    _, o_error = await openai_stream(either)
    assert isinstance(a_error, anthropic.APIStatusError)
    assert (a_error.type, a_error.error_code, a_error.api_message) == ("rate_limit_error", "c", "m")
    assert isinstance(o_error, openai.APIError)
    assert (o_error.type, o_error.code, o_error.message) == ("rate_limit_error", "c", "m")


async def test_a_drop_after_n_chunks_is_a_remote_protocol_error_after_exactly_n(
    either: Upstream,
) -> None:
    either.chaos.add_fault(Fault(drop_after_chunks=2))
    events, a_error = await anthropic_stream(either)
    chunks, o_error = await openai_stream(either)
    assert anthropic_texts(events) == openai_texts(chunks) == ANSWER_WORDS[:2]
    assert isinstance(a_error, httpx2.RemoteProtocolError)  # anthropic does not wrap it
    assert type(o_error) is openai.APIConnectionError
    assert isinstance(o_error.__cause__, httpx2.RemoteProtocolError)


async def test_a_reset_after_n_chunks_is_a_read_error_after_exactly_n(either: Upstream) -> None:
    either.chaos.add_fault(Fault(reset_after_chunks=2))
    events, a_error = await anthropic_stream(either)
    chunks, o_error = await openai_stream(either)
    assert anthropic_texts(events) == openai_texts(chunks) == ANSWER_WORDS[:2]
    assert isinstance(a_error, httpx2.ReadError)
    assert type(o_error) is openai.APIConnectionError
    assert isinstance(o_error.__cause__, httpx2.ReadError)


async def test_a_stall_after_n_chunks_ends_in_the_read_timeout(either: Upstream) -> None:
    either.chaos.add_fault(Fault(stall_after_chunks=3))
    events, a_error = await anthropic_stream(either, read_s=0.2)
    chunks, o_error = await openai_stream(either, read_s=0.2)
    assert anthropic_texts(events) == openai_texts(chunks) == ANSWER_WORDS[:3]
    assert isinstance(a_error, httpx2.ReadTimeout)
    assert isinstance(o_error, openai.APITimeoutError)


async def test_no_end_marker_ends_quietly_without_stop_finish_or_usage(either: Upstream) -> None:
    either.chaos.add_fault(Fault(no_end_marker=True))
    events, a_error = await anthropic_stream(either)
    chunks, o_error = await openai_stream(either)
    assert a_error is None and o_error is None
    assert anthropic_texts(events) == openai_texts(chunks) == ANSWER_WORDS
    assert events[-1].type == "content_block_delta"
    assert not {"message_delta", "message_stop"} & {e.type for e in events}
    assert all(c.usage is None for c in chunks)
    assert all(c.choices[0].finish_reason is None for c in chunks)


async def test_no_end_marker_leaves_out_done_on_the_wire(inproc: Upstream) -> None:
    inproc.chaos.add_fault(Fault(no_end_marker=True))
    response = await inproc.http.post(
        "http://chaos/u/v1/chat/completions",
        json={"model": "m", "messages": MESSAGES, "stream": True},
    )
    assert response.status_code == 200
    assert "[DONE]" not in response.text and '"finish_reason": "stop"' not in response.text


@pytest.mark.parametrize(("after", "delivered"), [(0, 0), (7, 7), (100, 7)])
async def test_a_count_past_the_last_chunk_applies_just_before_the_end(
    either: Upstream, after: int, delivered: int
) -> None:
    either.chaos.add_fault(Fault(drop_after_chunks=after))
    events, a_error = await anthropic_stream(either)
    chunks, o_error = await openai_stream(either)
    assert len(anthropic_texts(events)) == len(openai_texts(chunks)) == delivered
    assert "message_stop" not in {e.type for e in events}
    assert isinstance(a_error, httpx2.RemoteProtocolError)
    assert isinstance(o_error, openai.APIConnectionError)


async def test_a_malformed_stream_event_raises_json_decode_error_before_any_text(
    either: Upstream,
) -> None:
    either.chaos.add_fault(Fault(malformed_body=True))
    events, a_error = await anthropic_stream(either)
    chunks, o_error = await openai_stream(either)
    assert anthropic_texts(events) == openai_texts(chunks) == []
    assert [e.type for e in events] == ["message_start", "content_block_start"]
    assert isinstance(a_error, json.JSONDecodeError)
    assert isinstance(o_error, json.JSONDecodeError)


async def test_an_html_answer_to_a_stream_request_yields_nothing_and_no_error(
    either: Upstream,
) -> None:
    either.chaos.add_fault(Fault(wrong_content_type=True))
    assert await anthropic_stream(either) == ([], None)
    assert await openai_stream(either) == ([], None)


async def test_chunk_delay_sleeps_between_chunks_and_before_the_end(either: Upstream) -> None:
    either.chaos.add_fault(Fault(chunk_delay_s=0.25))
    events, a_error = await anthropic_stream(either)
    assert a_error is None and anthropic_texts(events) == ANSWER_WORDS
    assert events[-1].type == "message_stop"
    assert either.clock.sleeps == [0.25] * len(ANSWER_WORDS)  # 6 between, 1 before the end


async def test_chunk_delay_combines_with_a_drop(either: Upstream) -> None:
    either.chaos.add_fault(Fault(chunk_delay_s=0.5, drop_after_chunks=3))
    chunks, o_error = await openai_stream(either)
    assert openai_texts(chunks) == ANSWER_WORDS[:3]
    assert isinstance(o_error, openai.APIConnectionError)
    assert either.clock.sleeps == [0.5] * 3


async def test_a_stream_fault_leaves_the_next_request_healthy(either: Upstream) -> None:
    either.chaos.add_fault(Fault(reset_after_chunks=1), times=1)
    _, first = await openai_stream(either)
    chunks, second = await openai_stream(either)
    assert isinstance(first, openai.APIConnectionError) and second is None
    assert openai_texts(chunks) == ANSWER_WORDS
    assert chunks[-1].usage is not None
    assert [h.stream for h in either.chaos.hits] == [True, True]
