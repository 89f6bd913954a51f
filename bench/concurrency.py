"""Breaker correctness under concurrency: the same scenarios for each library, in one run.

Usage: python bench/concurrency.py [--quick]

1. Half-open herd: a breaker (threshold 5) is tripped, its cooldown (a real 0.2 s: none of
   the other libraries takes an injected clock) runs out, and then 100 callers arrive at
   once while the provider is still down; the upstream takes 50 ms to fail. How many of
   them reach the upstream? Each library's own promise is one trial call.
2. Failure burst: 1,000 concurrent calls to a closed breaker all fail (10 ms each). How
   many state-change events does the library report? One real transition happened.
3. Closed-state concurrency: 100 concurrent successful 50 ms calls. How many run at once?
   (A breaker that serialises calls "wins" 1 and 2 by making every call wait in line.)

Everything runs in asyncio, each library used as its docs show (see bench/_guards.py);
pybreaker is also run as most of its users run it, with threads and `call()`.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._env import ensure_bench_venv

ensure_bench_venv()

import pybreaker  # noqa: E402

from bench._guards import GUARDS, THRESHOLD, Guard, Refused  # noqa: E402
from bench._stats import headline  # noqa: E402

QUICK = "--quick" in sys.argv
COOLDOWN_S = 0.2
HERD = 100
BURST = 200 if QUICK else 1_000
PROBE_S = 0.05


class Down(Exception):
    """The provider is still down."""


class Upstream:
    """An upstream that counts who reached it and how many were inside at once."""

    def __init__(self, delay_s: float, *, fails: bool) -> None:
        self.delay_s = delay_s
        self.fails = fails
        self.calls = 0
        self.inside = 0
        self.most_inside = 0

    async def __call__(self) -> None:
        self.calls += 1
        self.inside += 1
        self.most_inside = max(self.most_inside, self.inside)
        try:
            await asyncio.sleep(self.delay_s)
        finally:
            self.inside -= 1
        if self.fails:
            raise Down


async def attempt(guard: Guard, upstream: Upstream) -> str:
    try:
        await guard.call(upstream)
    except Refused:
        return "refused"
    except Exception:
        return "failed"
    return "ok"


async def trip(guard: Guard) -> None:
    for _ in range(THRESHOLD):
        await attempt(guard, Upstream(0.0, fails=True))


async def half_open_herd(name: str) -> int:
    guard = GUARDS[name](COOLDOWN_S)
    await trip(guard)
    await asyncio.sleep(COOLDOWN_S * 1.5)
    upstream = Upstream(PROBE_S, fails=True)
    await asyncio.gather(*(attempt(guard, upstream) for _ in range(HERD)))
    return upstream.calls


async def failure_burst(name: str) -> tuple[int, int]:
    guard = GUARDS[name](COOLDOWN_S * 100)
    upstream = Upstream(0.01, fails=True)
    await asyncio.gather(*(attempt(guard, upstream) for _ in range(BURST)))
    return guard.events, upstream.calls


async def closed_concurrency(name: str) -> int:
    guard = GUARDS[name](COOLDOWN_S)
    upstream = Upstream(PROBE_S, fails=False)
    await asyncio.gather(*(attempt(guard, upstream) for _ in range(HERD)))
    return upstream.most_inside


# -- pybreaker as thread users run it: `breaker.call(fn)` holds its lock for the whole call ---


class ThreadUpstream:
    def __init__(self, delay_s: float, *, fails: bool) -> None:
        self.delay_s = delay_s
        self.fails = fails
        self.calls = 0
        self.inside = 0
        self.most_inside = 0
        self._lock = threading.Lock()

    def __call__(self) -> None:
        with self._lock:
            self.calls += 1
            self.inside += 1
            self.most_inside = max(self.most_inside, self.inside)
        time.sleep(self.delay_s)
        with self._lock:
            self.inside -= 1
        if self.fails:
            raise Down


class _Count(pybreaker.CircuitBreakerListener):  # type: ignore[misc]
    events = 0

    def state_change(self, cb: object, old: object, new: object) -> None:
        self.events += 1


def threaded(breaker: pybreaker.CircuitBreaker, upstream: ThreadUpstream, n: int) -> float:
    def one() -> None:
        with contextlib.suppress(Down, pybreaker.CircuitBreakerError):
            breaker.call(upstream)

    start = time.perf_counter()
    with ThreadPoolExecutor(max_workers=min(n, 200)) as pool:
        for _ in range(n):
            pool.submit(one)
    return time.perf_counter() - start


def pybreaker_threads() -> tuple[int, int, int, int, float]:
    """(herd calls, burst events, burst upstream calls, closed concurrency, closed wall s)."""
    breaker = pybreaker.CircuitBreaker(fail_max=THRESHOLD, reset_timeout=COOLDOWN_S)
    threaded(breaker, ThreadUpstream(0.0, fails=True), THRESHOLD)
    time.sleep(COOLDOWN_S * 1.5)
    herd = ThreadUpstream(PROBE_S, fails=True)
    threaded(breaker, herd, HERD)
    count = _Count()
    burst_breaker = pybreaker.CircuitBreaker(
        fail_max=THRESHOLD, reset_timeout=COOLDOWN_S * 100, listeners=[count]
    )
    burst = ThreadUpstream(0.01, fails=True)
    threaded(burst_breaker, burst, BURST)
    closed = ThreadUpstream(PROBE_S, fails=False)
    wall = threaded(pybreaker.CircuitBreaker(fail_max=THRESHOLD), closed, HERD)
    return herd.calls, count.events, burst.calls, closed.most_inside, wall


async def main() -> None:
    print(
        f"half-open herd: {HERD} callers, probe {PROBE_S * 1000:.0f} ms, provider still down; "
        f"burst: {BURST} concurrent failures; threshold {THRESHOLD}, cooldown {COOLDOWN_S} s\n"
    )
    header = "library", "herd: reached upstream", "burst: events", "burst: upstream calls"
    print(f"{header[0]:<22} {header[1]:>24} {header[2]:>14} {header[3]:>22}  closed: at once")
    results: dict[str, tuple[int, int, int, int]] = {}
    for name in GUARDS:
        herd = await half_open_herd(name)
        events, burst_calls = await failure_burst(name)
        closed = await closed_concurrency(name)
        results[name] = herd, events, burst_calls, closed
        print(f"{name:<22} {herd:>24} {events:>14} {burst_calls:>22}  {closed:>15}")
    herd, events, burst_calls, closed, wall = await asyncio.to_thread(pybreaker_threads)
    print(f"{'pybreaker (threads)':<22} {herd:>24} {events:>14} {burst_calls:>22}  {closed:>15}")
    print(f"\npybreaker (threads): {HERD} successful 50 ms calls took {wall:.2f} s in all")
    ours = results["ours"]
    figures: dict[str, float] = {
        "half_open_upstream_calls": ours[0],
        "events_per_trip": ours[1],
        "closed_concurrent_calls": ours[3],
    }
    for name in ("pybreaker", "circuitbreaker", "aiobreaker", "purgatory"):
        figures[f"half_open_upstream_calls_{name}"] = results[name][0]
        figures[f"events_per_trip_{name}"] = results[name][1]
    figures["half_open_upstream_calls_pybreaker_threads"] = herd
    figures["closed_concurrent_calls_pybreaker_threads"] = closed
    headline(figures)


if __name__ == "__main__":
    asyncio.run(main())
