"""What the gateway adds over calling the upstream directly, and TenantMiddleware's cost.

Usage: python bench/gateway.py [--quick]

Every server is its own process on loopback: the chaos upstream (`resilience chaos`), the
gateway (`resilience serve`: one uvicorn worker), and a trivial endpoint with and without
TenantMiddleware. Both sides are called with the same raw httpx2 client and headers, so the
client's cost drops out of every difference.

Latency: requests at a fixed rate; each tick sends, in an order that rotates every tick, an
OpenAI body straight to the upstream, the same body through the gateway to an OpenAI-kind
route, the same body to a route whose target is Anthropic-kind (the gateway translates it
both ways), and a stream of each of the first two. Figures are gateway percentile minus
direct percentile:

- `added_latency_p50_ms`, `added_latency_p99_ms`: same format, OpenAI body to OpenAI route.
- `added_ttfb_p50_ms`: time to the first SSE event of a stream, same format.
- `cross_format_added_latency_p50_ms`: OpenAI body to the Anthropic-kind route, against the
  direct OpenAI-format call to the upstream (the client's alternative: call the upstream in
  the format it already speaks), so it includes both translations.
- `bare_proxy_added_latency_p50_ms`: the same body through `bench/_bare_proxy.py`, a bare
  Starlette proxy on the gateway's own HTTP client (`resilience.providers.http1`) with none
  of the gateway's work, sent in the same ticks: the floor that the extra loopback hop
  alone costs on this machine. `gateway_over_bare_proxy_p50_ms` is the gateway's p50 over
  that floor: its own work. `httpx2_proxy_added_latency_p50_ms` is the same bare proxy on
  an httpx2 client, the usual way to write one.

Throughput: closed loop with 32 requests in flight, rounds alternating between the gateway
and the upstream called directly; median over rounds. `gateway_rps_one_worker` is the
gateway's non-streamed same-format requests per second, `direct_rps` the upstream's in the
same run, `gateway_rps_ratio` the first over the second. On a 2-core machine the client,
the gateway and the upstream share the cores: the ratio is the figure to compare.

CPU: `gateway_cpu_ms_per_request` (and `..._cross_request`) is the CPU time the gateway
process spends per request, sent one after another; `upstream_cpu_ms_per_request` the
upstream's per direct call. Wall-clock figures move with whatever else runs on the machine;
these move much less (about 15% between runs on a busy 2-core machine, against 2x for the
wall-clock ones), so they show a change in the gateway's own work where those cannot.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import NamedTuple

import httpx2

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._http_timing import Probe, closed_loop, cpu_ms_per_request, paced
from bench._stats import headline, percentile

ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable
QUICK = "--quick" in sys.argv
RATE = 25  # ticks per second; each tick sends one request of every probe
SECONDS = 2 if QUICK else 20
ROUNDS = 2 if QUICK else 5
ROUND_S = 1.0 if QUICK else 3.0
CPU_REQUESTS = 100 if QUICK else 1000
KEY = "bench-gateway-key"
HEADERS = {"authorization": f"Bearer {KEY}"}
MESSAGES = [{"role": "user", "content": "hello"}]
UPSTREAM_MODEL = "gpt-4.1"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class Running(NamedTuple):
    url: str
    pid: int


@contextmanager
def server(args: list[str], port: int, env: dict[str, str] | None = None) -> Iterator[Running]:
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
        yield Running(url, process.pid)
    finally:
        process.send_signal(signal.SIGINT)
        process.wait(10)


def uvicorn_app(target: str, port: int) -> list[str]:
    return [PYTHON, "-m", "uvicorn", target, "--port", str(port), "--log-level", "warning"]


def gateway_config(chaos: str) -> str:
    """Route `chat` to an OpenAI-kind target, `cross` to an Anthropic-kind one."""
    return f"""
[providers.openai]
kind = "openai"
api_key_env = "BENCH_UPSTREAM_KEY"
base_url = "{chaos}/openai/v1"
[providers.claude]
kind = "anthropic"
api_key_env = "BENCH_UPSTREAM_KEY"
base_url = "{chaos}/anthropic"
[routes.chat]
targets = ["openai:{UPSTREAM_MODEL}"]
[routes.cross]
targets = ["claude:claude-sonnet-4-5"]
[tenants.bench]
api_key_sha256 = ["{hashlib.sha256(KEY.encode()).hexdigest()}"]
"""


def probes(chaos: str, gateway: str) -> list[Probe]:
    direct = f"{chaos}/openai/v1/chat/completions"
    through = f"{gateway}/v1/chat/completions"
    stream = {"messages": MESSAGES, "stream": True}
    return [
        Probe("direct", direct, {"model": UPSTREAM_MODEL, "messages": MESSAGES}, HEADERS),
        Probe("same", through, {"model": "chat", "messages": MESSAGES}, HEADERS),
        Probe("cross", through, {"model": "cross", "messages": MESSAGES}, HEADERS),
        Probe("direct_stream", direct, {**stream, "model": UPSTREAM_MODEL}, HEADERS, stream=True),
        Probe("same_stream", through, {**stream, "model": "chat"}, HEADERS, stream=True),
    ]


def check_cross_route(gateway: str) -> None:
    """The `cross` probe must be served by the Anthropic-kind target, in OpenAI's format."""
    response = httpx2.post(
        f"{gateway}/v1/chat/completions",
        json={"model": "cross", "messages": MESSAGES},
        headers=HEADERS,
        timeout=10,
    )
    assert response.status_code == 200, response.text
    assert response.headers["x-resilience-provider"] == "claude", response.headers
    assert response.json()["object"] == "chat.completion", response.text


def alternating(rounds: dict[str, Probe]) -> dict[str, float]:
    """Closed-loop rounds over `rounds`' probes, alternating which goes first; the median
    requests per second of each."""
    rates: dict[str, list[float]] = {name: [] for name in rounds}
    order = list(rounds)
    for i in range(ROUNDS):
        for name in order if i % 2 == 0 else order[::-1]:
            rates[name].append(asyncio.run(closed_loop(rounds[name], ROUND_S)))
    return {name: statistics.median(values) for name, values in rates.items()}


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp, ExitStack() as servers:
        chaos_port, gateway_port = free_port(), free_port()
        config = Path(tmp) / "gateway.toml"
        config.write_text(gateway_config(f"http://127.0.0.1:{chaos_port}"))
        env = {
            "BENCH_UPSTREAM_KEY": "k",
            "DATABASE_URL": f"sqlite:///{tmp}/audit.db",
            "RESILIENCE_SPOOL": f"{tmp}/spool.jsonl",
        }
        cli = [PYTHON, "-m", "resilience.cli"]
        bare_port = free_port()
        chaos = servers.enter_context(
            server([*cli, "chaos", "--port", str(chaos_port)], chaos_port)
        )
        gateway = servers.enter_context(
            server(
                [*cli, "serve", "--config", str(config), "--port", str(gateway_port)],
                gateway_port,
                env,
            )
        )
        bare_env = {
            "BARE_PROXY_UPSTREAM": f"{chaos.url}/openai/v1/chat/completions",
            "BARE_PROXY_MODEL": UPSTREAM_MODEL,
        }
        bare = servers.enter_context(
            server(
                uvicorn_app("bench._bare_proxy:app", bare_port),
                bare_port,
                {**bare_env, "BARE_PROXY_CLIENT": "lean"},
            )
        )
        httpx2_port = free_port()
        httpx2_proxy = servers.enter_context(
            server(
                uvicorn_app("bench._bare_proxy:app", httpx2_port),
                httpx2_port,
                {**bare_env, "BARE_PROXY_CLIENT": "httpx2"},
            )
        )
        check_cross_route(gateway.url)
        kinds = probes(chaos.url, gateway.url)
        for name, proxy in (("bare", bare), ("httpx2_proxy", httpx2_proxy)):
            kinds.append(
                Probe(
                    name,
                    f"{proxy.url}/v1/chat/completions",
                    {"model": "chat", "messages": MESSAGES},
                    HEADERS,
                )
            )
        ms = asyncio.run(paced(kinds, rate=RATE, seconds=SECONDS))
        by_name = {probe.name: probe for probe in kinds}
        rps = alternating({"gateway": by_name["same"], "direct": by_name["direct"]})
        cpu = {
            name: asyncio.run(cpu_ms_per_request(by_name[name], pid, CPU_REQUESTS))
            for name, pid in (("same", gateway.pid), ("cross", gateway.pid), ("direct", chaos.pid))
        }
        servers.close()
        plain_port, tenant_port = free_port(), free_port()
        plain = servers.enter_context(
            server(uvicorn_app("bench._trivial_app:app_plain", plain_port), plain_port)
        )
        tenant = servers.enter_context(
            server(uvicorn_app("bench._trivial_app:app_tenant", tenant_port), tenant_port)
        )
        tenancy = {"x-tenant-id": "bench"}
        trivial = alternating(
            {
                "plain": Probe("plain", f"{plain.url}/hello", headers=tenancy),
                "tenant": Probe("tenant", f"{tenant.url}/hello", headers=tenancy),
            }
        )
    report(ms, rps, cpu, trivial)


def report(
    ms: dict[str, list[float]],
    rps: dict[str, float],
    cpu: dict[str, float],
    trivial: dict[str, float],
) -> None:
    def added(name: str, baseline: str, q: float) -> float:
        return percentile(ms[name], q) - percentile(ms[baseline], q)

    print(f"{len(ms['direct'])} ticks at {RATE}/s, one request of each kind per tick, loopback")
    print("milliseconds          p50      p99")
    rows = (
        ("direct", "direct to upstream"),
        ("same", "gateway, same format"),
        ("cross", "gateway, cross format"),
        ("bare", "bare proxy (floor)"),
        ("httpx2_proxy", "bare httpx2 proxy"),
        ("direct_stream", "direct, first event"),
        ("same_stream", "gateway, first event"),
    )
    for name, label in rows:
        print(f"{label:<21} {percentile(ms[name], 50):6.2f}  {percentile(ms[name], 99):7.2f}")
    print(f"closed loop, {ROUNDS} rounds of {ROUND_S:.0f} s, 32 in flight, median:")
    print(f"  gateway (one worker) {rps['gateway']:,.0f} req/s, direct {rps['direct']:,.0f} req/s")
    print(f"CPU ms per request, {CPU_REQUESTS} one after another: gateway {cpu['same']:.2f},")
    print(f"  cross format {cpu['cross']:.2f}, the upstream called directly {cpu['direct']:.2f}")
    print(f"  trivial endpoint {trivial['plain']:,.0f} req/s plain,")
    print(f"  {trivial['tenant']:,.0f} req/s with TenantMiddleware")
    headline(
        {
            "added_latency_p50_ms": added("same", "direct", 50),
            "added_latency_p99_ms": added("same", "direct", 99),
            "added_ttfb_p50_ms": added("same_stream", "direct_stream", 50),
            "cross_format_added_latency_p50_ms": added("cross", "direct", 50),
            "bare_proxy_added_latency_p50_ms": added("bare", "direct", 50),
            "gateway_over_bare_proxy_p50_ms": added("same", "bare", 50),
            "httpx2_proxy_added_latency_p50_ms": added("httpx2_proxy", "direct", 50),
            "gateway_rps_one_worker": rps["gateway"],
            "direct_rps": rps["direct"],
            "gateway_rps_ratio": rps["gateway"] / rps["direct"],
            "gateway_cpu_ms_per_request": cpu["same"],
            "gateway_cpu_ms_per_cross_request": cpu["cross"],
            "upstream_cpu_ms_per_request": cpu["direct"],
            "middleware_throughput_ratio": trivial["tenant"] / trivial["plain"],
        }
    )


if __name__ == "__main__":
    main()
