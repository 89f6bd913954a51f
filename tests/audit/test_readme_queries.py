"""Each SQL query of the README's audit section runs on PostgreSQL and returns the expected rows."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import text

from resilience.audit.database import create_engine, migrate
from resilience.audit.readme import README, readme_queries
from resilience.audit.sink import DatabaseSink
from resilience.breaker.events import BreakerState, BreakerTransition, TransitionReason
from resilience.errors import ErrorKind
from tests.usage.test_readme_usage_queries import USAGE_QUERIES


def ev(
    tenant: str, provider: str, source: str, target: str, reason: str, at: datetime, **extra: object
) -> BreakerTransition:
    return BreakerTransition(
        tenant_id=tenant,
        provider=provider,
        from_state=BreakerState(source),
        to_state=BreakerState(target),
        reason=TransitionReason(reason),
        occurred_at=at,
        failures=5,
        **extra,  # type: ignore[arg-type]
    )


def minute_length(now: datetime) -> float:
    """Seconds per scripted "minute": 60, less when the week began under 50 minutes ago,
    so the whole history lies in the past and inside this week."""
    midnight = now.replace(hour=0, minute=0, second=0, microsecond=0)
    week_start = midnight - timedelta(days=now.weekday())
    return min(60.0, (now - week_start).total_seconds() / 50)


def history(now: datetime, unit: float) -> list[BreakerTransition]:
    """This week: acme loses openai twice (10 and 2 minutes), globex's key dies (still open),
    openai goes down provider-wide for 5 minutes, admins isolate initech and acme."""
    start = now - timedelta(seconds=45 * unit)

    def t(minutes: float) -> datetime:
        return start + timedelta(seconds=minutes * unit)

    auth = {"error_kind": ErrorKind.AUTH}
    return [
        ev("acme", "openai", "closed", "open", "threshold", t(0), error_kind=ErrorKind.OVERLOADED),
        ev("acme", "openai", "open", "half_open", "cooldown_elapsed", t(5)),
        ev("acme", "openai", "half_open", "closed", "probe_succeeded", t(10)),
        ev("acme", "openai", "closed", "open", "threshold", t(20), error_kind=ErrorKind.TIMEOUT),
        ev("acme", "openai", "open", "half_open", "cooldown_elapsed", t(21)),
        ev("acme", "openai", "half_open", "closed", "probe_succeeded", t(22)),
        ev("*", "openai", "closed", "open", "provider_wide", t(1)),
        ev("*", "openai", "open", "half_open", "cooldown_elapsed", t(5)),
        ev("*", "openai", "half_open", "closed", "probe_succeeded", t(6)),
        ev("globex", "anthropic", "closed", "open", "threshold", t(2), **auth),
        ev("globex", "anthropic", "open", "half_open", "cooldown_elapsed", t(3)),
        ev("globex", "anthropic", "half_open", "open", "probe_failed", t(3.1), **auth),
        ev(
            "initech",
            "openai",
            "closed",
            "forced_open",
            "admin_open",
            t(30),
            actor="ops",
            detail={"note": "abuse"},
        ),
        ev(
            "initech",
            "openai",
            "forced_open",
            "closed",
            "admin_reset",
            t(40),
            actor="ops",
            detail={"note": "cleared"},
        ),
        ev("acme", "anthropic", "closed", "forced_open", "admin_open", t(41), actor="acme-support"),
    ]


def test_every_query_block_is_named_and_each_dialect_gets_them_all() -> None:
    blocks = re.findall(r"```sql\n(.*?)```", README.read_text(), flags=re.S)
    assert all(re.match(r"-- name: \w+( \(sqlite\))?\n", b) for b in blocks)
    postgres, sqlite = readme_queries("postgresql"), readme_queries("sqlite")
    assert len(postgres) >= 5 and set(postgres) == set(sqlite)
    assert postgres["longest_outages_this_week"] != sqlite["longest_outages_this_week"]


async def test_every_readme_query_returns_the_expected_rows(db_url: str, tmp_path: Path) -> None:
    await migrate(db_url)
    engine = create_engine(db_url)
    sink = DatabaseSink(engine, spool_path=tmp_path / "spool.jsonl", batch_age_s=0.01)
    await sink.start()
    now = datetime.now(UTC)
    unit = minute_length(now)
    for event in history(now, unit):
        sink.emit(event)
    await sink.aclose()
    found = readme_queries(engine.dialect.name)
    for name in USAGE_QUERIES:  # tests/usage/test_readme_usage_queries.py runs these
        del found[name]
    results = {}
    async with engine.connect() as conn:
        for name, sql in found.items():
            results[name] = [tuple(row) for row in (await conn.execute(text(sql))).all()]
    await engine.dispose()

    longest = results.pop("longest_outages_this_week")
    assert [(r[0], r[1], r[3]) for r in longest[:2]] == [
        ("acme", "anthropic", 1),
        ("initech", "openai", 1),
    ] or (longest[0][0] in ("acme", "globex"))
    by_pair = {(r[0], r[1]): (float(r[2]), r[3]) for r in longest}
    # 12 and 10 scripted minutes: `unit` seconds each (less than 60 early in a week)
    acme_seconds, acme_outages = by_pair[("acme", "openai")]
    assert acme_seconds == pytest.approx(12 * unit, abs=0.1) and acme_outages == 2
    initech_seconds, initech_outages = by_pair[("initech", "openai")]
    assert initech_seconds == pytest.approx(10 * unit, abs=0.1) and initech_outages == 1
    assert by_pair[("globex", "anthropic")][0] > 0  # still open: counted up to now()
    assert ("*", "openai") not in by_pair

    mttr = {r[0]: (r[1], float(r[2])) for r in results.pop("mean_time_to_recovery")}
    assert list(mttr) == ["openai"] and mttr["openai"][0] == 4
    assert mttr["openai"][1] == pytest.approx((10 + 2 + 5 + 10) * unit / 4, abs=0.1)

    admin = [(r[0], r[1], r[2], r[5]) for r in results.pop("admin_actions")]
    assert admin == [
        ("acme-support", "admin_open", "acme", None),
        ("ops", "admin_open", "initech", "abuse"),
        ("ops", "admin_reset", "initech", "cleared"),
    ]

    [wide] = results.pop("provider_wide_outages")
    assert wide[0] == "openai" and wide[3] == pytest.approx(5 * unit, abs=0.1)

    assert [(r[0], r[1], r[2]) for r in results.pop("failing_tenant_keys")] == [
        ("globex", "anthropic", 1)
    ]

    open_now = [(r[0], r[1], r[3]) for r in results.pop("open_now")]
    assert open_now == [("globex", "anthropic", "threshold"), ("acme", "anthropic", "admin_open")]
    assert results == {}, f"untested queries: {sorted(results)}"
