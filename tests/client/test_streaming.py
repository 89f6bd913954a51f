"""Streaming through the client: before the first chunk it is a call like any other; after, not."""

from __future__ import annotations

import asyncio

import pytest

from resilience.breaker.events import BreakerState
from resilience.breaker.machine import CircuitBreaker
from resilience.chaos import Fault
from resilience.client.outcomes import OutcomeStatus
from resilience.errors import ErrorKind
from resilience.models import ChatChunk
from tests.support.client import CHAT, Harness, drain, route

TENANT = "acme"
PROVIDERS = [("primary:gpt-4.1", "fallback:claude-x"), ("fallback:claude-x", "primary:gpt-4.1")]


def state_of(breaker: CircuitBreaker) -> BreakerState:
    """The state, read through a call so mypy does not carry a narrowed type across awaits."""
    return breaker.state


def content(chunks: list[ChatChunk]) -> list[ChatChunk]:
    return [c for c in chunks if c.text_delta]


@pytest.mark.parametrize(("first", "second"), PROVIDERS)
@pytest.mark.parametrize(
    "fault",
    [Fault(drop_after_chunks=2), Fault(error_event_after_chunks=2)],
    ids=["drop", "error_event"],
)
async def test_failure_after_output_began_is_explicit_and_never_falls_back(
    harness: Harness, first: str, second: str, fault: Fault
) -> None:
    client = await harness.client(served=True, routes={"s": route("s", first, second)})
    upstream = first.split(":")[0]
    harness.chaos.add_fault(fault, upstream=upstream)
    stream = await client.stream(CHAT, route="s", tenant=TENANT)
    chunks, error = await drain(stream)
    assert len(content(chunks)) == 2
    assert error is not None and error.kind is ErrorKind.STREAM_INTERRUPTED
    assert harness.chaos.hit_count(upstream=second.split(":")[0]) == 0
    breaker = client.registry.get(TENANT, upstream)
    assert breaker.failures_in_window() == 1


@pytest.mark.parametrize(("first", "second"), PROVIDERS)
async def test_failure_before_the_first_chunk_falls_back_transparently(
    harness: Harness, first: str, second: str
) -> None:
    client = await harness.client(routes={"s": route("s", first, second)})
    harness.chaos.add_fault(Fault(status=503), upstream=first.split(":")[0])
    async with await client.stream(CHAT, route="s", tenant=TENANT) as stream:
        chunks, error = await drain(stream)
    assert error is None and content(chunks)
    assert stream.target.provider == second.split(":")[0]
    assert stream.outcomes[0].status is OutcomeStatus.FAILED


@pytest.mark.parametrize(("first", "second"), PROVIDERS)
async def test_a_stream_without_its_end_marker_is_an_error(
    harness: Harness, first: str, second: str
) -> None:
    client = await harness.client(routes={"s": route("s", first, second)})
    upstream = first.split(":")[0]
    harness.chaos.add_fault(Fault(no_end_marker=True), upstream=upstream)
    stream = await client.stream(CHAT, route="s", tenant=TENANT)
    chunks, error = await drain(stream)
    assert content(chunks)
    assert error is not None and error.kind is ErrorKind.STREAM_INTERRUPTED
    assert client.registry.get(TENANT, upstream).failures_in_window() == 1


@pytest.mark.parametrize(("first", "second"), PROVIDERS)
async def test_consumer_closing_after_one_chunk_is_neutral(
    harness: Harness, first: str, second: str
) -> None:
    client = await harness.client(served=True, routes={"s": route("s", first, second)})
    upstream = first.split(":")[0]
    harness.chaos.add_fault(Fault(chunk_delay_s=0.05), upstream=upstream)
    stream = await client.stream(CHAT, route="s", tenant=TENANT)
    async for _chunk in stream:
        break
    await stream.aclose()
    breaker = client.registry.get(TENANT, upstream)
    assert breaker.calls_in_window() == 0 and breaker.failures_in_window() == 0
    assert harness.chaos.hit_count(upstream=upstream) == 1


async def test_consumer_cancelling_mid_stream_is_neutral_and_frees_the_probe(
    harness: Harness,
) -> None:
    client = await harness.client(served=True, routes={"s": route("s", "primary:gpt-4.1")})
    breaker = client.registry.get(TENANT, "primary")
    breaker.force_open(duration_s=1.0)
    harness.clock.advance(1.0)  # next call is the half-open probe
    harness.chaos.add_fault(Fault(chunk_delay_s=0.5), upstream="primary")
    stream = await client.stream(CHAT, route="s", tenant=TENANT)
    assert breaker.state is BreakerState.HALF_OPEN

    async def consume() -> None:
        async for _chunk in stream:
            pass

    task = asyncio.create_task(consume())
    await asyncio.sleep(0.1)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert breaker.state is BreakerState.HALF_OPEN
    probe = breaker.acquire()  # the cancelled probe's permit was released
    breaker.release(probe)


async def test_the_probe_permit_is_held_until_the_stream_ends(harness: Harness) -> None:
    client = await harness.client(routes={"s": route("s", "primary:gpt-4.1")})
    breaker = client.registry.get(TENANT, "primary")
    breaker.force_open(duration_s=1.0)
    harness.clock.advance(1.0)
    stream = await client.stream(CHAT, route="s", tenant=TENANT)
    assert breaker.state is BreakerState.HALF_OPEN  # the probe has not reported yet
    _chunks, error = await drain(stream)
    assert error is None
    assert state_of(breaker) is BreakerState.CLOSED
