"""The package as a new user gets it: a wheel installed (not editable) into a fresh venv.

The wheel is built from a copy of the source tree and installed with its `gateway` and
`postgres` extras (at the tested pins of constraints.txt) into a virtual environment in a
temporary folder outside the checkout. Everything then runs from that environment, with its
working directory outside the checkout: `resilience migrate` on a fresh PostgreSQL database
and on a fresh SQLite file, then `resilience serve --config ...` (the README's command for
installed users) against `resilience chaos`, answering `/readyz` and one chat completion
through the `openai` SDK. The wheel alone (no extras) is the library, and each command that
needs an extra names it.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import socket
import sqlite3
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import asyncpg
import httpx
import openai
import pytest

from resilience.tenancy.resolvers import hash_key
from tests.support.servers import PG, _admin

ROOT = Path(__file__).resolve().parents[2]
HEAD = "0002"
"""The newest migration's revision: what `resilience migrate` must leave behind."""
SKIP_IN_COPY = shutil.ignore_patterns(
    ".git", ".venv", "build", "dist", "*.egg-info", "__pycache__", ".*_cache", ".hypothesis"
)
START_S = 60.0
"""How long a server started here may take to answer before the test gives up on it."""


@dataclass(frozen=True)
class Installed:
    """A venv holding the wheel, and a working folder outside the checkout."""

    venv: Path
    work: Path

    def bin(self, name: str) -> str:
        return str(self.venv / "bin" / name)

    def env(self, **extra: str) -> dict[str, str]:
        """The environment with nothing pointing back at the checkout."""
        env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
        env["XDG_DATA_HOME"] = str(self.work / "data")
        env.pop("DATABASE_URL", None)
        env.update(extra)
        return env

    def run(self, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(
            args, cwd=self.work, env=self.env(**env), capture_output=True, text=True, timeout=300
        )
        assert done.returncode == 0, f"{args} failed:\n{done.stdout}\n{done.stderr}"
        return done


def _pip(python: Path, *args: str, cwd: Path) -> None:
    done = subprocess.run(
        [str(python), "-m", "pip", "--disable-pip-version-check", "-q", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, f"pip {args} failed:\n{done.stdout}\n{done.stderr}"


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The wheel, built from a copy of the source tree (nothing is written to the checkout)."""
    base = tmp_path_factory.mktemp("wheel")
    assert not base.resolve().is_relative_to(ROOT)
    source = base / "source"
    shutil.copytree(ROOT, source, ignore=SKIP_IN_COPY, symlinks=True)
    dist = base / "dist"
    _pip(Path(sys.executable), "wheel", str(source), "--no-deps", "-w", str(dist), cwd=base)
    (built,) = dist.glob("*.whl")
    return built


def _install(base: Path, requirement: str) -> Installed:
    venv = base / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    pins = str(ROOT / "constraints.txt")
    _pip(venv / "bin" / "python", "install", "-c", pins, requirement, cwd=base)
    work = base / "work"
    work.mkdir()
    return Installed(venv=venv, work=work)


@pytest.fixture(scope="module")
def installed(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Installed:
    """The wheel with the extras the README's gateway needs."""
    return _install(tmp_path_factory.mktemp("installed"), f"{wheel}[gateway,postgres]")


def test_the_wheel_installs_the_library_and_no_top_level_app(installed: Installed) -> None:
    probe = (
        "import importlib.util, resilience, resilience.gateway; "
        "print(resilience.__file__); print(importlib.util.find_spec('app'))"
    )
    where, app = installed.run(installed.bin("python"), "-c", probe).stdout.split()
    assert Path(where).is_relative_to(installed.venv / "lib"), where  # not the checkout
    assert app == "None"


def test_migrate_brings_a_fresh_sqlite_file_to_the_latest_schema(installed: Installed) -> None:
    path = installed.work / "fresh.db"
    installed.run(installed.bin("resilience"), "migrate", "--database-url", f"sqlite:///{path}")
    with sqlite3.connect(path) as db:
        (version,) = db.execute("SELECT version_num FROM alembic_version").fetchone()
        (rows,) = db.execute("SELECT count(*) FROM breaker_events").fetchone()
    assert (version, rows) == (HEAD, 0)


async def _execute(sql: str) -> None:
    admin = await _admin()
    try:
        await admin.execute(sql)
    finally:
        await admin.close()


async def _fetch_version(url: str) -> object:
    db = await asyncpg.connect(url, timeout=5)
    try:
        return await db.fetchval("SELECT version_num FROM alembic_version")
    finally:
        await db.close()


@pytest.fixture
def fresh_postgres() -> Iterator[str]:
    """A new, empty database on the local server (sync: the tests here drive processes)."""
    name = f"test_wheel_{uuid.uuid4().hex[:12]}"
    asyncio.run(_execute(f'CREATE DATABASE "{name}"'))
    try:
        yield f"{PG}/{name}"
    finally:
        asyncio.run(_execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@contextlib.contextmanager
def _process(installed: Installed, *args: str, **env: str) -> Iterator[subprocess.Popen[str]]:
    """A server from the installed venv, stopped (SIGTERM, then SIGKILL) at the end."""
    log = (installed.work / f"{Path(args[0]).name}-{args[1]}.log").open("w")
    proc = subprocess.Popen(
        args, cwd=installed.work, env=installed.env(**env), stdout=log, stderr=log, text=True
    )
    try:
        yield proc
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


def _wait_ready(url: str, proc: subprocess.Popen[str], log: Path) -> httpx.Response:
    """Poll `url` until it answers 200, the process dies, or START_S passes."""
    deadline = time.monotonic() + START_S
    last: object = None
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"{proc.args!r} exited {proc.returncode}:\n{log.read_text()}")
        try:
            response = httpx.get(url, timeout=5)
            if response.status_code == 200:
                return response
            last = response.status_code
        except httpx.TransportError as exc:
            last = exc
        time.sleep(0.1)  # waiting for another process to start, not moving a clock
    pytest.fail(f"{url} not ready after {START_S}s ({last}):\n{log.read_text()}")


@pytest.mark.postgres
def test_migrate_then_serve_on_a_fresh_postgres_database(
    installed: Installed, fresh_postgres: str
) -> None:
    resilience = installed.bin("resilience")
    installed.run(resilience, "migrate", "--database-url", fresh_postgres)
    assert asyncio.run(_fetch_version(fresh_postgres)) == HEAD

    chaos_port, gateway_port = _free_port(), _free_port()
    upstream = f"http://127.0.0.1:{chaos_port}"
    config = installed.work / "gateway.toml"
    config.write_text(
        f"""
[providers.primary]
kind = "openai"
api_key_env = "UPSTREAM_KEY"
base_url = "{upstream}/primary/v1"

[routes.chat]
targets = ["primary:gpt-4.1"]

[tenants.acme]
api_key_sha256 = ["{hash_key("acme-gateway-key")}"]
"""
    )
    gateway = f"http://127.0.0.1:{gateway_port}"
    serve = (resilience, "serve", "--config", str(config), "--port", str(gateway_port))
    with (
        _process(installed, resilience, "chaos", "--port", str(chaos_port)) as chaos,
        _process(
            installed, *serve, DATABASE_URL=fresh_postgres, UPSTREAM_KEY="upstream-key"
        ) as server,
    ):
        _wait_ready(f"{upstream}/_chaos/hits", chaos, installed.work / "resilience-chaos.log")
        ready = _wait_ready(f"{gateway}/readyz", server, installed.work / "resilience-serve.log")
        assert ready.json()["database"] is True

        client = openai.OpenAI(base_url=f"{gateway}/v1", api_key="acme-gateway-key")
        answer = client.chat.completions.create(
            model="chat", messages=[{"role": "user", "content": "hello from a wheel"}]
        )
        assert answer.choices[0].message.content == "ok: hello from a wheel (answered by chaos)"
        (hit,) = httpx.get(f"{upstream}/_chaos/hits", timeout=5).json()["hits"]
        assert (hit["upstream"], hit["api_key"]) == ("primary", "upstream-key")
        page = httpx.get(f"{gateway}/admin/", timeout=5)
        assert page.status_code == 200 and "<html" in page.text.lower()  # package data


def test_the_plain_install_is_the_library_and_names_the_extra_it_lacks(
    wheel: Path, tmp_path: Path
) -> None:
    plain = _install(tmp_path, str(wheel))
    library = "import resilience.client, resilience.chaos, resilience.audit.sink, resilience.cli"
    plain.run(plain.bin("python"), "-c", library)
    for module in ("uvicorn", "prometheus_client", "asyncpg"):
        probe = f"import importlib.util; assert importlib.util.find_spec({module!r}) is None"
        plain.run(plain.bin("python"), "-c", probe)  # left out, so the checks below mean it
    for command, extra in [
        (("serve",), "gateway"),
        (("chaos",), "gateway"),
        (("migrate", "--database-url", f"{PG}/test"), "postgres"),
    ]:
        done = subprocess.run(
            [plain.bin("resilience"), *command],
            cwd=plain.work,
            env=plain.env(),
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode != 0
        assert f"pip install 'llm-tenant-resilience[{extra}]'" in done.stderr, done.stderr
