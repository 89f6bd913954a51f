"""Fixtures every test folder may use: the machine's Redis and PostgreSQL, for real.

When one is unreachable its tests skip, except under CI=true, where they fail.

`scripts/test` runs the suite on pytest-xdist workers (`-n logical`): tests.support.scheduling
says which tests share one worker.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import redis
from sqlalchemy.ext.asyncio import AsyncEngine

from resilience.audit.database import create_engine, migrate
from tests.support.scheduling import GroupScheduling
from tests.support.servers import PostgresServer, pg_database, postgres_server

pytest_plugins = ["tests.support.browser"]  # the `chromium` fixture

REDIS_URL = os.environ.get("RESILIENCE_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


def pytest_xdist_make_scheduler(config: pytest.Config, log: object) -> GroupScheduling | None:
    """`-n` (xdist's `load`): the groups of tests.support.scheduling each on one worker."""
    return GroupScheduling(config, log) if config.getvalue("dist") == "load" else None


@pytest.fixture(scope="session")
def redis_url() -> str:
    try:
        redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2).ping()
    except redis.RedisError as exc:
        message = f"Redis at {REDIS_URL} is unreachable: {exc}"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    return REDIS_URL


@pytest.fixture
def prefix(redis_url: str) -> Iterator[str]:
    """A namespace of this test's own; its keys are deleted afterwards."""
    name = f"test-{uuid.uuid4().hex[:10]}"
    yield name
    client = redis.Redis.from_url(redis_url)
    keys = list(client.scan_iter(f"{name}:*", count=1000))
    if keys:
        client.delete(*keys)
    client.close()


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


@pytest.fixture
def server() -> Iterator[PostgresServer]:
    """A PostgreSQL cluster of the test's own, to stop and start for outages."""
    with postgres_server() as pg:
        yield pg
