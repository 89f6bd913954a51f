"""Sinks (processes) sharing one spool replay it one at a time and lose nothing.

`resilience serve --workers N` gives every worker the same `RESILIENCE_SPOOL`: each
appends to it when the database cannot take its rows, and each replays it. Two replays
at once could move a newer spool over a claimed file before its rows were read, or
delete a file another had just claimed: rows gone. Here several sinks start and replay
while rows keep arriving in the spool (another worker spooling through an outage); every
row must reach the database exactly once. The sinks' spool calls run in threads, and a
`flock` taken through one open file holds against another in the same process as in
another process, so this is the race between processes.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from resilience.audit.journal import event_line
from resilience.audit.schema import breaker_events
from resilience.audit.sink import DatabaseSink
from resilience.audit.spool import Spool
from tests.support.audit import event
from tests.support.servers import until

ROWS = 600


async def test_sinks_sharing_a_spool_replay_it_one_at_a_time_and_lose_nothing(
    engine: AsyncEngine, tmp_path: Path
) -> None:
    path = tmp_path / "spool.jsonl"
    arriving = Spool(path)  # another worker, spooling what its database would not take
    lines = [
        event_line(event(f"t{i}", "openai", "closed", "open", "threshold", i / 60))
        for i in range(ROWS)
    ]
    sinks = [
        DatabaseSink(engine, spool_path=path, journal=False, batch_age_s=0.005) for _ in range(4)
    ]

    async def spooling() -> None:
        for start in range(0, ROWS, 3):
            chunk = [line.decode() for line in lines[start : start + 3]]
            await asyncio.to_thread(arriving.append_lines, chunk)

    await asyncio.gather(spooling(), *(sink.start() for sink in sinks))
    await until(lambda: not arriving.pending(), timeout_s=30)  # the idle sinks replay it
    await asyncio.gather(*(sink.aclose(timeout_s=10) for sink in sinks))
    async with engine.connect() as conn:
        total = (await conn.execute(select(func.count()).select_from(breaker_events))).scalar()
        ids = (await conn.execute(select(func.count(func.distinct(breaker_events.c.id))))).scalar()
    assert (total, ids) == (ROWS, ROWS)
    replayed = sum(sink.stats.replayed for sink in sinks)
    assert replayed >= ROWS  # more when an append wrote its lines again


async def test_a_replay_waits_its_turn_at_the_start_and_skips_it_later(
    engine: AsyncEngine, tmp_path: Path
) -> None:
    """While another process replays, a starting sink waits for the lock (so `caught_up`
    means the spool was replayed); a later replay skips instead of waiting."""
    path = tmp_path / "spool.jsonl"
    other = Spool(path)
    other.append_lines(
        [event_line(event("t", "openai", "closed", "open", "threshold", 1)).decode()]
    )
    assert other.try_lock()
    sink = DatabaseSink(engine, spool_path=path, journal=False)
    try:
        await sink.start()
        for _ in range(20):
            await asyncio.sleep(0.01)
        assert not sink._caught_up.is_set() and other.pending()
        other.unlock()
        await until(lambda: sink._caught_up.is_set())
        assert not other.pending() and sink.stats.replayed == 1
        assert sink.spool.rows == 0
        other.append_lines(
            [event_line(event("u", "openai", "closed", "open", "threshold", 2)).decode()]
        )
        assert other.try_lock()
        await sink._replay()  # held elsewhere: skipped, nothing claimed
        assert other.pending() and sink.stats.replayed == 1
        other.unlock()
        await sink._replay()
        assert not other.pending() and sink.stats.replayed == 2
    finally:
        other.unlock()
        await sink.aclose()
