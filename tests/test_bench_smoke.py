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


@pytest.mark.parametrize(
    ("script", "names"),
    [
        ("client_overhead.py", ["bare_sdk_us", "resilient_client_us", "ratio_vs_bare_sdk"]),
        ("audit.py", ["emit_us", "postgres_events_per_s", "sqlite_events_per_s"]),
        (
            "groups.py",
            [*(f"group_select_us_{s}" for s in STRATEGIES), "group_select_us_max"],
        ),
        (
            "gateway.py",
            ["added_latency_p50_ms", "added_latency_p99_ms", "middleware_throughput_ratio"],
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
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    tail = done.stdout.strip().splitlines()[-len(names) :]
    assert [line.split(":")[0] for line in tail] == names
    assert all(re.fullmatch(r"[a-z0-9_]+: -?[0-9.]+", line) for line in tail)
