"""Run every benchmark command and write bench/RESULTS.md (what `bench/run` does).

Usage: bench/run [--quick] [--out PATH]

Each command runs in bench/.venv (built on first use), one after the other so they never
compete for the 2 cores. Timed commands run two or three times and each figure is
reported as median with min-max over those runs; the comparison against LiteLLM runs
once (each of its figures aggregates hundreds of calls) and the simulations once (they
are deterministic). About 16 minutes on the 2-core machine. `--quick` runs every command
in its shortest mode once: a smoke run of the whole pipeline.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._env import ensure_bench_venv

ensure_bench_venv()

from bench._report import Command, Goal, render, write  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
QUICK = "--quick" in sys.argv
OUT = ROOT / "bench" / "RESULTS.md"
if "--out" in sys.argv:
    OUT = Path(sys.argv[sys.argv.index("--out") + 1]).resolve()
PLOT = "/tmp/bench-quick-outage_scale.png" if QUICK else "docs/outage_scale.png"

SIMULATED = "Virtual time with a fixed seed: every run gives the same figures, so one is enough."
COMMANDS = [
    Command("breaker.py", "1. Breaker cost per call, and memory per breaker"),
    Command("concurrency.py", "2. Breaker correctness under concurrency", repeats=2),
    Command(
        "vs_litellm.py",
        "3. Against LiteLLM's Router on the chaos upstream",
        repeats=1,
        why="Once (4-5 minutes): each figure already aggregates hundreds of calls.",
    ),
    Command(
        "outage_scale.py",
        "4. Outage at scale (simulated)",
        ("--plot", PLOT),
        repeats=1,
        why=SIMULATED,
    ),
    Command(
        "retry_storm.py", "5. Retry storm, budget on and off (simulated)", repeats=1, why=SIMULATED
    ),
    Command("client_overhead.py", "Client overhead over a bare SDK call, in-process"),
    Command("audit.py", "Audit trail write cost", repeats=2),
    Command(
        "crash.py",
        "kill -9 of the gateway under load: audit and usage rows lost or doubled",
        repeats=1,
        why="Once: the figures are counts, each over every row of the run.",
    ),
    Command("gateway.py", "Gateway latency, throughput and middleware throughput", repeats=2),
    Command(
        "redis_store.py",
        "Shared breakers on Redis: hot path, failures, a dead provider over 4 processes",
        repeats=1,
        why="Once: the dead-provider figures are already medians of 7 runs each.",
    ),
    Command(
        "bulkhead.py",
        "Bulkheads: a quiet tenant beside a slow noisy one, the first wave, fair shares",
        repeats=2,
        why="Twice (about 2 minutes each): every figure is measured beside its baseline.",
    ),
]

GOALS = [
    Goal(
        "Redis store: allow-check vs memory",
        "redis_vs_memory_allow_ratio",
        lambda v: v <= 1.5,
        "≤ 1.5",
    ),
    Goal("breaker cost vs pybreaker, 100k keys", "ratio_vs_pybreaker", lambda v: v <= 0.6, "≤ 0.6"),
    Goal("vs circuitbreaker (fastest of all)", "ratio_vs_circuitbreaker", lambda v: v < 1, "< 1"),
    Goal("vs aiobreaker (fastest of all)", "ratio_vs_aiobreaker", lambda v: v < 1, "< 1"),
    Goal("vs purgatory (fastest of all)", "ratio_vs_purgatory", lambda v: v < 1, "< 1"),
    Goal("half-open: herd reaching upstream", "half_open_upstream_calls", lambda v: v == 1, "= 1"),
    Goal("1,000 concurrent failures: events", "events_per_trip", lambda v: v == 1, "= 1"),
    Goal("overhead over bare SDK (loopback)", "ours_overhead_ratio", lambda v: v <= 1.05, "≤ 1.05"),
    Goal("outage: calls on dead primary", "outage_wasted_calls_ours", lambda v: v <= 20, "≤ 20"),
    Goal("outage: client failures", "outage_failures_ours", lambda v: v == 0, "0"),
    Goal("outage: latency p50", "outage_p50_ms_ours", lambda v: v <= 50, "≤ 50 ms"),
    Goal("isolation: others pushed off", "isolation_pushed_off_pct_ours", lambda v: v == 0, "0 %"),
    Goal(
        "isolation: noisy tenant's wait (p50)",
        "isolation_noisy_wait_p50_s_ours",
        lambda v: v <= 0.5,
        "at once: no Retry-After wait (≤ 0.5 s)",
    ),
    Goal(
        "1,000 tenants: wasted, provider-wide on",
        "scale_wasted_calls_provider_wide",
        lambda v: v <= 50,
        "≤ 50",
    ),
    Goal(
        "1,000 tenants: healthy provider (1% 500s), gate opens",
        "scale_false_trips_healthy_1pct",
        lambda v: v == 0,
        "0",
    ),
    Goal(
        "same, 3 s answers",
        "scale_false_trips_healthy_1pct_slow",
        lambda v: v == 0,
        "0",
    ),
    Goal(
        "breaker memory",
        "bytes_per_breaker",
        lambda v: v <= 400,
        "≤ 400 B, the lightest",
    ),
    Goal("audit: emit() per transition, journaled", "emit_us", lambda v: v <= 5, "≤ 5 µs"),
    Goal("audit: emit_usage() per call", "usage_emit_us", lambda v: v <= 10, "≤ 10 µs"),
    Goal("kill -9 under load: audit rows lost", "kill9_audit_lost", lambda v: v == 0, "0"),
    Goal("kill -9 under load: usage rows lost", "kill9_usage_lost", lambda v: v == 0, "0"),
    Goal("kill -9 under load: rows doubled", "kill9_duplicates", lambda v: v == 0, "0"),
    Goal("gateway: added latency p50", "added_latency_p50_ms", lambda v: v <= 1.0, "≤ 1.0 ms"),
    Goal("gateway: added latency p99", "added_latency_p99_ms", lambda v: v <= 3.0, "≤ 3.0 ms"),
    Goal("gateway: added time to first event", "added_ttfb_p50_ms", lambda v: v <= 1.0, "≤ 1.0 ms"),
    Goal(
        "bulkheads: quiet tenant's added p99, 400 slow calls beside",
        "quiet_tenant_added_p99_ms",
        lambda v: v <= 50,
        "≤ 50 ms",
    ),
    Goal(
        "bulkheads: first wave on a dead provider, of 200",
        "first_wave_calls_dead_provider",
        lambda v: v <= 25,
        "≤ 25",
    ),
    Goal(
        "bulkheads: fair share, max deviation from a third",
        "fair_share_max_deviation",
        lambda v: v <= 0.10,
        "≤ 0.10",
    ),
    Goal(
        "bulkheads: healthy throughput, on over off",
        "healthy_throughput_ratio",
        lambda v: v >= 0.97,
        "≥ 0.97",
    ),
    Goal(
        "retry storm: calls per request, budget on",
        "retry_storm_calls_per_request_budget",
        lambda v: v <= 1.2,
        "≤ 1.2",
    ),
]


def figures(stdout: str) -> dict[str, float]:
    """The closing block of `name: value` lines."""
    found: dict[str, float] = {}
    for line in reversed(stdout.strip().splitlines()):
        name, sep, value = line.partition(": ")
        if not sep or not line.strip():
            break
        try:
            found[name] = float(value)
        except ValueError:
            break
    return dict(reversed(found.items()))


def run(command: Command) -> None:
    argv = [sys.executable, str(ROOT / "bench" / command.script), *command.args]
    if QUICK:
        argv.append("--quick")
    start = time.perf_counter()
    done = subprocess.run(
        argv,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        check=False,
    )
    command.seconds.append(time.perf_counter() - start)
    if done.returncode != 0:
        print(done.stdout[-3000:], done.stderr[-3000:], sep="\n", file=sys.stderr)
        raise SystemExit(f"bench/{command.script} failed with exit code {done.returncode}")
    command.runs.append(figures(done.stdout))
    command.output = done.stdout


def load() -> str:
    return " / ".join(f"{value:.2f}" for value in os.getloadavg()) + " (1 / 5 / 15 min)"


def main() -> None:
    started = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    load_before = load()
    begin = time.perf_counter()
    for command in COMMANDS:
        repeats = 1 if QUICK else command.repeats
        for number in range(1, repeats + 1):
            print(f"bench/run: {command.script} ({number}/{repeats})", flush=True)
            run(command)
    minutes = (time.perf_counter() - begin) / 60
    load_after = load()
    notes = (ROOT / "bench" / "NOTES.md").read_text(encoding="utf-8")
    text = render(
        COMMANDS,
        GOALS,
        started=started,
        minutes=minutes,
        load=(load_before, load_after),
        notes=notes,
    )
    write(OUT, text)
    print(f"bench/run: wrote {OUT.relative_to(ROOT) if OUT.is_relative_to(ROOT) else OUT}")
    print(f"bench/run: {minutes:.1f} minutes")


if __name__ == "__main__":
    main()
