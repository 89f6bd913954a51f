"""`Cutoff(seconds)`: the deadline of one attempt, on one event-loop timer for all of them.

`asyncio.timeout` arms a loop timer for each block: a handle with a copy of the context,
pushed onto the loop's heap, cancelled on the way out and left there until the loop
sweeps it. Every attempt of every call opens one, and it almost never fires. Here an
attempt is an entry on a heap of our own, one per event loop, and the loop holds a single
timer, for the earliest entry: arming pushes a tuple and leaves that timer alone unless
the new entry comes first, and leaving the block marks the entry finished. Finished
entries go once they are half of the heap, as the loop does with cancelled timers.

The rules are `asyncio.timeout`'s: when the time comes the task is cancelled, and leaving
the block with that cancellation, and no other request to cancel the task, raises
`TimeoutError`; `Cutoff.expired` says whether it fired.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import math
from types import TracebackType

COMPACT_AFTER = 64
"""Finished entries are dropped once there are more than this, and half of the heap."""


class Cutoff:
    """`with Cutoff(seconds) as cut:` cancels the current task in `seconds` unless the
    block has ended by then; it must be entered at once, inside a task."""

    __slots__ = ("_cancelling", "_task", "_watch", "expired", "finished")

    def __init__(self, seconds: float) -> None:
        global _last
        loop = asyncio.get_running_loop()
        task = asyncio.current_task(loop)
        if task is None:
            raise RuntimeError("Cutoff should be used inside a task")
        watch = _last
        if watch is None or watch.loop is not loop:
            watch = _last = _Watch(loop)
        self._task: asyncio.Task[object] | None = task
        self._cancelling = task.cancelling()
        self._watch = watch
        self.expired = False
        """Whether the time came while the block ran (the task was cancelled for it)."""
        self.finished = False
        """Whether the block has ended."""
        when = loop.time() + seconds
        heapq.heappush(watch.heap, (when, next(_order), self))
        if when < watch.timer_at:
            watch.arm(when)

    def __enter__(self) -> Cutoff:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        task, self._task = self._task, None
        self.finished = True
        if not self.expired:
            watch = self._watch
            watch.finished += 1
            if watch.finished > COMPACT_AFTER and 2 * watch.finished > len(watch.heap):
                watch.compact()
        elif (
            task is not None
            and task.uncancel() <= self._cancelling
            and exc_type is not None
            and issubclass(exc_type, asyncio.CancelledError)
        ):
            raise TimeoutError from exc

    def _expire(self) -> None:
        task = self._task
        if task is not None:
            self.expired = True
            task.cancel()


class _Watch:
    """The cutoffs of one event loop, by time, and the loop's one timer for the first."""

    __slots__ = ("finished", "heap", "loop", "timer", "timer_at")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.heap: list[tuple[float, int, Cutoff]] = []
        """(when, order, cutoff), earliest first; finished ones stay until dropped."""
        self.timer: asyncio.TimerHandle | None = None
        self.timer_at = math.inf
        """When `timer` runs `fire`: the earliest entry's time, or earlier."""
        self.finished = 0
        """Entries still on the heap whose block has ended."""

    def arm(self, when: float) -> None:
        if self.timer is not None:
            self.timer.cancel()
        self.timer = self.loop.call_at(when, self.fire)
        self.timer_at = when

    def fire(self) -> None:
        # the loop runs a timer up to its clock resolution early: what it was armed for is due
        due = max(self.timer_at, self.loop.time())
        self.timer, self.timer_at = None, math.inf
        heap = self.heap
        while heap and (heap[0][0] <= due or heap[0][2].finished):
            cut = heapq.heappop(heap)[2]
            if cut.finished:
                self.finished -= 1
            else:
                cut._expire()
        if heap:
            self.arm(heap[0][0])

    def compact(self) -> None:
        """Drop the finished entries (the timer may then run early: `fire` re-arms)."""
        self.heap = [entry for entry in self.heap if not entry[2].finished]
        heapq.heapify(self.heap)
        self.finished = 0


_order = itertools.count()
"""Breaks ties between entries due at the same time (cutoffs are not comparable)."""
_last: _Watch | None = None
"""The watch of the loop that asked last. A process nearly always has one loop; one that
turns to another (a new loop per test, one per thread) gets a new watch, and the old one
goes once its cutoffs have, with its loop: no table of loops to keep them alive."""
