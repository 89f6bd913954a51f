"""breaker_events and the breaker_open_periods view

Revision ID: 0001
Revises:
Create Date: 2026-11-23
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

# One row per open period: it starts at a transition out of `closed` and ends at
# the next transition back to `closed`; half-open probes and re-openings in
# between belong to it. A period still open has closed_at and duration_s NULL.
_PERIODS = """
CREATE VIEW breaker_open_periods AS
WITH numbered AS (
    SELECT tenant_id, provider, occurred_at, from_state, to_state, reason, error_kind,
           SUM(CASE WHEN from_state = 'closed' THEN 1 ELSE 0 END) OVER (
               PARTITION BY tenant_id, provider ORDER BY occurred_at, id
               ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW
           ) AS period
    FROM breaker_events
),
periods AS (
    SELECT tenant_id, provider,
           MIN(CASE WHEN from_state = 'closed' THEN occurred_at END) AS opened_at,
           MIN(CASE WHEN to_state = 'closed' THEN occurred_at END) AS closed_at,
           MIN(CASE WHEN from_state = 'closed' THEN reason END) AS reason,
           MIN(CASE WHEN from_state = 'closed' THEN error_kind END) AS error_kind
    FROM numbered
    WHERE period > 0
    GROUP BY tenant_id, provider, period
)
SELECT tenant_id, provider, opened_at, closed_at, {duration} AS duration_s, reason, error_kind
FROM periods
"""
_DURATION = {
    "postgresql": "EXTRACT(EPOCH FROM (closed_at - opened_at))::double precision",
    "sqlite": "(julianday(closed_at) - julianday(opened_at)) * 86400.0",
}


def upgrade() -> None:
    dialect = op.get_bind().dialect.name
    op.create_table(
        "breaker_events",
        sa.Column("id", sa.Uuid(), primary_key=True),
        sa.Column("occurred_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("tenant_id", sa.Text(), nullable=False),
        sa.Column("provider", sa.Text(), nullable=False),
        sa.Column("from_state", sa.Text(), nullable=False),
        sa.Column("to_state", sa.Text(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("error_kind", sa.Text(), nullable=True),
        sa.Column("failures", sa.Integer(), nullable=False),
        sa.Column("cooldown_s", sa.Float(precision=53), nullable=True),
        sa.Column("actor", sa.Text(), nullable=True),
        sa.Column("request_id", sa.String(128), nullable=True),
        sa.Column("detail", sa.JSON().with_variant(JSONB(), "postgresql"), nullable=False),
    )
    op.create_index(
        "ix_breaker_events_tenant_provider_time",
        "breaker_events",
        ["tenant_id", "provider", "occurred_at"],
    )
    op.create_index("ix_breaker_events_time", "breaker_events", ["occurred_at"])
    op.execute(_PERIODS.format(duration=_DURATION.get(dialect, _DURATION["postgresql"])))


def downgrade() -> None:
    op.execute("DROP VIEW IF EXISTS breaker_open_periods")
    op.drop_index("ix_breaker_events_time", table_name="breaker_events")
    op.drop_index("ix_breaker_events_tenant_provider_time", table_name="breaker_events")
    op.drop_table("breaker_events")
