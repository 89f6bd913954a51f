"""A PostgreSQL server of the test's own is stopped mid-run and started again: nothing is lost."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from sqlalchemy import func, select, text

from resilience.audit.database import create_engine, migrate
from resilience.audit.schema import breaker_events
from resilience.audit.sink import DatabaseSink
from resilience.audit.spool import Spool
from tests.support.audit import event
from tests.support.servers import PostgresServer

TOTAL = 50_000


@pytest.mark.postgres
async def test_50000_events_across_a_database_outage_arrive_exactly_once(
    server: PostgresServer, tmp_path: Path
) -> None:
    await migrate(server.url)
    engine = create_engine(server.url)
    spool = tmp_path / "spool.jsonl"
    sink = DatabaseSink(
        engine, spool_path=spool, batch_age_s=0.05, retry_base_s=0.05, retry_max_s=0.3
    )
    await sink.start()
    template = [
        event(f"t{i % 100}", "openai", "closed", "open", "threshold", i / 1000)
        for i in range(TOTAL)
    ]
    for start in range(0, TOTAL, 500):
        if start == 15_000:
            await asyncio.to_thread(server.stop)
        if start == 35_000:
            await asyncio.to_thread(server.start)
        for e in template[start : start + 500]:
            sink.emit(e)
        await asyncio.sleep(0.005)
    await sink.aclose(timeout_s=60)
    assert sink.stats.failed_batches > 0 and sink.stats.spooled > 0  # the outage was real
    async with engine.connect() as conn:
        count = (await conn.execute(select(func.count()).select_from(breaker_events))).scalar()
        distinct = (
            await conn.execute(text("SELECT count(DISTINCT id) FROM breaker_events"))
        ).scalar()
    await engine.dispose()
    assert count == TOTAL and distinct == TOTAL
    assert not Spool(spool).pending()
