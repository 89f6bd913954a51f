"""The README's usage recipes run on PostgreSQL and SQLite against real rows and return
what a Python reading of the same rows says; `resilience usage prune` keeps the rest."""

from __future__ import annotations

import asyncio
import uuid
from collections import defaultdict
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import AsyncEngine

from resilience.audit.readme import readme_queries
from resilience.audit.usage_retention import parse_age, prune_usage
from resilience.audit.usage_schema import usage_bind, usage_params, usage_prices, usage_records
from resilience.cli.main import main
from resilience.usage.record import UsageRecord

USAGE_QUERIES = frozenset(
    {"tokens_per_tenant_per_day", "top_tenants_this_week", "cost_by_provider_this_month"}
)
"""The README's usage recipes (tests/audit/test_readme_queries.py checks the others)."""

PRICES = {
    ("openai", "gpt-4.1"): (Decimal("2.00"), Decimal("8.00"), Decimal("0.50")),
    ("anthropic", "claude-x"): (Decimal("3.00"), Decimal("15.00"), None),
}


def _row(
    at: datetime,
    tenant: str,
    provider: str | None,
    model: str | None,
    tokens: tuple[int | None, int | None, int | None],
) -> UsageRecord:
    return UsageRecord(
        id=uuid.uuid4(),
        occurred_at=at,
        tenant_id=tenant,
        route="chat",
        provider=provider,
        model=model,
        input_tokens=tokens[0],
        output_tokens=tokens[1],
        cached_tokens=tokens[2],
        latency_ms=12.5,
        outcome="succeeded" if tokens[0] is not None else "all_targets_failed",
        request_id=None,
        streamed=False,
    )


def history(now: datetime) -> list[UsageRecord]:
    """This week and month (both, whatever the date: inside the later of their starts),
    plus rows 10 and 40 days old."""
    midnight = now.replace(hour=0, minute=0, second=0, microsecond=0)
    since = max(midnight - timedelta(days=now.weekday()), midnight.replace(day=1))
    unit = min(60.0, (now - since).total_seconds() / 50)

    def t(minutes: float) -> datetime:
        return now - timedelta(seconds=minutes * unit)

    rows = [_row(t(i + 1), "acme", "openai", "gpt-4.1", (1000 + i, 200, 300)) for i in range(10)]
    rows += [
        _row(t(i + 12), "globex", "anthropic", "claude-x", (5000, 900, None)) for i in range(4)
    ]
    rows += [_row(t(20), "globex", "anthropic", "claude-x", (None, None, None))]  # unreported
    rows += [_row(t(21), "initech", "openai", "gpt-unpriced", (700, 70, 0))]
    rows += [_row(t(22), "initech", None, None, (None, None, None))]  # nothing was tried
    rows += [_row(now - timedelta(days=10), "acme", "openai", "gpt-4.1", (111, 11, 0))]
    rows += [_row(now - timedelta(days=40), "acme", "openai", "gpt-4.1", (999, 99, 9))]
    return rows


def _month_start(now: datetime) -> datetime:
    return now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)


def _week_start(now: datetime) -> datetime:
    midnight = now.replace(hour=0, minute=0, second=0, microsecond=0)
    return midnight - timedelta(days=now.weekday())


def expected_per_day(rows: list[UsageRecord], now: datetime) -> list[tuple[object, ...]]:
    sums: dict[tuple[str, date], list[int]] = defaultdict(lambda: [0, 0, 0, 0])
    for r in rows:
        if r.occurred_at >= now - timedelta(days=30):
            s = sums[(r.tenant_id, r.occurred_at.date())]
            s[0] += r.input_tokens or 0
            s[1] += r.output_tokens or 0
            s[2] += r.cached_tokens or 0
            s[3] += 1
    ordered = sorted(sums.items(), key=lambda kv: (kv[0][1], kv[0][0]))
    return [(tenant, str(day), *s) for (tenant, day), s in ordered]


def expected_top(rows: list[UsageRecord], now: datetime) -> list[tuple[str, int, int]]:
    sums: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for r in rows:
        if r.occurred_at >= _week_start(now):
            sums[r.tenant_id][0] += (r.input_tokens or 0) + (r.output_tokens or 0)
            sums[r.tenant_id][1] += 1
    return sorted(((t, s[0], s[1]) for t, s in sums.items()), key=lambda r: (-r[1], r[0]))


def expected_cost(rows: list[UsageRecord], now: datetime) -> dict[str, tuple[Decimal | None, int]]:
    usd: dict[str, Decimal | None] = {}
    unpriced: dict[str, int] = defaultdict(int)
    for r in rows:
        if r.provider is None or r.occurred_at < _month_start(now):
            continue
        usd.setdefault(r.provider, None)
        price = PRICES.get((r.provider, r.model or ""))
        i, o, c = r.input_tokens or 0, r.output_tokens or 0, r.cached_tokens or 0
        if price is None:
            unpriced[r.provider] += i + o
            continue
        pin, pout, pcached = price
        cost = (i - c) * pin + c * (pcached if pcached is not None else pin) + o * pout
        usd[r.provider] = (usd[r.provider] or Decimal(0)) + cost
    return {
        p: (None if v is None else round(v / 1_000_000, 4), unpriced[p]) for p, v in usd.items()
    }


async def _load(engine: AsyncEngine, rows: list[UsageRecord]) -> None:
    async with engine.begin() as conn:
        await conn.execute(usage_records.insert(), [usage_bind(usage_params(r)) for r in rows])
        await conn.execute(
            usage_prices.insert(),
            [
                {
                    "provider": p,
                    "model": m,
                    "input_usd_per_mtok": i,
                    "output_usd_per_mtok": o,
                    "cached_input_usd_per_mtok": c,
                }
                for (p, m), (i, o, c) in PRICES.items()
            ],
        )


def test_the_readme_has_the_usage_recipes_for_both_dialects() -> None:
    postgres, sqlite = readme_queries("postgresql"), readme_queries("sqlite")
    assert set(postgres) >= USAGE_QUERIES and set(sqlite) >= USAGE_QUERIES
    for name in USAGE_QUERIES:  # each needs SQLite's own date arithmetic
        assert postgres[name] != sqlite[name]


async def test_the_usage_recipes_return_the_expected_rows(engine: AsyncEngine) -> None:
    now = datetime.now(UTC)
    rows = history(now)
    await _load(engine, rows)
    found = readme_queries(engine.dialect.name)
    results: dict[str, list[tuple[Any, ...]]] = {}
    async with engine.connect() as conn:
        for name in USAGE_QUERIES:
            results[name] = [tuple(r) for r in (await conn.execute(text(found[name]))).all()]

    per_day = [
        (r[0], str(r[1]), *(int(v) for v in r[2:])) for r in results["tokens_per_tenant_per_day"]
    ]
    assert per_day == expected_per_day(rows, now)

    top = [(r[0], int(r[1]), int(r[2])) for r in results["top_tenants_this_week"]]
    assert top == expected_top(rows, now)

    cost = {
        r[0]: (None if r[1] is None else Decimal(str(r[1])), int(r[2]))
        for r in results["cost_by_provider_this_month"]
    }
    want = expected_cost(rows, now)
    assert set(cost) == set(want) == {"openai", "anthropic"}
    for provider, (usd, unpriced) in want.items():
        assert cost[provider][1] == unpriced
        assert usd is not None and cost[provider][0] == pytest.approx(usd, abs=Decimal("0.0001"))
    assert [r[0] for r in results["cost_by_provider_this_month"]] == sorted(
        want, key=lambda p: -(want[p][0] or 0)
    )


async def test_prune_deletes_only_what_is_older(engine: AsyncEngine) -> None:
    now = datetime.now(UTC)
    rows = history(now)
    await _load(engine, rows)
    deleted = await prune_usage(engine, before=now - timedelta(days=30), batch=1)
    assert deleted == 1  # the 40-day-old row, in batches of one
    assert await prune_usage(engine, before=now - timedelta(days=5), batch=2) == 1
    async with engine.connect() as conn:
        left = (await conn.execute(select(func.count()).select_from(usage_records))).scalar()
    assert left == len(rows) - 2


async def test_the_prune_command(
    db_url: str, engine: AsyncEngine, capsys: pytest.CaptureFixture[str]
) -> None:
    now = datetime.now(UTC)
    await _load(engine, history(now))
    command = ["usage", "prune", "--older-than", "30d", "--database-url", db_url]
    assert await asyncio.to_thread(main, command) == 0  # as from a shell: its own loop
    assert "deleted 1 usage records" in capsys.readouterr().out


def test_ages() -> None:
    assert parse_age("90d") == timedelta(days=90)
    assert parse_age("2w") == timedelta(weeks=2)
    assert parse_age("12h") == timedelta(hours=12)
    for bad in ("", "0d", "90", "d", "1.5d", "-3d", "3y"):
        with pytest.raises(ValueError):
            parse_age(bad)
    with pytest.raises(SystemExit):
        main(["usage", "prune", "--older-than", "soon"])
