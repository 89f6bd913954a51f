"""Each benchmark command runs in its shortest mode and ends with its headline figures."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
STRATEGIES = ("priority", "round_robin", "weighted", "least_latency", "least_busy", "hash")
EXACT = {
    "half_open_upstream_calls": 1.0,
    "events_per_trip": 1.0,
    "kill9_audit_lost": 0.0,
    "kill9_usage_lost": 0.0,
    "kill9_duplicates": 0.0,
}
"""Counts, not timings: what our breaker promises, whatever the machine."""


@pytest.mark.parametrize(
    ("script", "names"),
    [
        ("client_overhead.py", ["bare_sdk_us", "resilient_client_us", "ratio_vs_bare_sdk"]),
        ("breaker.py", ["breaker_us_per_call", "breaker_us_per_call_1_key", "ratio_vs_pybreaker"]),
        ("concurrency.py", ["half_open_upstream_calls", "events_per_trip"]),
        ("outage_scale.py", ["scale_wasted_calls_provider_wide", "scale_recovery_s_provider_wide"]),
        ("retry_storm.py", ["retry_storm_calls_per_request_budget"]),
        (
            "vs_litellm.py",
            ["ours_overhead_ratio", "litellm_overhead_ratio", "outage_wasted_calls_ours"],
        ),
        (
            "audit.py",
            ["emit_us", "usage_emit_us", "postgres_events_per_s", "sqlite_events_per_s"],
        ),
        ("crash.py", ["kill9_audit_lost", "kill9_usage_lost", "kill9_duplicates"]),
        (
            "groups.py",
            [*(f"group_select_us_{s}" for s in STRATEGIES), "group_select_us_max"],
        ),
        (
            "redis_store.py",
            [
                "redis_vs_memory_allow_ratio",
                "dead_provider_calls_1_proc",
                "dead_provider_calls_4_procs",
            ],
        ),
        (
            "gateway.py",
            [
                "added_latency_p50_ms",
                "added_latency_p99_ms",
                "added_ttfb_p50_ms",
                "cross_format_added_latency_p50_ms",
                "gateway_rps_one_worker",
                "bare_proxy_added_latency_p50_ms",
                "httpx2_proxy_added_latency_p50_ms",
                "middleware_throughput_ratio",
            ],
        ),
        (
            "bulkhead.py",
            [
                "quiet_tenant_added_p99_ms",
                "first_wave_calls_dead_provider",
                "fair_share_max_deviation",
                "healthy_throughput_ratio",
            ],
        ),
    ],
)
def test_bench_command_prints_its_figures(script: str, names: list[str]) -> None:
    done = subprocess.run(
        [sys.executable, str(ROOT / "bench" / script), "--quick"],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=1200,  # the first run builds bench/.venv with the competitors
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    figures = _figures(done.stdout)
    assert set(names) <= set(figures), figures
    for name, value in EXACT.items():
        if name in figures:
            assert figures[name] == value, (name, figures[name])


def _figures(stdout: str) -> dict[str, float]:
    """The closing block: the trailing lines of the form `name: value`."""
    block: list[str] = []
    for line in reversed(stdout.strip().splitlines()):
        if not re.fullmatch(r"[a-z0-9_]+: -?[0-9.]+", line):
            break
        block.append(line)
    assert block, stdout[-2000:]
    return {name: float(value) for name, value in (line.split(": ") for line in reversed(block))}


def test_report_gives_median_with_range_and_goal_verdicts() -> None:
    from bench._report import Command, Goal, render

    command = Command("x.py", "X", runs=[{"a_ms": 3.0}, {"a_ms": 1.0}, {"a_ms": 2.0}])
    goals = [
        Goal("a", "a_ms", lambda v: v <= 2, "≤ 2"),
        Goal("b", "b_ms", lambda v: v <= 2, "≤ 2"),
    ]
    text = render([command], goals, started="now", minutes=1.0, load=("0", "0"), notes="N")
    assert "| `a_ms` | 2 (1 to 3) |" in text
    assert "| a | `a_ms` | 2 (1 to 3) | ≤ 2 | met |" in text
    assert "| b | `b_ms` | not measured | ≤ 2 |  |" in text
    assert text.rstrip().endswith("N")
