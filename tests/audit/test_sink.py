"""The database sink never blocks or raises, and loses nothing through overflow, outage or crash."""

from __future__ import annotations

import asyncio
import inspect
from pathlib import Path

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from resilience.audit.database import create_engine
from resilience.audit.schema import breaker_events
from resilience.audit.sink import DatabaseSink
from resilience.audit.spool import Spool
from resilience.breaker.events import BreakerTransition
from tests.support.audit import event
from tests.support.servers import until

DEAD = "postgresql://postgres@127.0.0.1:1/nothing"  # nothing listens on port 1


def events(n: int, tenant: str = "t") -> list[BreakerTransition]:
    return [
        event(f"{tenant}{i % 50}", "openai", "closed", "open", "threshold", i / 60)
        for i in range(n)
    ]


async def rows(engine: AsyncEngine) -> int:
    async with engine.connect() as conn:
        return int(
            (await conn.execute(select(func.count()).select_from(breaker_events))).scalar() or 0
        )


class Sleeps:
    """Records backoff waits and yields to the loop instead of sleeping."""

    def __init__(self) -> None:
        self.waits: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)
        await asyncio.sleep(0)


async def test_emit_never_awaits_and_never_raises_with_the_database_down(tmp_path: Path) -> None:
    assert not inspect.iscoroutinefunction(DatabaseSink.emit)
    engine = create_engine(DEAD)
    sleeps = Sleeps()
    sink = DatabaseSink(engine, spool_path=tmp_path / "spool.jsonl", batch_age_s=0.01, sleep=sleeps)
    await sink.start()
    for e in events(1000):
        sink.emit(e)  # returns at once: no awaiting, no raising
    await until(lambda: len(sleeps.waits) >= 2)  # two failed attempts, however busy the machine
    await sink.aclose(timeout_s=2)
    await engine.dispose()
    assert sink.stats.failed_batches >= 1 and not sink.stats.database_up
    assert sink.stats.written == 0
    assert Spool(tmp_path / "spool.jsonl").count() == 1000
    assert sleeps.waits and sleeps.waits == sorted(sleeps.waits)  # backoff grows


async def test_queue_overflow_goes_to_the_spool_and_is_replayed(
    engine: AsyncEngine, tmp_path: Path
) -> None:
    sink = DatabaseSink(
        engine, spool_path=tmp_path / "spool.jsonl", queue_size=10, batch_age_s=0.01
    )
    await sink.start()
    for e in events(300):  # no await in between: the writer cannot drain, the queue overflows
        sink.emit(e)
    await sink.aclose(timeout_s=10)
    assert sink.stats.spooled >= 290
    assert await rows(engine) == 300
    assert not sink.spool.pending()


async def test_a_crash_between_spool_write_and_replay_loses_nothing(
    engine: AsyncEngine, tmp_path: Path
) -> None:
    spool = tmp_path / "spool.jsonl"
    dead = create_engine(DEAD)
    crashed = DatabaseSink(dead, spool_path=spool, batch_age_s=0.01, sleep=Sleeps())
    await crashed.start()
    for e in events(200):
        crashed.emit(e)
    for _ in range(100):
        if crashed.stats.spooled >= 200:
            break
        await asyncio.sleep(0.02)
    assert crashed._task is not None
    crashed._task.cancel()  # killed before it could ever replay
    await asyncio.gather(crashed._task, return_exceptions=True)
    await dead.dispose()
    assert Spool(spool).count() == 200
    restarted = DatabaseSink(engine, spool_path=spool, batch_age_s=0.01)
    await restarted.start()
    await restarted.aclose()
    assert restarted.stats.replayed == 200
    assert await rows(engine) == 200
    assert not Spool(spool).pending()


async def test_shutdown_flushes_the_queue_and_spools_later_events(
    engine: AsyncEngine, tmp_path: Path
) -> None:
    sink = DatabaseSink(engine, spool_path=tmp_path / "spool.jsonl", batch_age_s=5.0)
    await sink.start()
    for e in events(500):
        sink.emit(e)
    await sink.aclose(timeout_s=10)
    assert await rows(engine) == 500
    late = events(3, tenant="late")
    for e in late:
        sink.emit(e)  # after shutdown began: spooled, not lost
    assert Spool(tmp_path / "spool.jsonl").count() == 3
    again = DatabaseSink(engine, spool_path=tmp_path / "spool.jsonl")
    await again.start()
    await again.aclose()
    assert await rows(engine) == 503


async def test_rows_wake_the_writer_once_per_batch_and_a_close_wakes_it_at_once(
    engine: AsyncEngine, tmp_path: Path
) -> None:
    """A queued row wakes no task: the writer sleeps until a batch is full (or old), so a
    request does not pay for the writer's turn; a close does not wait out the batch age."""
    sink = DatabaseSink(engine, spool_path=tmp_path / "spool.jsonl", batch_size=4, batch_age_s=60)
    await sink.start()
    await until(lambda: sink._caught_up.is_set())
    await until(lambda: not sink._filled.is_set())  # the writer waits for a batch
    for e in events(3):
        sink.emit(e)
    for _ in range(20):
        await asyncio.sleep(0)
    assert sink._queue.qsize() == 3 and sink.pending == 3  # three rows: nothing woke
    sink.emit(events(1, tenant="fourth")[0])  # the fourth fills the batch
    await until(lambda: sink.stats.written == 4)
    for e in events(2, tenant="late"):
        sink.emit(e)
    await sink.aclose(timeout_s=5)  # the 60 s age is not waited out: both are written
    assert sink.stats.written == 6 and sink.stats.spooled == 0
    assert await rows(engine) == 6


async def test_a_sink_that_is_never_started_spools(tmp_path: Path) -> None:
    engine = create_engine(DEAD)
    sink = DatabaseSink(engine, spool_path=tmp_path / "spool.jsonl")
    for e in events(5):
        sink.emit(e)
    await engine.dispose()
    assert sink.stats.spooled == 5 and Spool(tmp_path / "spool.jsonl").count() == 5


async def test_neither_database_nor_spool_available_keeps_events_and_the_writer(
    tmp_path: Path,
) -> None:
    (tmp_path / "not-a-dir").write_text("a file where the spool's folder should be")
    engine = create_engine(DEAD)
    sleeps = Sleeps()
    sink = DatabaseSink(
        engine, spool_path=tmp_path / "not-a-dir" / "spool.jsonl", batch_age_s=0.01, sleep=sleeps
    )
    await sink.start()
    for e in events(20):
        sink.emit(e)
    for _ in range(20):
        await asyncio.sleep(0.01)
    assert sink._task is not None and not sink._task.done()  # the writer survives
    assert sink.pending == 20  # nothing dropped: still in memory, waiting for a way out
    sink._task.cancel()
    await asyncio.gather(sink._task, return_exceptions=True)
    await engine.dispose()


async def test_rows_the_writer_holds_still_count_as_pending_and_survive_its_cancellation(
    tmp_path: Path,
) -> None:
    """While the writer holds a batch (here: stuck on a database that accepts connections
    and never answers), its rows are pending, and a cancellation then (a stuck shutdown)
    puts them back rather than dropping them."""
    accepted = asyncio.Event()

    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        accepted.set()
        await reader.read()  # never answers; the client gives up or is cancelled
        writer.close()

    server = await asyncio.start_server(silent, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    engine = create_engine(f"postgresql://postgres@127.0.0.1:{port}/test")
    sink = DatabaseSink(engine, spool_path=tmp_path / "spool.jsonl", batch_size=3)
    try:
        await sink.start()
        await until(lambda: sink._caught_up.is_set())
        for e in events(3):
            sink.emit(e)
        await asyncio.wait_for(accepted.wait(), 10)  # the writer took the batch: it connects
        assert sink._queue.empty()
        assert sink.pending == 3
        # the close's bound cancels the stuck writer; what it held is spooled with the rest
        await sink.aclose(timeout_s=0.05)
        assert Spool(tmp_path / "spool.jsonl").recount() == 3
    finally:
        server.close()
        await engine.dispose()
