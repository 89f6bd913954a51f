"""Servers a test starts and stops itself, on free loopback ports: PostgreSQL and Redis."""

from __future__ import annotations

import asyncio
import contextlib
import glob
import os
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import asyncpg
import pytest


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


@contextmanager
def postgres_server() -> Iterator[PostgresServer]:
    """A started cluster of the caller's own, removed afterwards."""
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


class RedisServer:
    """A `redis-server` of the test's own (no persistence), stopped and started at will."""

    def __init__(self) -> None:
        found = shutil.which("redis-server")
        if found is None:
            message = "no redis-server binary on this machine"
            if os.environ.get("CI") == "true":
                pytest.fail(message)
            pytest.skip(message)
        self.binary = found
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port: int = probe.getsockname()[1]
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        args = [self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", ""]
        self._proc = subprocess.Popen(
            [*args, "--appendonly", "no"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2) as conn:
                    conn.sendall(b"PING\r\n")
                    if conn.recv(16).startswith(b"+PONG"):
                        return
            except OSError:
                time.sleep(0.02)
        raise RuntimeError(f"redis-server on port {self.port} did not answer within 10 s")

    def stop(self) -> None:
        """Kill it (as a crash would): clients see their connections reset."""
        if self._proc is not None:
            self._proc.kill()
            self._proc.wait(timeout=10)
            self._proc = None


@contextmanager
def redis_server() -> Iterator[RedisServer]:
    """A started Redis of the caller's own, killed afterwards."""
    server = RedisServer()
    server.start()
    try:
        yield server
    finally:
        server.stop()


async def until(
    condition: Callable[[], bool | Awaitable[bool]],
    timeout_s: float = 5.0,
    *,
    every_s: float = 0.002,
) -> None:
    """Wait for something another store or process learns through Redis, polling
    `condition` (plain or async) every `every_s`."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while True:
        held = condition()
        if held if isinstance(held, bool) else await held:
            return
        if loop.time() > deadline:
            raise AssertionError(f"not true within {timeout_s} s")
        await asyncio.sleep(every_s)


PG = "postgresql://postgres@127.0.0.1:5432"


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
