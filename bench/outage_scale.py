"""Outage at scale, simulated: 1,000 tenants lose their primary provider for a minute.

Usage: python bench/outage_scale.py [--quick] [--plot PATH]

The real `ResilientClient` runs in virtual time (bench/_sim.py, no network): 1,000
tenants send Poisson traffic (0.2 requests/s each, 200/s in all) on the route
primary -> fallback; the primary fails every call with a 503 from t=60 s to t=120 s.
The same run is made with provider-wide opening off (each tenant's breaker must find the
outage alone) and on (the default: three tenants' breakers open it for everyone).

Figures: calls wasted on the dead primary (every failed call during the outage, probes
included), seconds until fewer than 1% of requests still try it, seconds after it comes
back until it serves 95% of requests again, and client requests that failed. The plot
shows calls per second per provider and the breakers' states over time.

False trips: the same fleet on a primary that never goes down but answers 1% of its calls
with a 500 (bad luck, not an outage), provider-wide on, at the scenario's latency and at
3 s per answer (600 calls in flight, so every failure has many answers to older calls
around it): the provider-wide gate must never open.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._env import ensure_bench_venv

ensure_bench_venv()

from bench._sim import Record, Scenario, simulate  # noqa: E402
from bench._stats import headline, percentile  # noqa: E402

QUICK = "--quick" in sys.argv
PLOT = Path(sys.argv[sys.argv.index("--plot") + 1]) if "--plot" in sys.argv else None
BASE = Scenario(tenants=200, rate_per_tenant=1.0, end=180.0) if QUICK else Scenario()


def detection_s(record: Record, s: Scenario) -> float:
    """Seconds from the outage until fewer than 1% of a second's requests still try the primary."""
    for second in range(int(s.outage_start), int(s.outage_end)):
        failed = record.calls[(second, "primary_failed")]
        if failed <= 0.01 * max(record.requests[second], 1):
            return second + 1 - s.outage_start
    return s.outage_end - s.outage_start


def recovery_s(record: Record, s: Scenario) -> float:
    """Seconds from the primary's return until it serves 95% of a second's calls."""
    for second in range(int(s.outage_end), int(s.end)):
        ok = record.calls[(second, "primary_ok")]
        if ok >= 0.95 * (ok + record.calls[(second, "fallback")]) and ok > 0:
            return second - s.outage_end
    return s.end - s.outage_end


def report(name: str, record: Record, s: Scenario) -> dict[str, float]:
    wasted = record.total("primary_failed", s.outage_start, s.outage_end)
    figures = {
        "wasted": float(wasted),
        "detection_s": detection_s(record, s),
        "recovery_s": recovery_s(record, s),
        "failed_requests": float(record.failed_requests),
        "p50_ms": percentile(record.latencies, 50) * 1000,
        "p99_ms": percentile(record.latencies, 99) * 1000,
    }
    print(
        f"{name:<22} wasted calls {wasted:>6}   all stopped after {figures['detection_s']:>4.0f} s"
        f"   recovered {figures['recovery_s']:>4.0f} s after return"
        f"   failed requests {record.failed_requests}"
        f"   latency p50 {figures['p50_ms']:.0f} ms, p99 {figures['p99_ms']:.0f} ms"
    )
    return figures


def plot(runs: dict[str, Record], s: Scenario, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(len(runs), 1, figsize=(10, 3.6 * len(runs)), sharex=True)
    seconds = list(range(int(s.end)))
    for ax, (title, record) in zip(axes, runs.items(), strict=True):
        for kind, colour in (
            ("primary_ok", "tab:blue"),
            ("primary_failed", "tab:red"),
            ("fallback", "tab:green"),
        ):
            ax.plot(seconds, [record.calls[(t, kind)] for t in seconds], label=kind, color=colour)
        ax.axvspan(s.outage_start, s.outage_end, color="grey", alpha=0.12, label="primary down")
        ax.set_ylabel("upstream calls / s")
        ax.set_title(title)
        states = ax.twinx()
        states.plot(
            seconds,
            [record.open_tenants.get(t, 0) for t in seconds],
            color="tab:purple",
            linestyle="--",
            label="tenant breakers not closed",
        )
        states.fill_between(
            seconds,
            0,
            [s.tenants if record.gate_open.get(t) else 0 for t in seconds],
            color="tab:orange",
            alpha=0.15,
            step="post",
            label="provider-wide breaker not closed",
        )
        states.set_ylim(0, s.tenants * 1.05)
        states.set_ylabel("breakers (of tenants)")
        lines = ax.get_legend_handles_labels()
        more = states.get_legend_handles_labels()
        ax.legend(lines[0] + more[0], lines[1] + more[1], loc="upper right", fontsize=7)
    axes[-1].set_xlabel("seconds (virtual time)")
    fig.suptitle(
        f"{s.tenants:,} tenants, {s.tenants * s.rate_per_tenant:.0f} requests/s, "
        "primary down from 60 s to 120 s"
    )
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    print(f"plot: {path}")


async def main() -> None:
    s = BASE
    print(
        f"{s.tenants:,} tenants x {s.rate_per_tenant} requests/s, primary down "
        f"{s.outage_start:.0f}-{s.outage_end:.0f} s, default policies, virtual time\n"
    )
    off = Scenario(**{**BASE.__dict__, "provider_wide": False})
    runs = {
        "provider-wide off": await simulate(off),
        "provider-wide on (default)": await simulate(s),
    }
    per_tenant = report("provider-wide off", runs["provider-wide off"], off)
    wide = report("provider-wide on", runs["provider-wide on (default)"], s)
    print(f"\nratio wasted calls on/off: {wide['wasted'] / per_tenant['wasted']:.3f}")
    healthy = Scenario(
        **{**BASE.__dict__, "outage_start": BASE.end, "outage_end": BASE.end, "error_rate": 0.01}
    )
    false_trips: dict[str, int] = {}
    for label, latency in (("", healthy.latency_s), ("_slow", 3.0)):
        scenario = Scenario(**{**healthy.__dict__, "latency_s": latency})
        record = await simulate(scenario)
        false_trips[label] = record.gate_opens
        errors = record.total("primary_failed", 0, scenario.end)
        print(
            f"healthy, 1% 500s, {latency:.1f} s per answer: provider-wide gate opened "
            f"{record.gate_opens} times   ({errors} calls answered with a 500, "
            f"failed requests {record.failed_requests})"
        )
    if PLOT is not None:
        plot(runs, s, PLOT)
    headline(
        {
            "scale_wasted_calls_provider_wide": wide["wasted"],
            "scale_wasted_calls_per_tenant_only": per_tenant["wasted"],
            "scale_stopped_s_provider_wide": wide["detection_s"],
            "scale_stopped_s_per_tenant_only": per_tenant["detection_s"],
            "scale_recovery_s_provider_wide": wide["recovery_s"],
            "scale_recovery_s_per_tenant_only": per_tenant["recovery_s"],
            "scale_failed_requests_provider_wide": wide["failed_requests"],
            "scale_failed_requests_per_tenant_only": per_tenant["failed_requests"],
            "scale_false_trips_healthy_1pct": false_trips[""],
            "scale_false_trips_healthy_1pct_slow": false_trips["_slow"],
        }
    )


if __name__ == "__main__":
    asyncio.run(main())
