"""`DatabaseSink`: breaker transitions into `breaker_events`, never blocking, never losing.

`emit()` is called on the event loop by the breaker: it only appends to a
bounded queue (or, when the queue is full, to an overflow list the writer
spools) and never awaits or raises. A background writer drains the queue in
batches (by size or age) with idempotent inserts (`ON CONFLICT (id) DO
NOTHING`). While the database is unreachable, batches go to the spool file and
the writer backs off; once an insert succeeds again it replays the spool.
`aclose()` flushes within a bounded time and spools whatever it could not
write; the next start replays it. Events emitted before `start()` or after
`aclose()` are spooled at once.

What "nothing lost" covers: database outages, a full queue, shutdown and a
crash after a spool write. What it cannot cover: events still in memory when
the process is killed outright.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Insert, text
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncEngine

from resilience.audit.schema import breaker_events, event_params, to_params, to_row
from resilience.audit.spool import Spool
from resilience.events import BreakerTransition
from resilience.types import Sleep

logger = logging.getLogger("resilience.audit")


@dataclass(slots=True)
class SinkStats:
    received: int = 0
    """Every event handed to `emit`: each ends up written, spooled, or (only if the spool
    itself failed) counted as a failure and logged."""
    queued: int = 0
    written: int = 0
    spooled: int = 0
    replayed: int = 0
    failed_batches: int = 0
    database_up: bool = True


class DatabaseSink:
    """An `AuditSink` writing to the audit database; see the module docstring.

    Args:
        engine: an async engine on PostgreSQL (asyncpg) or SQLite (aiosqlite).
        spool_path: the JSON-lines file for rows the database could not take.
        queue_size: events held in memory before overflow goes to the spool.
        batch_size, batch_age_s: a batch is written when it is this big or this old.
        retry_base_s, retry_max_s: backoff while the database is down.
    """

    def __init__(
        self,
        engine: AsyncEngine,
        *,
        spool_path: str | os.PathLike[str],
        queue_size: int = 10_000,
        batch_size: int = 500,
        batch_age_s: float = 0.2,
        retry_base_s: float = 0.5,
        retry_max_s: float = 10.0,
        sleep: Sleep = asyncio.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.engine = engine
        self.spool = Spool(spool_path)
        self.stats = SinkStats()
        self._queue: asyncio.Queue[BreakerTransition] = asyncio.Queue(queue_size)
        self._overflow: list[BreakerTransition] = []
        self._batch_size = batch_size
        self._batch_age_s = batch_age_s
        self._retry_base_s = retry_base_s
        self._retry_max_s = retry_max_s
        self._sleep = sleep
        self._clock = clock
        self._task: asyncio.Task[None] | None = None
        self._closing = False
        self._failures = 0
        self._insert = _idempotent_insert(engine.dialect.name)

    # -- the AuditSink protocol ------------------------------------------------------------

    def emit(self, event: BreakerTransition) -> None:
        """Queue one transition (rows are built by the writer); never awaits, never raises."""
        self.stats.received += 1
        try:
            if self._task is None or self._closing or self._task.done():
                self.stats.spooled += self.spool.append([to_row(event)])
                return
            try:
                self._queue.put_nowait(event)
            except asyncio.QueueFull:
                self._overflow.append(event)
            self.stats.queued += 1
        except Exception:  # the audit trail must never break a request
            logger.exception("audit: could not queue event %s", getattr(event, "id", "?"))

    # -- lifecycle -----------------------------------------------------------------------------

    async def start(self) -> None:
        """Start the writer; it replays any spool left by an earlier run first."""
        if self._task is None:
            self._closing = False
            self._task = asyncio.create_task(self._run(), name="resilience-audit-writer")

    async def aclose(self, timeout_s: float = 5.0) -> None:
        """Flush what is queued within `timeout_s`; spool the rest."""
        if self._task is None:
            return
        self._closing = True
        task, self._task = self._task, None
        try:
            await asyncio.wait_for(asyncio.shield(task), timeout_s)
        except TimeoutError:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        leftover = self._drain_nowait() + self._take_overflow()
        if leftover:
            self.stats.spooled += await self._spool(leftover)

    async def ping(self) -> bool:
        """Whether the database answers now (for readiness checks)."""
        try:
            async with self.engine.connect() as connection:
                await connection.execute(text("SELECT 1"))
        except Exception:
            return False
        return True

    @property
    def pending(self) -> int:
        return self._queue.qsize() + len(self._overflow)

    # -- the writer ----------------------------------------------------------------------------

    async def _run(self) -> None:
        await self._replay()
        while True:
            try:
                done = await self._step()
            except Exception:  # e.g. the spool's disk is full: keep going, events stay queued
                logger.exception("audit: writer step failed; retrying")
                await self._sleep(self._retry_max_s)
                continue
            if done:
                return

    async def _step(self) -> bool:
        """One batch; True once closing and everything is written or spooled."""
        batch = await self._next_batch()
        overflow = self._take_overflow()
        try:
            if overflow:
                self.stats.spooled += await self._spool(overflow)
            if batch:
                await self._write_or_spool(batch)
        except Exception:
            self._overflow[:0] = overflow + batch  # keep them for the next try (ids dedupe)
            raise
        if self._closing and self._queue.empty() and not self._overflow:
            if self.stats.database_up and self.spool.pending():
                await self._replay()
            return True
        return False

    async def _spool(self, events: list[BreakerTransition]) -> int:
        rows = [to_row(event) for event in events]
        return await asyncio.to_thread(self.spool.append, rows)

    async def _next_batch(self) -> list[BreakerTransition]:
        batch = self._drain_nowait(self._batch_size)
        if len(batch) >= self._batch_size or self._closing:
            return batch
        deadline = self._clock() + self._batch_age_s
        while len(batch) < self._batch_size:
            remaining = deadline - self._clock()
            if remaining <= 0 or self._closing:
                break
            try:
                batch.append(await asyncio.wait_for(self._queue.get(), remaining))
            except TimeoutError:
                break
            batch.extend(self._drain_nowait(self._batch_size - len(batch)))
        return batch

    async def _write_or_spool(self, batch: list[BreakerTransition]) -> None:
        try:
            await self._write([event_params(event) for event in batch])
        except Exception as exc:
            self.stats.failed_batches += 1
            self.stats.spooled += await self._spool(batch)
            if self.stats.database_up:
                logger.warning("audit: database unreachable (%s); spooling", type(exc).__name__)
            self.stats.database_up = False
            self._failures += 1
            if not self._closing:
                wait = min(self._retry_max_s, self._retry_base_s * 2 ** (self._failures - 1))
                await self._sleep(wait)
            return
        self.stats.written += len(batch)
        if not self.stats.database_up:
            logger.warning("audit: database reachable again; replaying the spool")
        self.stats.database_up = True
        self._failures = 0
        if self.spool.pending():
            await self._replay()

    async def _write(self, params: list[dict[str, Any]]) -> None:
        async with self.engine.begin() as connection:
            await connection.execute(self._insert, params)

    async def _replay(self) -> None:
        path = await asyncio.to_thread(self.spool.claim)
        if path is None:
            return
        try:
            for batch in await asyncio.to_thread(lambda: list(self.spool.read(path, 1000))):
                await self._write([to_params(row) for row in batch])
                self.stats.replayed += len(batch)
        except Exception as exc:
            logger.warning("audit: replay paused, database unreachable (%s)", type(exc).__name__)
            self.stats.database_up = False
            return
        await asyncio.to_thread(self.spool.done, path)

    def _drain_nowait(self, limit: int | None = None) -> list[BreakerTransition]:
        rows: list[BreakerTransition] = []
        while not self._queue.empty() and (limit is None or len(rows) < limit):
            rows.append(self._queue.get_nowait())
        return rows

    def _take_overflow(self) -> list[BreakerTransition]:
        rows, self._overflow = self._overflow, []
        return rows

    def __repr__(self) -> str:
        return f"DatabaseSink({self.engine.url.render_as_string(hide_password=True)}, {self.stats})"


def _idempotent_insert(dialect: str) -> Insert:
    if dialect == "postgresql":
        return postgresql.insert(breaker_events).on_conflict_do_nothing(index_elements=["id"])
    if dialect == "sqlite":
        return sqlite.insert(breaker_events).on_conflict_do_nothing(index_elements=["id"])
    raise ValueError(f"audit database: unsupported dialect {dialect!r} (PostgreSQL or SQLite)")
