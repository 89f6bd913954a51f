"""Bulkheads: a quiet tenant beside a slow noisy one, the first wave against a dead provider,
fair shares of a full provider, and what the gates cost a healthy one.

Usage: python bench/bulkhead.py [--quick]

Every server is its own process on loopback: the chaos upstream (`resilience chaos`) and
three gateways (`resilience serve`, one uvicorn worker each) on one config but for
`[bulkhead]`: `on` (the defaults), `off` (`enabled = false`: only the providers' connection
pools of 200 limit anything, as before bulkheads), and `fixed` (a limit that cannot move,
for fairness). Each figure is measured beside its baseline in the same run:

1. Quiet tenant. `globex` sends one request at a time, `RATE` a second, first alone, then
   while the noisy tenant `acme` keeps `NOISY_CALLS` requests open at the gateway (each
   re-sent as soon as it ends, answered or refused), whose upstream answers take `SLOW_S`
   (the chaos upstream slows the calls made with acme's own upstream key). acme's load runs
   in a process of its own, so its client work does not delay globex's client.
   `quiet_tenant_added_p99_ms` is globex's p99 beside acme minus its p99 alone, on `on`;
   `..._off` the same on `off` (the issue's "7 s").
2. First wave. `WAVE` simultaneous requests of one tenant to a provider that answers 503 to
   everything; `first_wave_calls_dead_provider` is the calls the upstream received (on
   `on`); `..._off` the same on `off`.
3. Fairness. Three tenants each keep 5x the `fixed` gateway's limit of requests open for
   `FAIR_S`, on a provider answering in `FAIR_LATENCY_S`; each tenant's share of the
   answers. `fair_share_max_deviation` is max |share - 1/3| / (1/3).
4. Healthy throughput. A closed loop of `HEALTHY_CONCURRENCY` requests (more than the
   adaptive limit's start of 20, so it has to grow) on a provider answering in
   `HEALTHY_LATENCY_S`, rounds alternating between `on` and `off`; median requests per
   second of each. `healthy_throughput_ratio` is on over off.

On a 2-core machine the load generators, the gateways and the upstream share the cores;
latency figures there include waiting for a core.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import multiprocessing
import statistics
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator, Mapping
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx2

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._http_timing import cpu_seconds
from bench._stats import headline, percentile
from bench.gateway import PYTHON, Running, free_port, server

QUICK = "--quick" in sys.argv
RATE = 25
"""The quiet tenant's requests per second (one at a time)."""
NOISY_CALLS = 400
SLOW_S = 2.0 if QUICK else 4.0
RAMP_S = 1.0 if QUICK else 3.0
"""From the gateway holding the noisy load to the quiet tenant's first measured request."""
WINDOW_S = 3.0 if QUICK else 10.0
WAVE = 200
FAIR_LIMIT = 12
FAIR_LATENCY_S = 0.25
FAIR_S = 3.0 if QUICK else 10.0
HEALTHY_CONCURRENCY = 64
HEALTHY_LATENCY_S = 0.05
ROUNDS = 2 if QUICK else 8
ROUND_S = 1.0 if QUICK else 2.0
FAIR_TENANTS = ("t1", "t2", "t3")
TENANTS = ("acme", "globex", "wave", *FAIR_TENANTS, "bench")
ACME_UPSTREAM_KEY = "acme-upstream-key"
ADMIN_TOKEN = "bench-admin-token"
MESSAGES = [{"role": "user", "content": "hello"}]
BULKHEADS: dict[str, str] = {
    "on": "",
    "off": "enabled = false",
    "fixed": (
        f"initial_limit = {FAIR_LIMIT}\nmin_limit = {FAIR_LIMIT}\nmax_limit = {FAIR_LIMIT}\n"
        f"max_wait_s = {FAIR_S + 30}"
    ),
}
"""Each gateway's `[bulkhead]`. `fixed` lets a request wait as long as the run lasts: the
shares come from the gate's turns, not from which refused request was re-sent first."""


def key_of(tenant: str) -> str:
    return f"bench-{tenant}-key"


def sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def auth(tenant: str) -> dict[str, str]:
    return {"authorization": f"Bearer {key_of(tenant)}"}


def gateway_config(chaos: str, bulkhead: str) -> str:
    """One provider per scenario, so each has a gate (and a pool) of its own."""
    providers = {
        "openai": "openai",  # the quiet and the noisy tenant
        "dead": "dead",  # answers 503 to everything
        "fair": "fair",  # answers in FAIR_LATENCY_S
        "healthy": "healthy",  # answers in HEALTHY_LATENCY_S
    }
    lines = [f"[bulkhead]\n{bulkhead}"]
    for name, upstream in providers.items():
        lines.append(
            f'[providers.{name}]\nkind = "openai"\napi_key_env = "BENCH_UPSTREAM_KEY"\n'
            f'base_url = "{chaos}/{upstream}/v1"\ntimeout_s = 60'
        )
        lines.append(f'[routes.{name}]\ntargets = ["{name}:gpt-4.1"]')
    lines.extend(
        f'[tenants.{tenant}]\napi_key_sha256 = ["{sha256(key_of(tenant))}"]' for tenant in TENANTS
    )
    lines.append('[tenants.acme.providers.openai]\napi_key_env = "ACME_UPSTREAM_KEY"')
    lines.append(f'[admin.tokens.ops]\ntoken_sha256 = "{sha256(ADMIN_TOKEN)}"')
    return "\n".join(lines) + "\n"


def add_fault(chaos: str, fault: Mapping[str, Any], **match: str) -> None:
    response = httpx2.post(f"{chaos}/_chaos/faults", json={"fault": dict(fault), **match})
    response.raise_for_status()


def chaos_hits(chaos: str, upstream: str) -> int:
    """Requests `upstream` received since the hits were last cleared."""
    hits = httpx2.get(f"{chaos}/_chaos/hits", timeout=30).json()["hits"]
    return sum(1 for hit in hits if hit["upstream"] == upstream)


def admin_providers(gateway: str) -> dict[str, Any]:
    answer = httpx2.get(
        f"{gateway}/admin/providers",
        headers={"authorization": f"Bearer {ADMIN_TOKEN}"},
        timeout=30,
    )
    answer.raise_for_status()
    found: dict[str, Any] = answer.json()
    return found


def gate(gateway: str, provider: str) -> dict[str, Any]:
    """The provider's gate as `/admin/providers` shows it (empty with bulkheads off)."""
    found: dict[str, Any] = admin_providers(gateway).get("bulkheads", {}).get(provider, {})
    return found


def chat(gateway: str) -> str:
    return f"{gateway}/v1/chat/completions"


def body(route: str) -> dict[str, Any]:
    return {"model": route, "messages": MESSAGES}


@contextmanager
def servers(tmp: str) -> Iterator[tuple[Running, dict[str, Running]]]:
    """The chaos upstream with its faults, and a gateway for each of `BULKHEADS`."""
    with ExitStack() as stack:
        chaos_port = free_port()
        cli = [PYTHON, "-m", "resilience.cli"]
        chaos = stack.enter_context(server([*cli, "chaos", "--port", str(chaos_port)], chaos_port))
        add_fault(chaos.url, {"latency_s": SLOW_S}, api_key=ACME_UPSTREAM_KEY)
        add_fault(chaos.url, {"status": 503}, upstream="dead")
        add_fault(chaos.url, {"latency_s": FAIR_LATENCY_S}, upstream="fair")
        add_fault(chaos.url, {"latency_s": HEALTHY_LATENCY_S}, upstream="healthy")
        gateways = {}
        for name, bulkhead in BULKHEADS.items():
            config = Path(tmp) / f"{name}.toml"
            config.write_text(gateway_config(chaos.url, bulkhead))
            port = free_port()
            env = {
                "BENCH_UPSTREAM_KEY": "k",
                "ACME_UPSTREAM_KEY": ACME_UPSTREAM_KEY,
                "DATABASE_URL": f"sqlite:///{tmp}/{name}-audit.db",
                "RESILIENCE_SPOOL": f"{tmp}/{name}-spool.jsonl",
            }
            command = [*cli, "serve", "--config", str(config), "--port", str(port)]
            gateways[name] = stack.enter_context(server(command, port, env))
        yield chaos, gateways


# -- 1. the quiet tenant ----------------------------------------------------------------------


def noisy(gateway: str, stop: Any, results: Any) -> None:
    """acme's load, in a process of its own: NOISY_CALLS requests kept open until `stop` is
    set; puts a Counter of answer statuses in `results`."""
    results.put(asyncio.run(_noisy(gateway, stop)))


async def _noisy(gateway: str, stop: Any) -> Counter[int]:
    statuses: Counter[int] = Counter()
    limits = httpx2.Limits(max_connections=NOISY_CALLS)
    async with httpx2.AsyncClient(timeout=120, limits=limits) as http:

        async def caller() -> None:
            while True:
                try:
                    response = await http.post(
                        chat(gateway), json=body("openai"), headers=auth("acme")
                    )
                    statuses[response.status_code] += 1
                except httpx2.HTTPError:
                    statuses[0] += 1

        tasks = [asyncio.create_task(caller()) for _ in range(NOISY_CALLS)]
        await asyncio.to_thread(stop.wait)  # a process's Event: waited for in a thread
        for task in tasks:  # what is still open when the run ends is abandoned
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    return statuses


def open_at(gateway: str) -> int:
    """acme's requests the gateway holds: calling the upstream (or queued for a pooled
    connection) and waiting for a slot."""
    answer = admin_providers(gateway)
    calling = sum(row["in_flight"] for row in answer["providers"] if row["provider"] == "openai")
    waiting: int = answer.get("bulkheads", {}).get("openai", {}).get("waiting", 0)
    return int(calling) + waiting


async def quiet_ms(gateway: str, seconds: float) -> list[float]:
    """globex: one request at a time, RATE a second, for `seconds`; milliseconds each."""
    samples: list[float] = []
    async with httpx2.AsyncClient(timeout=120) as http:
        for _ in range(5):  # connection, first-request costs
            await http.post(chat(gateway), json=body("openai"), headers=auth("globex"))
        start = time.perf_counter()
        tick = 0
        while time.perf_counter() - start < seconds:
            await asyncio.sleep(max(0.0, start + tick / RATE - time.perf_counter()))
            began = time.perf_counter()
            response = await http.post(chat(gateway), json=body("openai"), headers=auth("globex"))
            samples.append((time.perf_counter() - began) * 1000)
            if response.status_code != 200:
                raise AssertionError(f"globex: HTTP {response.status_code}: {response.text[:300]}")
            tick = max(tick + 1, int((time.perf_counter() - start) * RATE))
    return samples


@dataclass
class Quiet:
    """Phase 1 on one gateway: globex's milliseconds alone and beside acme's load, acme's
    answers by status, and the gate as the window ended."""

    alone: list[float]
    beside: list[float]
    noisy: Counter[int]
    gate: dict[str, Any]

    @property
    def added_p99_ms(self) -> float:
        return percentile(self.beside, 99) - percentile(self.alone, 99)


def quiet_beside_noisy(gateway: str) -> Quiet:
    """globex alone, then beside acme's load once the gateway holds most of it (a refused
    request is re-sent at once, so a few are always on their way back)."""
    alone = asyncio.run(quiet_ms(gateway, WINDOW_S))
    spawn = multiprocessing.get_context("spawn")
    stop, results = spawn.Event(), spawn.Queue()
    load = spawn.Process(target=noisy, args=(gateway, stop, results))
    load.start()
    ramp_until = time.perf_counter() + 60
    while open_at(gateway) < 0.9 * NOISY_CALLS:
        if time.perf_counter() > ramp_until:
            raise AssertionError(f"the gateway never held {NOISY_CALLS} noisy requests")
        time.sleep(0.1)
    time.sleep(RAMP_S)
    beside = asyncio.run(quiet_ms(gateway, WINDOW_S))
    seen = gate(gateway, "openai")
    stop.set()
    statuses: Counter[int] = results.get(timeout=120)
    load.join(30)
    return Quiet(alone, beside, statuses, seen)


# -- 2. the first wave --------------------------------------------------------------------------


async def wave(gateway: str) -> Counter[int]:
    limits = httpx2.Limits(max_connections=WAVE)
    async with httpx2.AsyncClient(timeout=120, limits=limits) as http:
        answers = await asyncio.gather(
            *(
                http.post(chat(gateway), json=body("dead"), headers=auth("wave"))
                for _ in range(WAVE)
            )
        )
    return Counter(a.status_code for a in answers)


def first_wave(chaos: str, gateway: str) -> int:
    """Calls the dead upstream received from WAVE simultaneous requests through `gateway`."""
    httpx2.delete(f"{chaos}/_chaos/hits", timeout=30).raise_for_status()
    statuses = asyncio.run(wave(gateway))
    if set(statuses) != {503}:
        raise AssertionError(f"first wave: expected 503s only, got {dict(statuses)}")
    return chaos_hits(chaos, "dead")


# -- 3. fairness ----------------------------------------------------------------------------------


@dataclass
class Fair:
    """Phase 3: answers per tenant, and every status answered."""

    answered: Counter[str]
    statuses: Counter[int]

    @property
    def shares(self) -> dict[str, float]:
        total = sum(self.answered.values())
        return {t: self.answered[t] / total for t in FAIR_TENANTS}

    @property
    def max_deviation(self) -> float:
        """max |share - 1/3| / (1/3)"""
        return max(abs(share - 1 / 3) * 3 for share in self.shares.values())


async def fair_shares(gateway: str) -> Fair:
    """Answers per tenant while each keeps 5 x FAIR_LIMIT requests open for FAIR_S."""
    answered: Counter[str] = Counter()
    statuses: Counter[int] = Counter()
    tenants = FAIR_TENANTS
    limits = httpx2.Limits(max_connections=5 * FAIR_LIMIT * len(tenants))
    async with httpx2.AsyncClient(timeout=120, limits=limits) as http:
        # warm the connections first, so no tenant starts ahead for want of a socket
        await asyncio.gather(
            *(
                http.post(chat(gateway), json=body("fair"), headers=auth(t))
                for t in tenants
                for _ in range(5 * FAIR_LIMIT // 3)
            )
        )
        counting = True

        async def caller(tenant: str) -> None:
            while counting:
                response = await http.post(chat(gateway), json=body("fair"), headers=auth(tenant))
                statuses[response.status_code] += 1
                if counting and response.status_code == 200:
                    answered[tenant] += 1

        tasks = [asyncio.create_task(caller(t)) for _ in range(5 * FAIR_LIMIT) for t in tenants]
        await asyncio.sleep(FAIR_S)
        counting = False
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    return Fair(answered, statuses)


# -- 4. healthy throughput ------------------------------------------------------------------------


async def closed_loop(gateway: str, seconds: float) -> tuple[float, Counter[int]]:
    """Answers per second with HEALTHY_CONCURRENCY requests always open, and the statuses."""
    statuses: Counter[int] = Counter()
    limits = httpx2.Limits(max_connections=HEALTHY_CONCURRENCY)
    async with httpx2.AsyncClient(timeout=120, limits=limits) as http:
        stop = time.perf_counter() + seconds

        async def caller() -> None:
            while time.perf_counter() < stop:
                response = await http.post(
                    chat(gateway), json=body("healthy"), headers=auth("bench")
                )
                statuses[response.status_code] += 1

        began = time.perf_counter()
        await asyncio.gather(*(caller() for _ in range(HEALTHY_CONCURRENCY)))
        return statuses[200] / (time.perf_counter() - began), statuses


@dataclass
class Healthy:
    """Phase 4: requests per second (median over rounds), on over off (the median of each
    round pair's ratio: a pair runs back to back, so a slower machine slows both), the
    gateways' CPU per answer, and every status `on` answered."""

    rps: dict[str, float]
    ratio: float
    cpu_ms: dict[str, float]
    statuses: Counter[int]


def healthy(gateways: dict[str, Running]) -> Healthy:
    rates: dict[str, list[float]] = {"on": [], "off": []}
    cpu_s = dict.fromkeys(rates, 0.0)
    answered = dict.fromkeys(rates, 0)
    seen: Counter[int] = Counter()
    for i in range(ROUNDS):
        for name in ("on", "off") if i % 2 == 0 else ("off", "on"):
            pid = gateways[name].pid
            before = cpu_seconds(pid)
            rate, statuses = asyncio.run(closed_loop(gateways[name].url, ROUND_S))
            cpu_s[name] += cpu_seconds(pid) - before
            answered[name] += statuses[200]
            rates[name].append(rate)
            if name == "on":
                seen += statuses
    pairs = [on / off for on, off in zip(rates["on"], rates["off"], strict=True)]
    return Healthy(
        rps={name: statistics.median(values) for name, values in rates.items()},
        ratio=statistics.median(pairs),
        cpu_ms={name: cpu_s[name] * 1000 / answered[name] for name in rates},
        statuses=seen,
    )


# -- the run --------------------------------------------------------------------------------------


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp, servers(tmp) as (chaos, gateways):
        on, off, fixed = (gateways[name].url for name in ("on", "off", "fixed"))
        healthy_run = healthy(gateways)
        healthy_gate = gate(on, "healthy")
        waves = {name: first_wave(chaos.url, url) for name, url in (("on", on), ("off", off))}
        wave_gate = gate(on, "dead")
        fair = asyncio.run(fair_shares(fixed))
        quiet = {name: quiet_beside_noisy(url) for name, url in (("on", on), ("off", off))}
    report_quiet(quiet)
    print(f"2. first wave: {WAVE} simultaneous requests to a provider answering 503")
    print(f"   calls it received: {waves['on']} with bulkheads, {waves['off']} without")
    print(f"   gate after (on): {gate_line(wave_gate)}")
    report_fair(fair)
    report_healthy(healthy_run, healthy_gate)
    headline(
        {
            "quiet_tenant_added_p99_ms": quiet["on"].added_p99_ms,
            "quiet_tenant_added_p99_ms_off": quiet["off"].added_p99_ms,
            "first_wave_calls_dead_provider": waves["on"],
            "first_wave_calls_dead_provider_off": waves["off"],
            "fair_share_max_deviation": fair.max_deviation,
            "healthy_rps_on": healthy_run.rps["on"],
            "healthy_rps_off": healthy_run.rps["off"],
            "healthy_cpu_ms_per_request_on": healthy_run.cpu_ms["on"],
            "healthy_cpu_ms_per_request_off": healthy_run.cpu_ms["off"],
            "healthy_throughput_ratio": healthy_run.ratio,
        }
    )


def report_quiet(quiet: dict[str, Quiet]) -> None:
    print(f"1. quiet tenant, {RATE}/s one at a time, {WINDOW_S:.0f} s alone then beside")
    print(f"   {NOISY_CALLS} noisy requests kept open ({SLOW_S:.0f} s answers); ms:")
    print("   bulkheads  samples   p50 alone  p99 alone   p50 beside  p99 beside  noisy answers")
    for name, run in quiet.items():
        print(
            f"   {name:<9}  {len(run.beside):>7}   {percentile(run.alone, 50):9.1f}  "
            f"{percentile(run.alone, 99):9.1f}   {percentile(run.beside, 50):10.1f}  "
            f"{percentile(run.beside, 99):10.1f}  {dict(sorted(run.noisy.items()))}"
        )
    print(f"   gate at the end (on): {gate_line(quiet['on'].gate)}")


def report_fair(fair: Fair) -> None:
    print(
        f"3. fairness: 3 tenants x {5 * FAIR_LIMIT} requests open for {FAIR_S:.0f} s, limit "
        f"{FAIR_LIMIT}, {FAIR_LATENCY_S * 1000:.0f} ms answers "
        f"(capacity {FAIR_LIMIT / FAIR_LATENCY_S:.0f}/s)"
    )
    shares = fair.shares
    print(
        f"   answers {sum(fair.answered.values())}: "
        + ", ".join(f"{t} {fair.answered[t]} ({shares[t]:.1%})" for t in shares)
        + f"; statuses {dict(sorted(fair.statuses.items()))}"
    )


def report_healthy(run: Healthy, seen: Mapping[str, Any]) -> None:
    print(
        f"4. healthy provider, {HEALTHY_CONCURRENCY} requests open, "
        f"{HEALTHY_LATENCY_S * 1000:.0f} ms answers, {ROUNDS} rounds of {ROUND_S:.0f} s each:"
    )
    print(f"   {run.rps['on']:,.0f} req/s with bulkheads, {run.rps['off']:,.0f} without")
    print(
        f"   gateway CPU ms per answer: {run.cpu_ms['on']:.2f} with, {run.cpu_ms['off']:.2f} "
        f"without; statuses with bulkheads {dict(sorted(run.statuses.items()))}"
    )
    print(f"   gate after: {gate_line(seen)}")


def gate_line(snapshot: Mapping[str, Any]) -> str:
    if not snapshot:
        return "(none)"
    keys = ("limit", "in_flight", "waiting", "refused")
    return json.dumps({k: snapshot.get(k) for k in keys})


if __name__ == "__main__":
    main()
