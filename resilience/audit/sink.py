"""`DatabaseSink`: breaker transitions into `breaker_events` and usage records into
`usage_records`, never blocking, never losing.

`emit()` is called on the event loop by the breaker, `emit_usage()` by the client when a
call ends: each appends the row to the journal (`resilience.audit.journal`: one
`write(2)`, so the row survives `kill -9` from then on), then to a bounded queue (or,
when the queue is full, to an overflow list the writer spools), and never awaits or
raises. A background writer drains the queue in
batches (by size or age) with idempotent inserts (`ON CONFLICT (id) DO
NOTHING`). While the database is unreachable, batches go to the spool file and
the writer backs off; once an insert succeeds again it replays the spool.
`aclose()` flushes within a bounded time and spools whatever it could not
write; the next start replays it. Events emitted before `start()` or after
`aclose()` are spooled at once.

What "nothing lost" covers: database outages, a full queue, shutdown, a crash after a
spool write, and the process killed outright (`kill -9`, the OOM killer): rows it held
in memory are in the journal, which the next start moves into the spool and replays
(inserts are idempotent on the row id). A crash of the whole machine loses what the
journal's fsync policy lets it (`journal_fsync`; see `resilience.audit.journal`).
Rows settled (written, spooled or quarantined) are trimmed from the journal at once.

A database that is unreachable is told apart from one that rejects a row
(`rejects_rows`): a rejected batch is split until the bad rows are found, those
go to the spool's dead-letter file (`Spool.reject`) and are counted in
`stats.quarantined`, and the rest is written. So no row, whatever its source,
can hold the writer or the spool back.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, NamedTuple

from sqlalchemy import Insert, Table, text
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncEngine

from resilience.audit.errors import describe, rejects_rows
from resilience.audit.journal import (
    TABLE_KEY,
    USAGE_TABLE,
    FsyncPolicy,
    Journal,
    event_line,
    usage_line,
)
from resilience.audit.schema import breaker_events, event_params, to_params, to_row
from resilience.audit.spool import Spool
from resilience.audit.usage_schema import usage_bind, usage_params, usage_records
from resilience.breaker.events import BreakerTransition
from resilience.types import Sleep
from resilience.usage.record import UsageRecord

logger = logging.getLogger("resilience.audit")

REPLAY_BATCH = 1000
LOCK_POLL_S = 0.05
"""How often a starting sink asks again for the replay lock another process holds."""


Record = BreakerTransition | UsageRecord
"""What the sink takes: a breaker transition (`emit`) or a finished call's usage
(`emit_usage`)."""


class _Pending(NamedTuple):
    """A row in memory on its way to the writer, and the journal segment holding it
    (-1: none)."""

    record: Record
    segment: int


@dataclass(slots=True)
class SinkStats:
    received: int = 0
    """Every breaker event handed to `emit`: each ends up written, spooled, quarantined,
    or (only if the spool itself failed) counted as a failure and logged."""
    usage_received: int = 0
    """Every usage record handed to `emit_usage`, with the same fate. The counters below
    count rows of both kinds."""
    queued: int = 0
    written: int = 0
    spooled: int = 0
    replayed: int = 0
    failed_batches: int = 0
    quarantined: int = 0
    """Rows the database rejected (or that JSON cannot hold), kept in the dead-letter file."""
    spool_errors: int = 0
    """Times the spool could not be written (events then wait in memory)."""
    database_up: bool = True
    spool_ok: bool = True
    """Whether the last spool write succeeded."""
    journaled: int = 0
    """Rows appended to the journal before `emit`/`emit_usage` returned."""
    journal_errors: int = 0
    """Rows the journal could not take (they wait in memory, as without a journal)."""
    recovered: int = 0
    """Rows found at start in journals of killed processes, moved to the spool to replay."""


class _Row(NamedTuple):
    """One row on its way to the database: the bound values, and what to spool or reject
    (a record, or a spool line's dict)."""

    params: dict[str, Any]
    source: Record | dict[str, Any]

    def as_json(self) -> dict[str, Any]:
        return _as_json(self.source)

    @property
    def usage(self) -> bool:
        source = self.source
        if isinstance(source, dict):
            return source.get(TABLE_KEY) == USAGE_TABLE
        return isinstance(source, UsageRecord)


class _Settled(NamedTuple):
    written: int
    unwritten: list[_Row]
    """Rows not written because the database is unreachable (`error`)."""
    error: BaseException | None


class DatabaseSink:
    """An `AuditSink` and a `UsageSink` writing to the audit database; see the module
    docstring.

    Args:
        engine: an async engine on PostgreSQL (asyncpg) or SQLite (aiosqlite).
        spool_path: the JSON-lines file for rows the database could not take; rows it
            rejects go beside it, to `<spool_path>.rejected`.
        journal_path: the folder of the journal (`resilience.audit.journal`); None:
            `<spool_path>.journal` beside the spool.
        journal: False runs without one (rows in memory are lost if the process is killed).
        journal_fsync: `"never"`, `"batch"` (the default) or `"always"`: what survives a
            crash of the machine, and what it costs (`resilience.audit.journal`).
        queue_size: rows held in memory before overflow goes to the spool.
        batch_size, batch_age_s: a batch is written when it is this big or this old.
        retry_base_s, retry_max_s: backoff while the database is down.
    """

    def __init__(
        self,
        engine: AsyncEngine,
        *,
        spool_path: str | os.PathLike[str],
        journal_path: str | os.PathLike[str] | None = None,
        journal: bool = True,
        journal_fsync: FsyncPolicy = "batch",
        queue_size: int = 10_000,
        batch_size: int = 500,
        batch_age_s: float = 0.2,
        retry_base_s: float = 0.5,
        retry_max_s: float = 10.0,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        self.engine = engine
        self.spool = Spool(spool_path)
        if journal_path is None:
            journal_path = self.spool.path.with_name(self.spool.path.name + ".journal")
        self.journal = Journal(journal_path, fsync=journal_fsync) if journal else None
        self.stats = SinkStats()
        self._queue: asyncio.Queue[_Pending] = asyncio.Queue(queue_size)
        self._overflow: list[_Pending] = []
        self._in_hand: tuple[list[_Pending], ...] = ()
        """The rows the writer has taken and not yet settled (`_step`): still pending."""
        self._batch_size = batch_size
        self._batch_age_s = batch_age_s
        self._wanted = batch_size
        """Rows the queue must hold for `_filled` to wake the writer before the batch age."""
        self._filled = asyncio.Event()
        """Set once the queue holds `_wanted` rows, or on close: one wake-up per batch."""
        self._retry_base_s = retry_base_s
        self._retry_max_s = retry_max_s
        self._sleep = sleep
        self._task: asyncio.Task[None] | None = None
        self._closing = False
        self._failures = 0
        self._inserts = {
            table: _idempotent_insert(engine.dialect.name, table)
            for table in (breaker_events, usage_records)
        }
        self._caught_up = asyncio.Event()

    # -- the AuditSink and UsageSink protocols ----------------------------------------------

    def emit(self, event: BreakerTransition) -> None:
        """Journal and queue one transition (rows are built by the writer); never awaits,
        never raises."""
        self.stats.received += 1
        self._take(event, event_line)

    def emit_usage(self, record: UsageRecord) -> None:
        """Journal and queue one finished call's usage; never awaits, never raises."""
        self.stats.usage_received += 1
        self._take(record, usage_line)

    def _take(self, record: Any, line_of: Callable[[Any], bytes]) -> None:
        """`record`'s journal line written (`line_of` encodes it), then the record queued
        for the writer; spooled at once when no writer runs."""
        try:
            task = self._task
            if task is None or self._closing or task.done():
                self._spool_now(record)
                return
            journal = self.journal
            segment = -1
            if journal is not None:
                try:
                    segment = journal.append(line_of(record))
                except Exception:  # JSON cannot hold it: the writer quarantines it
                    segment = -1
                self._journaled(segment)
            self._queue_row(_Pending(record, segment))
        except Exception:  # the audit trail must never break a request
            logger.exception("audit: could not queue %s", getattr(record, "id", "a row"))

    def _journaled(self, segment: int) -> None:
        if segment < 0:
            self.stats.journal_errors += 1
        else:
            self.stats.journaled += 1

    def _queue_row(self, pending: _Pending) -> None:
        queue = self._queue
        try:
            queue.put_nowait(pending)
        except asyncio.QueueFull:
            self._overflow.append(pending)
            self._filled.set()
        else:
            if queue.qsize() >= self._wanted:
                self._filled.set()
        self.stats.queued += 1

    def _spool_now(self, record: Record) -> None:
        """Not running (before `start`, after `aclose`): straight to the spool."""
        lines, bad = _encode([_Row({}, record)])
        for row, error in bad:
            self.stats.quarantined += 1
            self._reject_now(row, error)
        self.stats.spooled += self.spool.append_lines(lines)

    # -- lifecycle -----------------------------------------------------------------------------

    async def start(self) -> None:
        """Open the journal and start the writer. Journals of killed processes are moved into
        the spool first; the writer replays the spool before anything else."""
        if self._task is None:
            self._closing = False
            self._caught_up.clear()
            try:
                await asyncio.to_thread(self._recover)
            except OSError as exc:
                logger.error("audit: cannot open the journal (%s); running without it", exc)
            try:
                await asyncio.to_thread(self.spool.recount)
                rejected = await asyncio.to_thread(self.spool.rejected)
            except OSError:
                rejected = 0
            if rejected:
                logger.warning(
                    "audit: %d rows the database rejected wait in %s for an operator",
                    rejected,
                    self.spool.dead_letter,
                )
            self._task = asyncio.create_task(self._run(), name="resilience-audit-writer")

    async def caught_up(self, timeout_s: float) -> bool:
        """Wait until the spool an earlier run left has been replayed (or found unreplayable
        for now); False if that took longer than `timeout_s`."""
        try:
            await asyncio.wait_for(self._caught_up.wait(), timeout_s)
        except TimeoutError:
            return False
        return True

    async def aclose(self, timeout_s: float = 5.0) -> None:
        """Flush what is queued within `timeout_s`; spool the rest. The journal is deleted
        when every row in it is settled, else left for the next start to recover."""
        if self._task is None:
            return
        self._closing = True
        self._filled.set()  # a writer waiting for its batch to fill goes now
        task, self._task = self._task, None
        try:
            try:
                await asyncio.wait_for(asyncio.shield(task), timeout_s)
            except TimeoutError:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            leftover = self._drain_nowait() + self._take_overflow()
            if leftover:
                self.stats.spooled += await self._spool([_Row({}, p.record) for p in leftover])
                self._settled(leftover)
        finally:
            if self.journal is not None:
                self.journal.close()

    def _recover(self) -> None:
        """Open the journal; move the segments killed processes left into the spool
        (blocking: run in a thread)."""
        if self.journal is None:
            return
        for path in self.journal.open():
            lines = Journal.read(path)
            self.spool.append_lines(lines)  # fsynced before the segment goes
            self.journal.discard(path)
            if lines:
                self.stats.recovered += len(lines)
                logger.warning(
                    "audit: %d rows recovered from %s (a process that did not shut down); "
                    "replaying them",
                    len(lines),
                    path,
                )

    async def __aenter__(self) -> DatabaseSink:
        """`async with DatabaseSink(engine, spool_path=...) as sink:` in an app's lifespan.
        Close it after the client whose sink it is (list it first in one `async with`): a
        verdict still in flight when the client closes may emit a transition."""
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

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
        in_hand = sum(len(rows) for rows in self._in_hand)
        return self._queue.qsize() + len(self._overflow) + in_hand

    def backlog(self) -> dict[str, int]:
        """Rows not in the database yet: in memory, and in the spool files."""
        return {"queued": self.pending, "spooled": self.spool.rows}

    # -- the writer ----------------------------------------------------------------------------

    async def _run(self) -> None:
        try:
            await self._replay(wait=True)
        except Exception:  # e.g. the spool's disk: the loop below retries
            logger.exception("audit: replaying the spool failed; retrying")
        finally:
            self._caught_up.set()
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
        """One batch; True once closing and everything is written or spooled.

        The rows it holds count in `pending` until settled; stopped anywhere (an error, a
        cancellation), it puts them back in front of the overflow (ids dedupe a retry)."""
        batch: list[_Pending] = []
        overflow: list[_Pending] = []
        self._in_hand = (batch, overflow)
        try:
            await self._next_batch(batch)
            journal = self.journal
            if journal is not None and journal.fsync == "batch" and journal.dirty:
                await asyncio.to_thread(journal.sync)
            overflow.extend(self._take_overflow())
            if overflow:
                self.stats.spooled += await self._spool([_Row({}, p.record) for p in overflow])
                self._settled(overflow)
                overflow.clear()
            wrote = bool(batch)
            if batch:
                await self._write_or_spool(batch)
        except BaseException:
            self._overflow[:0] = overflow + batch
            raise
        finally:
            self._in_hand = ()
        if self._closing and self._queue.empty() and not self._overflow:
            if self.stats.database_up and self.spool.pending():
                await self._replay()
            return True
        if not wrote and not self._closing and self.spool.pending():
            await self._replay()  # idle with a backlog: it needs no new event to go out
        return False

    async def _next_batch(self, batch: list[_Pending]) -> None:
        """Fill `batch` with up to a batch's rows, waiting at most the batch age for them.

        The writer sleeps until the queue holds the rest of a batch (or the age is reached,
        or the sink closes), not row by row: a row queued wakes no task, so a request pays
        for its row's queueing only, not for the writer's turn."""
        batch.extend(self._drain_nowait(self._batch_size))
        if len(batch) >= self._batch_size or self._closing:
            return
        # the queue is empty now: wait for the rest of a batch, the age, or the close
        self._wanted = self._batch_size - len(batch)
        self._filled.clear()
        try:
            async with asyncio.timeout(self._batch_age_s):
                await self._filled.wait()
        except TimeoutError:
            pass
        batch.extend(self._drain_nowait(self._batch_size - len(batch)))

    async def _write_or_spool(self, batch: list[_Pending]) -> None:
        """`batch` into the database, or what it could not take into the spool; emptied
        (settled) as soon as every row is in one of them, before any backoff or replay."""
        rows = await self._bind([_Row({}, p.record) for p in batch])
        settled = await self._settle(rows)
        self.stats.written += settled.written
        if settled.error is not None:
            self.stats.failed_batches += 1
            self.stats.spooled += await self._spool(settled.unwritten)
        self._settled(batch)
        batch.clear()
        if settled.error is not None:
            await self._unreachable(settled.error)
            return
        self._reachable()
        if self.spool.pending():
            await self._replay()

    async def _settle(self, rows: list[_Row]) -> _Settled:
        """Write `rows`, each into its table; stops at the first sign the database is
        unreachable."""
        usage = [row for row in rows if row.usage]
        if not usage:
            return await self._settle_into(rows, breaker_events)
        events = [row for row in rows if not row.usage]
        first = await self._settle_into(events, breaker_events)
        if first.error is not None:
            return _Settled(first.written, first.unwritten + usage, first.error)
        second = await self._settle_into(usage, usage_records)
        return _Settled(first.written + second.written, second.unwritten, second.error)

    async def _settle_into(self, rows: list[_Row], table: Table) -> _Settled:
        """Write `rows` into `table`; a batch the database rejects is halved until each bad
        row is alone, and that one is quarantined."""
        if not rows:
            return _Settled(0, [], None)
        try:
            if table is breaker_events:
                await self._write([row.params for row in rows])
            else:
                await self._write([row.params for row in rows], table=table)
        except Exception as exc:
            if not rejects_rows(exc):
                return _Settled(0, rows, exc)
            if len(rows) == 1:
                await self._quarantine(rows[0].as_json(), describe(exc))
                return _Settled(0, [], None)
        else:
            return _Settled(len(rows), [], None)
        middle = len(rows) // 2
        first = await self._settle_into(rows[:middle], table)
        if first.error is not None:
            return _Settled(first.written, first.unwritten + rows[middle:], first.error)
        second = await self._settle_into(rows[middle:], table)
        return _Settled(first.written + second.written, second.unwritten, second.error)

    async def _write(self, params: list[dict[str, Any]], *, table: Table = breaker_events) -> None:
        async with self.engine.begin() as connection:
            await connection.execute(self._inserts[table], params)

    async def _replay(self, *, wait: bool = False) -> None:
        """Replay what is spooled: a claimed file left by an earlier replay first, then the
        spool. A rejected row is quarantined; an outage keeps the unwritten rows spooled.

        One replayer at a time per spool (`Spool.try_lock`): while another process holds
        it this one skips, or with `wait` (the start, so `caught_up` means replayed) polls
        for it until the sink closes. The rows count is read from the files at the end,
        as other processes sharing the spool append and replay too."""
        while not await asyncio.to_thread(self.spool.try_lock):
            if not wait or self._closing:
                return
            await asyncio.sleep(LOCK_POLL_S)
        unreachable: BaseException | None = None
        try:
            unreachable = await self._replay_files()
            if unreachable is None:
                self.spool.rows = await asyncio.to_thread(self.spool.count)
        finally:
            self.spool.unlock()
        if unreachable is not None:  # the backoff, without the lock: others may replay
            await self._unreachable(unreachable, replay=True)

    async def _replay_files(self) -> BaseException | None:
        """`_replay` under the lock; the error that stopped it when the database could not
        be reached (the rows it did not write are kept in the claimed file)."""
        for _ in range(2):  # the leftover claimed file, then the spool behind it
            path = await asyncio.to_thread(self.spool.claim)
            if path is None:
                return None
            loaded, unreadable = await asyncio.to_thread(self.spool.load, path)
            for line in unreadable:
                await self._quarantine({"line": line}, "unreadable spool line")
            rows = await self._bind([_Row({}, row) for row in loaded])
            self.spool.rows -= len(loaded) + len(unreadable) - len(rows)
            for start in range(0, len(rows), REPLAY_BATCH):
                batch = rows[start : start + REPLAY_BATCH]
                settled = await self._settle(batch)
                self.stats.replayed += settled.written
                if settled.error is not None:
                    rest = settled.unwritten + rows[start + REPLAY_BATCH :]
                    kept = [r.as_json() for r in rest]
                    await asyncio.to_thread(self.spool.keep, path, kept)
                    self.spool.rows -= len(batch) - len(settled.unwritten)
                    return settled.error
                self.spool.rows -= len(batch)
                self._reachable()
            await asyncio.to_thread(self.spool.done, path)
        return None

    async def _bind(self, rows: list[_Row]) -> list[_Row]:
        """The rows with their bound values; one that cannot be bound is quarantined."""
        bound: list[_Row] = []
        for row in rows:
            source = row.source
            try:
                if isinstance(source, BreakerTransition):
                    params = event_params(source)
                elif isinstance(source, UsageRecord):
                    params = usage_bind(usage_params(source))
                elif source.get(TABLE_KEY) == USAGE_TABLE:
                    params = usage_bind({k: v for k, v in source.items() if k != TABLE_KEY})
                else:
                    params = to_params(source)
            except Exception as exc:
                await self._quarantine(_printable(source), describe(exc))
                continue
            bound.append(_Row(params, source))
        return bound

    async def _spool(self, rows: list[_Row]) -> int:
        lines, bad = _encode(rows)
        for row, error in bad:
            await self._quarantine(row, error)
        try:
            count = await asyncio.to_thread(self.spool.write_lines, lines)
        except Exception:
            self.stats.spool_errors += 1
            self.stats.spool_ok = False
            raise
        self.spool.rows += count  # on the loop: the caller lets go of them in this step
        self.stats.spool_ok = True
        return count

    async def _quarantine(self, row: Any, error: str) -> None:
        await asyncio.to_thread(self._reject_now, row, error)
        # counted once it is in the dead-letter file, in the step its batch lets go of it:
        # `/readyz` never shows it both queued and quarantined
        self.stats.quarantined += 1

    def _reject_now(self, row: Any, error: str) -> None:
        event_id = row.get("id", "?") if isinstance(row, dict) else getattr(row, "id", "?")
        try:
            self.spool.reject(row, error)
        except Exception:
            logger.exception("audit: could not keep rejected row %s (%s)", event_id, error)
            return
        logger.error(
            "audit: the database rejected row %s (%s); kept in %s",
            event_id,
            error,
            self.spool.dead_letter,
        )

    async def _unreachable(self, error: BaseException, *, replay: bool = False) -> None:
        """The database did not answer: note it, and back off (not while closing)."""
        if self.stats.database_up:
            what = "replay paused" if replay else "spooling"
            logger.warning("audit: database unreachable (%s); %s", describe(error), what)
        self.stats.database_up = False
        self._failures += 1
        if not self._closing:
            wait = min(self._retry_max_s, self._retry_base_s * 2 ** (self._failures - 1))
            await self._sleep(wait)

    def _reachable(self) -> None:
        if not self.stats.database_up:
            logger.warning("audit: database reachable again; replaying the spool")
        self.stats.database_up = True
        self._failures = 0

    def _settled(self, pending: list[_Pending]) -> None:
        """These rows are written, spooled or quarantined: trim them from the journal."""
        journal = self.journal
        if journal is None:
            return
        counts: dict[int, int] = {}
        for item in pending:
            if item.segment >= 0:
                counts[item.segment] = counts.get(item.segment, 0) + 1
        if counts:
            journal.settle(counts)
        journal.maintain()

    def _drain_nowait(self, limit: int | None = None) -> list[_Pending]:
        rows: list[_Pending] = []
        while not self._queue.empty() and (limit is None or len(rows) < limit):
            rows.append(self._queue.get_nowait())
        return rows

    def _take_overflow(self) -> list[_Pending]:
        rows, self._overflow = self._overflow, []
        return rows

    def __repr__(self) -> str:
        return f"DatabaseSink({self.engine.url.render_as_string(hide_password=True)}, {self.stats})"


def _encode(rows: list[_Row]) -> tuple[list[str], list[tuple[Any, str]]]:
    """Spool lines, and the rows JSON cannot hold (with why) for the dead-letter file."""
    lines: list[str] = []
    bad: list[tuple[Any, str]] = []
    for row in rows:
        try:
            lines.append(Spool.encode(row.as_json()))
        except Exception as exc:
            bad.append((_printable(row.source), describe(exc)))
    return lines, bad


def _as_json(source: Record | dict[str, Any]) -> dict[str, Any]:
    """The JSON-able dict that is both a spool line and (bound) an insert row; a usage
    row says its table (`TABLE_KEY`), a breaker event's needs not (older spools)."""
    if isinstance(source, BreakerTransition):
        return to_row(source)
    if isinstance(source, UsageRecord):
        return {**usage_params(source), TABLE_KEY: USAGE_TABLE}
    return source


def _printable(source: Record | dict[str, Any]) -> Any:
    """What the dead-letter file can show of a row that could not even be encoded."""
    try:
        return _as_json(source)
    except Exception:
        return repr(source)


def _idempotent_insert(dialect: str, table: Table) -> Insert:
    if dialect == "postgresql":
        return postgresql.insert(table).on_conflict_do_nothing(index_elements=["id"])
    if dialect == "sqlite":
        return sqlite.insert(table).on_conflict_do_nothing(index_elements=["id"])
    raise ValueError(f"audit database: unsupported dialect {dialect!r} (PostgreSQL or SQLite)")
