"""Group selection overhead: the cost of ordering 8 members for one call, per strategy.

Usage: python bench/groups.py [--quick]

Each call is `Balancer.order(group, tenant)` over a group of 8 members whose health has
real figures (latencies recorded, calls in flight), cycling through 10,000 tenants (so
`hash` mostly hits its per-tenant cache, as a steady tenant mix does; the cold, first-call
cost of `hash` is printed on its own). `round_robin` also pays `answered()`, which the
client calls after each success. Baseline in the same run: `random.choice(members)`, what a
hand-rolled balancer spends. Figures are medians of repeated runs, with min-max.
"""

from __future__ import annotations

import random
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from resilience.routing.health import HealthBoard
from resilience.routing.routes import Group, Strategy, Target
from resilience.routing.strategies import Balancer

QUICK = "--quick" in sys.argv
REPEATS = 3 if QUICK else 9
CALLS = 20_000 if QUICK else 200_000
MEMBERS = tuple(Target(f"openai-{i}", "gpt-4.1") for i in range(8))
TENANTS = [f"tenant-{i:05d}" for i in range(10_000)]


def board_with_figures() -> HealthBoard:
    now = [0.0]
    board = HealthBoard(clock=lambda: now[0])
    rng = random.Random(3)
    for target in MEMBERS:
        member = board.member(target)
        for _ in range(50):
            started = member.started()
            now[0] += rng.uniform(0.2, 0.9)
            member.succeeded(started)
        for _ in range(rng.randrange(4)):
            member.started()  # left in flight
    return board


def strategy_run(strategy: Strategy) -> Callable[[], float]:
    weights = [float(i + 1) for i in range(len(MEMBERS))] if strategy is Strategy.WEIGHTED else None
    group = Group(MEMBERS, strategy, tuple(weights) if weights else None)
    balancer = Balancer(board_with_figures(), rng=random.Random(5))
    tenants = [TENANTS[i % len(TENANTS)] for i in range(CALLS)]
    for tenant in TENANTS:  # warm the per-tenant cache of `hash`
        balancer.order(group, tenant)

    def run() -> float:
        order, answered = balancer.order, balancer.answered
        start = time.perf_counter()
        if strategy is Strategy.ROUND_ROBIN:
            for tenant in tenants:
                answered(group, order(group, tenant)[0])
        else:
            for tenant in tenants:
                order(group, tenant)
        return (time.perf_counter() - start) / CALLS * 1e6

    return run


def baseline_run() -> Callable[[], float]:
    rng = random.Random(5)
    tenants = [TENANTS[i % len(TENANTS)] for i in range(CALLS)]

    def run() -> float:
        choice = rng.choice
        start = time.perf_counter()
        for _tenant in tenants:
            choice(MEMBERS)
        return (time.perf_counter() - start) / CALLS * 1e6

    return run


def cold_hash_us() -> float:
    group = Group(MEMBERS, Strategy.HASH)
    balancer = Balancer(HealthBoard())
    fresh = [f"cold-{i}" for i in range(5_000)]
    start = time.perf_counter()
    for tenant in fresh:
        balancer.order(group, tenant)
    return (time.perf_counter() - start) / len(fresh) * 1e6


def main() -> None:
    runs = {"random.choice (baseline)": baseline_run()}
    runs.update({s.value: strategy_run(s) for s in Strategy})
    samples: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(REPEATS):  # interleaved, so drift hits every strategy alike
        for name, run in runs.items():
            samples[name].append(run())
    medians = {name: statistics.median(values) for name, values in samples.items()}
    base = medians["random.choice (baseline)"]
    print(f"group of {len(MEMBERS)} members, {CALLS:,} calls x {REPEATS} runs, median (min-max)")
    for name, values in samples.items():
        print(
            f"  {name:26s} {medians[name]:6.3f} us  ({min(values):.3f}-{max(values):.3f})"
            f"  x{medians[name] / base:5.1f} baseline"
        )
    print(f"  hash, first call of a tenant (cache miss): {cold_hash_us():.3f} us")
    strategies = {s.value: medians[s.value] for s in Strategy}
    for name, value in strategies.items():
        print(f"group_select_us_{name}: {value:.3f}")
    print(f"group_select_us_max: {max(strategies.values()):.3f}")


if __name__ == "__main__":
    main()
