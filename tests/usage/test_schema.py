"""usage_records: the migration makes the table the schema describes, rows round-trip."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from resilience.audit.usage_schema import usage_bind, usage_from_params, usage_params, usage_records
from resilience.usage.record import UsageRecord


def _record(**overrides: object) -> UsageRecord:
    fields: dict[str, object] = {
        "id": uuid.uuid4(),
        "occurred_at": datetime(2026, 11, 30, 12, 0, tzinfo=UTC),
        "tenant_id": "acme",
        "route": "chat",
        "provider": "primary",
        "model": "gpt-4o-mini",
        "input_tokens": 12,
        "output_tokens": 30,
        "cached_tokens": 4,
        "latency_ms": 8.5,
        "outcome": "succeeded",
        "request_id": "req-1",
        "streamed": True,
    }
    fields.update(overrides)
    return UsageRecord(**fields)  # type: ignore[arg-type]


def test_params_are_json_and_round_trip() -> None:
    record = _record()
    line = json.dumps(usage_params(record))
    assert usage_from_params(json.loads(line)) == record


def test_unknown_counts_stay_none() -> None:
    record = _record(input_tokens=None, output_tokens=None, cached_tokens=None, provider=None)
    assert usage_from_params(usage_params(record)) == record


async def test_migrated_table_takes_rows(engine: AsyncEngine) -> None:
    records = [_record(), _record(tenant_id="globex", input_tokens=None, streamed=False)]
    async with engine.begin() as conn:
        await conn.execute(usage_records.insert(), [usage_bind(usage_params(r)) for r in records])
    async with engine.connect() as conn:
        rows = (await conn.execute(sa.select(usage_records))).mappings().all()
        indexes = await conn.run_sync(
            lambda sync: {i["name"] for i in sa.inspect(sync).get_indexes("usage_records")}
        )
    back = sorted(
        (usage_from_params(_jsonable(dict(row))) for row in rows), key=lambda r: r.tenant_id
    )
    assert [r.id for r in back] == [r.id for r in records]
    assert back[1].input_tokens is None and back[0].cached_tokens == 4
    assert {"ix_usage_records_time", "ix_usage_records_tenant_time"} <= indexes


def _jsonable(row: dict[str, object]) -> dict[str, object]:
    occurred = row["occurred_at"]
    assert isinstance(occurred, datetime)
    return {**row, "id": str(row["id"]), "occurred_at": occurred.isoformat()}
