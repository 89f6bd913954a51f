"""Gateway settings: the loaded config plus where the audit trail goes."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from resilience.audit.database import database_url, default_sqlite_path
from resilience.config import Config, load_config


@dataclass(frozen=True, slots=True, kw_only=True)
class Settings:
    config: Config
    database_url: str
    spool_path: Path
    environ: Mapping[str, str] = field(default_factory=lambda: dict(os.environ), repr=False)
    max_body_bytes: int = 1_048_576
    migrate_on_start: bool = True
    metrics_tenant_label: bool = True
    """Label request metrics by tenant; switch off when tenants are too many."""

    @classmethod
    def from_env(cls, environ: Mapping[str, str] = os.environ) -> Settings:
        """`RESILIENCE_CONFIG` for the config, `DATABASE_URL` (else embedded SQLite) for audit."""
        config = load_config(environ=environ)
        spool = environ.get("RESILIENCE_SPOOL") or str(
            default_sqlite_path(environ).with_name("audit-spool.jsonl")
        )
        return cls(
            config=config,
            database_url=database_url(environ=environ),
            spool_path=Path(spool),
            environ=dict(environ),
        )
