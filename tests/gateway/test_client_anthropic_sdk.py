"""The `anthropic` SDK as users run it, over a real socket: `messages.count_tokens`, a stream
with extended thinking through `messages.stream(...)`, and prompt caching.

Each answer is held to what the chaos upstream answers the same request sent to it
directly (`real_clients.Served.direct_anthropic`), `id` aside.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import anthropic
import pytest
from anthropic.types import Message

from tests.gateway.real_clients import Served, served, without

ASK: list[Any] = [{"role": "user", "content": "Why is the sky blue? One line."}]
THINKING: Any = {"type": "enabled", "budget_tokens": 1024}


@pytest.fixture
async def gateway(tmp_path: Path) -> AsyncIterator[Served]:
    async with served(tmp_path) as running:
        yield running


async def test_count_tokens_answers_as_the_upstream_counts(gateway: Served) -> None:
    ask: dict[str, Any] = {"system": "You are terse.", "messages": ASK}
    counted = await gateway.anthropic().messages.count_tokens(model="cloud", **ask)
    direct = await gateway.direct_anthropic().messages.count_tokens(
        model="claude-sonnet-4-6", **ask
    )

    assert counted.input_tokens >= 1
    assert counted.to_dict() == direct.to_dict()
    assert gateway.body_sent("claude") == gateway.body_sent("direct")


async def streamed(client: anthropic.AsyncAnthropic, model: str) -> tuple[list[str], Message]:
    """The SDK's stream helper, as users call it: the event types seen, the final message."""
    async with client.messages.stream(
        model=model, max_tokens=2048, thinking=THINKING, messages=ASK
    ) as stream:
        events: list[str] = [event.type async for event in stream]
        return events, await stream.get_final_message()


async def test_a_stream_with_thinking_ends_with_a_thinking_block(gateway: Served) -> None:
    events, final = await streamed(gateway.anthropic(), "cloud")
    direct_events, direct = await streamed(gateway.direct_anthropic(), "claude-sonnet-4-6")

    thinking, *_, text = final.content
    assert thinking.type == "thinking" and thinking.thinking and thinking.signature
    assert text.type == "text" and text.text
    assert "thinking" in events and "signature" in events
    assert events == direct_events
    assert without(final.to_dict(), {"id"}) == without(direct.to_dict(), {"id"})
    assert gateway.body_sent("claude") == gateway.body_sent("direct")
    assert gateway.body_sent("claude")["thinking"] == THINKING


SYSTEM: Any = [
    {"type": "text", "text": "You answer questions about a long manual. " * 40},
    {
        "type": "text",
        "text": "The manual: chapter one, the sky; chapter two, the sea. " * 40,
        "cache_control": {"type": "ephemeral"},
    },
]


async def test_prompt_caching_reports_cache_writes_then_reads(gateway: Served) -> None:
    client = gateway.anthropic()
    first = await client.messages.create(model="cloud", max_tokens=256, system=SYSTEM, messages=ASK)
    second = await client.messages.create(
        model="cloud",
        max_tokens=256,
        system=SYSTEM,
        messages=[{"role": "user", "content": "And why is the sea blue?"}],
    )
    async with client.messages.stream(
        model="cloud", max_tokens=256, system=SYSTEM, messages=ASK
    ) as stream:
        third = await stream.get_final_message()

    assert first.usage.cache_creation_input_tokens and not first.usage.cache_read_input_tokens
    for later in (second, third):
        assert later.usage.cache_read_input_tokens and not later.usage.cache_creation_input_tokens
    sent = [h.body or {} for h in gateway.hits("claude")]
    assert [body.get("system") for body in sent] == [SYSTEM] * 3
