"""Over 1,000 mixed calls (plain, streamed, native, fallbacks, failures, streams cut
mid-way) the usage rows in the real PostgreSQL sum exactly to the usage the chaos upstream
reported: read from the bytes it sent, by an ASGI wrapper around it, not from our client."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, MutableMapping
from contextlib import AsyncExitStack, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx2
import pytest
from sqlalchemy import text

from resilience.audit.database import create_engine, migrate
from resilience.audit.sink import DatabaseSink
from resilience.breaker.registry import BreakerRegistry
from resilience.chaos import ChaosUpstream, Fault
from resilience.chaos.inprocess import ChaosTransport
from resilience.client.resilient import ResilientClient
from resilience.errors import ResilienceError
from resilience.models import ChatRequest, Message
from resilience.retry import RetryPolicy
from tests.support.client import drain, providers_for, route
from tests.support.clock import FakeClock

CALLS = 1000
CHAT = ChatRequest(
    messages=(Message(role="user", content="count these five words"),), max_tokens=64
)
ROUTES = {
    "openai": route("openai", "primary:gpt-4.1"),
    "claude": route("claude", "fallback:claude-x"),
    "both": route("both", "primary:gpt-4.1", "fallback:claude-x"),
    "claude_cut": route("claude_cut", "fallback:claude-cut"),
    "flaky": route("flaky", "primary:gpt-flaky", "fallback:claude-x"),
    "down": route("down", "primary:gpt-down", "fallback:claude-down"),
    "openai_cut": route("openai_cut", "primary:gpt-cut"),
}


@dataclass
class Sent:
    """One answer as the upstream sent it: its status, its bytes, whether it ended."""

    path: str
    status: int = 0
    body: bytearray = field(default_factory=bytearray)
    ended: bool = False


class Tap:
    """The chaos upstream's ASGI app, with every answer's bytes kept as they leave it."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.sent: list[Sent] = []

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        seen = Sent(scope["path"])
        self.sent.append(seen)

        async def tapped(message: MutableMapping[str, Any]) -> None:
            if message["type"] == "http.response.start":
                seen.status = message["status"]
            elif message["type"] == "http.response.body":
                seen.body += message.get("body", b"")
                seen.ended = not message.get("more_body", False)
            await send(message)

        await self.app(scope, receive, tapped)


def reported(sent: Sent) -> tuple[int, int] | None:
    """(input, output) tokens in the bytes the upstream sent; None when they hold none.
    Anthropic's input is its three input counts; a stream's as far as it got."""
    if sent.status != 200 or not sent.body:
        return None
    anthropic = sent.path.endswith("/messages")
    if not sent.body.lstrip().startswith(b"{"):
        events = []
        for line in bytes(sent.body).split(b"\n"):
            if line.startswith(b"data:") and line[5:].strip() not in (b"", b"[DONE]"):
                with suppress(ValueError):  # a malformed event reports nothing
                    events.append(json.loads(line[5:]))
    else:
        events = [json.loads(sent.body)]
    found: tuple[int, int] | None = None
    for event in events:
        usage = event.get("usage")
        if anthropic and event.get("type") == "message_start":
            usage = event["message"]["usage"]
        if not isinstance(usage, dict):
            continue
        if anthropic:
            prompt = sum(usage.get(k) or 0 for k in _ANTHROPIC_INPUT)
            before = found or (0, 0)
            found = (prompt or before[0], max(before[1], usage.get("output_tokens") or 0))
        else:
            found = (usage["prompt_tokens"], usage["completion_tokens"])
    return found


_ANTHROPIC_INPUT = ("input_tokens", "cache_read_input_tokens", "cache_creation_input_tokens")


@pytest.fixture
async def stack() -> AsyncIterator[AsyncExitStack]:
    async with AsyncExitStack() as stack:
        yield stack


async def test_usage_rows_sum_to_what_the_upstream_reported(
    pg_url: str, tmp_path: Path, stack: AsyncExitStack
) -> None:
    chaos = ChaosUpstream(seed=18)
    chaos.add_fault(Fault(status=503), model="gpt-flaky")
    chaos.add_fault(Fault(status=503), model="gpt-down")
    chaos.add_fault(Fault(status=529), model="claude-down")
    chaos.add_fault(Fault(drop_after_chunks=2), model="gpt-cut", probability=0.5)
    chaos.add_fault(Fault(drop_after_chunks=1), model="claude-cut", probability=0.5)
    tap = Tap(chaos.app)
    http = httpx2.AsyncClient(transport=ChaosTransport(app=tap))
    stack.push_async_callback(http.aclose)

    await migrate(pg_url)
    engine = create_engine(pg_url)
    stack.push_async_callback(engine.dispose)
    sink = DatabaseSink(engine, spool_path=tmp_path / "spool.jsonl", batch_age_s=0.01)
    await sink.start()
    clock = FakeClock()
    client = ResilientClient(
        providers=providers_for("http://chaos", http, 5.0),
        routes=ROUTES,
        registry=BreakerRegistry(clock=clock, wall_clock=clock.wall, sinks=[sink]),
        retry=RetryPolicy(max_attempts=2),
        clock=clock,
        sleep=clock.sleep,
        usage_sinks=[sink],
    )
    stack.push_async_callback(client.aclose)

    answered = 0
    gate = asyncio.Semaphore(50)

    async def one(i: int) -> None:
        nonlocal answered
        tenant = f"tenant-{i % 10}"
        kind = i % 10
        async with gate:
            try:
                if kind in (0, 1, 7, 8):
                    name = {0: "openai", 1: "claude", 7: "flaky", 8: "down"}[kind]
                    await client.complete(CHAT, route=name, tenant=tenant)
                elif kind in (2, 3, 9):
                    name = {2: "openai", 3: "claude", 9: "openai_cut"}[kind]
                    _, error = await drain(await client.stream(CHAT, route=name, tenant=tenant))
                    if error is not None:
                        return
                elif kind == 4:
                    body: dict[str, Any] = {
                        "model": "both",
                        "messages": [{"role": "user", "content": "a b c"}],
                    }
                    await client.complete_native("openai.chat", body, tenant=tenant)
                elif kind == 5:
                    body = {
                        "model": "openai",
                        "stream": True,
                        "stream_options": {"include_usage": True},
                        "messages": [{"role": "user", "content": "a b c d"}],
                    }
                    async with await client.stream_native("openai.chat", body, tenant=tenant) as s:
                        _, error = await drain(s)
                    if error is not None:
                        return
                else:
                    body = {
                        "model": "claude_cut",
                        "max_tokens": 64,
                        "stream": True,
                        "messages": [{"role": "user", "content": "one two three four five six"}],
                    }
                    async with await client.stream_native(
                        "anthropic.messages", body, tenant=tenant
                    ) as s:
                        _, error = await drain(s)
                    if error is not None:
                        return
            except ResilienceError:
                return
        answered += 1

    await asyncio.gather(*(one(i) for i in range(CALLS)))
    await client.aclose()
    await sink.aclose()
    assert sink.stats.usage_received == CALLS

    complete = [s for s in tap.sent if s.ended]
    in_answers = [t for s in complete if (t := reported(s)) is not None]
    in_any = [t for s in tap.sent if (t := reported(s)) is not None]
    async with engine.connect() as conn:
        rows = (
            await conn.execute(
                text(
                    "SELECT outcome = 'succeeded', COUNT(*), COUNT(input_tokens), "
                    "SUM(input_tokens), SUM(output_tokens) FROM usage_records GROUP BY 1"
                )
            )
        ).all()
    by = {bool(r[0]): (r[1], r[2], int(r[3] or 0), int(r[4] or 0)) for r in rows}
    succeeded, failed = by[True], by[False]
    assert succeeded[0] + failed[0] == CALLS  # one row per call, none twice
    assert succeeded[0] == answered == len(in_answers)  # every answer reported usage
    assert succeeded[1] == answered  # and its row has it
    assert (succeeded[2], succeeded[3]) == (
        sum(t[0] for t in in_answers),
        sum(t[1] for t in in_answers),
    )
    # the mix did what it says: fallbacks, failures, and streams cut mid-way
    assert failed[0] > 100 and answered > CALLS / 3
    assert chaos.hit_count(model="gpt-flaky") > 0  # fallbacks answered by the other target
    assert len(complete) < len(tap.sent)
    # streams cut after Anthropic reported their input: billed, and on the failed row
    assert (succeeded[2] + failed[2], succeeded[3] + failed[3]) == (
        sum(t[0] for t in in_any),
        sum(t[1] for t in in_any),
    )
    assert failed[1] > 0
