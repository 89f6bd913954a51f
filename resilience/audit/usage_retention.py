"""Retention of `usage_records`: delete what is older than the operator keeps.

Deletes go in batches, each its own short transaction, so a prune of millions of rows
never holds a lock the sink's inserts wait on for long, and may run while the gateway
serves. Large PostgreSQL deployments partition the table by month and drop partitions
instead (docs/architecture.md, "Usage records").
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncEngine

from resilience.audit.usage_schema import usage_records

BATCH = 10_000

_AGE = re.compile(r"(\d+)([smhdw])")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def parse_age(raw: str) -> timedelta:
    """`90d`, `12h`, `2w`, `30m`, `45s`: a whole number and one unit, more than zero."""
    found = _AGE.fullmatch(raw.strip())
    if found is None or int(found[1]) == 0:
        raise ValueError(f"expected a duration such as 90d, 12h or 2w, got {raw!r}")
    return timedelta(seconds=int(found[1]) * _UNITS[found[2]])


async def prune_usage(engine: AsyncEngine, *, before: datetime, batch: int = BATCH) -> int:
    """Delete the usage records that occurred before `before` (aware, UTC); how many."""
    if batch < 1:
        raise ValueError(f"batch: must be >= 1, got {batch!r}")
    table = usage_records
    deleted = 0
    while True:
        oldest = select(table.c.id).where(table.c.occurred_at < before).limit(batch)
        async with engine.begin() as conn:
            result = await conn.execute(
                delete(table).where(table.c.id.in_(oldest.scalar_subquery()))
            )
        count = result.rowcount
        deleted += count
        if count < batch:
            return deleted
