"""`Cutoff()` follows `asyncio.timeout`'s rules, on one loop timer for every attempt.

Each rule is checked on both, so a difference shows as one of the pair failing. Nothing
here waits for real time: a cutoff of `NOW` is due on the loop's next turn.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager

import pytest

from resilience.client import cutoff as cutoffs
from resilience.client.cutoff import Cutoff

NOW = 1e-9
"""A cutoff due at once: it fires on the loop's next turn."""
LATER = 3600.0
"""A cutoff that never fires during a test."""
STUCK = 5.0
"""How long a block waits for a cutoff that should already have fired: only a broken one
makes a test wait this long, and then fail."""

Scope = Callable[[float], AbstractAsyncContextManager[object]]


@contextlib.asynccontextmanager
async def ours(seconds: float) -> AsyncIterator[object]:
    with Cutoff(seconds) as cut:
        yield cut


def standard(seconds: float) -> AbstractAsyncContextManager[object]:
    return asyncio.timeout(seconds)


BOTH = pytest.mark.parametrize("scope", [ours, standard], ids=["cutoff", "asyncio.timeout"])


@BOTH
async def test_a_block_still_running_when_its_time_comes_raises_timeout_error(
    scope: Scope,
) -> None:
    with pytest.raises(TimeoutError):
        async with scope(NOW):
            await asyncio.sleep(STUCK)


@BOTH
async def test_a_block_that_ends_in_time_is_left_alone(scope: Scope) -> None:
    async with scope(LATER):
        await asyncio.sleep(0)
    await asyncio.sleep(0)  # a stray cancellation would land here
    task = asyncio.current_task()
    assert task is not None and task.cancelling() == 0


@BOTH
async def test_a_cancellation_from_outside_stays_a_cancellation(scope: Scope) -> None:
    started = asyncio.Event()

    async def body() -> None:
        async with scope(LATER):
            started.set()
            await asyncio.Event().wait()

    task = asyncio.create_task(body())
    await started.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


@BOTH
async def test_another_request_to_cancel_wins_over_the_timeout(scope: Scope) -> None:
    async def body() -> None:
        async with scope(NOW):
            try:
                await asyncio.sleep(STUCK)
            except asyncio.CancelledError:
                current = asyncio.current_task()
                assert current is not None
                current.cancel()  # someone else asks too, before the block ends
                raise

    with pytest.raises(asyncio.CancelledError):
        await asyncio.create_task(body())


async def test_expired_says_whether_it_fired() -> None:
    with Cutoff(LATER) as kept:
        await asyncio.sleep(0)
    assert not kept.expired
    with pytest.raises(TimeoutError), Cutoff(NOW) as cut:
        await asyncio.sleep(STUCK)
    assert cut.expired


async def test_cutoffs_fire_in_time_order_whatever_order_they_were_set_in() -> None:
    fired: list[str] = []
    release = asyncio.Event()

    async def attempt(name: str, seconds: float, until: Awaitable[object]) -> None:
        try:
            with Cutoff(seconds):
                await until
        except TimeoutError:
            fired.append(name)

    late = asyncio.create_task(attempt("late", LATER, release.wait()))
    await asyncio.sleep(0)  # the late one holds the loop's timer first
    await attempt("soon", NOW, asyncio.sleep(STUCK))
    assert fired == ["soon"]  # the earlier cutoff re-armed the timer; the late one still runs
    assert not late.done()
    release.set()
    await late
    assert fired == ["soon"]


async def test_finished_cutoffs_do_not_pile_up() -> None:
    for _ in range(10 * cutoffs.COMPACT_AFTER):
        with Cutoff(LATER):
            pass
    watch = cutoffs._last
    assert watch is not None and watch.loop is asyncio.get_running_loop()
    assert len(watch.heap) <= 2 * cutoffs.COMPACT_AFTER + 2


def test_outside_a_task_it_refuses() -> None:
    loop = asyncio.new_event_loop()
    refused: asyncio.Future[BaseException] = loop.create_future()

    def callback() -> None:  # the loop runs, but no task does
        try:
            Cutoff(LATER)
        except RuntimeError as exc:
            refused.set_result(exc)

    try:
        loop.call_soon(callback)
        raised = loop.run_until_complete(asyncio.wait_for(refused, 5))
    finally:
        loop.close()
    assert "inside a task" in str(raised)


def test_a_new_loop_gets_a_timer_of_its_own() -> None:
    async def cut_at_once() -> bool:
        try:
            with Cutoff(NOW):
                await asyncio.sleep(STUCK)
        except TimeoutError:
            return True
        return False

    # one loop after another, as each test gets its own: the old loop's timer is no use
    assert [asyncio.run(cut_at_once()) for _ in range(3)] == [True, True, True]
