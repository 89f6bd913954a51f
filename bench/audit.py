"""Audit sink cost and throughput, against the local PostgreSQL and SQLite, in one run.

Usage: python bench/audit.py [--quick]

- emit(): the synchronous cost a breaker transition pays on the request path
  (queueing only), with the writer not yet draining; baseline: appending the
  same event to a list, measured in the same run.
- sustained throughput: N events emitted while the writer drains in batches,
  timed from the first emit until every row is committed.
"""

from __future__ import annotations

import asyncio
import statistics
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import asyncpg
from sqlalchemy import func, select

from resilience.audit.database import create_engine, migrate
from resilience.audit.schema import breaker_events
from resilience.audit.sink import DatabaseSink
from resilience.breaker.events import BreakerState, BreakerTransition, TransitionReason

QUICK = "--quick" in sys.argv
EMITS = 5_000 if QUICK else 50_000
EVENTS = 10_000 if QUICK else 100_000
PG = "postgresql://postgres@127.0.0.1:5432"


def events(n: int) -> list[BreakerTransition]:
    now = datetime.now(UTC)
    return [
        BreakerTransition(
            tenant_id=f"tenant-{i % 1000}",
            provider="openai",
            from_state=BreakerState.CLOSED,
            to_state=BreakerState.OPEN,
            reason=TransitionReason.THRESHOLD,
            occurred_at=now,
            failures=5,
            detail={"calls": 8},
        )
        for i in range(n)
    ]


async def emit_cost(url: str, spool: Path) -> tuple[float, float]:
    engine = create_engine(url)
    sink = DatabaseSink(engine, spool_path=spool, queue_size=EMITS * 2, batch_size=1000)
    await sink.start()
    batch = events(EMITS)
    ours: list[float] = []
    baseline: list[float] = []
    for _ in range(5):
        start = time.perf_counter()
        for event in batch:  # no await: the writer cannot run, this is emit() alone
            sink.emit(event)
        ours.append((time.perf_counter() - start) / EMITS * 1e6)
        plain: list[BreakerTransition] = []
        start = time.perf_counter()
        for event in batch:
            plain.append(event)  # noqa: PERF402 - the baseline is this very loop
        baseline.append((time.perf_counter() - start) / EMITS * 1e6)
        await sink.aclose(timeout_s=60)
        await sink.start()
    await sink.aclose(timeout_s=60)
    await engine.dispose()
    return statistics.median(ours), statistics.median(baseline)


async def throughput(url: str, spool: Path) -> float:
    engine = create_engine(url)
    sink = DatabaseSink(
        engine, spool_path=spool, queue_size=20_000, batch_size=2000, batch_age_s=0.05
    )
    await sink.start()
    batch = events(EVENTS)
    start = time.perf_counter()
    for i in range(0, EVENTS, 1000):
        for event in batch[i : i + 1000]:
            sink.emit(event)
        await asyncio.sleep(0)
    await sink.aclose(timeout_s=120)
    elapsed = time.perf_counter() - start
    async with engine.connect() as conn:
        rows = (await conn.execute(select(func.count()).select_from(breaker_events))).scalar()
    await engine.dispose()
    assert rows is not None and rows >= EVENTS, f"only {rows} of {EVENTS} rows"
    return EVENTS / elapsed


async def main() -> None:
    name = f"bench_audit_{uuid.uuid4().hex[:8]}"
    admin = await asyncpg.connect(f"{PG}/test")
    await admin.execute(f'CREATE DATABASE "{name}"')
    pg_url = f"{PG}/{name}"
    try:
        with tempfile.TemporaryDirectory() as tmp:
            sqlite_url = f"sqlite:///{tmp}/bench.db"
            for url in (pg_url, sqlite_url):
                await migrate(url)
            emit_us, list_us = await emit_cost(pg_url, Path(tmp) / "a.jsonl")
            pg_rate = await throughput(pg_url, Path(tmp) / "b.jsonl")
            sqlite_rate = await throughput(sqlite_url, Path(tmp) / "c.jsonl")
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()
    print(
        f"emit(): {emit_us:.2f} us per event (list.append baseline {list_us:.3f} us, "
        f"ratio {emit_us / list_us:.1f}x), median of 5 runs of {EMITS:,}"
    )
    print(f"PostgreSQL: {pg_rate:,.0f} events/s sustained ({EVENTS:,} events, batches of 2,000)")
    print(f"SQLite:     {sqlite_rate:,.0f} events/s sustained ({EVENTS:,} events)")
    print(f"emit_us: {emit_us:.2f}")
    print(f"postgres_events_per_s: {pg_rate:.0f}")
    print(f"sqlite_events_per_s: {sqlite_rate:.0f}")


if __name__ == "__main__":
    asyncio.run(main())
