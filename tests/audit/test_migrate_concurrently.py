"""Several processes starting at once on a fresh database (`uvicorn --workers 4`): each
runs the migrations on start, and all of them must come up."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import pytest
from sqlalchemy import text

from resilience.audit.database import create_engine

WORKERS = 4
MIGRATE = """
import asyncio, sys
from resilience.audit.database import migrate
import alembic.command, sqlalchemy.ext.asyncio  # loaded before the start line, like a worker
print("ready", flush=True)
sys.stdin.readline()
asyncio.run(migrate(sys.argv[1]))
"""


async def migrate_at_once(url: str) -> list[tuple[int, str]]:
    """Start the processes, wait until every one has its imports done, then let all go."""
    procs = [
        await asyncio.create_subprocess_exec(
            sys.executable,
            "-c",
            MIGRATE,
            url,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        for _ in range(WORKERS)
    ]
    for proc in procs:
        assert proc.stdout is not None
        assert (await asyncio.wait_for(proc.stdout.readline(), 60)).strip() == b"ready"
    for proc in procs:
        assert proc.stdin is not None
        proc.stdin.write(b"go\n")
    results = []
    for proc in procs:
        out, _ = await asyncio.wait_for(proc.communicate(), 120)
        assert proc.returncode is not None
        results.append((proc.returncode, out.decode(errors="replace")[-2000:]))
    return results


@pytest.mark.parametrize("db_url", ["postgresql", "sqlite"], indirect=True)
async def test_four_processes_migrating_one_fresh_database_all_succeed(db_url: str) -> None:
    results = await migrate_at_once(db_url)
    assert [code for code, _ in results] == [0] * WORKERS, [out for _, out in results]
    engine = create_engine(db_url)
    async with engine.connect() as connection:
        versions = (await connection.execute(text("SELECT version_num FROM alembic_version"))).all()
    await engine.dispose()
    assert len(versions) == 1


def test_the_lock_file_sits_beside_the_sqlite_database(tmp_path: Path) -> None:
    from resilience.audit.database import migration_lock_path

    db = tmp_path / "audit.db"
    assert migration_lock_path(f"sqlite+aiosqlite:///{db}") == tmp_path / "audit.db.migrate.lock"
    assert migration_lock_path("postgresql+asyncpg://u@h/db") is None
