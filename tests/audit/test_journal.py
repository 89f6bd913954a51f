"""The journal: rows on disk before `emit` returns, replayed after `kill -9`, trimmed once
settled; and usage records through the sink like breaker events."""

from __future__ import annotations

import asyncio
import json
import math
import os
import signal
import sys
import textwrap
import uuid
from dataclasses import replace
from datetime import datetime
from pathlib import Path
from types import MappingProxyType

import pytest
from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import AsyncEngine

from resilience.audit.database import create_engine
from resilience.audit.journal import (
    TABLE_KEY,
    USAGE_TABLE,
    Journal,
    event_line,
    fsync_policy,
    usage_line,
)
from resilience.audit.schema import to_row
from resilience.audit.sink import DatabaseSink
from resilience.audit.spool import Spool
from resilience.audit.usage_schema import usage_params, usage_records
from resilience.errors import ErrorKind
from resilience.usage.record import UsageRecord
from tests.audit.test_sink import DEAD, Sleeps, events, rows
from tests.support.audit import T0, event
from tests.support.servers import until

ROOT = Path(__file__).resolve().parents[2]


def usage(n: int, tenant: str = "u") -> list[UsageRecord]:
    return [
        UsageRecord(
            id=uuid.uuid4(),
            occurred_at=T0,
            tenant_id=f"{tenant}{i % 7}",
            route="chat",
            provider="openai",
            model="gpt-4.1",
            input_tokens=100 + i,
            output_tokens=20,
            cached_tokens=None if i % 2 else 5,
            latency_ms=12.5,
            outcome="succeeded",
            request_id=f"req-{i}",
            streamed=bool(i % 3),
        )
        for i in range(n)
    ]


async def usage_rows(engine: AsyncEngine) -> int:
    async with engine.connect() as conn:
        return int(
            (await conn.execute(select(func.count()).select_from(usage_records))).scalar() or 0
        )


def test_lines_parse_to_the_rows_the_spool_holds() -> None:
    base = event("t", "openai", "closed", "open", "threshold", 0, failures=5, cooldown_s=30.0)
    odd_events = [
        base,
        replace(base, error_kind=ErrorKind.TIMEOUT, actor="ops é", request_id='r"1\\'),
        replace(base, cooldown_s=math.nan, detail={"calls": 8, "note": "x\ud800y"}),
        replace(base, cooldown_s=math.inf, detail=MappingProxyType({"n": [1, 2.5, None]})),
        replace(base, occurred_at=datetime(2026, 1, 2, 3, 4, 5), tenant_id="日本"),
    ]
    for e in odd_events:
        line = event_line(e)
        assert line.endswith(b"\n") and line.count(b"\n") == 1
        assert json.loads(line) == json.loads(Spool.encode(to_row(e)))
    record = usage(1)[0]
    odd_usage = [
        record,
        replace(record, provider=None, model=None, input_tokens=None, request_id=None),
        replace(record, latency_ms=math.nan, outcome="all_targets_failed", tenant_id="a\x00b"),
        replace(record, occurred_at=datetime(2026, 1, 2, 3, 4, 5), route="ルート", latency_ms=3),
    ]
    for r in odd_usage:
        expected = {**usage_params(r), TABLE_KEY: USAGE_TABLE}
        assert json.loads(usage_line(r)) == json.loads(Spool.encode(expected))


def test_fsync_policy_names_are_checked() -> None:
    assert [fsync_policy(p) for p in ("never", "batch", "always")] == ["never", "batch", "always"]
    with pytest.raises(ValueError, match="never, batch, always"):
        fsync_policy("sometimes")


def test_a_torn_last_line_is_dropped_and_a_whole_one_kept(tmp_path: Path) -> None:
    path = tmp_path / "journal-x-000001.jsonl"
    first, second = (event_line(e).decode() for e in events(2))
    path.write_text(first + second.rstrip("\n"))  # the last one whole, its newline missing
    assert Journal.read(path) == [first, second]
    path.write_text(first + second[:40])  # the last one cut by the kill mid-write
    assert Journal.read(path) == [first]


def test_a_live_process_keeps_its_segment_a_dead_ones_is_taken(tmp_path: Path) -> None:
    folder = tmp_path / "journal"
    live = Journal(folder)
    assert live.open() == []
    assert live.append(event_line(events(1)[0])) > 0
    other = Journal(folder)
    assert other.open() == []  # held by a live process: not a leftover
    other.close()
    live.close()  # a row still in flight: the segment stays for the next start
    (segment,) = folder.glob("journal-*.jsonl")
    after = Journal(folder)
    assert after.open() == [segment]
    after.discard(segment)
    after.close()
    assert list(folder.iterdir()) == []


async def test_the_journal_holds_only_rows_in_flight(engine: AsyncEngine, tmp_path: Path) -> None:
    sink = DatabaseSink(engine, spool_path=tmp_path / "spool.jsonl", batch_age_s=0.01)
    assert sink.journal is not None
    sink.journal.segment_bytes = 4096  # a dozen rows: sealed and deleted all along
    await sink.start()
    folder = sink.journal.directory
    for start in range(0, 3000, 100):
        for e in events(100, tenant=f"b{start}"):
            sink.emit(e)
        for r in usage(50, tenant=f"b{start}"):
            sink.emit_usage(r)
        assert len(list(folder.glob("journal-*.jsonl"))) <= 3 + 150 * 400 // 4096
        await until(lambda: sink.journal is not None and sink.journal.in_flight < 50)
    await until(lambda: sink.journal is not None and sink.journal.in_flight == 0)
    segments = list(folder.glob("journal-*.jsonl"))
    assert len(segments) == 1 and segments[0].stat().st_size == 0  # trimmed, not growing
    assert sink.stats.journaled == 4500 and sink.stats.journal_errors == 0
    await sink.aclose()
    assert list(folder.iterdir()) == []
    assert await rows(engine) == 3000 and await usage_rows(engine) == 1500


async def test_usage_records_go_through_an_outage_like_breaker_events(
    engine: AsyncEngine, tmp_path: Path
) -> None:
    spool = tmp_path / "spool.jsonl"
    dead = create_engine(DEAD)
    during = DatabaseSink(dead, spool_path=spool, batch_age_s=0.01, sleep=Sleeps())
    await during.start()
    records = usage(40)
    for r, e in zip(records, events(40), strict=True):
        during.emit_usage(r)
        during.emit(e)
    await during.aclose(timeout_s=5)
    await dead.dispose()
    assert Spool(spool).count() == 80
    after = DatabaseSink(engine, spool_path=spool, batch_age_s=0.01)
    await after.start()
    assert await after.caught_up(30)
    await after.aclose()
    assert await usage_rows(engine) == 40 and await rows(engine) == 40
    async with engine.connect() as conn:
        stored = (await conn.execute(text("SELECT sum(input_tokens) FROM usage_records"))).scalar()
    assert stored == sum(r.input_tokens or 0 for r in records)


CHILD = textwrap.dedent(
    """
    import asyncio, sys, uuid
    from resilience.audit.database import create_engine
    from resilience.audit.sink import DatabaseSink
    from tests.audit.test_journal import usage
    from tests.audit.test_sink import DEAD, events

    async def main() -> None:
        # a writer that never writes: every row is in memory (and the journal) only
        sink = DatabaseSink(
            create_engine(DEAD), spool_path=sys.argv[1], journal_fsync=sys.argv[2],
            batch_size=100_000, batch_age_s=3600, queue_size=100_000,
        )
        await sink.start()
        for e in events(1000, tenant="k"):
            sink.emit(e)
        for r in usage(1000, tenant="k"):
            sink.emit_usage(r)
        print("emitted", sink.stats.journaled, flush=True)
        await asyncio.sleep(3600)

    asyncio.run(main())
    """
)


@pytest.mark.parametrize("fsync", ["never", "always"])
async def test_kill_9_with_every_row_in_memory_loses_none(
    engine: AsyncEngine, tmp_path: Path, fsync: str
) -> None:
    spool = tmp_path / "spool.jsonl"
    child = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        CHILD,
        str(spool),
        fsync,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        stdout=asyncio.subprocess.PIPE,
    )
    assert child.stdout is not None
    line = await asyncio.wait_for(child.stdout.readline(), 60)
    assert line.split() == [b"emitted", b"2000"]
    child.send_signal(signal.SIGKILL)  # the writer never wrote a row: all in memory
    await child.wait()
    assert not Spool(spool).pending()  # nothing reached the spool: only the journal has it
    restarted = DatabaseSink(engine, spool_path=spool, batch_age_s=0.01)
    await restarted.start()
    assert await restarted.caught_up(30)
    await restarted.aclose()
    assert restarted.stats.recovered == 2000
    assert await rows(engine) == 1000 and await usage_rows(engine) == 1000
    again = DatabaseSink(engine, spool_path=spool, batch_age_s=0.01)
    await again.start()  # a second start finds nothing left to recover: no duplicates
    await again.aclose()
    assert again.stats.recovered == 0 and await rows(engine) == 1000
