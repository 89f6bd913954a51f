"""Carry breaker state over a restart, from the audit trail.

A process that stops (SIGTERM, a crash, `kill -9`) takes its breakers with it,
while `breaker_open_periods` still shows the periods it had open. At start, for
each pair whose last event left it not closed:

- the store already holds it not closed (Redis, shared by live processes):
  nothing to do;
- it was isolated by an admin (`admin_open`, to `forced_open`) without an end,
  or with an end still ahead, and the store is process-local: the isolation is
  taken over for the time left, with no new event (the `admin_open` in the trail
  still stands for this period);
- otherwise (an ordinary trip, a probe, an isolation whose end has passed, or an
  isolation a shared store no longer holds): a `process_restart` event closes
  the period, because nobody enforces it any more.

The closing event's id is derived from the event it follows, so processes that
start together write one row between them (inserts ignore a known id). With a
shared store that does not answer at start, nothing is done: what it holds
cannot be told.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from resilience.audit.schema import breaker_events
from resilience.breaker.events import BreakerState, BreakerTransition, TransitionReason
from resilience.breaker.registry import BreakerRegistry
from resilience.types import BreakerKey, Clock

logger = logging.getLogger("resilience.audit")

_NAMESPACE = uuid.UUID("6f0c61e2-4a1b-4f53-9a0e-2d3c1b7e5a90")
_AFTER = timedelta(milliseconds=1)
_CLOSED = BreakerState.CLOSED


@dataclass(frozen=True, slots=True)
class LastEvent:
    """The last event of a pair whose period is still open in the trail."""

    id: uuid.UUID
    tenant: str
    provider: str
    to_state: BreakerState
    reason: str
    occurred_at: datetime
    cooldown_s: float | None
    detail: dict[str, Any]

    @property
    def key(self) -> BreakerKey:
        return (self.tenant, self.provider)

    def isolation_ends(self) -> datetime | None:
        """When an admin isolation ends; None for one until reset."""
        duration = self.detail.get("duration_s", self.cooldown_s)
        if isinstance(duration, int | float) and not isinstance(duration, bool) and duration > 0:
            return self.occurred_at + timedelta(seconds=float(duration))
        return None


@dataclass(slots=True)
class Restored:
    """What `restore_breakers` did, for the start-up log and tests."""

    restored: list[BreakerKey] = field(default_factory=list)
    closed: list[BreakerKey] = field(default_factory=list)
    held: list[BreakerKey] = field(default_factory=list)
    skipped: str | None = None


async def open_periods(engine: AsyncEngine) -> list[LastEvent]:
    """The last event of every pair whose last event did not close it (the same order as
    the `breaker_open_periods` view: time, then id)."""
    t = breaker_events.c
    rank = (
        func.row_number()
        .over(partition_by=(t.tenant_id, t.provider), order_by=(t.occurred_at.desc(), t.id.desc()))
        .label("rank")
    )
    ranked = select(breaker_events, rank).subquery()
    query = select(ranked).where(ranked.c.rank == 1, ranked.c.to_state != "closed")
    async with engine.connect() as connection:
        rows = (await connection.execute(query)).mappings().all()
    found = []
    for row in rows:
        occurred = row["occurred_at"]
        if occurred.tzinfo is None:  # SQLite keeps the UTC time without its zone
            occurred = occurred.replace(tzinfo=UTC)
        detail = row["detail"]
        found.append(
            LastEvent(
                id=row["id"],
                tenant=row["tenant_id"],
                provider=row["provider"],
                to_state=BreakerState(row["to_state"]),
                reason=row["reason"],
                occurred_at=occurred,
                cooldown_s=row["cooldown_s"],
                detail=detail if isinstance(detail, dict) else {},
            )
        )
    return found


async def restore_breakers(
    engine: AsyncEngine,
    registry: BreakerRegistry,
    emit: Callable[[BreakerTransition], None],
    *,
    wall_clock: Clock = time.time,
) -> Restored:
    """Restore admin isolations and close the periods nobody holds; see the module docstring.

    `emit` receives the `process_restart` events (the audit sink: they are bookkeeping of
    the trail, not transitions a live breaker made).
    """
    done = Restored()
    status = registry.store.status()
    shared = status.get("kind") != "memory"
    if shared and not status.get("shared"):
        done.skipped = "the shared breaker store does not answer"
        return done
    held = {(s.tenant, s.provider) for s in registry.circuits() if s.state is not _CLOSED}
    now = datetime.fromtimestamp(wall_clock(), UTC)
    for last in await open_periods(engine):
        if last.key in held:
            done.held.append(last.key)
            continue
        if not shared and last.to_state is BreakerState.FORCED_OPEN:
            ends = last.isolation_ends()
            if ends is None or ends > now:
                try:
                    registry.restore_forced_open(
                        last.tenant,
                        last.provider,
                        remaining_s=None if ends is None else (ends - now).total_seconds(),
                        opened_ago_s=(now - last.occurred_at).total_seconds(),
                    )
                except ValueError as exc:  # a duration this version no longer takes
                    logger.warning("restore: %s/%s not restored: %s", *last.key, exc)
                else:
                    done.restored.append(last.key)
                    continue
        emit(closing(last, now))
        done.closed.append(last.key)
    return done


def closing(last: LastEvent, now: datetime) -> BreakerTransition:
    """The `process_restart` event that ends `last`'s period, after it in the view's order."""
    return BreakerTransition(
        id=uuid.uuid5(_NAMESPACE, f"process_restart:{last.id}"),
        tenant_id=last.tenant,
        provider=last.provider,
        from_state=last.to_state,
        to_state=_CLOSED,
        reason=TransitionReason.PROCESS_RESTART,
        occurred_at=max(now, last.occurred_at + _AFTER),
        failures=0,
        detail={"after_event": str(last.id), "after_reason": last.reason},
    )
