"""Breaker cost: admission + record per call, ours against pybreaker, measured in one run.

Usage: python bench/breaker.py [--quick]

Each call is: look the breaker up by (tenant, provider) among N live breakers,
admit the call, run a trivial function, record success. pybreaker gets the same
dict lookup, then `CircuitBreaker.call(fn)`. Keys are visited in a shuffled
order so the 100,000-key case pays the cache misses a real tenant mix pays.
Figures are medians of repeated runs, with min-max.
"""

from __future__ import annotations

import gc
import importlib.metadata
import random
import statistics
import sys
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._env import ensure_bench_venv

ensure_bench_venv()

import pybreaker  # noqa: E402

from resilience import BreakerRegistry  # noqa: E402

QUICK = "--quick" in sys.argv
REPEATS = 3 if QUICK else 7
CALLS = 20_000 if QUICK else 300_000
BIG = 10_000 if QUICK else 100_000


def upstream() -> int:
    return 1


def tenants(n: int) -> list[str]:
    return [f"tenant-{i:06d}" for i in range(n)]


def order(names: list[str], calls: int) -> list[str]:
    rng = random.Random(7)
    return [names[rng.randrange(len(names))] for _ in range(calls)]


def ours(n_keys: int) -> Callable[[list[str]], float]:
    registry = BreakerRegistry()
    for name in tenants(n_keys):
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


def theirs(n_keys: int) -> Callable[[list[str]], float]:
    breakers = {
        (name, "openai"): pybreaker.CircuitBreaker(fail_max=5, reset_timeout=30)
        for name in tenants(n_keys)
    }

    def run(sequence: list[str]) -> float:
        start = time.perf_counter()
        for tenant in sequence:
            breakers[(tenant, "openai")].call(upstream)
        return time.perf_counter() - start

    return run


def per_call_us(factory: Callable[[int], Callable[[list[str]], float]], n_keys: int) -> list[float]:
    run = factory(n_keys)
    sequence = order(tenants(n_keys), CALLS)
    run(sequence[: CALLS // 10])  # warm-up
    samples = []
    for _ in range(REPEATS):
        gc.collect()
        samples.append(run(sequence) / CALLS * 1e6)
    return samples


def bytes_per_breaker(n_keys: int) -> float:
    """Memory of n live breakers (store entries included), per breaker, after some traffic."""
    names = tenants(n_keys)
    keys_cost = [(name, "openai") for name in names]  # the caller's strings exist anyway
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    registry = BreakerRegistry()
    for name in names:
        breaker = registry.get(name, "openai")
        for _ in range(3):
            breaker.record_success(breaker.acquire())
    gc.collect()
    after = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    del keys_cost
    return (after - before) / n_keys


def summary(samples: list[float]) -> str:
    return (
        f"median {statistics.median(samples):.3f} (min {min(samples):.3f}, max {max(samples):.3f})"
    )


def main() -> None:
    print(f"python {sys.version.split()[0]}, pybreaker {importlib.metadata.version('pybreaker')}")
    print(f"{CALLS:,} calls per run, {REPEATS} runs, shuffled keys\n")
    results: dict[tuple[str, int], float] = {}
    for n_keys in (1, BIG):
        # interleave the two libraries so drift on the machine hits both alike
        mine: list[float] = []
        pyb: list[float] = []
        for _ in range(2):
            mine += per_call_us(ours, n_keys)
            pyb += per_call_us(theirs, n_keys)
        results[("ours", n_keys)] = statistics.median(mine)
        results[("pybreaker", n_keys)] = statistics.median(pyb)
        print(f"{n_keys:>7,} keys  ours      us/call: {summary(mine)}")
        print(f"{n_keys:>7,} keys  pybreaker us/call: {summary(pyb)}")
        ratio = statistics.median(mine) / statistics.median(pyb)
        print(f"{n_keys:>7,} keys  ratio ours/pybreaker: {ratio:.3f}\n")
    size = bytes_per_breaker(BIG)
    print(f"memory: {size:.0f} bytes per live breaker at {BIG:,} breakers\n")
    ours_us = results[("ours", BIG)]
    theirs_us = results[("pybreaker", BIG)]
    print(f"breaker_us_per_call: {ours_us:.3f}")
    print(f"pybreaker_us_per_call: {theirs_us:.3f}")
    print(f"ratio_vs_pybreaker: {ours_us / theirs_us:.3f}")
    print(f"bytes_per_breaker: {size:.0f}")


if __name__ == "__main__":
    main()
