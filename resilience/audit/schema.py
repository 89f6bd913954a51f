"""The `breaker_events` table, as SQLAlchemy Core, and how a transition becomes a row."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Column,
    DateTime,
    Float,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    Uuid,
)
from sqlalchemy.dialects.postgresql import JSONB

from resilience.breaker.events import BreakerTransition

metadata = MetaData()

breaker_events = Table(
    "breaker_events",
    metadata,
    Column("id", Uuid(), primary_key=True),
    Column("occurred_at", DateTime(timezone=True), nullable=False),
    Column("tenant_id", Text, nullable=False),
    Column("provider", Text, nullable=False),
    Column("from_state", Text, nullable=False),
    Column("to_state", Text, nullable=False),
    Column("reason", Text, nullable=False),
    Column("error_kind", Text, nullable=True),
    Column("failures", Integer, nullable=False),
    Column("cooldown_s", Float(precision=53), nullable=True),
    Column("actor", Text, nullable=True),
    Column("request_id", String(128), nullable=True),
    Column("detail", JSON().with_variant(JSONB(), "postgresql"), nullable=False),
    Index("ix_breaker_events_tenant_provider_time", "tenant_id", "provider", "occurred_at"),
    Index("ix_breaker_events_time", "occurred_at"),
)


def to_row(event: BreakerTransition) -> dict[str, Any]:
    """A transition as the JSON-able dict that is both an insert row and a spool line."""
    return {
        "id": str(event.id),
        "occurred_at": event.occurred_at.isoformat(),
        "tenant_id": event.tenant_id,
        "provider": event.provider,
        "from_state": str(event.from_state),
        "to_state": str(event.to_state),
        "reason": str(event.reason),
        "error_kind": str(event.error_kind) if event.error_kind else None,
        "failures": event.failures,
        "cooldown_s": _finite(event.cooldown_s),
        "actor": event.actor,
        "request_id": event.request_id,
        "detail": dict(event.detail),
    }


def event_params(event: BreakerTransition) -> dict[str, Any]:
    """`to_params(to_row(event))` without the round trip through strings (the hot path)."""
    occurred = event.occurred_at
    if occurred.tzinfo is None:
        occurred = occurred.replace(tzinfo=UTC)
    return {
        "id": event.id,
        "occurred_at": occurred,
        "tenant_id": event.tenant_id,
        "provider": event.provider,
        "from_state": str(event.from_state),
        "to_state": str(event.to_state),
        "reason": str(event.reason),
        "error_kind": str(event.error_kind) if event.error_kind else None,
        "failures": event.failures,
        "cooldown_s": _finite(event.cooldown_s),
        "actor": event.actor,
        "request_id": event.request_id,
        "detail": dict(event.detail),
    }


def to_params(row: dict[str, Any]) -> dict[str, Any]:
    """A row dict with the Python types the table's columns bind."""
    occurred = datetime.fromisoformat(row["occurred_at"])
    if occurred.tzinfo is None:
        occurred = occurred.replace(tzinfo=UTC)
    return {**row, "id": uuid.UUID(row["id"]), "occurred_at": occurred}


def _finite(value: float | None) -> float | None:
    if value is None or value != value or value in (float("inf"), float("-inf")):
        return None
    return value
