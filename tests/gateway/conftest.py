"""The gateway in-process, its providers on a chaos upstream served on loopback, audit on SQLite."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from resilience.audit.database import async_database_url
from tests.support.gateway import Running, start
from tests.support.servers import pg_database


@pytest.fixture
async def running(tmp_path: Path) -> AsyncIterator[Running]:
    async with start(tmp_path) as gateway:
        yield gateway


@pytest.fixture(params=["sqlite", "postgresql"])
async def running_on_each_database(
    request: pytest.FixtureRequest, tmp_path: Path
) -> AsyncIterator[Running]:
    if request.param == "sqlite":
        async with start(tmp_path) as gateway:
            yield gateway
        return
    async with pg_database() as url, start(tmp_path, async_database_url(url)) as gateway:
        yield gateway
