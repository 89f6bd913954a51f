"""The Redis store against the memory store: hot-path cost, failure cost, and a dead provider
seen from one process and from four.

Usage: python bench/redis_store.py [--quick]
Needs Redis at $REDIS_URL (default redis://127.0.0.1:6379/0); keys go under a fresh prefix
that is deleted afterwards.

1. Allow-check on a closed breaker (`registry.get(tenant, provider).acquire()` over 1,000
   tenants), and a whole call's breaker work (that plus `record_success`). Blocks of the two
   stores alternate; the figure is the median per operation over all blocks. With the Redis
   store a closed breaker answers from the process's own view: no round trip.
2. Record-failure: the caller's cost (the Redis store sends the verdict from a task), and
   the round trip until Redis has counted it (one script, sequential, loopback).
3. A dead provider (the chaos upstream answers 503 to everything) called by 8 concurrent
   callers of one tenant, until every process's breaker refuses: the upstream's own count
   of the calls it received. One process on the memory store is the baseline; then four
   processes of 2 callers each, sharing breakers through Redis, and, for comparison, four
   processes on the memory store (each finds the outage on its own).
"""

from __future__ import annotations

import asyncio
import os
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import httpx2
import redis.asyncio as aioredis

from bench._stats import headline, summary
from resilience.breaker.machine import ASK_STORE, CircuitBreaker, Permit
from resilience.breaker.policy import BreakerPolicy
from resilience.breaker.registry import BreakerRegistry
from resilience.breaker.store.redis.store import RedisStore
from resilience.errors import ErrorKind

QUICK = "--quick" in sys.argv
REDIS_URL = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")
BLOCKS = 6 if QUICK else 30
PER_BLOCK = 20_000 if QUICK else 100_000
TENANTS = 1_000
FAILURES = 300 if QUICK else 3_000
REPEATS = 2 if QUICK else 7
CALLERS = 8
ROOT = Path(__file__).resolve().parent.parent


# -- 1 and 2: in one process ------------------------------------------------------------------


async def admit(breaker: CircuitBreaker) -> Permit:
    """What every attempt does (client.attempt): the store decides when the view can't."""
    permit = breaker.acquire()
    if permit is ASK_STORE:
        permit = await breaker.admit()
    return permit


def allow_block(registry: BreakerRegistry, tenants: list[str], n: int) -> float:
    get = registry.get
    start = time.perf_counter()
    for i in range(n):
        get(tenants[i % TENANTS], "p").acquire()
    return (time.perf_counter() - start) / n * 1e6


def call_block(registry: BreakerRegistry, tenants: list[str], n: int) -> float:
    get = registry.get
    start = time.perf_counter()
    for i in range(n):
        breaker = get(tenants[i % TENANTS], "p")
        breaker.record_success(breaker.acquire())
    return (time.perf_counter() - start) / n * 1e6


async def hot_path(prefix: str) -> dict[str, float]:
    memory = BreakerRegistry()
    shared = BreakerRegistry(redis_url=REDIS_URL, redis_prefix=prefix)
    await shared.start()
    assert shared.store.status()["shared"], f"Redis at {REDIS_URL} did not answer"
    tenants = [f"tenant-{i}" for i in range(TENANTS)]
    times: dict[str, list[float]] = {"allow_m": [], "allow_r": [], "call_m": [], "call_r": []}
    for registry in (memory, shared):  # create every breaker first
        call_block(registry, tenants, TENANTS)
    for block in range(BLOCKS):
        # each pair of blocks runs back to back, the first of the two alternating, so a
        # change of the machine's speed hits both sides of a pair alike
        for kind, run in (("allow", allow_block), ("call", call_block)):
            pair = [("m", memory), ("r", shared)]
            for side, registry in pair if block % 2 else pair[::-1]:
                times[f"{kind}_{side}"].append(run(registry, tenants, PER_BLOCK))
        await asyncio.sleep(0.3)  # the Redis store sends its counted successes meanwhile
    print("1. closed breaker, per operation (µs), 1,000 tenants:")
    print(f"   allow-check, memory store:  {summary(times['allow_m'])}")
    print(f"   allow-check, Redis store:   {summary(times['allow_r'])}")
    print(f"   acquire + success, memory:  {summary(times['call_m'])}")
    print(f"   acquire + success, Redis:   {summary(times['call_r'])}")
    allow_ratios = [r / m for r, m in zip(times["allow_r"], times["allow_m"], strict=True)]
    call_ratios = [r / m for r, m in zip(times["call_r"], times["call_m"], strict=True)]
    print(f"   allow-check, Redis / memory, by pair: {summary(allow_ratios)}")
    print(f"   acquire + success, Redis / memory:   {summary(call_ratios)}")
    await shared.aclose()
    failure = await record_failure(f"{prefix}-f")
    med = statistics.median
    return {
        "allow_us_memory": med(times["allow_m"]),
        "allow_us_redis": med(times["allow_r"]),
        "call_us_memory": med(times["call_m"]),
        "call_us_redis": med(times["call_r"]),
        "redis_vs_memory_call_ratio": med(call_ratios),
        **failure,
        "redis_vs_memory_allow_ratio": med(allow_ratios),
    }


async def record_failure(prefix: str) -> dict[str, float]:
    never = BreakerPolicy(failure_threshold=10**9, failure_rate=1.0)  # count, never trip
    memory = BreakerRegistry(policy=never).get("f", "p")
    shared = BreakerRegistry(policy=never, redis_url=REDIS_URL, redis_prefix=prefix)
    await shared.start()
    store = shared.store
    assert isinstance(store, RedisStore)
    redis_breaker = shared.get("f", "p")

    async def timed(breaker: CircuitBreaker, n: int) -> float:
        """The caller's cost of `record_failure` (the permit is taken before the clock runs)."""
        kind = ErrorKind.SERVER_ERROR
        permit = await admit(breaker)
        start = time.perf_counter()
        for _ in range(n):
            breaker.record_failure(permit, kind)
        return (time.perf_counter() - start) / n * 1e6

    mem_us = await timed(memory, FAILURES)
    caller_us = await timed(redis_breaker, FAILURES)
    await store.flush()
    rounds = []
    for _ in range(FAILURES // 10):
        start = time.perf_counter()
        redis_breaker.record_failure(await admit(redis_breaker), ErrorKind.SERVER_ERROR)
        await store.flush()
        rounds.append((time.perf_counter() - start) * 1e6)
    assert store.online, "Redis stopped answering during the benchmark"
    window = await store._redis.hmget(f"{prefix}:b:p:f", [f"wf{i}" for i in range(10)])
    counted = sum(int(v) for v in window if v is not None)
    sent = 2 * FAILURES + FAILURES // 10  # the memory breaker's are not in Redis
    assert counted == sent - FAILURES, (counted, sent - FAILURES)
    roundtrip = statistics.median(rounds)
    print("2. record-failure (µs):")
    print(f"   memory store:                        {mem_us:.3f}")
    print(f"   Redis store, the caller's cost:      {caller_us:.3f}")
    print(f"   Redis store, until Redis counted it: {summary(rounds, 1)}")
    await shared.aclose()
    return {
        "record_failure_us_memory": mem_us,
        "record_failure_us_redis_caller": caller_us,
        "record_failure_roundtrip_us_redis": roundtrip,
    }


# -- 3: processes against a dead provider --------------------------------------------------

CONFIG = """
[retry]
max_attempts = 1
deadline_s = 10

[breaker]
failure_threshold = 5
cooldown_s = 60
provider_wide_min_tenants = 0

[providers.primary]
kind = "openai"
api_key_env = "UPSTREAM_KEY"
base_url = "{upstream}/primary/v1"
timeout_s = 10

[routes.chat]
targets = ["primary:gpt-4.1"]
"""


async def worker(config_path: str, callers: int) -> None:
    """One process: build the client, say ready, wait for "go", call until refused."""
    from resilience.client.outcomes import OutcomeStatus
    from resilience.client.resilient import ResilientClient
    from resilience.config.load import load_config
    from resilience.errors import AllTargetsFailed
    from resilience.models import ChatRequest, Message

    client = ResilientClient.from_config(load_config(config_path))
    await client.start()
    print("ready", flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
    request = ChatRequest(messages=(Message(role="user", content="hi"),), max_tokens=16)
    calls = 0

    async def caller() -> None:
        nonlocal calls
        while True:
            try:
                await client.complete(request, route="chat", tenant="t0")
            except AllTargetsFailed as exc:
                if all(o.status is OutcomeStatus.BREAKER_OPEN for o in exc.outcomes):
                    return
                calls += 1

    await asyncio.gather(*(caller() for _ in range(callers)))
    await client.aclose()
    print(f"calls {calls}", flush=True)


async def dead_provider(
    upstream: str, config: Path, processes: int, callers: int, prefix: str | None
) -> int:
    """Calls the upstream received before every process refused."""
    env = {**os.environ, "UPSTREAM_KEY": "bench", "PYTHONPATH": str(ROOT)}
    env.pop("REDIS_URL", None)
    if prefix is not None:
        env |= {"REDIS_URL": REDIS_URL, "REDIS_PREFIX": prefix}
    procs = [
        await asyncio.create_subprocess_exec(
            sys.executable,
            __file__,
            "--worker",
            str(config),
            str(callers),
            env=env,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
        )
        for _ in range(processes)
    ]
    for proc in procs:
        assert proc.stdout is not None
        line = await asyncio.wait_for(proc.stdout.readline(), 60)
        assert line.strip() == b"ready", line
    async with httpx2.AsyncClient() as http:
        (await http.delete(f"{upstream}/_chaos/hits")).raise_for_status()
        for proc in procs:
            assert proc.stdin is not None
            proc.stdin.write(b"go\n")
            await proc.stdin.drain()
        for proc in procs:
            await asyncio.wait_for(proc.wait(), 60)
            assert proc.returncode == 0
        hits = len((await http.get(f"{upstream}/_chaos/hits")).json()["hits"])
    return hits


async def outages(base_prefix: str) -> dict[str, float]:
    port = free_port()
    upstream = f"http://127.0.0.1:{port}"
    chaos = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "resilience.cli",
        "chaos",
        "--port",
        str(port),
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )
    results: dict[str, list[int]] = {"one": [], "shared": [], "alone": []}
    try:
        async with httpx2.AsyncClient() as http:
            for _ in range(200):
                try:
                    await http.get(f"{upstream}/_chaos/faults")
                    break
                except httpx2.TransportError:
                    await asyncio.sleep(0.05)
            body = {"fault": {"status": 503}}
            (await http.post(f"{upstream}/_chaos/faults", json=body)).raise_for_status()
        with tempfile.TemporaryDirectory() as tmp:
            config = Path(tmp) / "bench.toml"
            config.write_text(CONFIG.format(upstream=upstream))
            for r in range(REPEATS):
                results["one"].append(await dead_provider(upstream, config, 1, CALLERS, None))
                shared = f"{base_prefix}-{r}"
                per = CALLERS // 4
                results["shared"].append(await dead_provider(upstream, config, 4, per, shared))
                results["alone"].append(await dead_provider(upstream, config, 4, per, None))
    finally:
        chaos.terminate()
        await chaos.wait()
    print(f"3. calls a dead provider received before every process refused ({CALLERS} callers):")
    print(f"   1 process, memory store:        {summary(results['one'], 1)}")
    print(f"   4 processes, Redis store:       {summary(results['shared'], 1)}")
    print(f"   4 processes, memory store each: {summary(results['alone'], 1)}")
    med = statistics.median
    return {
        "dead_provider_calls_4_procs_unshared": med(results["alone"]),
        "dead_provider_calls_1_proc": med(results["one"]),
        "dead_provider_calls_4_procs": med(results["shared"]),
    }


def free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


async def main() -> None:
    prefix = f"bench-{uuid.uuid4().hex[:8]}"
    try:
        figures = await hot_path(prefix)
        dead = await outages(prefix)
        ratio = figures.pop("redis_vs_memory_allow_ratio")
        figures["dead_provider_calls_4_procs_unshared"] = dead.pop(
            "dead_provider_calls_4_procs_unshared"
        )
        figures["redis_vs_memory_allow_ratio"] = ratio  # the three closing figures
        figures |= dead
    finally:
        client = aioredis.Redis.from_url(REDIS_URL)
        keys = [k async for k in client.scan_iter(f"{prefix}*", count=1000)]
        if keys:
            await client.delete(*keys)
        await client.aclose()
    headline(figures)


if __name__ == "__main__":
    if "--worker" in sys.argv:
        at = sys.argv.index("--worker")
        asyncio.run(worker(sys.argv[at + 1], int(sys.argv[at + 2])))
    else:
        asyncio.run(main())
