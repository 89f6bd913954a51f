"""Gateway settings: the loaded config plus where the audit trail goes."""

from __future__ import annotations

import math
import os
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from resilience.audit.database import database_url, default_sqlite_path
from resilience.audit.journal import FsyncPolicy, fsync_policy
from resilience.config.load import load_config
from resilience.config.schema import Config
from resilience.gateway.body_timeout import DEFAULT_BODY_READ_TIMEOUT_S
from resilience.types import Clock


@dataclass(frozen=True, slots=True, kw_only=True)
class Settings:
    config: Config
    database_url: str
    spool_path: Path
    journal_path: Path | None = None
    """The audit journal's folder (`resilience.audit.journal`): every breaker event and
    usage record is on disk there before the call returns, so `kill -9` loses none.
    None: `<spool_path>.journal`, beside the spool."""
    journal: bool = True
    """False: no journal (rows in memory are lost if the process is killed)."""
    journal_fsync: FsyncPolicy = "batch"
    """What survives a machine crash, and its cost: "never", "batch" or "always"."""
    environ: Mapping[str, str] = field(default_factory=lambda: dict(os.environ), repr=False)
    max_body_bytes: int | None = None
    """The largest request body read (413 past it); None: the config's
    `[server] max_body_bytes` (32 MiB by default)."""
    body_read_timeout_s: float = DEFAULT_BODY_READ_TIMEOUT_S
    """A request body not complete this long after the request began gets 408."""
    migrate_on_start: bool = True
    clock: Clock = field(default=time.monotonic, repr=False)
    """Monotonic seconds for the client's breakers, deadlines and health (tests move it)."""
    metrics_tenant_label: bool = True
    """Label request metrics by tenant; switch off when tenants are too many."""
    freeze_gc_on_start: bool = False
    """Once started, move every object alive to the collector's permanent generation
    (`gc.freeze()`), so a full collection no longer walks the SDKs' and the config's objects
    and stalls every request for ~100 ms. On in `from_env` (the gateway owns its process);
    off for an app built in a process that owns other things."""

    @property
    def body_limit(self) -> int:
        """`max_body_bytes` when set, else the config's."""
        if self.max_body_bytes is not None:
            return self.max_body_bytes
        return self.config.server.max_body_bytes

    @classmethod
    def from_env(cls, environ: Mapping[str, str] = os.environ) -> Settings:
        """`RESILIENCE_CONFIG` for the config, `DATABASE_URL` (else embedded SQLite) for audit;
        `RESILIENCE_SPOOL` (the spool file), `RESILIENCE_JOURNAL` (the journal's folder, or
        `off`) and `RESILIENCE_JOURNAL_FSYNC` (`never`, `batch`, `always`) for the trail."""
        config = load_config(environ=environ)
        spool = environ.get("RESILIENCE_SPOOL") or str(
            default_sqlite_path(environ).with_name("audit-spool.jsonl")
        )
        journal = environ.get("RESILIENCE_JOURNAL") or None
        fsync = environ.get("RESILIENCE_JOURNAL_FSYNC") or "batch"
        timeout = environ.get("RESILIENCE_BODY_READ_TIMEOUT_S")
        return cls(
            config=config,
            body_read_timeout_s=_positive(timeout, "RESILIENCE_BODY_READ_TIMEOUT_S")
            if timeout
            else DEFAULT_BODY_READ_TIMEOUT_S,
            database_url=database_url(environ=environ),
            spool_path=Path(spool),
            journal_path=Path(journal) if journal and journal != "off" else None,
            journal=journal != "off",
            journal_fsync=fsync_policy(fsync),
            environ=dict(environ),
            freeze_gc_on_start=True,
        )


def _positive(raw: str, name: str) -> float:
    try:
        value = float(raw)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and value > 0):
        raise ValueError(f"{name}: expected a number of seconds > 0, got {raw!r}")
    return value
