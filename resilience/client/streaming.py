"""`ResilientStream`: a provider stream whose first chunk has already arrived.

The client opens a stream and waits for its first chunk inside the retry and
fallback walk, so a failure before output begins is retried or routed around
like any other. Once a chunk has been handed out, output has begun: a failure
is `stream_interrupted` (counted on the breaker, no other target tried) and is
raised to the consumer as a `ProviderError`; a stream that ends without its end
marker raises too, never a silent stop. Closing or cancelling the stream closes
the upstream response at once and is neutral for the breaker. The breaker
permit (a half-open probe's included) is held until the stream ends, and so is the
bulkhead slot, when the client has bulkheads. With usage sinks, every item passes
through the stream's `StreamUsage`, whose record is made at that same end (the end
marker, a failure, or the caller closing it).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator
from types import TracebackType
from typing import Generic, TypeVar

from resilience.breaker.machine import CircuitBreaker, Permit
from resilience.client.attempt import failure
from resilience.client.outcomes import TargetOutcome
from resilience.routing.bulkhead import Slot, slot_outcome
from resilience.routing.routes import Target
from resilience.usage.meter import ABANDONED, StreamUsage
from resilience.usage.record import SUCCEEDED

ItemT = TypeVar("ItemT")


async def first_of(
    upstream: AsyncGenerator[ItemT, None],
) -> tuple[AsyncGenerator[ItemT, None], ItemT | None]:
    """Wait for a stream's first item (None: it ended before any), closing the stream at
    once if that fails: a stream is opened inside the walk up to there, so a failure
    before output begins can still be retried or routed around."""
    try:
        first = await anext(upstream)
    except StopAsyncIteration:
        return upstream, None
    except BaseException:
        await upstream.aclose()
        raise
    return upstream, first


class ResilientStream(Generic[ItemT]):
    """Async iterator of normalised chunks (`ChatChunk`), or of server-sent events (`bytes`)
    for a native stream; use `async with` or call `aclose()` when done early."""

    def __init__(
        self,
        upstream: AsyncGenerator[ItemT, None],
        first: ItemT | None,
        *,
        permit: Permit,
        breaker: CircuitBreaker,
        target: Target,
        attempts: int,
        outcomes: tuple[TargetOutcome, ...],
        slot: Slot | None = None,
        usage: StreamUsage | None = None,
    ) -> None:
        self._upstream = upstream
        self._usage = usage
        self._slot = slot
        self._first = first
        self._permit = permit
        self._breaker = breaker
        self._done = False
        self.target = target
        self.attempts = attempts
        """Attempts over the whole route, the one that opened this stream included."""
        self.outcomes = outcomes

    def __aiter__(self) -> ResilientStream[ItemT]:
        return self

    async def __anext__(self) -> ItemT:
        if self._first is not None:
            chunk, self._first = self._first, None
            if self._usage is not None:
                self._usage.feed(chunk)
            return chunk
        if self._done:
            raise StopAsyncIteration
        try:
            item = await self._upstream.__anext__()
        except StopAsyncIteration:
            self._done = True
            self._breaker.record_success(self._permit)
            if self._slot is not None:
                self._slot.release("success")
            if self._usage is not None:
                self._usage.end(SUCCEEDED)
            raise
        except asyncio.CancelledError:
            await self._abandon()
            raise
        except Exception as exc:
            self._done = True
            error = failure(
                self._breaker, self._permit, exc, number=self.attempts, stream_started=True
            )
            if self._slot is not None:
                self._slot.release(slot_outcome(error.kind))
            if self._usage is not None:
                self._usage.end(str(error.kind))
            raise error from exc
        if self._usage is not None:
            self._usage.feed(item)
        return item

    async def aclose(self) -> None:
        """Stop early: close the upstream response; the breaker hears nothing."""
        await self._abandon()

    async def _abandon(self) -> None:
        if self._done:
            return
        self._done = True
        self._breaker.release(self._permit)
        if self._slot is not None:
            self._slot.release("neutral")
        if self._usage is not None:
            self._usage.end(ABANDONED)
        await self._upstream.aclose()

    async def __aenter__(self) -> ResilientStream[ItemT]:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.aclose()

    def __repr__(self) -> str:
        return f"ResilientStream(target={self.target}, attempts={self.attempts})"
