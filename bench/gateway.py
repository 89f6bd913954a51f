"""The gateway's added latency over calling the upstream directly, and TenantMiddleware's cost.

Usage: python bench/gateway.py [--quick]

Every server is its own process on loopback (uvicorn): the chaos upstream, the
gateway (`resilience serve`), and a trivial endpoint with and without
TenantMiddleware. Latency: requests at a fixed rate, each one sent directly to
the upstream and through the gateway in alternation, so both see the same
machine load. Throughput: closed loop with 32 concurrent requests, rounds
alternating between the two apps; median over rounds.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx2

ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable
QUICK = "--quick" in sys.argv
RATE = 50  # requests per second, each side
SECONDS = 2 if QUICK else 10
ROUNDS = 2 if QUICK else 5
ROUND_S = 1.0 if QUICK else 3.0
MESSAGES = [{"role": "user", "content": "hello"}]
DIRECT_BODY = {"model": "gpt-4.1", "messages": MESSAGES}
GATEWAY_BODY = {"model": "chat", "messages": MESSAGES}


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextmanager
def server(args: list[str], port: int, env: dict[str, str] | None = None) -> Iterator[str]:
    process = subprocess.Popen(
        args,
        cwd=ROOT,
        env={**os.environ, **(env or {})},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(200):
            try:
                httpx2.get(url + "/healthz", timeout=0.5)
                break
            except httpx2.HTTPError:
                time.sleep(0.05)
        yield url
    finally:
        process.send_signal(signal.SIGINT)
        process.wait(10)


def uvicorn_app(target: str, port: int) -> list[str]:
    return [PYTHON, "-m", "uvicorn", target, "--port", str(port), "--log-level", "warning"]


def percentile(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def latency(direct: str, gateway: str) -> tuple[list[float], list[float]]:
    """Paired requests at a fixed rate: (direct ms, through-gateway ms)."""
    ours: list[float] = []
    theirs: list[float] = []
    headers = {"authorization": "Bearer bench-gateway-key"}
    async with httpx2.AsyncClient(timeout=10) as http:
        bodies = {direct: DIRECT_BODY, gateway: GATEWAY_BODY}
        for side in (direct, gateway):  # warm-up: pools, imports, first-request costs
            for _ in range(20):
                await http.post(side, json=bodies[side], headers=headers)
        interval = 1.0 / RATE
        start = time.perf_counter()
        for i in range(RATE * SECONDS):
            await asyncio.sleep(max(0.0, start + i * interval - time.perf_counter()))
            for url, sink in (
                ((direct, theirs), (gateway, ours))
                if i % 2
                else ((gateway, ours), (direct, theirs))
            ):
                began = time.perf_counter()
                response = await http.post(url, json=bodies[url], headers=headers)
                assert response.status_code == 200, response.text
                sink.append((time.perf_counter() - began) * 1000)
    return theirs, ours


async def throughput(url: str, seconds: float) -> float:
    done = 0
    stop = time.perf_counter() + seconds
    async with httpx2.AsyncClient(limits=httpx2.Limits(max_connections=32)) as http:

        async def worker() -> None:
            nonlocal done
            while time.perf_counter() < stop:
                response = await http.get(url, headers={"x-tenant-id": "bench"})
                assert response.status_code == 200
                done += 1

        await asyncio.gather(*(worker() for _ in range(32)))
    return done / seconds


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        chaos_port, gateway_port = free_port(), free_port()
        config = Path(tmp) / "gateway.toml"
        config.write_text(
            f"""
[providers.openai]
kind = "openai"
api_key_env = "BENCH_UPSTREAM_KEY"
base_url = "http://127.0.0.1:{chaos_port}/openai/v1"
[routes.chat]
targets = ["openai:gpt-4.1"]
[tenants.bench]
api_key_sha256 = ["{__import__("hashlib").sha256(b"bench-gateway-key").hexdigest()}"]
"""
        )
        env = {
            "BENCH_UPSTREAM_KEY": "k",
            "DATABASE_URL": f"sqlite:///{tmp}/audit.db",
            "RESILIENCE_SPOOL": f"{tmp}/spool.jsonl",
        }
        chaos = [PYTHON, "-m", "resilience.cli", "chaos", "--port", str(chaos_port)]
        gateway = [
            PYTHON,
            "-m",
            "resilience.cli",
            "serve",
            "--config",
            str(config),
            "--port",
            str(gateway_port),
        ]
        with server(chaos, chaos_port) as upstream, server(gateway, gateway_port, env) as front:
            direct, through = asyncio.run(
                latency(f"{upstream}/openai/v1/chat/completions", f"{front}/v1/chat/completions")
            )
        plain_port, tenant_port = free_port(), free_port()
        with (
            server(uvicorn_app("bench._trivial_app:app_plain", plain_port), plain_port) as plain,
            server(
                uvicorn_app("bench._trivial_app:app_tenant", tenant_port), tenant_port
            ) as tenant,
        ):
            rates: dict[str, list[float]] = {"plain": [], "tenant": []}
            for i in range(ROUNDS):
                for name, url in (
                    (("plain", plain), ("tenant", tenant))
                    if i % 2 == 0
                    else (("tenant", tenant), ("plain", plain))
                ):
                    rates[name].append(asyncio.run(throughput(f"{url}/hello", ROUND_S)))
    added_p50 = percentile(through, 0.5) - percentile(direct, 0.5)
    added_p99 = percentile(through, 0.99) - percentile(direct, 0.99)
    plain_rps, tenant_rps = statistics.median(rates["plain"]), statistics.median(rates["tenant"])
    p50, p99 = percentile(direct, 0.5), percentile(direct, 0.99)
    print(f"{len(direct)} paired requests at {RATE}/s each side, loopback, separate processes")
    print(f"direct to upstream:  p50 {p50:6.2f} ms   p99 {p99:6.2f} ms")
    p50, p99 = percentile(through, 0.5), percentile(through, 0.99)
    print(f"through the gateway: p50 {p50:6.2f} ms   p99 {p99:6.2f} ms")
    print(f"trivial endpoint: {plain_rps:,.0f} req/s plain, {tenant_rps:,.0f} req/s with")
    print(f"  TenantMiddleware (median of {ROUNDS} rounds of {ROUND_S:.0f} s, 32 concurrent)")
    print(f"added_latency_p50_ms: {added_p50:.2f}")
    print(f"added_latency_p99_ms: {added_p99:.2f}")
    print(f"middleware_throughput_ratio: {tenant_rps / plain_rps:.3f}")


if __name__ == "__main__":
    main()
