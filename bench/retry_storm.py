"""Retry storm: the simulated outage of bench/outage_scale.py with our retry budget on and off.

Usage: python bench/retry_storm.py [--quick]

Upstream calls (primary and fallback) per client request while the primary is down,
over the whole outage and over its first 10 s (before breakers have caught up, when
retries multiply load the most). "Off" is a budget that never runs out; everything else
is the default policy (3 attempts per target, provider-wide opening on).

Two fleets with the same 200 requests/s: 1,000 light tenants (0.2/s each, the
outage_scale fleet) and 10 heavy ones (20/s each). The budget is per (tenant, provider)
with a floor of 10 retries, so it bites on heavy pairs and not on light ones.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._env import ensure_bench_venv

ensure_bench_venv()

from bench._sim import Record, Scenario, simulate  # noqa: E402
from bench._stats import headline  # noqa: E402

QUICK = "--quick" in sys.argv
END = 150.0 if QUICK else 240.0
FLEETS = {
    "light": Scenario(tenants=200 if QUICK else 1_000, rate_per_tenant=0.2, end=END),
    "heavy": Scenario(tenants=10, rate_per_tenant=20.0, end=END),
}
EARLY_S = 10.0


def calls_per_request(record: Record, start: float, end: float) -> float:
    calls = sum(record.total(k, start, end) for k in ("primary_ok", "primary_failed", "fallback"))
    return calls / max(record.requests_in(start, end), 1)


async def main() -> None:
    print(f"primary down 60-120 s; upstream calls per client request (first {EARLY_S:.0f} s)\n")
    figures: dict[str, float] = {}
    for fleet, base in FLEETS.items():
        ratios: dict[bool, float] = {}
        for budget in (True, False):
            s = Scenario(**{**base.__dict__, "budget": budget})
            record = await simulate(s)
            whole = calls_per_request(record, s.outage_start, s.outage_end)
            early = calls_per_request(record, s.outage_start, s.outage_start + EARLY_S)
            wasted = record.total("primary_failed", s.outage_start, s.outage_end)
            ratios[budget] = whole
            switch = "on" if budget else "off"
            label = f"{fleet} fleet ({s.tenants} x {s.rate_per_tenant}/s), budget {switch}"
            print(
                f"{label:<42} whole outage {whole:.3f}   first {EARLY_S:.0f} s {early:.3f}"
                f"   wasted primary calls {wasted}   failed requests {record.failed_requests}"
            )
            suffix = "budget" if budget else "no_budget"
            figures[f"retry_storm_calls_per_request_{suffix}_{fleet}"] = whole
            figures[f"retry_storm_early_calls_per_request_{suffix}_{fleet}"] = early
        print(f"{fleet} fleet: ratio budget on/off {ratios[True] / ratios[False]:.3f}\n")
    headline(
        {
            "retry_storm_calls_per_request_budget": figures[
                "retry_storm_calls_per_request_budget_light"
            ],
            "retry_storm_calls_per_request_no_budget": figures[
                "retry_storm_calls_per_request_no_budget_light"
            ],
            **figures,
        }
    )


if __name__ == "__main__":
    asyncio.run(main())
