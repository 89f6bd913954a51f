"""Soak: the gateway under long load with every fault kind, a database outage and SIGTERM.

Usage: python bench/soak.py [--quick]

The long form of `tests/hardening/test_load.py` (same harness, `tests/support/load.py`):
500 concurrent clients (half streaming) for 60 s against the chaos upstream with 30% of
upstream requests faulted, spread over all 15 fault kinds; the audit database is a
PostgreSQL cluster of the run's own, stopped for 30 s a third of the way in, and breakers are
shared through a Redis server of the run's own, killed for 20 s halfway in. Then a second
run with SIGTERM halfway and a restart on the same database and spool. Prints what the
README's Reliability section quotes. The baseline is the run's own warm-up: memory, file
descriptors and tasks after warm-up against the same after the run.
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.support.load import LoadPlan, LoadReport, run_load

QUICK = "--quick" in sys.argv
LOAD = (
    LoadPlan(
        clients=50,
        duration_s=6,
        postgres=True,
        postgres_outage_s=2,
        redis=True,
        redis_outage_s=1.5,
    )
    if QUICK
    else LoadPlan(
        clients=500,
        duration_s=60,
        postgres=True,
        postgres_outage_s=30,
        redis=True,
        redis_outage_s=20,
    )
)
SIGTERM = (
    LoadPlan(clients=50, duration_s=6, sigterm_at_s=3)
    if QUICK
    else LoadPlan(clients=200, duration_s=30, sigterm_at_s=15)
)


async def run(plan: LoadPlan) -> tuple[LoadReport, float]:
    with tempfile.TemporaryDirectory(prefix="resilience-soak-") as workdir:
        started = time.monotonic()
        report = await run_load(plan, Path(workdir))
        return report, time.monotonic() - started


def main() -> None:
    load, load_s = asyncio.run(run(LOAD))
    print(
        f"load: {LOAD.clients} clients, {LOAD.duration_s:.0f} s, database down "
        f"{LOAD.postgres_outage_s:.0f} s, Redis (shared breakers) down "
        f"{LOAD.redis_outage_s:.0f} s ({load_s:.0f} s with set-up)"
    )
    for line in load.lines():
        print("  " + line)
    stop, stop_s = asyncio.run(run(SIGTERM))
    print(
        f"sigterm: {SIGTERM.clients} clients, SIGTERM at {SIGTERM.sigterm_at_s:.0f} s, "
        f"gateway exited in {stop.gateway_exit_s or 0:.1f} s, restarted ({stop_s:.0f} s)"
    )
    for line in stop.lines():
        print("  " + line)
    print(f"  requests turned away while stopped: {stop.refused_after_sigterm}")
    rss_ratio = load.rss_end_kib / load.rss_warm_kib if load.rss_warm_kib else 0.0
    print(f"memory after the run / after warm-up: {rss_ratio:.3f}")
    print(f"soak_requests: {load.requests + stop.requests}")
    faults = sum(load.faults_injected.values()) + sum(stop.faults_injected.values())
    print(f"soak_faults_injected: {faults}")
    print(f"soak_5xx_returned: {load.server_errors + stop.server_errors}")
    print(f"soak_unclean_endings: {sum(load.unclean.values()) + sum(stop.unclean.values())}")
    print(f"soak_audit_events_lost: {load.audit_lost + stop.audit_lost}")
    print(f"soak_peak_rss_mib: {max(load.rss_peak_kib, stop.rss_peak_kib) / 1024:.1f}")
    print(f"soak_rss_end_over_warm: {rss_ratio:.3f}")


if __name__ == "__main__":
    main()
