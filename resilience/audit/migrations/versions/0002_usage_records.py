"""usage_records (one row per finished call, with its token counts) and usage_prices

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-30
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "usage_records",
        sa.Column("id", sa.Uuid(), primary_key=True),
        sa.Column("occurred_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("tenant_id", sa.Text(), nullable=False),
        sa.Column("route", sa.Text(), nullable=False),
        sa.Column("provider", sa.Text(), nullable=True),
        sa.Column("model", sa.Text(), nullable=True),
        sa.Column("input_tokens", sa.BigInteger(), nullable=True),
        sa.Column("output_tokens", sa.BigInteger(), nullable=True),
        sa.Column("cached_tokens", sa.BigInteger(), nullable=True),
        sa.Column("latency_ms", sa.Float(precision=53), nullable=False),
        sa.Column("outcome", sa.Text(), nullable=False),
        sa.Column("request_id", sa.String(128), nullable=True),
        sa.Column("streamed", sa.Boolean(), nullable=False),
    )
    # The README recipes: a time range (retention, totals) and a tenant over time.
    op.create_index("ix_usage_records_time", "usage_records", ["occurred_at"])
    op.create_index("ix_usage_records_tenant_time", "usage_records", ["tenant_id", "occurred_at"])
    # Filled by the operator (US dollars per million tokens), for the cost recipe.
    op.create_table(
        "usage_prices",
        sa.Column("provider", sa.Text(), nullable=False),
        sa.Column("model", sa.Text(), nullable=False),
        sa.Column("input_usd_per_mtok", sa.Numeric(18, 6), nullable=False),
        sa.Column("output_usd_per_mtok", sa.Numeric(18, 6), nullable=False),
        sa.Column("cached_input_usd_per_mtok", sa.Numeric(18, 6), nullable=True),
        sa.PrimaryKeyConstraint("provider", "model"),
    )


def downgrade() -> None:
    op.drop_table("usage_prices")
    op.drop_index("ix_usage_records_tenant_time", table_name="usage_records")
    op.drop_index("ix_usage_records_time", table_name="usage_records")
    op.drop_table("usage_records")
