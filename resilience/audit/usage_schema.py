"""The `usage_records` table, as SQLAlchemy Core, and how a usage record becomes a row;
`usage_prices`, which the operator fills for the README's cost recipe."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Float,
    Index,
    Numeric,
    PrimaryKeyConstraint,
    String,
    Table,
    Text,
    Uuid,
)

from resilience.audit.schema import metadata
from resilience.usage.record import UsageRecord

usage_records = Table(
    "usage_records",
    metadata,
    Column("id", Uuid(), primary_key=True),
    Column("occurred_at", DateTime(timezone=True), nullable=False),
    Column("tenant_id", Text, nullable=False),
    Column("route", Text, nullable=False),
    Column("provider", Text, nullable=True),
    Column("model", Text, nullable=True),
    Column("input_tokens", BigInteger, nullable=True),
    Column("output_tokens", BigInteger, nullable=True),
    Column("cached_tokens", BigInteger, nullable=True),
    Column("latency_ms", Float(precision=53), nullable=False),
    Column("outcome", Text, nullable=False),
    Column("request_id", String(128), nullable=True),
    Column("streamed", Boolean, nullable=False),
    Index("ix_usage_records_time", "occurred_at"),
    Index("ix_usage_records_tenant_time", "tenant_id", "occurred_at"),
)

usage_prices = Table(
    "usage_prices",
    metadata,
    Column("provider", Text, nullable=False),
    Column("model", Text, nullable=False),
    Column("input_usd_per_mtok", Numeric(18, 6), nullable=False),
    Column("output_usd_per_mtok", Numeric(18, 6), nullable=False),
    Column("cached_input_usd_per_mtok", Numeric(18, 6), nullable=True),
    PrimaryKeyConstraint("provider", "model"),
)
"""US dollars per million tokens of one (provider, model), as the operator enters them;
`cached_input_usd_per_mtok` NULL: cached reads cost as much as other input."""


def usage_params(record: UsageRecord) -> dict[str, Any]:
    """The row as JSON-able values (a spool or journal line holds it as is); the table's
    columns bind them too (`usage_bind` turns id and time back into their types)."""
    occurred = record.occurred_at
    if occurred.tzinfo is None:
        occurred = occurred.replace(tzinfo=UTC)
    return {
        "id": str(record.id),
        "occurred_at": occurred.isoformat(),
        "tenant_id": record.tenant_id,
        "route": record.route,
        "provider": record.provider,
        "model": record.model,
        "input_tokens": record.input_tokens,
        "output_tokens": record.output_tokens,
        "cached_tokens": record.cached_tokens,
        "latency_ms": _finite(record.latency_ms),
        "outcome": record.outcome,
        "request_id": record.request_id,
        "streamed": record.streamed,
    }


def usage_bind(params: dict[str, Any]) -> dict[str, Any]:
    """`usage_params` output with the Python types `usage_records`' columns bind
    (a UUID and an aware datetime), for an insert."""
    occurred = datetime.fromisoformat(params["occurred_at"])
    if occurred.tzinfo is None:
        occurred = occurred.replace(tzinfo=UTC)
    return {**params, "id": uuid.UUID(str(params["id"])), "occurred_at": occurred}


def usage_from_params(params: dict[str, Any]) -> UsageRecord:
    """The record back from `usage_params` output (a replayed journal or spool line)."""
    bound = usage_bind(params)
    return UsageRecord(
        id=bound["id"],
        occurred_at=bound["occurred_at"],
        tenant_id=str(bound["tenant_id"]),
        route=str(bound["route"]),
        provider=_opt_str(bound.get("provider")),
        model=_opt_str(bound.get("model")),
        input_tokens=_opt_int(bound.get("input_tokens")),
        output_tokens=_opt_int(bound.get("output_tokens")),
        cached_tokens=_opt_int(bound.get("cached_tokens")),
        latency_ms=float(bound.get("latency_ms") or 0.0),
        outcome=str(bound["outcome"]),
        request_id=_opt_str(bound.get("request_id")),
        streamed=bool(bound.get("streamed")),
    )


def _opt_str(value: Any) -> str | None:
    return None if value is None else str(value)


def _opt_int(value: Any) -> int | None:
    return None if value is None else int(value)


def _finite(value: float) -> float:
    if value != value or value in (float("inf"), float("-inf")):
        return 0.0
    return float(value)
