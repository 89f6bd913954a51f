"""Audit sink cost and throughput, against the local PostgreSQL and SQLite, in one run.

Usage: python bench/audit.py [--quick]

- emit(): the synchronous cost a breaker transition pays on the request path: its
  journal line written (one `write(2)`, the default fsync policy "batch", so no disk
  flush on this path) and the row queued, with the writer not yet draining. Baselines in
  the same run: appending the event to a list, and the sink without a journal.
- emit_usage(): the same for a finished call's usage record (one per call).
- sustained throughput: N events (then N usage records) emitted while the writer drains
  in batches, timed from the first emit until every row is committed.
"""

from __future__ import annotations

import asyncio
import gc
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

from bench._stats import headline
from resilience.audit.database import create_engine, migrate
from resilience.audit.schema import breaker_events
from resilience.audit.sink import DatabaseSink, Record
from resilience.audit.usage_schema import usage_records
from resilience.breaker.events import BreakerState, BreakerTransition, TransitionReason
from resilience.usage.record import UsageRecord

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


def usages(n: int) -> list[UsageRecord]:
    now = datetime.now(UTC)
    return [
        UsageRecord(
            id=uuid.uuid4(),
            occurred_at=now,
            tenant_id=f"tenant-{i % 1000}",
            route="chat",
            provider="openai",
            model="gpt-4.1",
            input_tokens=1200,
            output_tokens=300,
            cached_tokens=None,
            latency_ms=412.5,
            outcome="succeeded",
            request_id=f"req-{uuid.uuid4().hex}",
            streamed=False,
        )
        for i in range(n)
    ]


def emitter(sink: DatabaseSink, record: Record) -> None:
    if isinstance(record, UsageRecord):
        sink.emit_usage(record)
    else:
        sink.emit(record)


async def emit_cost(
    url: str, spool: Path, batch: list[Record], *, journal: bool = True
) -> tuple[float, float]:
    """µs per emit (median of 5 runs of `batch`), and the list.append baseline."""
    engine = create_engine(url)
    sink = DatabaseSink(
        engine, spool_path=spool, journal=journal, queue_size=EMITS * 2, batch_size=1000
    )
    emit = sink.emit_usage if isinstance(batch[0], UsageRecord) else sink.emit
    await sink.start()
    ours: list[float] = []
    baseline: list[float] = []
    for _ in range(5):
        start = time.perf_counter()
        for record in batch:  # no await: the writer cannot run, this is emit() alone
            emit(record)  # type: ignore[arg-type]
        ours.append((time.perf_counter() - start) / EMITS * 1e6)
        plain: list[Record] = []
        start = time.perf_counter()
        for record in batch:
            plain.append(record)  # noqa: PERF402 - the baseline is this very loop
        baseline.append((time.perf_counter() - start) / EMITS * 1e6)
        await sink.aclose(timeout_s=60)
        await sink.start()
    await sink.aclose(timeout_s=60)
    await engine.dispose()
    return statistics.median(ours), statistics.median(baseline)


async def throughput(url: str, spool: Path, batch: list[Record]) -> float:
    engine = create_engine(url)
    sink = DatabaseSink(
        engine, spool_path=spool, queue_size=20_000, batch_size=2000, batch_age_s=0.05
    )
    await sink.start()
    start = time.perf_counter()
    for i in range(0, EVENTS, 1000):
        for record in batch[i : i + 1000]:
            emitter(sink, record)
        await asyncio.sleep(0)
    await sink.aclose(timeout_s=120)
    elapsed = time.perf_counter() - start
    table = usage_records if isinstance(batch[0], UsageRecord) else breaker_events
    async with engine.connect() as conn:
        rows = (await conn.execute(select(func.count()).select_from(table))).scalar()
    await engine.dispose()
    assert rows is not None and rows >= EVENTS, f"only {rows} of {EVENTS} rows"
    assert sink.journal is not None and sink.journal.in_flight == 0
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
            tmp_path = Path(tmp)
            emitted: list[Record] = [*events(EMITS)]
            used: list[Record] = [*usages(EMITS)]
            # The inputs, built up front and alive for the whole run, are the bench's own:
            # a gateway makes each event when it happens (and freezes what its start built,
            # `Settings.freeze_gc_on_start`). Left to the collector, these 100,000 objects
            # are walked again and again inside the timed loops, adding ~2 µs to each emit
            # at 50,000 that no request pays. What emit allocates stays collectable.
            gc.collect()
            gc.freeze()
            emit_us, list_us = await emit_cost(pg_url, tmp_path / "a.jsonl", emitted)
            bare_us, _ = await emit_cost(pg_url, tmp_path / "a2.jsonl", emitted, journal=False)
            usage_us, _ = await emit_cost(pg_url, tmp_path / "u.jsonl", used)
            pg_rate = await throughput(pg_url, tmp_path / "b.jsonl", [*events(EVENTS)])
            sqlite_rate = await throughput(sqlite_url, tmp_path / "c.jsonl", [*events(EVENTS)])
            pg_usage_rate = await throughput(pg_url, tmp_path / "d.jsonl", [*usages(EVENTS)])
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()
    print(
        f"emit(): {emit_us:.2f} us per event, journal line written and queued "
        f"(without the journal {bare_us:.2f} us; list.append baseline {list_us:.3f} us), "
        f"median of 5 runs of {EMITS:,}"
    )
    print(f"emit_usage(): {usage_us:.2f} us per usage record, journal line written and queued")
    print(f"PostgreSQL: {pg_rate:,.0f} events/s sustained ({EVENTS:,} events, batches of 2,000)")
    print(f"PostgreSQL: {pg_usage_rate:,.0f} usage records/s sustained ({EVENTS:,} records)")
    print(f"SQLite:     {sqlite_rate:,.0f} events/s sustained ({EVENTS:,} events)")
    headline(
        {
            "emit_us": round(emit_us, 2),
            "usage_emit_us": round(usage_us, 2),
            "emit_no_journal_us": round(bare_us, 2),
            "postgres_events_per_s": round(pg_rate),
            "postgres_usage_per_s": round(pg_usage_rate),
            "sqlite_events_per_s": round(sqlite_rate),
        }
    )


if __name__ == "__main__":
    asyncio.run(main())
