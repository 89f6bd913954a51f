"""Audit databases for tests: a fresh PostgreSQL database per test, or a SQLite file.

PostgreSQL is the one at 127.0.0.1:5432 (trust auth, user postgres). When it is
unreachable the PostgreSQL tests skip, except under CI=true, where they fail.
"""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from resilience.audit.database import create_engine, migrate
from resilience.errors import ErrorKind
from resilience.events import BreakerState, BreakerTransition, TransitionReason
from tests.servers import PostgresServer, postgres_server

PG = "postgresql://postgres@127.0.0.1:5432"
T0 = datetime(2026, 11, 16, 9, 0, tzinfo=UTC)  # a Monday


async def _admin() -> asyncpg.Connection:
    try:
        return await asyncpg.connect(f"{PG}/test", timeout=5)
    except (OSError, asyncpg.PostgresError) as exc:
        message = f"PostgreSQL at 127.0.0.1:5432 is unreachable: {exc}"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)


@contextlib.asynccontextmanager
async def pg_database() -> AsyncIterator[str]:
    """A fresh database on the local server, dropped afterwards."""
    admin = await _admin()
    name = f"test_audit_{uuid.uuid4().hex[:12]}"
    await admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"{PG}/{name}"
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


@pytest.fixture
async def pg_url() -> AsyncIterator[str]:
    async with pg_database() as url:
        yield url


@pytest.fixture(params=["postgresql", "sqlite"])
async def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'audit.db'}"
        return
    async with pg_database() as url:
        yield url


@pytest.fixture
async def engine(db_url: str) -> AsyncIterator[AsyncEngine]:
    await migrate(db_url)
    engine = create_engine(db_url)
    yield engine
    await engine.dispose()


def event(
    tenant: str,
    provider: str,
    source: str,
    target: str,
    reason: str,
    minutes: float,
    *,
    kind: ErrorKind | None = None,
    actor: str | None = None,
    failures: int = 0,
    cooldown_s: float | None = None,
) -> BreakerTransition:
    return BreakerTransition(
        tenant_id=tenant,
        provider=provider,
        from_state=BreakerState(source),
        to_state=BreakerState(target),
        reason=TransitionReason(reason),
        occurred_at=T0 + timedelta(minutes=minutes),
        failures=failures,
        error_kind=kind,
        cooldown_s=cooldown_s,
        actor=actor,
    )


@pytest.fixture
def server() -> Iterator[PostgresServer]:
    """A PostgreSQL cluster of the test's own, to stop and start for outages."""
    with postgres_server() as pg:
        yield pg
