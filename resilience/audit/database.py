"""Where the audit trail lives: `DATABASE_URL`, else an embedded SQLite file; and migrations."""

from __future__ import annotations

import asyncio
import importlib.util
import os

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows: processes must not migrate at once there
    fcntl = None  # type: ignore[assignment]
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from importlib.resources import as_file, files
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from resilience.extras import missing

if TYPE_CHECKING:
    from alembic.config import Config

ALEMBIC_INI = "alembic.ini"
"""Installed with the package beside `migrations/` (package data, found through
importlib.resources), so `resilience migrate` works from a wheel as from a checkout."""


def async_database_url(url: str | None) -> str | None:
    """`postgresql://` / `postgres://` (as users have it) -> asyncpg; `sqlite://` ->
    aiosqlite; an explicit driver (`postgresql+asyncpg://`, ...) is kept as written."""
    if not url:
        return None
    scheme, sep, rest = url.partition("://")
    if not sep:
        return url
    mapped = {"postgresql": "postgresql+asyncpg", "postgres": "postgresql+asyncpg"}
    mapped["sqlite"] = "sqlite+aiosqlite"
    driver = mapped.get(scheme.lower())
    return f"{driver}://{rest}" if driver else url


def default_sqlite_path(environ: Mapping[str, str] = os.environ) -> Path:
    """`$XDG_DATA_HOME/resilience/audit.db`, else `~/.local/share/resilience/audit.db`."""
    base = environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "resilience" / "audit.db"


def database_url(url: str | None = None, *, environ: Mapping[str, str] = os.environ) -> str:
    """The async SQLAlchemy URL: the argument, else `DATABASE_URL`, else the SQLite default."""
    mapped = async_database_url(url or environ.get("DATABASE_URL"))
    if mapped:
        return mapped
    path = default_sqlite_path(environ)
    path.parent.mkdir(parents=True, exist_ok=True)
    return f"sqlite+aiosqlite:///{path}"


DRIVER_EXTRAS = {"asyncpg": "postgres"}
"""Database drivers that come with an extra (aiosqlite, for the default file, is always there)."""


def require_driver(url: str) -> None:
    """Fail before connecting, naming the extra, when the URL's driver is not installed."""
    driver = make_url(url).get_driver_name()
    extra = DRIVER_EXTRAS.get(driver)
    if extra is not None and importlib.util.find_spec(driver) is None:
        raise missing(driver, extra, f"the audit database {make_url(url).drivername}://")


def create_engine(url: str | None = None) -> AsyncEngine:
    resolved = database_url(url)
    require_driver(resolved)
    if resolved.startswith("sqlite"):
        return create_async_engine(resolved, connect_args={"timeout": 30})
    return create_async_engine(resolved, pool_size=5, max_overflow=5, pool_pre_ping=True)


async def migrate(url: str | None = None, revision: str = "head") -> None:
    """`alembic upgrade` to `revision` (run in a thread: env.py runs its own event loop)."""
    resolved = database_url(url)
    require_driver(resolved)
    await asyncio.to_thread(_alembic, "upgrade", resolved, revision)


async def downgrade(url: str | None = None, revision: str = "base") -> None:
    await asyncio.to_thread(_alembic, "downgrade", database_url(url), revision)


def migration_lock_path(url: str) -> Path | None:
    """The lock file beside a SQLite database; None for PostgreSQL, which migrations lock
    with an advisory lock inside the database (`resilience/audit/migrations/env.py`)."""
    parsed = make_url(url)
    if not parsed.drivername.startswith("sqlite") or not parsed.database:
        return None
    return Path(f"{parsed.database}.migrate.lock")


def _alembic(action: str, url: str, revision: str) -> None:
    """Run one alembic command; processes starting together (`uvicorn --workers 4`) take
    turns, and the later ones find the schema already at `revision`."""
    from alembic import command

    with _alembic_config(url) as config, _migration_lock(url):
        getattr(command, action)(config, revision)


@contextmanager
def _alembic_config(url: str) -> Iterator[Config]:
    """The installed `alembic.ini`, its `migrations/` beside it, as files on disk."""
    from alembic.config import Config

    with as_file(files("resilience.audit")) as here:
        config = Config(str(here / ALEMBIC_INI))
        config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
        yield config


@contextmanager
def _migration_lock(url: str) -> Iterator[None]:
    """An exclusive file lock beside a SQLite database; PostgreSQL locks inside the database."""
    lock = migration_lock_path(url)
    if lock is None or fcntl is None:
        yield
        return
    lock.parent.mkdir(parents=True, exist_ok=True)
    with lock.open("a") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(held, fcntl.LOCK_UN)
