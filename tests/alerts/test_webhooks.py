"""Breaker alerts end to end: the real client and the chaos upstream open and close
breakers, an `AlertSink` posts them to a receiver on a real socket, which checks them."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from dataclasses import replace

import pytest

from resilience.audit.alert_payloads import AlertKind, Webhook, alert_kind
from resilience.audit.alerts import AlertSink
from resilience.breaker.events import BreakerTransition, MemorySink
from resilience.breaker.policy import BreakerPolicy
from resilience.chaos import Fault
from resilience.client.resilient import ResilientClient
from resilience.types import PROVIDER_WIDE
from tests.alerts.receiver import SECRET, Receiver
from tests.support.client import CHAT, Harness
from tests.support.servers import until

POLICY = BreakerPolicy(
    failure_threshold=2, cooldown_s=30.0, provider_wide_min_tenants=2, provider_wide_streak=4
)


class Tee(MemorySink):
    """Keeps every transition (what the alerts are checked against) and hands it on."""

    def __init__(self, *sinks: AlertSink) -> None:
        super().__init__()
        self.sinks = sinks

    def emit(self, event: BreakerTransition) -> None:
        super().emit(event)
        for sink in self.sinks:
            sink.emit(event)


@pytest.fixture
async def stack() -> AsyncIterator[AsyncExitStack]:
    async with AsyncExitStack() as stack:
        yield stack


async def flap(harness: Harness, client: ResilientClient, tenants: list[str]) -> None:
    """Open every tenant's primary breaker and the provider-wide one, then close them."""
    rule = harness.chaos.add_fault(Fault(status=500), upstream="primary")
    for tenant in tenants:
        result = await client.complete(CHAT, route="chat", tenant=tenant)
        assert result.target.provider == "fallback"  # the request is answered all the same
    harness.chaos.remove_fault(rule)
    harness.clock.advance(POLICY.max_cooldown_s + 1)
    for tenant in tenants:
        result = await client.complete(CHAT, route="chat", tenant=tenant)
        assert result.target.provider == "primary"


def alerting(events: list[BreakerTransition]) -> list[BreakerTransition]:
    return [e for e in events if alert_kind(e) is not None]


async def test_one_signed_alert_per_transition_in_both_formats(
    stack: AsyncExitStack,
) -> None:
    receiver = Receiver()
    root = await stack.enter_async_context(receiver.serve())
    signed = AlertSink(
        Webhook(name="pager", url=f"{root}/json", format="json", secret=SECRET), dedupe_s=0
    )
    slack = AlertSink(Webhook(name="chat", url=f"{root}/slack", format="slack"), dedupe_s=0)
    for sink in (signed, slack):
        await stack.enter_async_context(sink)
    harness = Harness(stack)
    harness.sink = tee = Tee(signed, slack)
    client = await harness.client(breaker=POLICY)

    await flap(harness, client, ["acme", "globex", "initech"])
    await client.registry.aforce_open("acme", "fallback", actor="ops@example.com")
    await client.registry.areset("acme", "fallback", actor="ops@example.com")

    expected = alerting(tee.events)
    kinds = {(e.tenant_id == PROVIDER_WIDE, alert_kind(e)) for e in expected}
    assert {
        (False, AlertKind.OPENED),
        (True, AlertKind.OPENED),  # the provider-wide gate
        (False, AlertKind.CLOSED),
        (True, AlertKind.CLOSED),
        (False, AlertKind.FORCED_OPEN),
    } <= kinds
    assert len(expected) < len(tee.events)  # half-open steps raise no alert

    await until(lambda: len(receiver.posts) == 2 * len(expected))
    await signed.aclose()
    await slack.aclose()
    posts = receiver.on("/json")
    assert [p.json["id"] for p in posts] == [str(e.id) for e in expected]  # once each, in order
    assert all(p.verifies() for p in posts)
    assert not posts[0].verifies(b"another secret")
    assert [p.json["alert"] for p in posts] == [str(alert_kind(e)) for e in expected]
    wide = [p.json for p in posts if p.json["transition"]["tenant_id"] == PROVIDER_WIDE]
    assert {p["scope"] for p in wide} == {"provider"}
    texts = [p.json["text"] for p in receiver.on("/slack")]
    assert len(texts) == len(expected)
    assert any(t.startswith("Breaker opened: provider primary (all tenants)") for t in texts)
    assert "Breaker forced open: tenant acme on fallback (by ops@example.com)" in texts
    assert signed.stats.sent == slack.stats.sent == len(expected)
    assert signed.stats.dropped == signed.stats.failed_posts == 0


LONG = replace(POLICY, cooldown_s=3600.0, max_cooldown_s=3600.0)
"""No cooldown ends during a run, whatever the client's jittered (fake) waits add up to."""


def transitions(events: list[BreakerTransition]) -> Counter[tuple[str, str, str, str]]:
    return Counter((e.tenant_id, e.provider, e.to_state, e.reason) for e in events)


class Parked:
    """The sink's backoff sleep: records each wait and returns only once released."""

    def __init__(self) -> None:
        self.waits: list[float] = []
        self.released = asyncio.Event()

    async def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)
        await self.released.wait()


async def run(harness: Harness, client: ResilientClient, tenants: list[str]) -> list[str]:
    """Many tenants at once: each opens its breaker on primary and is answered by fallback."""
    harness.chaos.add_fault(Fault(status=500), upstream="primary")
    results = await asyncio.gather(
        *(client.complete(CHAT, route="chat", tenant=t) for t in tenants for _ in range(2))
    )
    return [r.target.provider for r in results]


async def test_a_receiver_that_is_down_never_holds_a_request_and_gets_every_alert_later(
    stack: AsyncExitStack,
) -> None:
    tenants = [f"tenant-{i}" for i in range(100)]
    # the same run without alerts: what "unaffected" is measured against
    plain = Harness(stack)
    plain_client = await plain.client(breaker=LONG)
    plain_answers = await run(plain, plain_client, tenants)

    receiver = Receiver()
    async with receiver.serve():
        pass  # now down: its port refuses connections
    parked = Parked()
    harness = Harness(stack)
    sink = AlertSink(
        Webhook(name="pager", url=f"http://127.0.0.1:{receiver.port}/json", secret=SECRET),
        sleep=parked,
        retry_base_s=0.5,
        clock=harness.clock,  # dedupe on the breakers' time
    )
    await stack.enter_async_context(sink)
    harness.sink = tee = Tee(sink)
    client = await harness.client(breaker=LONG)
    answers = await run(harness, client, tenants)

    # every request answered, the same way, with the same upstream calls and the same
    # (fake) waits as without alerts, while the sink sits in its backoff, nothing sent
    assert answers == plain_answers and set(answers) == {"fallback"}
    assert harness.chaos.hit_count() == plain.chaos.hit_count()
    assert len(harness.clock.sleeps) == len(plain.clock.sleeps)  # the client's retry waits
    assert transitions(tee.events) == transitions(plain.sink.events)
    await until(lambda: len(parked.waits) == 1)
    expected = alerting(tee.events)
    assert len(expected) >= len(tenants)
    assert sink.stats.sent == 0 and sink.stats.failed_posts == 1
    assert sink.pending == len(expected) - 1  # the first is the one being retried
    assert not sink.stats.receiver_up

    async with receiver.serve():
        parked.released.set()
        await until(lambda: len(receiver.posts) == len(expected))
        await sink.aclose()
    assert [p.json["id"] for p in receiver.posts] == [str(e.id) for e in expected]
    assert all(p.verifies() for p in receiver.posts)
    assert sink.stats.sent == len(expected) and sink.stats.dropped == 0
    assert sink.stats.receiver_up
