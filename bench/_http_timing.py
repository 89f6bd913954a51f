"""Raw HTTP timings for bench/gateway.py: one request, a paced mix of requests, a closed loop.

Every side (the upstream called directly, the gateway) is called with the same httpx2
client and the same headers, so the client's own cost is the same on both sides and
drops out of every difference.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx2

CONCURRENCY = 32
"""Requests in flight at once in a closed loop (and the pool's connections)."""


@dataclass(frozen=True)
class Probe:
    """One kind of request. `stream` probes are timed to their first SSE event, the others
    to the whole answer."""

    name: str
    url: str
    body: Mapping[str, Any] | None = None
    """JSON, POSTed; none: a GET."""
    headers: Mapping[str, str] = field(default_factory=dict)
    stream: bool = False

    def request(self, http: httpx2.AsyncClient) -> httpx2.Request:
        if self.body is None:
            return http.build_request("GET", self.url, headers=dict(self.headers))
        return http.build_request(
            "POST", self.url, json=dict(self.body), headers=dict(self.headers)
        )


async def timed_ms(http: httpx2.AsyncClient, probe: Probe) -> float:
    """Milliseconds to the whole answer, or to the first complete SSE event of a stream
    (the rest of the stream is then read untimed, so the connection goes back to the pool)."""
    began = time.perf_counter()
    if probe.stream:
        return await _first_event_ms(http, probe, began)
    response = await http.send(probe.request(http))
    took = time.perf_counter() - began
    _check(probe, response.status_code, response.text)
    return took * 1000


async def _first_event_ms(http: httpx2.AsyncClient, probe: Probe, began: float) -> float:
    response = await http.send(probe.request(http), stream=True)
    seen = b""
    took: float | None = None
    try:
        if response.status_code != 200:
            _check(probe, response.status_code, (await response.aread()).decode())
        async for part in response.aiter_bytes():
            seen += part
            if took is None and b"\n\n" in seen:
                took = time.perf_counter() - began
    finally:
        await response.aclose()
    if took is None or b"[DONE]" not in seen:
        raise AssertionError(f"{probe.name}: stream ended early: {seen[-300:]!r}")
    return took * 1000


async def paced(
    probes: Sequence[Probe], *, rate: float, seconds: float, warm_up: int = 20
) -> dict[str, list[float]]:
    """Each probe once per tick, `rate` ticks a second, in an order that rotates every tick,
    so every probe sees the same machine load and none always goes first. Milliseconds
    per probe name."""
    samples: dict[str, list[float]] = {probe.name: [] for probe in probes}
    async with httpx2.AsyncClient(timeout=10) as http:
        for probe in probes:  # pools, imports, first-request costs
            for _ in range(warm_up):
                await timed_ms(http, probe)
        interval = 1.0 / rate
        start = time.perf_counter()
        for tick in range(round(rate * seconds)):
            await asyncio.sleep(max(0.0, start + tick * interval - time.perf_counter()))
            shift = tick % len(probes)
            for probe in [*probes[shift:], *probes[:shift]]:
                samples[probe.name].append(await timed_ms(http, probe))
    return samples


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time a process has used so far (Linux `/proc`)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def cpu_ms_per_request(probe: Probe, pid: int, requests: int) -> float:
    """CPU milliseconds process `pid` spends per `probe` request, sent one after another.
    It moves much less than wall time when other processes compete for the cores."""
    async with httpx2.AsyncClient(timeout=10) as http:
        for _ in range(10):
            await timed_ms(http, probe)
        before = cpu_seconds(pid)
        for _ in range(requests):
            await timed_ms(http, probe)
        return (cpu_seconds(pid) - before) * 1000 / requests


async def closed_loop(probe: Probe, seconds: float) -> float:
    """Answers per second with CONCURRENCY requests always in flight."""
    done = 0
    stop = time.perf_counter() + seconds
    limits = httpx2.Limits(max_connections=CONCURRENCY)
    async with httpx2.AsyncClient(timeout=30, limits=limits) as http:

        async def worker() -> None:
            nonlocal done
            while time.perf_counter() < stop:
                await timed_ms(http, probe)
                done += 1

        began = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(CONCURRENCY)))
        return done / (time.perf_counter() - began)


def _check(probe: Probe, status: int, text: str) -> None:
    if status != 200:
        raise AssertionError(f"{probe.name}: HTTP {status}: {text[:500]}")
