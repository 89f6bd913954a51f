"""Where the audit trail lives: `DATABASE_URL`, else an embedded SQLite file; and migrations."""

from __future__ import annotations

import asyncio
import os

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows: processes must not migrate at once there
    fcntl = None  # type: ignore[assignment]
from collections.abc import Mapping
from pathlib import Path

from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from resilience.config import async_database_url

ROOT = Path(__file__).resolve().parents[2]
ALEMBIC_INI = ROOT / "alembic.ini"


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


def create_engine(url: str | None = None) -> AsyncEngine:
    resolved = database_url(url)
    if resolved.startswith("sqlite"):
        return create_async_engine(resolved, connect_args={"timeout": 30})
    return create_async_engine(resolved, pool_size=5, max_overflow=5, pool_pre_ping=True)


async def migrate(url: str | None = None, revision: str = "head") -> None:
    """`alembic upgrade` to `revision` (run in a thread: env.py runs its own event loop)."""
    await asyncio.to_thread(_alembic, "upgrade", database_url(url), revision)


async def downgrade(url: str | None = None, revision: str = "base") -> None:
    await asyncio.to_thread(_alembic, "downgrade", database_url(url), revision)


def migration_lock_path(url: str) -> Path | None:
    """The lock file beside a SQLite database; None for PostgreSQL, which migrations lock
    with an advisory lock inside the database (`migrations/env.py`)."""
    parsed = make_url(url)
    if not parsed.drivername.startswith("sqlite") or not parsed.database:
        return None
    return Path(f"{parsed.database}.migrate.lock")


def _alembic(action: str, url: str, revision: str) -> None:
    """Run one alembic command; processes starting together (`uvicorn --workers 4`) take
    turns, and the later ones find the schema already at `revision`."""
    from alembic import command
    from alembic.config import Config

    config = Config(str(ALEMBIC_INI))
    config.set_main_option("script_location", str(ROOT / "migrations"))
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    lock = migration_lock_path(url)
    if lock is None or fcntl is None:
        getattr(command, action)(config, revision)
        return
    lock.parent.mkdir(parents=True, exist_ok=True)
    with lock.open("a") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        try:
            getattr(command, action)(config, revision)
        finally:
            fcntl.flock(held, fcntl.LOCK_UN)
