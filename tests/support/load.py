"""Load against a real gateway process: many clients, injected faults, outages, SIGTERM.

Used by `tests/hardening/test_load.py` in a bounded form and by `bench/soak.py` in the
long one. Everything runs on loopback in separate processes, as in production:

- the chaos upstream (`resilience chaos --seed N`), given `fault_share` of requests as
  faults spread evenly over every kind in `FAULTS`, drawn per request from its seed;
- the gateway (`resilience serve`) under uvicorn, its audit trail on SQLite or on a
  PostgreSQL cluster of the run's own, which `postgres_outage_s` stops mid-run;
- `clients` concurrent client tasks in this process, half streaming, half not, over the
  OpenAI and the Anthropic endpoints, for `duration_s`, every loop bounded by the clock.

A request ends cleanly when it gets an answer (a complete stream included), a 4xx, the
documented 503 when every target is down, or a stream that ends with the format's error
event after output began. Anything else (another 5xx, a cut connection, a stream that
just stops) is counted in `unclean`, with an example kept.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import signal
import sys
import time
from collections import Counter
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from resilience.chaos import Fault
from resilience.tenancy.resolvers import hash_key
from tests.support.processes import Process, free_port, wait_up
from tests.support.servers import PostgresServer, RedisServer, postgres_server, redis_server

MAX_RESPONSE_BYTES = 65_536
"""The gateway's `max_response_bytes` for both providers; `gigantic_body` sends 4 times it."""

FAULTS: dict[str, Fault] = {
    "status_500": Fault(status=500),
    "status_503": Fault(status=503),
    "status_429": Fault(status=429, retry_after="1"),
    "latency": Fault(latency_s=0.3),
    "hang": Fault(hang=True),
    "malformed_body": Fault(malformed_body=True),
    "truncated_body": Fault(truncated_body=True),
    "wrong_content_type": Fault(wrong_content_type=True),
    "no_end_marker": Fault(no_end_marker=True),
    "drop_after_chunks": Fault(drop_after_chunks=1),
    "reset_after_chunks": Fault(reset_after_chunks=1),
    "error_event_after_chunks": Fault(error_event_after_chunks=1),
    "stall_after_chunks": Fault(stall_after_chunks=1),
    "trickle": Fault(chunk_delay_s=0.05),
    "gigantic_body": Fault(body_bytes=4 * MAX_RESPONSE_BYTES),
}
"""Every fault kind of the chaos upstream; `hang` and `stall` end by the provider timeout."""

UPSTREAM_TIMEOUT_S = 1.0
GRACE_S = 10.0
LOG_ALARMS = ("Traceback", "Exception in ASGI application", "Task exception was never retrieved")


@dataclass(frozen=True, slots=True, kw_only=True)
class LoadPlan:
    clients: int
    duration_s: float
    fault_share: float = 0.3
    stream_share: float = 0.5
    tenants: int = 50
    postgres: bool = False
    postgres_outage_s: float | None = None
    """Stop the audit database this long, starting at a third of the run."""
    redis: bool = False
    """Share breakers through a Redis server of the run's own (`REDIS_URL`)."""
    redis_outage_s: float | None = None
    """Kill that Redis this long, starting at half of the run, then start it again."""
    sigterm_at_s: float | None = None
    """Send SIGTERM to the gateway this far into the run, then restart it on the same
    database and spool to see that nothing was lost."""
    seed: int = 7


@dataclass(slots=True)
class LoadReport:
    requests: int = 0
    outcomes: Counter[str] = field(default_factory=Counter)
    """`200`, `4xx`, `503_all_down`, `stream_error_event`, ..."""
    unclean: Counter[str] = field(default_factory=Counter)
    examples: list[str] = field(default_factory=list)
    faults_injected: Counter[str] = field(default_factory=Counter)
    upstream_requests: int = 0
    log_alarms: list[str] = field(default_factory=list)
    rss_warm_kib: int = 0
    rss_end_kib: int = 0
    rss_peak_kib: int = 0
    fds_base: int = 0
    fds_end: int = 0
    tasks_base: int = 0
    tasks_end: int = 0
    audit_received: int = 0
    audit_rows: int = 0
    refused_after_sigterm: int = 0
    gateway_exit_s: float | None = None
    store_outages: int = 0
    store_resyncs: int = 0

    @property
    def audit_lost(self) -> int:
        return self.audit_received - self.audit_rows

    @property
    def server_errors(self) -> int:
        """5xx answers other than the documented 503 (every target down)."""
        return sum(n for k, n in self.unclean.items() if k.startswith("status_5"))

    def lines(self) -> list[str]:
        faults = ", ".join(f"{k} {n}" for k, n in sorted(self.faults_injected.items()))
        return [
            f"requests: {self.requests} ({dict(self.outcomes)})",
            f"unclean endings: {sum(self.unclean.values())} {dict(self.unclean)}",
            f"upstream requests: {self.upstream_requests}; faults injected "
            f"{sum(self.faults_injected.values())}: {faults}",
            f"gateway RSS: warm {self.rss_warm_kib} KiB, end {self.rss_end_kib} KiB, "
            f"peak {self.rss_peak_kib} KiB",
            f"gateway fds: {self.fds_base} -> {self.fds_end}; tasks: {self.tasks_base} -> "
            f"{self.tasks_end}",
            f"audit: {self.audit_received} transitions, {self.audit_rows} rows, "
            f"lost {self.audit_lost}",
            f"breaker store (Redis): outages {self.store_outages}, resyncs {self.store_resyncs}",
            f"log alarms: {len(self.log_alarms)}",
        ]


def proc_status(pid: int) -> tuple[int, int, int]:
    """(RSS KiB, peak RSS KiB, open file descriptors) of a live process, from /proc."""
    fields: dict[str, int] = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            fields[key] = int(value.split()[0])
    return fields["VmRSS"], fields["VmHWM"], len(os.listdir(f"/proc/{pid}/fd"))


def gateway_config(upstream: str, tenants: int) -> str:
    keys = "\n".join(
        f'[tenants.t{i}]\napi_key_sha256 = ["{hash_key(f"load-key-{i}")}"]' for i in range(tenants)
    )
    return f"""
[retry]
max_attempts = 2
base_delay_s = 0.01
max_delay_s = 0.05
deadline_s = 8

[breaker]
cooldown_s = 2
max_cooldown_s = 8

[providers.primary]
kind = "openai"
api_key_env = "UPSTREAM_KEY"
base_url = "{upstream}/primary/v1"
timeout_s = {UPSTREAM_TIMEOUT_S}
max_response_bytes = {MAX_RESPONSE_BYTES}

[providers.claude]
kind = "anthropic"
api_key_env = "UPSTREAM_KEY"
base_url = "{upstream}/claude"
timeout_s = {UPSTREAM_TIMEOUT_S}
max_response_bytes = {MAX_RESPONSE_BYTES}

[routes.chat]
targets = ["primary:gpt-4.1", "claude:claude-sonnet-4-6"]

[admin.tokens.ops]
token_sha256 = "{hash_key("load-admin")}"

{keys}
"""


class Run:
    """One load run's processes and counters."""

    def __init__(self, plan: LoadPlan, workdir: Path) -> None:
        self.plan = plan
        self.workdir = workdir
        self.report = LoadReport()
        self.rng = random.Random(plan.seed)
        self.chaos_port = free_port()
        self.gateway_port = free_port()
        self.upstream = f"http://127.0.0.1:{self.chaos_port}"
        self.root = f"http://127.0.0.1:{self.gateway_port}"
        self.gateway_log = workdir / "gateway.log"
        self.pg: PostgresServer | None = None
        self.redis: RedisServer | None = None
        self.sigterm_sent = False
        self.env = {
            **os.environ,
            "UPSTREAM_KEY": "upstream-secret-key",
            "RESILIENCE_CONFIG": str(workdir / "gateway.toml"),
            "RESILIENCE_SPOOL": str(workdir / "spool.jsonl"),
            "DATABASE_URL": f"sqlite:///{workdir / 'audit.db'}",
            "PYTHONUNBUFFERED": "1",
        }
        (workdir / "gateway.toml").write_text(gateway_config(self.upstream, plan.tenants))

    def python(self, *args: str) -> list[str]:
        return [sys.executable, "-m", "resilience.cli", *args]

    def chaos(self) -> Process:
        args = self.python("chaos", "--port", str(self.chaos_port), "--seed", str(self.plan.seed))
        return Process("chaos", args, self.env, self.workdir / "chaos.log")

    def gateway(self) -> Process:
        args = self.python("serve", "--port", str(self.gateway_port), "--grace-s", str(GRACE_S))
        return Process("gateway", args, self.env, self.gateway_log)

    async def wait_up(self, url: str, timeout_s: float = 30.0) -> None:
        await wait_up(url, timeout_s)

    async def script_faults(self, http: httpx.AsyncClient) -> None:
        """Each kind gets `share / K` of all requests: rule i fires with the probability that
        leaves that share after the rules before it had their turn."""
        kinds = list(FAULTS.items())
        each = self.plan.fault_share / len(kinds)
        for i, (_name, fault) in enumerate(kinds):
            probability = min(1.0, each / (1.0 - i * each))
            body = {"fault": fault.as_dict(), "probability": probability}
            response = await http.post(f"{self.upstream}/_chaos/faults", json=body)
            response.raise_for_status()

    async def metrics(self, http: httpx.AsyncClient) -> dict[str, float]:
        text = (await http.get(f"{self.root}/metrics", timeout=10)).text
        found: dict[str, float] = {}
        for line in text.splitlines():
            if line and not line.startswith("#"):
                name, _, value = line.rpartition(" ")
                found[name] = float(value)
        return found

    async def client(self, http: httpx.AsyncClient, stop_at: float) -> None:
        rng = random.Random(self.rng.random())
        while time.monotonic() < stop_at:
            tenant = rng.randrange(self.plan.tenants)
            stream = rng.random() < self.plan.stream_share
            anthropic = rng.random() < 0.5
            try:
                outcome = await self.one(http, tenant, stream=stream, anthropic=anthropic)
            except _NoResponse as exc:
                if self.sigterm_sent:  # a stopping server turning a request away is clean
                    self.report.refused_after_sigterm += 1
                    await asyncio.sleep(0.05)
                    continue
                outcome = f"unclean:no_response_{exc}"
            self.report.requests += 1
            if outcome.startswith("unclean:"):
                kind = outcome.removeprefix("unclean:")
                self.report.unclean[kind] += 1
            else:
                self.report.outcomes[outcome] += 1

    async def one(
        self, http: httpx.AsyncClient, tenant: int, *, stream: bool, anthropic: bool
    ) -> str:
        headers = {"authorization": f"Bearer load-key-{tenant}"}
        body: dict[str, Any] = {
            "model": "chat",
            "max_tokens": 16,
            "messages": [{"role": "user", "content": "hello under load"}],
            "stream": stream,
        }
        path = "/v1/messages" if anthropic else "/v1/chat/completions"
        request = http.build_request("POST", self.root + path, json=body, headers=headers)
        try:
            response = await http.send(request, stream=True)
        except httpx.TransportError as exc:
            if len(self.report.examples) < 10:
                self.report.examples.append(
                    f"{time.strftime('%H:%M:%S')} {path} stream={stream}: {exc!r}"
                )
            raise _NoResponse(type(exc).__name__) from exc
        try:
            raw = await response.aread()
        except httpx.TransportError as exc:
            return f"unclean:cut_mid_response_{type(exc).__name__}"
        finally:
            await response.aclose()
        status = response.status_code
        if status >= 500:
            if status == 503 and b"all targets" in raw:
                return "503_all_down"
            return f"unclean:status_{status}"
        if status >= 400:
            return "4xx"
        if not stream:
            return "200" if json.loads(raw) else "unclean:empty_answer"
        text = raw.decode()
        if "[DONE]" in text or "message_stop" in text:
            return "200_stream"
        if '"error"' in text:
            return "stream_error_event"
        return "unclean:stream_cut_without_error_event"


class _NoResponse(Exception):
    """The request got no response at all (refused, or closed before any byte came)."""


async def run_load(plan: LoadPlan, workdir: Path) -> LoadReport:
    """Run `plan`; the report says what the clients, the upstream and the gateway saw."""
    run = Run(plan, workdir)
    chaos = run.chaos()
    await chaos.start()
    gateway = run.gateway()
    try:
        await run.wait_up(f"{run.upstream}/_chaos/faults")
        with ExitStack() as servers:
            if plan.postgres:
                run.pg = servers.enter_context(postgres_server())
                run.env["DATABASE_URL"] = run.pg.url
            if plan.redis:
                run.redis = servers.enter_context(redis_server())
                run.env["REDIS_URL"] = run.redis.url
            return await _drive(run, gateway)
    finally:
        if gateway.proc is not None:
            await gateway.stop(signal.SIGKILL)
        await chaos.stop()


async def _drive(run: Run, gateway: Process) -> LoadReport:
    plan, report = run.plan, run.report
    await gateway.start()
    await run.wait_up(f"{run.root}/healthz")
    limits = httpx.Limits(max_connections=plan.clients, max_keepalive_connections=plan.clients)
    timeout = httpx.Timeout(30.0)
    async with httpx.AsyncClient(limits=limits, timeout=timeout) as control:
        await run.script_faults(control)
        # Warm-up: the same load for a fifth of the run, then the baseline, once settled,
        # so that caches count in both the baseline and the end.
        await _phase(run, limits, timeout, max(2.0, plan.duration_s / 5), events=False)
        await _quiesce(run, control)
        base = await run.metrics(control)
        report.tasks_base = int(base["resilience_event_loop_tasks"])
        report.rss_warm_kib, _, report.fds_base = proc_status(gateway.pid)
        await _phase(run, limits, timeout, plan.duration_s, events=True, gateway=gateway)
        if plan.sigterm_at_s is not None:
            await _restart_and_settle(run, gateway)
        await _quiesce(run, control)
        end = await run.metrics(control)
        report.rss_end_kib, report.rss_peak_kib, report.fds_end = proc_status(gateway.pid)
        report.tasks_end = int(end["resilience_event_loop_tasks"])
        report.audit_received += int(end["resilience_audit_received_total"])
        report.store_outages = int(end.get("resilience_breaker_store_outages_total", 0))
        report.store_resyncs = int(end.get("resilience_breaker_store_resyncs_total", 0))
        report.audit_rows = await _rows_when_settled(run.env["DATABASE_URL"], report.audit_received)
        hits = (await control.get(f"{run.upstream}/_chaos/hits", timeout=60)).json()["hits"]
    report.upstream_requests = len(hits)
    names = {json.dumps(f.as_dict(), sort_keys=True): n for n, f in FAULTS.items()}
    for hit in hits:
        if hit["fault"] is not None:
            report.faults_injected[names.get(json.dumps(hit["fault"], sort_keys=True), "?")] += 1
    log = run.gateway_log.read_text(errors="replace")
    report.log_alarms = [line for line in log.splitlines() if any(a in line for a in LOG_ALARMS)]
    return report


POOL_IDLE_S = 6.0
"""Longer than the upstream pools' keep-alive expiry (httpx's 5 s)."""


async def _quiesce(run: Run, http: httpx.AsyncClient) -> None:
    """Bring the gateway to the same resting state before the baseline and at the end:
    idle long enough for pooled upstream connections to expire, then one request per
    target, on which the pools close what expired. File descriptors then count what the
    load left behind, not how many pooled connections happened to be idle."""
    await asyncio.sleep(POOL_IDLE_S)
    headers = {"authorization": "Bearer load-key-0"}
    for model in ("primary:gpt-4.1", "claude:claude-sonnet-4-6"):
        body = {"model": model, "max_tokens": 16, "messages": [{"role": "user", "content": "hi"}]}
        await http.post(f"{run.root}/v1/chat/completions", json=body, headers=headers)
    await asyncio.sleep(0.5)  # handlers finished, client connections closed


async def _phase(
    run: Run,
    limits: httpx.Limits,
    http_timeout: httpx.Timeout,
    duration_s: float,
    *,
    events: bool,
    gateway: Process | None = None,
) -> None:
    """`clients` concurrent clients for `duration_s`; with `events`, the outage and SIGTERM."""
    async with httpx.AsyncClient(limits=limits, timeout=http_timeout) as http:
        started = time.monotonic()
        stop_at = started + duration_s
        tasks = [asyncio.create_task(run.client(http, stop_at)) for _ in range(run.plan.clients)]
        if events and gateway is not None:
            tasks.append(asyncio.create_task(_events(run, gateway, started)))
        await asyncio.gather(*tasks)


async def _events(run: Run, gateway: Process, started: float) -> None:
    """The database and Redis outages and SIGTERM, each at its own time into the main
    phase (the outages may overlap)."""
    plan, report = run.plan, run.report

    async def at(offset_s: float) -> None:
        await asyncio.sleep(max(0.0, started + offset_s - time.monotonic()))

    async def outage(server: PostgresServer | RedisServer, begin_s: float, for_s: float) -> None:
        await at(begin_s)
        await asyncio.to_thread(server.stop)
        await asyncio.sleep(for_s)
        await asyncio.to_thread(server.start)

    async def sigterm(at_s: float) -> None:
        await at(at_s)
        run.sigterm_sent = True
        report.gateway_exit_s = await gateway.stop(signal.SIGTERM, timeout_s=GRACE_S + 10)

    events = []
    if plan.postgres_outage_s is not None and run.pg is not None:
        events.append(outage(run.pg, plan.duration_s / 3, plan.postgres_outage_s))
    if plan.redis_outage_s is not None and run.redis is not None:
        events.append(outage(run.redis, plan.duration_s / 2, plan.redis_outage_s))
    if plan.sigterm_at_s is not None:
        events.append(sigterm(plan.sigterm_at_s))
    await asyncio.gather(*events)


async def _restart_and_settle(run: Run, gateway: Process) -> None:
    """After SIGTERM: count what the first process received, start a second one on the
    same database and spool (it replays the spool), and let it settle."""
    log = run.gateway_log.read_text(errors="replace")
    shutdown = [line for line in log.splitlines() if "shutdown: audit events received" in line]
    if shutdown:
        run.report.audit_received += int(shutdown[-1].split("received ")[1].split(",")[0])
    await gateway.start()
    await run.wait_up(f"{run.root}/healthz")


async def _rows_when_settled(database_url: str, expected: int, timeout_s: float = 60) -> int:
    """Audit rows, polled until they reach `expected` (the writer batches and retries) or
    stop changing for a while past the timeout."""
    from sqlalchemy import func, select

    from resilience.audit.database import create_engine
    from resilience.audit.schema import breaker_events

    engine = create_engine(database_url)
    count = select(func.count()).select_from(breaker_events)
    try:
        deadline = time.monotonic() + timeout_s
        while True:
            async with engine.connect() as conn:
                rows = int((await conn.execute(count)).scalar_one())
            if rows >= expected or time.monotonic() > deadline:
                return rows
            await asyncio.sleep(0.5)
    finally:
        await engine.dispose()
