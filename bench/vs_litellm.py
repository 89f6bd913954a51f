"""Against LiteLLM's Router, on the same chaos upstream over loopback, in one run.

Usage: python bench/vs_litellm.py [--quick]

Route for both: an OpenAI-compatible primary, then an Anthropic fallback. LiteLLM as its
users configure it (num_retries=2, the fallback, cooldown_time=30), once with its default
allowed_fails and once with allowed_fails=4; ours with the same 3 attempts per target and
default policies otherwise. The chaos upstream runs in its own process (bench/_contenders.py).

1. Overhead: per-call time over a bare `openai` SDK call, healthy upstream, blocks of
   calls interleaved between the three clients after a warm-up; medians.
2. Outage: the primary answers 503. 100 tenants send 5 requests each, 20 tenants at a
   time. Calls wasted on the dead primary, client failures, latency p50/p99; then the
   primary comes back and one request every 0.25 s (rotating tenants) measures how long
   until the primary serves again.
3. Isolation: one tenant's key gets 429 with Retry-After: 5 from the primary on a burst of
   20 requests, while 50 other tenants send one request per second. Share of the others'
   requests pushed off the primary, and how long the noisy tenant waits for its answers.
"""

from __future__ import annotations

import asyncio
import gc
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._env import ensure_bench_venv

ensure_bench_venv()

from bench._contenders import (  # noqa: E402
    Ask,
    Chaos,
    bare_sdk,
    chaos_process,
    litellm_router,
    ours,
)
from bench._stats import headline, percentile  # noqa: E402

QUICK = "--quick" in sys.argv
OVERHEAD_BLOCKS = 4 if QUICK else 20
PER_BLOCK = 25 if QUICK else 100
TENANTS = 20 if QUICK else 100
AT_ONCE = 20
PER_TENANT = 2 if QUICK else 5
RECOVERY_CAP_S = 1.0 if QUICK else 45.0
ISOLATION_S = 3 if QUICK else 12
OTHERS = 10 if QUICK else 50
BURST = 20
CONTENDERS = ("ours", "litellm") if QUICK else ("ours", "litellm", "litellm_af4")
LABELS = {
    "ours": "ours",
    "litellm": "LiteLLM (default allowed_fails)",
    "litellm_af4": "LiteLLM (allowed_fails=4)",
}


async def contender(name: str, root: str, tenant_keys: dict[str, str] | None = None) -> Ask:
    """A fresh client (no state from an earlier scenario), warmed up on both targets."""
    if name == "ours":
        built = ours(root, tenant_keys)
    elif name == "bare":
        built = bare_sdk(root)
    else:
        allowed_fails = 4 if name == "litellm_af4" else None
        built = litellm_router(root, allowed_fails=allowed_fails, tenant_keys=tenant_keys)
    await built.warm()
    return built.ask


# -- 1. overhead ----------------------------------------------------------------------------


async def overhead(chaos: Chaos) -> dict[str, float]:
    asks = {name: await contender(name, chaos.root) for name in ("bare", "ours", "litellm")}
    for ask in asks.values():  # warm-up: imports, pools, caches
        for _ in range(50):
            await ask("t0")
    times: dict[str, list[float]] = {name: [] for name in asks}
    order = list(asks)
    for block in range(OVERHEAD_BLOCKS):
        for name in order if block % 2 == 0 else reversed(order):
            for _ in range(PER_BLOCK):
                start = time.perf_counter()
                await asks[name]("t0")
                times[name].append(time.perf_counter() - start)
    medians = {name: statistics.median(t) * 1e6 for name, t in times.items()}
    print(f"overhead: {len(times['bare'])} calls each, {OVERHEAD_BLOCKS} interleaved blocks")
    for name in asks:
        ratio = medians[name] / medians["bare"]
        print(f"  {name:<8} median {medians[name]:8.1f} us   ratio vs bare SDK {ratio:.3f}")
    return medians


# -- 2. outage ------------------------------------------------------------------------------


def settle_heap() -> None:
    """Collect, then freeze what survives: everything built so far (LiteLLM's large module
    graph included) leaves the collector's view, so a full collection cannot land inside
    the measured window as a pause of hundreds of milliseconds. Done alike for every
    contender; long-lived services do the same after start-up (`gc.freeze`)."""
    gc.collect()
    gc.freeze()


async def outage(chaos: Chaos, name: str) -> dict[str, float]:
    await chaos.reset()
    settle_heap()
    ask = await contender(name, chaos.root)
    for i in range(AT_ONCE):  # it has been serving before the outage
        await ask(f"tenant-{i:03d}")
    await chaos.reset()
    await chaos.fault({"status": 503}, upstream="primary")
    latencies: list[float] = []
    failures = 0
    gate = asyncio.Semaphore(AT_ONCE)

    async def tenant(index: int) -> None:
        nonlocal failures
        async with gate:
            for _ in range(PER_TENANT):
                start = time.perf_counter()
                try:
                    await ask(f"tenant-{index:03d}")
                except Exception:
                    failures += 1
                latencies.append(time.perf_counter() - start)

    await asyncio.gather(*(tenant(i) for i in range(TENANTS)))
    wasted = sum(1 for h in await chaos.hits() if h["upstream"] == "primary")
    await chaos.clear_faults()
    back = time.perf_counter()
    recovery = RECOVERY_CAP_S
    probe = 0
    while time.perf_counter() - back < RECOVERY_CAP_S:
        probe += 1
        try:
            if await ask(f"tenant-{probe % TENANTS:03d}") == "primary":
                recovery = time.perf_counter() - back
                break
        except Exception:
            pass
        await asyncio.sleep(0.25)
    figures = {
        "wasted": float(wasted),
        "failures": float(failures),
        "p50_ms": percentile(latencies, 50) * 1000,
        "p99_ms": percentile(latencies, 99) * 1000,
        "recovery_s": recovery,
    }
    capped = " (cap: not yet)" if recovery >= RECOVERY_CAP_S else ""
    print(
        f"  {LABELS[name]:<32} wasted {wasted:>4}   failures {failures:>3}   "
        f"p50 {figures['p50_ms']:8.1f} ms   p99 {figures['p99_ms']:8.1f} ms   "
        f"primary serves again after {recovery:5.1f} s{capped}"
    )
    return figures


# -- 3. isolation ---------------------------------------------------------------------------


class StallWatch:
    """The longest time the event loop was blocked while it ran: one stall delays every
    request in flight alike, so a short wait figure is read against it."""

    def __init__(self) -> None:
        self.longest_s = 0.0
        self._task: asyncio.Task[None] | None = None

    async def _watch(self) -> None:
        while True:
            before = time.perf_counter()
            await asyncio.sleep(0.01)
            self.longest_s = max(self.longest_s, time.perf_counter() - before - 0.01)

    def __enter__(self) -> StallWatch:
        self._task = asyncio.get_running_loop().create_task(self._watch())
        return self

    def __exit__(self, *exc: object) -> None:
        if self._task is not None:
            self._task.cancel()


async def isolation(chaos: Chaos, name: str) -> dict[str, float]:
    await chaos.reset()
    settle_heap()
    ask = await contender(name, chaos.root, tenant_keys={"noisy": "noisy-key"})
    await chaos.fault({"status": 429, "retry_after": "5"}, upstream="primary", api_key="noisy-key")
    answered: list[str] = []
    noisy_waits: list[float] = []
    start = time.perf_counter()

    async def other(index: int) -> None:
        for second in range(ISOLATION_S):
            delay = start + second + index / OTHERS - time.perf_counter()
            await asyncio.sleep(max(delay, 0.0))
            try:
                answered.append(await ask(f"other-{index:03d}"))
            except Exception:
                answered.append("failed")

    async def noisy() -> None:
        began = time.perf_counter()
        try:
            await ask("noisy")
        finally:
            noisy_waits.append(time.perf_counter() - began)

    async def burst() -> None:
        await asyncio.sleep(1.0)
        await asyncio.gather(*(noisy() for _ in range(BURST)), return_exceptions=True)

    with StallWatch() as watch:
        await asyncio.gather(burst(), *(other(i) for i in range(OTHERS)))
    pushed = 100 * sum(1 for a in answered if a != "primary") / len(answered)
    figures = {
        "pushed_off_pct": pushed,
        "noisy_wait_p50_s": statistics.median(noisy_waits),
        "noisy_wait_max_s": max(noisy_waits),
        "loop_stall_ms": watch.longest_s * 1000,
    }
    print(
        f"  {LABELS[name]:<32} others pushed off primary {pushed:5.1f}% of {len(answered)}   "
        f"noisy tenant waits p50 {figures['noisy_wait_p50_s']:.2f} s, "
        f"max {figures['noisy_wait_max_s']:.2f} s   longest loop stall "
        f"{figures['loop_stall_ms']:.0f} ms"
    )
    return figures


async def main() -> None:
    import importlib.metadata

    print(f"litellm {importlib.metadata.version('litellm')}, chaos upstream in its own process\n")
    async with chaos_process() as chaos:
        medians = await overhead(chaos)
        print(f"\noutage: {TENANTS} tenants x {PER_TENANT} requests, {AT_ONCE} tenants at a time")
        outages = {name: await outage(chaos, name) for name in CONTENDERS}
        print(f"\nisolation: burst of {BURST} 429s (Retry-After: 5) vs {OTHERS} tenants at 1/s")
        isolations = {name: await isolation(chaos, name) for name in CONTENDERS}
    ours_wasted = outages["ours"]["wasted"]
    print()
    for name in CONTENDERS[1:]:
        ratio = ours_wasted / max(outages[name]["wasted"], 1)
        print(f"ratio wasted calls ours / {LABELS[name]}: {ratio:.3f}")
    figures: dict[str, float] = {
        "ours_overhead_ratio": medians["ours"] / medians["bare"],
        "litellm_overhead_ratio": medians["litellm"] / medians["bare"],
        "bare_sdk_call_us": medians["bare"],
    }
    for name in CONTENDERS:
        out, iso = outages[name], isolations[name]
        figures[f"outage_wasted_calls_{name}"] = out["wasted"]
        figures[f"outage_failures_{name}"] = out["failures"]
        figures[f"outage_p50_ms_{name}"] = out["p50_ms"]
        figures[f"outage_p99_ms_{name}"] = out["p99_ms"]
        figures[f"outage_recovery_s_{name}"] = out["recovery_s"]
        figures[f"isolation_pushed_off_pct_{name}"] = iso["pushed_off_pct"]
        figures[f"isolation_noisy_wait_p50_s_{name}"] = iso["noisy_wait_p50_s"]
        figures[f"isolation_noisy_wait_max_s_{name}"] = iso["noisy_wait_max_s"]
        figures[f"isolation_loop_stall_ms_{name}"] = iso["loop_stall_ms"]
    headline(figures)


if __name__ == "__main__":
    asyncio.run(main())
