"""Breaker cost: admission + record per call, ours against four breaker libraries, in one run.

Usage: python bench/breaker.py [--quick]

Each call is: find the breaker of (tenant, provider) among N live breakers, admit the
call, run a trivial function, record success. Every library gets the same dict lookup
(purgatory looks its breakers up itself, by name) and is used the way its docs show:

- sync:  ours `acquire()` / `record_success()`; pybreaker `call(fn)`; circuitbreaker's
  decorated function (`CircuitBreaker(name=...)(fn)`, what `@circuit` builds).
- async: ours the same around `await fn()`; aiobreaker `await call_async(fn)`;
  purgatory `async with await factory.get_breaker(name)`.

Sync libraries are compared with ours sync, async ones with ours async, head to head: only
the two libraries' breakers are alive during a comparison (with all five libraries'
100,000 breakers alive at once, the heap is several times what any user has, and cache
misses decide the figures). Keys are visited in a shuffled order so the big case pays
the cache misses a real tenant mix pays. Runs of the two alternate so drift on the
machine hits both alike; each figure is the median of repeated runs, with min-max.

Memory is measured after three calls per breaker (`bytes_per_breaker`, every library), and
for ours also with a call in each of the window's ten buckets and a failure in the last
(`bytes_per_breaker_full_window`): the packed window's largest form, against the same
figure for the rivals, which keep no window.
"""

from __future__ import annotations

import asyncio
import gc
import importlib.metadata
import random
import statistics
import sys
import time
import tracemalloc
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._env import ensure_bench_venv

ensure_bench_venv()

import aiobreaker  # noqa: E402
import circuitbreaker  # noqa: E402
import purgatory  # noqa: E402
import pybreaker  # noqa: E402

from bench._stats import headline, summary  # noqa: E402
from resilience import BreakerRegistry, ErrorKind  # noqa: E402

QUICK = "--quick" in sys.argv
REPEATS = 3 if QUICK else 5
CALLS = 10_000 if QUICK else 100_000
BIG = 10_000 if QUICK else 100_000
MEMORY_KEYS = 2_000 if QUICK else 20_000
LIBRARIES = ("ours", "pybreaker", "circuitbreaker", "ours_async", "aiobreaker", "purgatory")
PAIRS = {
    "pybreaker": "ours",
    "circuitbreaker": "ours",
    "aiobreaker": "ours_async",
    "purgatory": "ours_async",
}
"""Each rival against ours in the same form (sync or async), head to head."""

Run = Callable[[list[str]], float]


def upstream() -> int:
    return 1


async def upstream_async() -> int:
    return 1


def tenants(n: int) -> list[str]:
    return [f"tenant-{i:06d}" for i in range(n)]


def visit_order(names: list[str], calls: int) -> list[str]:
    rng = random.Random(7)
    return [names[rng.randrange(len(names))] for _ in range(calls)]


def on_loop(body: Callable[[list[str]], Awaitable[float]]) -> Run:
    """An async run, timed inside the loop so loop start-up is not charged to the library."""
    loop = asyncio.new_event_loop()
    return lambda sequence: loop.run_until_complete(body(sequence))


# -- one builder per library: create n breakers, return a timed run over a key sequence -------


def build_ours(names: list[str]) -> Run:
    registry = BreakerRegistry()
    for name in names:
        registry.get(name, "openai")

    def run(sequence: list[str]) -> float:
        get = registry.get
        start = time.perf_counter()
        for tenant in sequence:
            breaker = get(tenant, "openai")
            permit = breaker.acquire()
            upstream()
            breaker.record_success(permit)
        return time.perf_counter() - start

    return run


def build_ours_async(names: list[str]) -> Run:
    registry = BreakerRegistry()
    for name in names:
        registry.get(name, "openai")

    async def run(sequence: list[str]) -> float:
        get = registry.get
        start = time.perf_counter()
        for tenant in sequence:
            breaker = get(tenant, "openai")
            permit = breaker.acquire()
            await upstream_async()
            breaker.record_success(permit)
        return time.perf_counter() - start

    return on_loop(run)


def build_pybreaker(names: list[str]) -> Run:
    breakers = {
        (name, "openai"): pybreaker.CircuitBreaker(fail_max=5, reset_timeout=30) for name in names
    }

    def run(sequence: list[str]) -> float:
        start = time.perf_counter()
        for tenant in sequence:
            breakers[(tenant, "openai")].call(upstream)
        return time.perf_counter() - start

    return run


def build_circuitbreaker(names: list[str]) -> Run:
    guarded: dict[tuple[str, str], Callable[[], int]] = {
        (name, "openai"): circuitbreaker.CircuitBreaker(
            failure_threshold=5, recovery_timeout=30, name=f"{name}/openai"
        )(upstream)
        for name in names
    }

    def run(sequence: list[str]) -> float:
        start = time.perf_counter()
        for tenant in sequence:
            guarded[(tenant, "openai")]()
        return time.perf_counter() - start

    return run


def build_aiobreaker(names: list[str]) -> Run:
    breakers = {(name, "openai"): aiobreaker.CircuitBreaker(fail_max=5) for name in names}

    async def run(sequence: list[str]) -> float:
        start = time.perf_counter()
        for tenant in sequence:
            await breakers[(tenant, "openai")].call_async(upstream_async)
        return time.perf_counter() - start

    return on_loop(run)


def build_purgatory(names: list[str]) -> Run:
    factory = purgatory.AsyncCircuitBreakerFactory(default_threshold=5, default_ttl=30)

    async def create() -> None:
        for name in names:
            await factory.get_breaker(f"{name}/openai")

    async def run(sequence: list[str]) -> float:
        get = factory.get_breaker
        start = time.perf_counter()
        for tenant in sequence:
            async with await get(f"{tenant}/openai"):
                await upstream_async()
        return time.perf_counter() - start

    timed = on_loop(run)
    on_loop(lambda _: _zero(create()))([])
    return timed


async def _zero(work: Awaitable[None]) -> float:
    await work
    return 0.0


BUILDERS: dict[str, Callable[[list[str]], Run]] = {
    "ours": build_ours,
    "pybreaker": build_pybreaker,
    "circuitbreaker": build_circuitbreaker,
    "ours_async": build_ours_async,
    "aiobreaker": build_aiobreaker,
    "purgatory": build_purgatory,
}


def per_call_us(n_keys: int, libraries: tuple[str, ...]) -> dict[str, list[float]]:
    """Per-call time of each library over REPEATS rounds; rounds alternate the libraries.

    Only these libraries' breakers are alive meanwhile: a library is never charged for
    the cache misses that another library's 100,000 breakers cause.
    """
    names = tenants(n_keys)
    sequence = visit_order(names, CALLS)
    runs: dict[str, Run] = {}
    for lib in libraries:
        runs[lib] = BUILDERS[lib](names)
        runs[lib](sequence[: CALLS // 10])  # warm-up
    samples: dict[str, list[float]] = {lib: [] for lib in libraries}
    for round_ in range(REPEATS):
        for lib in libraries if round_ % 2 == 0 else tuple(reversed(libraries)):
            gc.collect()
            samples[lib].append(runs[lib](sequence) / CALLS * 1e6)
    runs.clear()
    gc.collect()
    return samples


def bytes_per_breaker(lib: str, n_keys: int) -> float:
    """Memory of n live breakers after three calls each, per breaker (key strings excluded)."""
    names = tenants(n_keys)
    sequence = names * 3
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    run = BUILDERS[lib](names)
    run(sequence)
    gc.collect()
    after = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    del run
    return (after - before) / n_keys


def bytes_per_breaker_full_window(n_keys: int) -> float:
    """Ours with a call in each of the ten buckets of the window and one failure in the last,
    per breaker: the window at its largest (an injected clock walks through the buckets)."""
    names = tenants(n_keys)
    now = [1_000.0]
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    registry = BreakerRegistry(clock=lambda: now[0])
    width = registry.policy.window_s / 10
    for bucket in range(10):
        for name in names:
            breaker = registry.get(name, "openai")
            permit = breaker.acquire()
            if bucket == 9:
                # a tenant-scoped kind: a provider-scoped one from every tenant in a row
                # would rightly open the provider-wide gate
                breaker.record_failure(permit, ErrorKind.AUTH)
            else:
                breaker.record_success(permit)
        now[0] += width
    now[0] -= width  # still in the last bucket: every count is in the window
    gc.collect()
    after = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    assert registry.get(names[0], "openai").calls_in_window() == 10
    del registry
    return (after - before) / n_keys


def versions() -> str:
    libs = ("pybreaker", "circuitbreaker", "aiobreaker", "purgatory")
    found = ", ".join(f"{lib} {importlib.metadata.version(lib)}" for lib in libs)
    return f"python {sys.version.split()[0]}, {found}"


def main() -> None:
    print(versions())
    print(f"{CALLS:,} calls per run, {REPEATS} runs, shuffled keys, head to head\n")
    ours_us: dict[tuple[str, int], list[float]] = {}
    theirs_us: dict[tuple[str, int], list[float]] = {}
    ratios: dict[tuple[str, int], float] = {}
    for n_keys in (1, BIG):
        for rival, mine in PAIRS.items():
            samples = per_call_us(n_keys, (mine, rival))
            ours_us.setdefault((mine, n_keys), []).extend(samples[mine])
            theirs_us[(rival, n_keys)] = samples[rival]
            ratio = statistics.median(samples[mine]) / statistics.median(samples[rival])
            ratios[(rival, n_keys)] = ratio
            print(f"{n_keys:>7,} keys  {mine:<14} us/call: {summary(samples[mine])}")
            print(f"{n_keys:>7,} keys  {rival:<14} us/call: {summary(samples[rival])}")
            print(f"{n_keys:>7,} keys  ratio {mine}/{rival}: {ratio:.3f}\n")
    sizes = {lib: bytes_per_breaker(lib, MEMORY_KEYS) for lib in LIBRARIES if lib != "ours_async"}
    for lib, size in sizes.items():
        print(f"memory: {lib:<15} {size:7.0f} bytes per live breaker ({MEMORY_KEYS:,} breakers)")
    full_window = bytes_per_breaker_full_window(MEMORY_KEYS)
    lightest = min(sizes[lib] for lib in PAIRS)
    print(
        f"memory: ours, full window  {full_window:7.0f} bytes per live breaker "
        f"(ratio to the lightest rival: {full_window / lightest:.3f})"
    )
    figures: dict[str, Any] = {
        "breaker_us_per_call": statistics.median(ours_us[("ours", BIG)]),
        "breaker_us_per_call_1_key": statistics.median(ours_us[("ours", 1)]),
        "ratio_vs_pybreaker": ratios[("pybreaker", BIG)],
        "ratio_vs_pybreaker_1_key": ratios[("pybreaker", 1)],
        "ratio_vs_circuitbreaker": ratios[("circuitbreaker", BIG)],
        "ratio_vs_aiobreaker": ratios[("aiobreaker", BIG)],
        "ratio_vs_purgatory": ratios[("purgatory", BIG)],
        "ours_async_us_per_call": statistics.median(ours_us[("ours_async", BIG)]),
    }
    for rival in PAIRS:
        figures[f"{rival}_us_per_call"] = statistics.median(theirs_us[(rival, BIG)])
    figures["bytes_per_breaker"] = sizes["ours"]
    figures["bytes_per_breaker_full_window"] = full_window
    for lib in PAIRS:
        figures[f"bytes_per_breaker_{lib}"] = sizes[lib]
    headline(figures)


if __name__ == "__main__":
    main()
