"""Every finished call hands one `UsageRecord` to the client's usage sinks: answered whole,
streamed (at the end, a failure mid-way, or the caller closing early), native, failed."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack

import pytest

from resilience.chaos import ChaosUpstream, Fault
from resilience.client.resilient import ResilientClient
from resilience.errors import AllTargetsFailed, ProviderError
from resilience.models import ChatRequest, EmbeddingRequest, Message
from resilience.tenancy.context import tenant_scope
from tests.support.client import drain
from tests.support.clock import FakeClock
from tests.usage.support import RecordingSink, usage_client

CHAT = ChatRequest(messages=(Message(role="user", content="one two three"),), max_tokens=64)
OPENAI_BODY = {"model": "openai", "messages": [{"role": "user", "content": "one two three"}]}
CLAUDE_BODY = {
    "model": "claude",
    "max_tokens": 64,
    "messages": [{"role": "user", "content": "one two three"}],
}


@pytest.fixture
async def stack() -> AsyncIterator[AsyncExitStack]:
    async with AsyncExitStack() as stack:
        yield stack


@pytest.fixture
def chaos() -> ChaosUpstream:
    return ChaosUpstream()


@pytest.fixture
def sink() -> RecordingSink:
    return RecordingSink()


@pytest.fixture
async def client(
    stack: AsyncExitStack, chaos: ChaosUpstream, sink: RecordingSink
) -> ResilientClient:
    return await usage_client(stack, chaos, sink, clock=FakeClock())


async def test_a_completion_is_recorded_with_its_usage(
    client: ResilientClient, sink: RecordingSink
) -> None:
    with tenant_scope("acme", request_id="req-7"):
        result = await client.complete(CHAT, route="openai")
    (record,) = sink.records
    assert (record.tenant_id, record.route, record.provider, record.model) == (
        "acme",
        "openai",
        "primary",
        "gpt-4.1",
    )
    assert record.input_tokens == result.value.usage.input_tokens > 0
    assert record.output_tokens == result.value.usage.output_tokens > 0
    assert record.cached_tokens is None  # the normalised answer has no place for it
    assert (record.outcome, record.request_id, record.streamed) == ("succeeded", "req-7", False)
    assert record.occurred_at.tzinfo is not None and record.latency_ms >= 0


async def test_a_fallback_names_the_target_that_answered(
    client: ResilientClient, chaos: ChaosUpstream, sink: RecordingSink
) -> None:
    chaos.add_fault(Fault(status=503), upstream="primary")
    result = await client.complete(CHAT, route="both", tenant="acme")
    (record,) = sink.records
    assert (record.provider, record.model, record.outcome) == ("fallback", "claude-x", "succeeded")
    assert record.input_tokens == result.value.usage.input_tokens


async def test_a_failed_call_names_the_last_target_tried(
    client: ResilientClient, chaos: ChaosUpstream, sink: RecordingSink
) -> None:
    chaos.add_fault(Fault(status=503))
    with pytest.raises(AllTargetsFailed):
        await client.complete(CHAT, route="both", tenant="acme")
    chaos.clear_faults()
    chaos.add_fault(Fault(status=400, message="no"), upstream="primary")
    with pytest.raises(ProviderError):
        await client.complete(CHAT, route="both", tenant="acme")
    failed, refused = sink.records
    assert (failed.provider, failed.outcome, failed.input_tokens) == (
        "fallback",
        "all_targets_failed",
        None,
    )
    assert (refused.provider, refused.outcome, refused.output_tokens) == (
        "primary",
        "bad_request",
        None,
    )


async def test_embeddings_are_recorded(client: ResilientClient, sink: RecordingSink) -> None:
    result = await client.embed(EmbeddingRequest(inputs=("a b", "c")), route="openai", tenant="t")
    (record,) = sink.records
    assert record.input_tokens == result.value.usage.input_tokens > 0
    assert record.output_tokens is None or record.output_tokens == 0


@pytest.mark.parametrize("route", ["openai", "claude"])
async def test_a_stream_is_recorded_at_its_end_with_its_usage(
    client: ResilientClient, sink: RecordingSink, route: str
) -> None:
    stream = await client.stream(CHAT, route=route, tenant="acme")
    assert sink.records == []  # not before the end
    chunks, error = await drain(stream)
    assert error is None
    usage = chunks[-1].usage
    assert usage is not None
    (record,) = sink.records
    assert (record.input_tokens, record.output_tokens) == (usage.input_tokens, usage.output_tokens)
    assert (record.streamed, record.outcome) == (True, "succeeded")
    await stream.aclose()
    assert len(sink.records) == 1  # once


async def test_a_stream_failing_midway_is_recorded_with_its_kind(
    stack: AsyncExitStack, chaos: ChaosUpstream, sink: RecordingSink
) -> None:
    client = await usage_client(stack, chaos, sink, clock=FakeClock(), served=True)
    chaos.add_fault(Fault(drop_after_chunks=1), upstream="primary")
    stream = await client.stream(CHAT, route="openai", tenant="acme")
    _, error = await drain(stream)
    assert error is not None
    (record,) = sink.records
    assert (record.outcome, record.provider, record.streamed) == (
        str(error.kind),
        "primary",
        True,
    )
    assert record.input_tokens is None  # OpenAI reports usage in the last chunk only


async def test_a_stream_closed_early_is_recorded_as_abandoned(
    client: ResilientClient, sink: RecordingSink
) -> None:
    stream = await client.stream_native(
        "anthropic.messages", {**CLAUDE_BODY, "stream": True}, tenant="acme"
    )
    async with stream:
        await anext(stream)  # message_start: the input tokens are known from here
    (record,) = sink.records
    assert (record.outcome, record.streamed, record.provider) == ("abandoned", True, "fallback")
    assert record.input_tokens is not None and record.input_tokens > 0


async def test_native_answers_are_recorded_from_their_own_usage(
    client: ResilientClient, sink: RecordingSink
) -> None:
    openai = await client.complete_native("openai.chat", OPENAI_BODY, tenant="a")
    claude = await client.complete_native("anthropic.messages", CLAUDE_BODY, tenant="b")
    first, second = sink.records
    assert first.input_tokens == openai.value.data["usage"]["prompt_tokens"]
    assert first.output_tokens == openai.value.data["usage"]["completion_tokens"]
    assert first.cached_tokens == 0  # reported: none cached
    assert second.input_tokens == claude.value.data["usage"]["input_tokens"]
    assert second.output_tokens == claude.value.data["usage"]["output_tokens"]


@pytest.mark.parametrize(
    ("api", "body"),
    [
        (
            "openai.chat",
            {**OPENAI_BODY, "stream": True, "stream_options": {"include_usage": True}},
        ),
        ("anthropic.messages", {**CLAUDE_BODY, "stream": True}),
    ],
)
async def test_native_streams_are_tallied(
    client: ResilientClient, sink: RecordingSink, api: str, body: dict[str, object]
) -> None:
    async with await client.stream_native(api, body, tenant="acme") as stream:  # type: ignore[arg-type]
        frames = [frame async for frame in stream]
    (record,) = sink.records
    assert frames and record.outcome == "succeeded" and record.streamed
    assert record.input_tokens == 3 and record.output_tokens is not None
    assert record.output_tokens > 0


async def test_an_openai_stream_without_include_usage_has_unknown_tokens(
    client: ResilientClient, sink: RecordingSink
) -> None:
    async with await client.stream_native(
        "openai.chat", {**OPENAI_BODY, "stream": True}, tenant="acme"
    ) as s:
        _ = [frame async for frame in s]
    (record,) = sink.records
    assert (record.input_tokens, record.output_tokens, record.cached_tokens) == (None, None, None)


async def test_a_call_cancelled_by_its_caller_is_recorded(
    client: ResilientClient, chaos: ChaosUpstream, sink: RecordingSink
) -> None:
    chaos.add_fault(Fault(hang=True))
    task = asyncio.create_task(client.complete(CHAT, route="openai", tenant="acme"))
    while not chaos.hits:  # noqa: ASYNC110 - the upstream's record, not an event of ours
        await asyncio.sleep(0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    (record,) = sink.records
    assert (record.outcome, record.provider) == ("abandoned", "primary")


async def test_a_sink_that_raises_does_not_fail_the_call(
    stack: AsyncExitStack, chaos: ChaosUpstream, sink: RecordingSink
) -> None:
    class Broken:
        def emit_usage(self, record: object) -> None:
            raise RuntimeError("broken sink")

    client = await usage_client(stack, chaos, Broken(), sink, clock=FakeClock())
    await client.complete(CHAT, route="openai", tenant="acme")
    assert len(sink.records) == 1


async def test_without_usage_sinks_no_record_is_made(
    stack: AsyncExitStack, chaos: ChaosUpstream
) -> None:
    client = await usage_client(stack, chaos, clock=FakeClock())
    assert client.usage is None
    await client.complete(CHAT, route="openai", tenant="acme")


async def test_many_concurrent_calls_each_make_one_record(
    client: ResilientClient, sink: RecordingSink
) -> None:
    async def one(i: int) -> None:
        with tenant_scope(f"t{i % 7}", request_id=f"r{i}"):
            if i % 2:
                await client.complete(CHAT, route="claude")
            else:
                _, error = await drain(await client.stream(CHAT, route="openai"))
                assert error is None

    await asyncio.gather(*(one(i) for i in range(200)))
    assert sorted(r.request_id or "" for r in sink.records) == sorted(f"r{i}" for i in range(200))
    assert len({r.id for r in sink.records}) == 200
