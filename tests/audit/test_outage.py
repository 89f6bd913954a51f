"""A PostgreSQL server of the test's own is stopped mid-run and started again: nothing is lost."""

from __future__ import annotations

import asyncio
import glob
import os
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import func, select, text

from resilience.audit.database import create_engine, migrate
from resilience.audit.schema import breaker_events
from resilience.audit.sink import DatabaseSink
from resilience.audit.spool import Spool
from tests.audit.conftest import event

TOTAL = 50_000


class PostgresServer:
    """initdb + pg_ctl on a free loopback port, as the `postgres` OS user when run as root."""

    def __init__(self, root: Path) -> None:
        found = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"))
        if not found:
            message = "no PostgreSQL server binaries (pg_ctl) on this machine"
            if os.environ.get("CI") == "true":
                pytest.fail(message)
            pytest.skip(message)
        self.bin = Path(found[-1]).parent
        self.root = root
        self.data = root / "data"
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        self.as_user = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        if self.as_user:
            shutil.chown(root, "postgres", "postgres")
        self._run("initdb", "-D", str(self.data), "-A", "trust", "-U", "postgres", "--no-sync")

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def start(self) -> None:
        options = f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 -c fsync=off"
        self._run(
            "pg_ctl",
            "-D",
            str(self.data),
            "-o",
            options,
            "-l",
            str(self.root / "log"),
            "-w",
            "start",
        )

    def stop(self) -> None:
        self._run("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "stop")

    def _run(self, tool: str, *args: str) -> None:
        subprocess.run(
            [*self.as_user, str(self.bin / tool), *args],
            check=True,
            capture_output=True,
            timeout=60,
        )


@pytest.fixture
def server() -> Iterator[PostgresServer]:
    # not under pytest's tmp dir: that one is private to root, and the server runs as postgres
    root = Path(tempfile.mkdtemp(prefix="resilience-pg-"))
    os.chmod(root, 0o755)
    try:
        pg = PostgresServer(root)
        pg.start()
        try:
            yield pg
        finally:
            subprocess.run(
                [
                    *pg.as_user,
                    str(pg.bin / "pg_ctl"),
                    "-D",
                    str(pg.data),
                    "-m",
                    "immediate",
                    "stop",
                ],
                capture_output=True,
                check=False,
            )
    finally:
        shutil.rmtree(root, ignore_errors=True)


@pytest.mark.postgres
async def test_50000_events_across_a_database_outage_arrive_exactly_once(
    server: PostgresServer, tmp_path: Path
) -> None:
    await migrate(server.url)
    engine = create_engine(server.url)
    spool = tmp_path / "spool.jsonl"
    sink = DatabaseSink(
        engine, spool_path=spool, batch_age_s=0.05, retry_base_s=0.05, retry_max_s=0.3
    )
    await sink.start()
    template = [
        event(f"t{i % 100}", "openai", "closed", "open", "threshold", i / 1000)
        for i in range(TOTAL)
    ]
    for start in range(0, TOTAL, 500):
        if start == 15_000:
            await asyncio.to_thread(server.stop)
        if start == 35_000:
            await asyncio.to_thread(server.start)
        for e in template[start : start + 500]:
            sink.emit(e)
        await asyncio.sleep(0.005)
    await sink.aclose(timeout_s=60)
    assert sink.stats.failed_batches > 0 and sink.stats.spooled > 0  # the outage was real
    async with engine.connect() as conn:
        count = (await conn.execute(select(func.count()).select_from(breaker_events))).scalar()
        distinct = (
            await conn.execute(text("SELECT count(DISTINCT id) FROM breaker_events"))
        ).scalar()
    await engine.dispose()
    assert count == TOTAL and distinct == TOTAL
    assert not Spool(spool).pending()
