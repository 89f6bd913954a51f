"""Typed reads of the audit trail for the admin API: events, open periods, summaries."""

from __future__ import annotations

import base64
import binascii
import json
import uuid
from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import and_, or_, select, text
from sqlalchemy.ext.asyncio import AsyncConnection

from resilience.audit.schema import breaker_events

MAX_PAGE = 1000


@dataclass(frozen=True, slots=True)
class EventRow:
    id: uuid.UUID
    occurred_at: datetime
    tenant_id: str
    provider: str
    from_state: str
    to_state: str
    reason: str
    error_kind: str | None
    failures: int
    cooldown_s: float | None
    actor: str | None
    request_id: str | None
    detail: dict[str, Any]


@dataclass(frozen=True, slots=True)
class EventPage:
    events: list[EventRow]
    next_cursor: str | None
    """Opaque; pass it back for the next page. It carries a position, never a filter."""


@dataclass(frozen=True, slots=True)
class OpenPeriod:
    tenant_id: str
    provider: str
    opened_at: datetime
    closed_at: datetime | None
    duration_s: float | None
    reason: str
    error_kind: str | None


@dataclass(frozen=True, slots=True)
class ProviderSummary:
    provider: str
    opens: int
    open_seconds: float
    """Total open time within the range, periods clipped to it and to now (a still-open one
    counts up to now, or `until` if that is earlier)."""
    tenants_affected: int


class BadCursor(ValueError):
    """A cursor that this API did not hand out."""


async def list_events(
    conn: AsyncConnection,
    *,
    tenant: str | None = None,
    provider: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    limit: int = 100,
    cursor: str | None = None,
) -> EventPage:
    """Newest first, keyset-paged on (occurred_at, id); filters always come from the arguments."""
    limit = max(1, min(limit, MAX_PAGE))
    t = breaker_events.c
    query = select(breaker_events)
    if tenant is not None:
        query = query.where(t.tenant_id == tenant)
    if provider is not None:
        query = query.where(t.provider == provider)
    if since is not None:
        query = query.where(t.occurred_at >= since)
    if until is not None:
        query = query.where(t.occurred_at < until)
    if cursor is not None:
        at, last_id = _decode(cursor)
        query = query.where(or_(t.occurred_at < at, and_(t.occurred_at == at, t.id < last_id)))
    query = query.order_by(t.occurred_at.desc(), t.id.desc()).limit(limit + 1)
    rows = (await conn.execute(query)).mappings().all()
    events = [_event(dict(row)) for row in rows[:limit]]
    more = len(rows) > limit
    return EventPage(events, _encode(events[-1]) if more and events else None)


async def open_periods(
    conn: AsyncConnection,
    *,
    tenant: str | None = None,
    provider: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
) -> list[OpenPeriod]:
    """Open periods overlapping [since, until), oldest first."""
    clauses: list[str] = []
    params: dict[str, object] = {}
    if tenant is not None:
        clauses.append("tenant_id = :tenant")
        params["tenant"] = tenant
    if provider is not None:
        clauses.append("provider = :provider")
        params["provider"] = provider
    if until is not None:
        clauses.append("opened_at < :until")
        params["until"] = until
    if since is not None:
        clauses.append("(closed_at IS NULL OR closed_at >= :since)")
        params["since"] = since
    where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
    sql = text(
        "SELECT tenant_id, provider, opened_at, closed_at, duration_s, reason, error_kind "
        f"FROM breaker_open_periods {where} ORDER BY opened_at, tenant_id, provider"
    )
    rows = (await conn.execute(sql, params)).mappings().all()
    return [
        OpenPeriod(
            tenant_id=row["tenant_id"],
            provider=row["provider"],
            opened_at=_utc(row["opened_at"]),
            closed_at=_utc(row["closed_at"]) if row["closed_at"] is not None else None,
            duration_s=float(row["duration_s"]) if row["duration_s"] is not None else None,
            reason=row["reason"],
            error_kind=row["error_kind"],
        )
        for row in rows
    ]


async def provider_summary(
    conn: AsyncConnection, *, since: datetime, until: datetime, now: datetime | None = None
) -> list[ProviderSummary]:
    """Per provider over [since, until): opens, open time clipped to the range and to `now`
    (default: the current time), tenants hit. A range reaching into the future counts no
    open time there: a period still open has lasted until now, not until `until`."""
    end_of_data = min(until, now or datetime.now(UTC))
    opens: dict[str, int] = defaultdict(int)
    seconds: dict[str, float] = defaultdict(float)
    tenants: dict[str, set[str]] = defaultdict(set)
    for period in await open_periods(conn, since=since, until=until):
        start = max(period.opened_at, since)
        end = min(period.closed_at or end_of_data, end_of_data)
        if period.opened_at >= since:
            opens[period.provider] += 1
        seconds[period.provider] += max(0.0, (end - start).total_seconds())
        tenants[period.provider].add(period.tenant_id)
    return [
        ProviderSummary(p, opens[p], round(seconds[p], 3), len(tenants[p] - {"*"}))
        for p in sorted(seconds)
    ]


def _event(row: dict[str, Any]) -> EventRow:
    detail = row["detail"]
    if isinstance(detail, str):
        detail = json.loads(detail)
    return EventRow(**{**row, "occurred_at": _utc(row["occurred_at"]), "detail": detail or {}})


def _utc(value: datetime | str) -> datetime:
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _encode(event: EventRow) -> str:
    raw = json.dumps({"t": event.occurred_at.isoformat(), "id": str(event.id)})
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


MAX_CURSOR = 200
"""Far longer than any cursor `_encode` makes (about 110 characters)."""


def _decode(cursor: str) -> tuple[datetime, uuid.UUID]:
    """The position a cursor holds; BadCursor for anything `_encode` did not make, whatever
    its shape (wrong types, deep nesting, times no datetime can hold in UTC)."""
    if len(cursor) > MAX_CURSOR:
        raise BadCursor("invalid cursor")
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        data = json.loads(base64.urlsafe_b64decode(padded.encode("ascii")))
        at, last_id = (data.get("t"), data.get("id")) if isinstance(data, dict) else (None, None)
        if not isinstance(at, str) or not isinstance(last_id, str):
            raise BadCursor("invalid cursor")
        return _utc(datetime.fromisoformat(at)), uuid.UUID(last_id)
    except (ValueError, TypeError, OverflowError, RecursionError, binascii.Error) as exc:
        raise BadCursor("invalid cursor") from exc
