"""Migrations, the sink's rows, the open-periods view and the typed queries, on both databases."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import timedelta

import pytest
from sqlalchemy import func, inspect, select, text
from sqlalchemy.ext.asyncio import AsyncEngine

from resilience.audit.database import create_engine, downgrade, migrate
from resilience.audit.queries import BadCursor, list_events, open_periods, provider_summary
from resilience.audit.schema import breaker_events, event_params, to_params, to_row
from resilience.audit.sink import DatabaseSink
from resilience.breaker.events import BreakerTransition
from resilience.errors import ErrorKind
from tests.support.audit import T0, event

SCRIPT = [  # open, half-open, open again, close; then a second period still open
    event(
        "acme",
        "openai",
        "closed",
        "open",
        "threshold",
        0,
        kind=ErrorKind.OVERLOADED,
        failures=5,
        cooldown_s=30,
    ),
    event("acme", "openai", "open", "half_open", "cooldown_elapsed", 0.5),
    event(
        "acme",
        "openai",
        "half_open",
        "open",
        "probe_failed",
        0.51,
        kind=ErrorKind.OVERLOADED,
        cooldown_s=60,
    ),
    event("acme", "openai", "open", "half_open", "cooldown_elapsed", 1.51),
    event("acme", "openai", "half_open", "closed", "probe_succeeded", 1.52),
    event("acme", "openai", "closed", "forced_open", "admin_open", 10, actor="ops"),
]


async def test_upgrade_downgrade_upgrade_from_empty(db_url: str) -> None:
    engine = create_engine(db_url)
    try:
        await migrate(db_url)
        async with engine.connect() as conn:
            tables = await conn.run_sync(lambda c: inspect(c).get_table_names())
            views = await conn.run_sync(lambda c: inspect(c).get_view_names())
            indexes = await conn.run_sync(lambda c: inspect(c).get_indexes("breaker_events"))
        assert "breaker_events" in tables and "breaker_open_periods" in views
        assert {tuple(i["column_names"]) for i in indexes} == {
            ("tenant_id", "provider", "occurred_at"),
            ("occurred_at",),
        }
        await downgrade(db_url)
        async with engine.connect() as conn:
            tables = await conn.run_sync(lambda c: inspect(c).get_table_names())
        assert "breaker_events" not in tables
        await migrate(db_url)
    finally:
        await engine.dispose()


async def write(
    engine: AsyncEngine, tmp_path: object, events: Sequence[BreakerTransition]
) -> DatabaseSink:
    sink = DatabaseSink(engine, spool_path=f"{tmp_path}/spool.jsonl", batch_age_s=0.01)
    await sink.start()
    for e in events:
        sink.emit(e)
    await sink.aclose()
    return sink


async def test_events_written_by_the_sink_have_every_column_right(
    engine: AsyncEngine, tmp_path: object
) -> None:
    source = event(
        "acme",
        "openai",
        "closed",
        "open",
        "threshold",
        0,
        kind=ErrorKind.AUTH,
        failures=5,
        cooldown_s=30.0,
    )
    source = type(source)(
        **{
            **{f: getattr(source, f) for f in source.__dataclass_fields__},
            "request_id": "req-1",
            "detail": {"calls": 8},
        }
    )
    sink = await write(engine, tmp_path, [source])
    assert sink.stats.written == 1 and sink.stats.spooled == 0
    async with engine.connect() as conn:
        page = await list_events(conn)
    [row] = page.events
    assert row.id == source.id and row.occurred_at == source.occurred_at
    assert (row.tenant_id, row.provider, row.from_state, row.to_state) == (
        "acme",
        "openai",
        "closed",
        "open",
    )
    assert (row.reason, row.error_kind, row.failures, row.cooldown_s) == (
        "threshold",
        "auth",
        5,
        30.0,
    )
    assert (row.actor, row.request_id, row.detail) == (None, "req-1", {"calls": 8})


async def test_open_periods_view_for_a_scripted_sequence(
    engine: AsyncEngine, tmp_path: object
) -> None:
    await write(engine, tmp_path, SCRIPT)
    async with engine.connect() as conn:
        periods = await open_periods(conn, tenant="acme")
    first, second = periods
    assert first.opened_at == T0 and first.closed_at == T0 + timedelta(minutes=1.52)
    assert first.duration_s == pytest.approx(91.2, abs=0.01)
    assert (first.reason, first.error_kind) == ("threshold", "overloaded")
    assert second.closed_at is None and second.duration_s is None and second.reason == "admin_open"


async def test_replayed_rows_never_duplicate(engine: AsyncEngine, tmp_path: object) -> None:
    await write(engine, tmp_path, SCRIPT)
    await write(engine, tmp_path, SCRIPT)  # the same ids again, as a replay would send them
    async with engine.connect() as conn:
        count = (await conn.execute(select(func.count()).select_from(breaker_events))).scalar()
    assert count == len(SCRIPT)


async def test_events_page_newest_first_with_a_cursor_that_cannot_escape_the_filter(
    engine: AsyncEngine, tmp_path: object
) -> None:
    others = [event("globex", "openai", "closed", "open", "threshold", m) for m in range(5)]
    await write(engine, tmp_path, SCRIPT + others)
    async with engine.connect() as conn:
        first = await list_events(conn, tenant="acme", limit=4)
        assert [e.reason for e in first.events][:2] == ["admin_open", "probe_succeeded"]
        assert first.next_cursor is not None
        second = await list_events(conn, tenant="acme", limit=4, cursor=first.next_cursor)
        assert second.next_cursor is None
        seen = [e.id for e in first.events + second.events]
        assert len(seen) == len(set(seen)) == len(SCRIPT)
        assert all(e.tenant_id == "acme" for e in second.events)
        window = await list_events(
            conn,
            provider="openai",
            since=T0 + timedelta(minutes=1),
            until=T0 + timedelta(minutes=3),
        )
        assert {e.tenant_id for e in window.events} == {"acme", "globex"}
        with pytest.raises(BadCursor):
            await list_events(conn, cursor="not-a-cursor")


async def test_provider_summary_clips_periods_to_the_range(
    engine: AsyncEngine, tmp_path: object
) -> None:
    wide = [
        event("*", "openai", "closed", "open", "provider_wide", 2),
        event("*", "openai", "open", "half_open", "cooldown_elapsed", 3),
        event("*", "openai", "half_open", "closed", "probe_succeeded", 3.5),
    ]
    await write(engine, tmp_path, SCRIPT + wide)
    async with engine.connect() as conn:
        [summary] = await provider_summary(conn, since=T0, until=T0 + timedelta(minutes=20))
    assert summary.provider == "openai"
    assert summary.opens == 3
    assert summary.open_seconds == pytest.approx(91.2 + 90 + 600, abs=0.01)
    assert summary.tenants_affected == 1  # "*" is the provider itself, not a tenant


async def test_detail_is_jsonb_on_postgresql(pg_url: str, tmp_path: object) -> None:
    await migrate(pg_url)
    engine = create_engine(pg_url)
    try:
        await write(engine, tmp_path, SCRIPT[:1])
        async with engine.connect() as conn:
            kind = (
                await conn.execute(text("SELECT pg_typeof(detail)::text FROM breaker_events"))
            ).scalar()
            period_type = (
                await conn.execute(
                    text("SELECT pg_typeof(duration_s)::text FROM breaker_open_periods")
                )
            ).scalar()
        assert kind == "jsonb" and period_type == "double precision"
    finally:
        await engine.dispose()


def test_ids_are_uuids() -> None:
    assert isinstance(SCRIPT[0].id, uuid.UUID)


def test_the_writers_direct_rows_equal_the_spool_round_trip() -> None:
    """Queued events skip the spool's string form; both paths must bind identical rows."""
    odd = event(
        "t1",
        "openai",
        "open",
        "half_open",
        "cooldown_elapsed",
        1,
        kind=ErrorKind.SERVER_ERROR,
        actor="ops@x",
        failures=3,
        cooldown_s=float("nan"),
    )
    for e in [*SCRIPT, odd]:
        assert event_params(e) == to_params(to_row(e))
