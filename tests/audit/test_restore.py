"""At start, admin isolations come back from the audit trail and periods nobody holds close."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from resilience.audit.restore import restore_breakers
from resilience.audit.sink import DatabaseSink
from resilience.breaker.events import BreakerState, BreakerTransition, MemorySink, TransitionReason
from resilience.breaker.policy import BreakerPolicy
from resilience.breaker.registry import BreakerRegistry
from tests.support.audit import T0, event

NOW = T0 + timedelta(hours=2)
MONOTONIC = 5_000.0
SECOND = timedelta(seconds=1)


def admin_open(tenant: str, at: datetime, duration_s: float | None = None) -> BreakerTransition:
    opened = event(tenant, "openai", "closed", "forced_open", "admin_open", 0, actor="ops")
    detail = {} if duration_s is None else {"duration_s": duration_s}
    return replace(opened, occurred_at=at, cooldown_s=duration_s, detail=detail)


def at(e: BreakerTransition, when: datetime) -> BreakerTransition:
    return replace(e, occurred_at=when)


def trail() -> list[BreakerTransition]:
    ago = NOW - timedelta(seconds=100)
    return [
        admin_open("forever", NOW - timedelta(hours=1)),
        admin_open("timed", ago, duration_s=600),
        admin_open("expired", ago, duration_s=60),
        at(event("tripped", "openai", "closed", "open", "threshold", 0), ago),
        at(event("probing", "openai", "closed", "open", "threshold", 0), ago),
        at(event("probing", "openai", "open", "half_open", "cooldown_elapsed", 0), ago + SECOND),
        at(event("recovered", "openai", "closed", "open", "threshold", 0), ago),
        at(event("recovered", "openai", "open", "closed", "admin_reset", 0), ago + SECOND),
        at(event("*", "openai", "closed", "open", "provider_wide", 0), ago),
        # reset, then isolated again: only the last admin_open counts
        admin_open("again", NOW - timedelta(hours=1), duration_s=60),
        at(event("again", "openai", "forced_open", "closed", "admin_reset", 0), ago),
        admin_open("again", ago + SECOND),
    ]


async def write(engine: AsyncEngine, tmp_path: Path, events: list[BreakerTransition]) -> None:
    sink = DatabaseSink(engine, spool_path=tmp_path / "spool.jsonl", batch_age_s=0.01)
    await sink.start()
    for e in events:
        sink.emit(e)
    await sink.aclose(timeout_s=30)
    assert sink.stats.written == len(events)


async def open_in_view(engine: AsyncEngine) -> set[tuple[str, str]]:
    async with engine.connect() as conn:
        found = await conn.execute(
            text("SELECT tenant_id, provider FROM breaker_open_periods WHERE closed_at IS NULL")
        )
        return {(r[0], r[1]) for r in found}


def registry() -> BreakerRegistry:
    return BreakerRegistry(clock=lambda: MONOTONIC, wall_clock=NOW.timestamp)


async def test_admin_isolations_come_back_and_the_rest_of_the_open_periods_close(
    engine: AsyncEngine, tmp_path: Path
) -> None:
    await write(engine, tmp_path, trail())
    assert len(await open_in_view(engine)) == 7  # what the dead process left
    live = registry()
    emitted = MemorySink()
    done = await restore_breakers(engine, live, emitted.emit, wall_clock=NOW.timestamp)

    assert sorted(done.restored) == [
        ("again", "openai"),
        ("forever", "openai"),
        ("timed", "openai"),
    ]
    assert sorted(done.closed) == [
        ("*", "openai"),
        ("expired", "openai"),
        ("probing", "openai"),
        ("tripped", "openai"),
    ]
    forever = live.snapshot("forever", "openai")
    timed = live.snapshot("timed", "openai")
    assert forever is not None and forever.state is BreakerState.FORCED_OPEN
    assert forever.retry_at is None and forever.opened_at == NOW - timedelta(hours=1)
    assert timed is not None and timed.state is BreakerState.FORCED_OPEN
    assert timed.retry_at == NOW + timedelta(seconds=500)  # the time it had left
    assert live.get("forever", "openai").retry_after() == float("inf")
    gate = live.snapshot("*", "openai")
    assert gate is None or gate.state is BreakerState.CLOSED
    assert {e.reason for e in emitted.events} == {TransitionReason.PROCESS_RESTART}
    probing = next(e for e in emitted.events if e.tenant_id == "probing")
    assert probing.from_state is BreakerState.HALF_OPEN and probing.to_state is BreakerState.CLOSED

    # a second process restarting on the same trail at the same time closes the same
    # periods with the same event ids: one row each
    twin = MemorySink()
    both = await restore_breakers(engine, registry(), twin.emit, wall_clock=NOW.timestamp)
    assert sorted(both.closed) == sorted(done.closed)
    await write(engine, tmp_path, emitted.events + twin.events)
    assert await open_in_view(engine) == {
        (t, "openai") for t in ("forever", "timed", "again")
    }  # what the live process holds, and nothing else
    async with engine.connect() as conn:
        closings = await conn.execute(
            text("SELECT count(*) FROM breaker_events WHERE reason = 'process_restart'")
        )
        assert closings.scalar() == 4


async def test_a_closing_event_sorts_after_the_event_it_closes(
    engine: AsyncEngine, tmp_path: Path
) -> None:
    """A clock behind the trail's (another host) still closes the period, not an earlier one."""
    future = NOW + timedelta(minutes=5)
    await write(
        engine, tmp_path, [at(event("t", "openai", "closed", "open", "threshold", 0), future)]
    )
    emitted = MemorySink()
    await restore_breakers(engine, registry(), emitted.emit, wall_clock=NOW.timestamp)
    (closing,) = emitted.events
    assert closing.occurred_at > future
    await write(engine, tmp_path, emitted.events)
    assert await open_in_view(engine) == set()


@pytest.mark.redis
async def test_with_redis_nothing_held_is_reopened_and_only_what_redis_lost_is_closed(
    engine: AsyncEngine,
    tmp_path: Path,
    redis_url: str,
    prefix: str,
) -> None:
    policy = BreakerPolicy()
    first = MemorySink()
    old = BreakerRegistry(policy=policy, sinks=[first], redis_url=redis_url, redis_prefix=prefix)
    await old.start()
    await old.aforce_open("held", "openai", actor="ops")  # Redis keeps this one
    await old.aclose()
    lost = at(event("lost", "openai", "closed", "open", "threshold", 0), NOW)
    await write(engine, tmp_path, [*first.events, lost])  # Redis never had "lost"

    emitted = MemorySink()
    restarted = BreakerRegistry(
        policy=policy, sinks=[emitted], redis_url=redis_url, redis_prefix=prefix
    )
    await restarted.start()
    try:
        done = await restore_breakers(engine, restarted, emitted.emit)
        assert done.held == [("held", "openai")] and done.restored == []
        assert done.closed == [("lost", "openai")]
        assert [(e.tenant_id, e.reason) for e in emitted.events] == [
            ("lost", TransitionReason.PROCESS_RESTART)
        ]  # no second admin_open, no transition for the pair Redis holds
        held = restarted.snapshot("held", "openai")
        assert held is not None and held.state is BreakerState.FORCED_OPEN
    finally:
        await restarted.aclose()
    await write(engine, tmp_path, emitted.events)
    assert await open_in_view(engine) == {("held", "openai")}


async def test_a_shared_store_that_does_not_answer_changes_nothing(
    engine: AsyncEngine, tmp_path: Path
) -> None:
    await write(engine, tmp_path, [at(event("t", "openai", "closed", "open", "threshold", 0), NOW)])
    offline = BreakerRegistry(redis_url="redis://127.0.0.1:1/0")  # nothing listens on port 1
    await offline.start()
    try:
        emitted = MemorySink()
        done = await restore_breakers(engine, offline, emitted.emit)
    finally:
        await offline.aclose()
    assert done.skipped and emitted.events == []
