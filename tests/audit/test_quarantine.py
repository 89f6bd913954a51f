"""A row the database rejects is quarantined; it never holds the writer or the spool back."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Table, select
from sqlalchemy.ext.asyncio import AsyncEngine

from resilience.audit import sink as sink_module
from resilience.audit.database import create_engine, migrate
from resilience.audit.errors import rejects_rows
from resilience.audit.schema import breaker_events, to_row
from resilience.audit.sink import DatabaseSink
from resilience.audit.spool import Spool
from resilience.breaker.events import BreakerTransition
from tests.audit.test_sink import DEAD, Sleeps, events, rows
from tests.support.audit import event
from tests.support.servers import until

BAD_NOTES = {
    "lone_surrogate_in_reason": "isolated: \ud800 bad",
    "nul_in_note": "isolated\x00after a NUL",
}


def bad_event(note: str) -> BreakerTransition:
    """An admin open whose note (the admin's reason) PostgreSQL cannot store."""
    return replace(
        event("victim", "openai", "closed", "forced_open", "admin_open", 0, actor="ops"),
        detail={"note": note},
    )


def dead_letters(spool: Path) -> list[dict[str, object]]:
    lines = Spool(spool).dead_letter.read_text().splitlines()
    return [json.loads(line) for line in lines if line.strip()]


async def ids(engine: AsyncEngine) -> set[str]:
    async with engine.connect() as conn:
        return {str(i) for i in (await conn.execute(select(breaker_events.c.id))).scalars()}


@pytest.mark.postgres
@pytest.mark.parametrize("note", list(BAD_NOTES.values()), ids=list(BAD_NOTES))
async def test_a_rejected_row_among_1000_is_quarantined_and_a_later_outage_still_replays(
    pg_url: str, tmp_path: Path, note: str
) -> None:
    await migrate(pg_url)
    engine = create_engine(pg_url)
    spool = tmp_path / "spool.jsonl"
    good = events(1000)
    bad = bad_event(note)
    sink = DatabaseSink(engine, spool_path=spool, batch_age_s=0.01)
    await sink.start()
    for e in good[:500]:
        sink.emit(e)
    sink.emit(bad)  # in the same batch as good rows
    for e in good[500:]:
        sink.emit(e)
    await sink.aclose(timeout_s=30)
    assert await rows(engine) == 1000
    assert sink.stats.quarantined == 1 and sink.stats.written == 1000
    assert sink.stats.database_up and not sink.spool.pending()
    assert [d["row"]["id"] for d in dead_letters(spool)] == [str(bad.id)]  # type: ignore[index]
    assert "Error" in str(dead_letters(spool)[0]["error"])

    # a later outage spools good rows and another bad one; the next start replays them all
    dead = create_engine(DEAD)
    during = DatabaseSink(dead, spool_path=spool, batch_age_s=0.01, sleep=Sleeps())
    await during.start()
    later = events(20, tenant="later")
    second_bad = bad_event(note)
    for e in [*later[:10], second_bad, *later[10:]]:
        during.emit(e)
    await during.aclose(timeout_s=5)
    await dead.dispose()
    assert Spool(spool).count() == 21
    after = DatabaseSink(engine, spool_path=spool, batch_age_s=0.01)
    await after.start()
    assert await after.caught_up(30)
    assert await rows(engine) == 1020  # replayed at start, before any new event
    assert after.stats.quarantined == 1 and after.stats.replayed == 20
    assert after.backlog() == {"queued": 0, "spooled": 0}
    assert not Spool(spool).pending()
    await after.aclose()
    assert [d["row"]["id"] for d in dead_letters(spool)] == [str(bad.id), str(second_bad.id)]  # type: ignore[index]
    await engine.dispose()


@pytest.mark.postgres
async def test_a_stale_replaying_file_and_a_newer_spool_are_both_replayed(
    pg_url: str, tmp_path: Path
) -> None:
    await migrate(pg_url)
    engine = create_engine(pg_url)
    spool = Spool(tmp_path / "spool.jsonl")
    stale = events(5, tenant="stale")
    newer = events(5, tenant="newer")
    bad = bad_event(BAD_NOTES["nul_in_note"])
    # a replay that died half way, with a row the database rejects, and a spool written since
    spool.replaying.write_text(
        "".join(Spool.encode(to_row(e)) for e in [*stale[:2], bad, *stale[2:]])
    )
    spool.append([to_row(e) for e in newer])
    sink = DatabaseSink(engine, spool_path=spool.path, batch_age_s=0.01)
    await sink.start()
    assert await sink.caught_up(30)
    assert await ids(engine) == {str(e.id) for e in [*stale, *newer]}
    assert sink.stats.replayed == 10 and sink.stats.quarantined == 1
    assert not spool.replaying.exists() and not spool.path.exists()
    await sink.aclose()
    await engine.dispose()


async def test_a_row_the_driver_cannot_encode_is_quarantined_on_each_database(
    engine: AsyncEngine, tmp_path: Path
) -> None:
    """A lone surrogate in a text column: SQLite's driver raises UnicodeEncodeError unwrapped,
    asyncpg a DataError; both are rejections, not outages."""
    spool = tmp_path / "spool.jsonl"
    bad = replace(events(1)[0], actor="ops\udcff")
    sink = DatabaseSink(engine, spool_path=spool, batch_age_s=0.01)
    await sink.start()
    good = events(50, tenant="ok")
    for e in [*good[:25], bad, *good[25:]]:
        sink.emit(e)
    await sink.aclose(timeout_s=30)
    assert await ids(engine) == {str(e.id) for e in good}
    assert sink.stats.quarantined == 1 and sink.stats.database_up
    assert [d["row"]["id"] for d in dead_letters(spool)] == [str(bad.id)]  # type: ignore[index]


async def test_a_replay_paused_by_an_outage_keeps_only_the_rows_it_did_not_write(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The next replay goes on from where the outage stopped this one, and the backlog
    counts what is left."""
    monkeypatch.setattr(sink_module, "REPLAY_BATCH", 10)
    url = f"sqlite:///{tmp_path / 'audit.db'}"
    await migrate(url)
    engine = create_engine(url)
    spool = Spool(tmp_path / "spool.jsonl")
    spooled = events(30)
    spool.append([to_row(e) for e in spooled])
    sink = DatabaseSink(engine, spool_path=spool.path, batch_age_s=0.01, sleep=Sleeps())
    write = sink._write
    down = False

    async def first_batch_then_outage(
        params: list[dict[str, Any]], *, table: Table = breaker_events
    ) -> None:
        nonlocal down
        if down:
            raise ConnectionRefusedError(111, "the database went away")
        down = True
        await write(params, table=table)

    sink._write = first_batch_then_outage  # type: ignore[method-assign]
    await sink.start()
    assert await sink.caught_up(10)
    left, _ = Spool.load(spool.replaying)
    assert [r["id"] for r in left] == [str(e.id) for e in spooled[10:]]
    assert sink.backlog()["spooled"] == 20 and not sink.stats.database_up
    down = False
    sink._write = write  # type: ignore[method-assign]
    await until(lambda: sink.backlog()["spooled"] == 0 and sink.stats.database_up)
    assert await ids(engine) == {str(e.id) for e in spooled}
    assert not spool.pending() and sink.stats.replayed == 30
    await sink.aclose()
    await engine.dispose()


def test_outages_are_not_rejections() -> None:
    assert not rejects_rows(ConnectionRefusedError(111, "refused"))
    assert not rejects_rows(TimeoutError())
    assert rejects_rows(UnicodeEncodeError("utf-8", "\ud800", 0, 1, "surrogates not allowed"))
