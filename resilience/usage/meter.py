"""Makes a `UsageRecord` when a call ends and hands it to every usage sink.

`ResilientClient` owns one `UsageMeter` when it has usage sinks (none: no record is made,
and the call pays nothing). A call that is not a stream is recorded when its walk ends;
a stream through a `StreamUsage` it feeds each item, recorded once at the stream's end,
its failure, or its abandonment by the caller, whichever comes first.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from uuid import uuid4

from resilience.models import ChatChunk, Usage
from resilience.providers.native import NativeApi
from resilience.types import Clock
from resilience.usage.record import SUCCEEDED, UsageRecord, UsageSink
from resilience.usage.tokens import StreamTally, TokenCounts

logger = logging.getLogger("resilience.usage")

ABANDONED = "abandoned"
"""`outcome` of a call the caller went away from (cancelled, or a stream closed early)."""


def _utc_now() -> datetime:
    return _now(UTC)


_now = datetime.now


class UsageMeter:
    """The records of one client's calls, handed to `sinks` (each `emit_usage` guarded:
    a sink that raises is logged, never the call's failure)."""

    __slots__ = ("_clock", "_now", "sinks")

    def __init__(
        self,
        sinks: Sequence[UsageSink],
        *,
        clock: Clock,
        now: Callable[[], datetime] = _utc_now,
    ) -> None:
        self.sinks = tuple(sinks)
        self._clock = clock
        self._now = now

    def emit(
        self,
        tenant: str,
        route: str,
        provider: str | None,
        model: str | None,
        counts: TokenCounts | None,
        cached_known: bool,
        started: float,
        outcome: str,
        request_id: str | None,
        streamed: bool,
    ) -> None:
        """One finished call; `started` on the client's clock, `cached_known` False when the
        answer's shape has no place for cached tokens (the normalised `Usage`). Positional:
        it runs once per call."""
        if counts is None:
            input_tokens = output_tokens = cached = None
        else:
            input_tokens, output_tokens = counts.input, counts.output
            cached = counts.cached if cached_known else None
        record = UsageRecord(
            id=uuid4(),
            occurred_at=self._now(),
            tenant_id=tenant,
            route=route,
            provider=provider,
            model=model,
            input_tokens=input_tokens,
            output_tokens=output_tokens,
            cached_tokens=cached,
            latency_ms=(self._clock() - started) * 1000.0,
            outcome=outcome,
            request_id=request_id,
            streamed=streamed,
        )
        for sink in self.sinks:
            try:
                sink.emit_usage(record)
            except Exception:
                logger.exception("usage sink %r failed on %s", sink, record.id)


def normalised(usage: Usage | None) -> TokenCounts | None:
    """A normalised answer's usage; None when it reported nothing (the SDK adapters give
    `Usage()`, all zeros, for an answer without usage: no real call has zero of both)."""
    if usage is None or (usage.input_tokens == 0 and usage.output_tokens == 0):
        return None
    return TokenCounts(input=usage.input_tokens, output=usage.output_tokens)


@dataclass(frozen=True, slots=True)
class OpenCall:
    """What a stream's record says of the call that opened it."""

    tenant: str
    route: str
    provider: str
    model: str
    started: float
    """On the client's clock: the record's latency runs from the call's start to the end."""
    request_id: str | None


Settle = Callable[[TokenCounts | None, bool], None]
"""Told a stream's counts when it ends, and whether it ended whole (tpm's charge)."""


class StreamUsage:
    """One open stream's tokens: `feed` each item as it passes, `end` once (later calls do
    nothing), which makes its record (with a meter) and settles its tpm charge (`settle`)."""

    __slots__ = ("_done", "_meter", "_settle", "call")

    cached_known = True

    def __init__(
        self, meter: UsageMeter | None, call: OpenCall, settle: Settle | None = None
    ) -> None:
        self._meter = meter
        self._settle = settle
        self._done = False
        self.call = call

    def feed(self, item: object) -> None:
        raise NotImplementedError

    def counts(self) -> TokenCounts | None:
        raise NotImplementedError

    def estimated(self) -> TokenCounts | None:
        """What tpm charges a stream that reported nothing (None: its estimate stands)."""
        return None

    def end(self, outcome: str) -> None:
        if self._done:
            return
        self._done = True
        counts = self.counts()
        if self._settle is not None:
            self._settle(counts if counts is not None else self.estimated(), outcome == SUCCEEDED)
        if self._meter is None:
            return
        call = self.call
        self._meter.emit(
            call.tenant,
            call.route,
            call.provider,
            call.model,
            counts,
            self.cached_known,
            call.started,
            outcome,
            call.request_id,
            True,
        )


class ChunkUsage(StreamUsage):
    """A normalised stream: the usage its last chunk carries, when the provider sent one."""

    __slots__ = ("_usage",)

    cached_known = False

    def __init__(
        self, meter: UsageMeter | None, call: OpenCall, settle: Settle | None = None
    ) -> None:
        super().__init__(meter, call, settle)
        self._usage: Usage | None = None

    def feed(self, item: object) -> None:
        if isinstance(item, ChatChunk) and item.usage is not None:
            self._usage = item.usage

    def counts(self) -> TokenCounts | None:
        return normalised(self._usage)


class FrameUsage(StreamUsage):
    """A native stream: its server-sent events, tallied (`StreamTally`)."""

    __slots__ = ("_tally",)

    def __init__(
        self,
        meter: UsageMeter | None,
        call: OpenCall,
        api: NativeApi,
        settle: Settle | None = None,
        *,
        prompt_tokens: int | None = None,
    ) -> None:
        super().__init__(meter, call, settle)
        self._tally = StreamTally(api, prompt_tokens=prompt_tokens)

    def feed(self, item: object) -> None:
        if isinstance(item, bytes):
            self._tally.feed(item)

    def counts(self) -> TokenCounts | None:
        return self._tally.counts

    def estimated(self) -> TokenCounts | None:
        return self._tally.estimated
