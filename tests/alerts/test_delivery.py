"""Dedupe (on a fake clock), retries with backoff, refusals and the queue's bound: breakers
driven through the registry, alerts posted to a receiver on a real socket."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from resilience.audit.alert_payloads import AlertKind, Webhook
from resilience.audit.alerts import AlertSink
from resilience.breaker.registry import BreakerRegistry
from tests.alerts.receiver import SECRET, Receiver
from tests.support.clock import FakeClock
from tests.support.servers import until


@pytest.fixture
async def receiver() -> AsyncIterator[tuple[Receiver, str]]:
    receiver = Receiver()
    async with receiver.serve() as root:
        yield receiver, f"{root}/hook"


def registry(clock: FakeClock, sink: AlertSink) -> BreakerRegistry:
    return BreakerRegistry(sinks=[sink], clock=clock, wall_clock=clock.wall)


def seen(receiver: Receiver) -> list[tuple[str, str, int]]:
    """(tenant, alert, suppressed) of each post, in order."""
    return [
        (p.json["transition"]["tenant_id"], p.json["alert"], p.json["suppressed"])
        for p in receiver.posts
    ]


async def test_a_repeated_alert_within_the_window_is_suppressed_per_breaker(
    receiver: tuple[Receiver, str],
) -> None:
    hook, url = receiver
    clock = FakeClock()
    sink = AlertSink(Webhook(name="h", url=url, secret=SECRET), clock=clock, tick_s=0.005)
    breakers = registry(clock, sink)
    async with sink:
        for _ in range(3):  # flapping: forced open and reset three times in 3 s
            await breakers.aforce_open("acme", "p", actor="ops")
            await breakers.areset("acme", "p", actor="ops")
            clock.advance(1)
        await breakers.aforce_open("globex", "p", actor="ops")  # another breaker: its own
        await until(lambda: len(hook.posts) == 3)
        clock.advance(60)  # the window ends; acme ended closed, as its last alert said
        await breakers.aforce_open("acme", "p", actor="ops")
        await until(lambda: len(hook.posts) == 4)
    assert seen(hook) == [
        ("acme", "forced_open", 0),
        ("acme", "closed", 0),
        ("globex", "forced_open", 0),
        ("acme", "forced_open", 4),  # the four suppressed since the last alert, counted
    ]
    assert sink.stats.deduplicated == 4
    assert all(p.verifies() for p in hook.posts)


async def test_when_the_window_ends_the_newest_suppressed_state_is_sent_if_it_differs(
    receiver: tuple[Receiver, str],
) -> None:
    hook, url = receiver
    clock = FakeClock()
    sink = AlertSink(Webhook(name="h", url=url, secret=SECRET), clock=clock, tick_s=0.005)
    breakers = registry(clock, sink)
    async with sink:
        await breakers.aforce_open("acme", "p", actor="ops")
        await breakers.areset("acme", "p", actor="ops")
        await breakers.aforce_open("acme", "p", actor="ops")  # suppressed: it ends open
        await until(lambda: len(hook.posts) == 2)
        clock.advance(59)
        await asyncio.sleep(0.05)  # the poster looks (tick_s) and finds the window open
        assert len(hook.posts) == 2
        clock.advance(1)
        await until(lambda: len(hook.posts) == 3)
    assert seen(hook) == [
        ("acme", "forced_open", 0),
        ("acme", "closed", 0),
        ("acme", "forced_open", 1),
    ]
    assert sink.stats.dropped == 0


async def test_dedupe_off_sends_every_transition(receiver: tuple[Receiver, str]) -> None:
    hook, url = receiver
    clock = FakeClock()
    sink = AlertSink(Webhook(name="h", url=url, secret=SECRET), clock=clock, dedupe_s=0)
    breakers = registry(clock, sink)
    async with sink:
        for _ in range(3):
            await breakers.aforce_open("acme", "p")
            await breakers.areset("acme", "p")
        await until(lambda: len(hook.posts) == 6)
    assert sink.stats.deduplicated == 0


async def test_failed_posts_are_retried_with_jittered_exponential_backoff(
    receiver: tuple[Receiver, str],
) -> None:
    hook, url = receiver
    hook.statuses = [503, 429, 500]
    clock = FakeClock()
    sink = AlertSink(
        Webhook(name="h", url=url, secret=SECRET),
        clock=clock,
        sleep=clock.sleep,
        jitter=lambda: 0.5,
        retry_base_s=1.0,
        retry_max_s=3.0,
    )
    async with sink:
        await registry(clock, sink).aforce_open("acme", "p")
        await until(lambda: len(hook.posts) == 1)
    # base * 2**n capped at retry_max_s; the upper half of each jittered (here by 0.5)
    assert clock.sleeps == [0.75, 1.5, 2.25]
    assert (sink.stats.failed_posts, sink.stats.sent, sink.stats.dropped) == (3, 1, 0)
    assert hook.posts[0].verifies()  # signed again on the try that went through


async def test_a_refused_alert_is_dropped_not_retried(receiver: tuple[Receiver, str]) -> None:
    hook, url = receiver
    hook.statuses = [400]
    clock = FakeClock()
    sink = AlertSink(Webhook(name="h", url=url, secret=SECRET), clock=clock, sleep=clock.sleep)
    breakers = registry(clock, sink)
    async with sink:
        await breakers.aforce_open("acme", "p")
        await breakers.aforce_open("globex", "p")
        await until(lambda: len(hook.posts) == 1)
    assert seen(hook) == [("globex", "forced_open", 0)]
    assert (sink.stats.refused, sink.stats.dropped, clock.sleeps) == (1, 1, [])


class Parked:
    def __init__(self) -> None:
        self.waits: list[float] = []
        self.released = asyncio.Event()

    async def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)
        await self.released.wait()


async def test_past_the_queue_bound_the_oldest_alerts_are_dropped_and_counted() -> None:
    hook = Receiver()
    async with hook.serve():
        pass  # down
    clock = FakeClock()
    parked = Parked()
    url = f"http://127.0.0.1:{hook.port}/hook"
    sink = AlertSink(
        Webhook(name="h", url=url, secret=SECRET), clock=clock, sleep=parked, queue_size=3
    )
    breakers = registry(clock, sink)
    async with sink:
        await breakers.aforce_open("t0", "p")
        await until(lambda: len(parked.waits) == 1)  # t0 is in flight, waiting to retry
        for i in range(1, 6):
            await breakers.aforce_open(f"t{i}", "p")
        assert (sink.pending, sink.stats.dropped) == (3, 2)
        async with hook.serve():
            parked.released.set()
            await until(lambda: len(hook.posts) == 4)
    assert [t for t, _, _ in seen(hook)] == ["t0", "t3", "t4", "t5"]
    assert sink.stats.alerts == 6 and sink.stats.sent == 4


async def test_the_events_filter_and_emit_that_never_raises(
    receiver: tuple[Receiver, str],
) -> None:
    hook, url = receiver
    clock = FakeClock()
    only_open = frozenset({AlertKind.OPENED, AlertKind.CLOSED})
    sink = AlertSink(Webhook(name="h", url=url, secret=SECRET, events=only_open), clock=clock)
    breakers = registry(clock, sink)
    async with sink:
        await breakers.aforce_open("acme", "p")  # forced_open: not wanted here
        await breakers.areset("acme", "p")  # closed: wanted
        sink.emit(None)  # type: ignore[arg-type]  # a broken event is logged, not raised
        await until(lambda: len(hook.posts) == 1)
    assert seen(hook) == [("acme", "closed", 0)]
    assert (sink.stats.received, sink.stats.alerts) == (3, 1)
    await breakers.aforce_open("acme", "p")
    await breakers.areset("acme", "p")  # after close: counted as dropped, nothing raised
    assert sink.stats.dropped == 1
