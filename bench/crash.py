"""`kill -9` of the gateway under load: audit and usage rows lost or doubled (goal: 0 each).

Usage: python bench/crash.py [--quick]

The gateway (`resilience serve`) on the chaos upstream (`resilience chaos`), each in a
process of its own, its audit trail on the local PostgreSQL, takes 200 concurrent
clients for a few seconds. A share of the calls fail (a 500 on one model), so breakers
open, half-open and close again all along; admin calls open and reset breakers of
tenants no traffic touches. Mid-load the gateway gets SIGKILL, then starts again on the
same journal, spool and database (`tests/audit/test_journal_kill9.py` asserts this run).
What must be there is known without the database:

- usage: every call carries its own `x-request-id`; the clients keep the ids that got a
  complete response before the kill (a failed call has its row too) and those the kill
  cut. Each answered id must have exactly one usage row, and no row an id never sent;
  a cut call may have finished in the gateway before the kill, so it may have a row.
- breaker events: an answered admin call is a transition made (each tenant's calls
  alternate open and reset), so each must have its row; and every breaker's trail must
  be one unbroken chain (each event leaves the state the one before entered), which a
  lost or a doubled transition breaks.

Figures, after the restart has replayed what the killed process left:

- kill9_usage_lost: answered calls without their usage row;
- kill9_audit_lost: answered admin transitions without their row, plus chain breaks;
- kill9_duplicates: usage rows beyond one per request id, and breaker events doubled;
- kill9_recovered_rows: rows the restart found in the killed process's journal: the
  kill landed with rows in flight, which without the journal would have been lost.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import signal
import sys
import tempfile
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import asyncpg
import httpx

from bench._stats import headline
from resilience.tenancy.resolvers import hash_key
from tests.support.processes import Process, free_port, wait_up

QUICK = "--quick" in sys.argv
LOAD_S = 2.0 if QUICK else 6.0
PG = "postgresql://postgres@127.0.0.1:5432"

ADMIN_TOKEN = "kill9-admin"
ADMIN_TENANTS = 10
"""Tenants whose breakers only admin calls move: each answered call is a transition."""


def kill9_config(upstream: str) -> str:
    return f"""
[server]
tenant_from = "header"

[retry]
max_attempts = 1
deadline_s = 10

[breaker]
failure_threshold = 3
cooldown_s = 0.3
max_cooldown_s = 0.6
half_open_max_calls = 1
provider_wide_min_tenants = 0

[providers.primary]
kind = "openai"
api_key_env = "UPSTREAM_KEY"
base_url = "{upstream}/primary/v1"
timeout_s = 10

[routes.chat]
targets = ["primary:gpt-4.1"]

[routes.flaky]
targets = ["primary:gpt-4.1-mini"]

[admin.tokens.ops]
token_sha256 = "{hash_key(ADMIN_TOKEN)}"
"""


@dataclass(slots=True)
class Kill9Report:
    """What the clients saw, what the database holds after the restart, and the difference."""

    sent: set[str] = field(default_factory=set)
    answered: set[str] = field(default_factory=set)
    """Request ids that got a complete 200 before the kill."""
    refused: set[str] = field(default_factory=set)
    """Request ids that got a complete error response (a failed call has its row too)."""
    cut: set[str] = field(default_factory=set)
    """Request ids the kill left without a complete response."""
    admin_answered: Counter[str] = field(default_factory=Counter)
    """Admin transitions answered before the kill, by tenant."""
    admin_cut: Counter[str] = field(default_factory=Counter)
    usage_rows: int = 0
    usage_lost: int = 0
    usage_duplicates: int = 0
    usage_unknown: int = 0
    """Rows whose request id was never sent (must be 0)."""
    usage_of_cut: int = 0
    """Rows of calls the kill cut that had finished in the gateway (allowed)."""
    audit_rows: int = 0
    """Breaker events made before the kill (the restart's `process_restart` ones apart)."""
    audit_lost: int = 0
    audit_duplicates: int = 0
    chain_breaks: int = 0
    opened: int = 0
    closed: int = 0
    recovered: int = 0
    """Rows the restarted gateway moved from the killed one's journal to the spool."""
    journal_lines_at_kill: int = 0

    @property
    def lost(self) -> int:
        return self.usage_lost + self.audit_lost

    @property
    def duplicates(self) -> int:
        return self.usage_duplicates + self.audit_duplicates

    def lines(self) -> list[str]:
        return [
            f"calls: sent {len(self.sent)}, answered 200 {len(self.answered)}, "
            f"answered with an error {len(self.refused)}, cut by the kill {len(self.cut)}",
            f"usage rows {self.usage_rows}: lost {self.usage_lost}, duplicated "
            f"{self.usage_duplicates}, unknown ids {self.usage_unknown}, "
            f"of cut calls {self.usage_of_cut}",
            f"breaker events before the kill {self.audit_rows} (opened {self.opened}, "
            f"closed {self.closed}): admin transitions answered "
            f"{sum(self.admin_answered.values())}, lost {self.audit_lost}, duplicated "
            f"{self.audit_duplicates}, chain breaks {self.chain_breaks}",
            f"journal at the kill: {self.journal_lines_at_kill} lines; recovered by the "
            f"restart: {self.recovered} rows",
        ]


class Kill9Run:
    """The processes and the clients of one run."""

    def __init__(self, workdir: Path, database_url: str, *, clients: int, tenants: int) -> None:
        self.workdir = workdir
        self.clients = clients
        self.tenants = tenants
        chaos_port, gateway_port = free_port(), free_port()
        self.upstream = f"http://127.0.0.1:{chaos_port}"
        self.root = f"http://127.0.0.1:{gateway_port}"
        (workdir / "gateway.toml").write_text(kill9_config(self.upstream))
        self.journal = workdir / "journal"
        env = {
            **os.environ,
            "UPSTREAM_KEY": "kill9-upstream-key",
            "RESILIENCE_CONFIG": str(workdir / "gateway.toml"),
            "DATABASE_URL": database_url,
            "RESILIENCE_SPOOL": str(workdir / "spool.jsonl"),
            "RESILIENCE_JOURNAL": str(self.journal),
            "RESILIENCE_JOURNAL_FSYNC": "batch",
            "PYTHONUNBUFFERED": "1",
        }
        cli = [sys.executable, "-m", "resilience.cli"]
        self.chaos = Process(
            "chaos",
            [*cli, "chaos", "--port", str(chaos_port), "--seed", "18"],
            env,
            workdir / "chaos.log",
        )
        serve = [*cli, "serve", "--port", str(gateway_port), "--grace-s", "5"]
        self.gateway = Process("gateway", serve, env, workdir / "gateway.log")
        self.report = Kill9Report()
        self.stop = asyncio.Event()

    async def client(self, http: httpx.AsyncClient, number: int) -> None:
        """Calls until the kill: tenant and route by turns, every call its own id."""
        report = self.report
        for turn in itertools.count():
            if self.stop.is_set():
                return
            tenant = f"t{(number + turn) % self.tenants}"
            route = "flaky" if (number + turn) % 2 else "chat"
            request_id = f"k9-{uuid.uuid4().hex}"
            body = {"model": route, "messages": [{"role": "user", "content": "hi"}]}
            headers = {"x-tenant-id": tenant, "x-request-id": request_id}
            report.sent.add(request_id)
            try:
                response = await http.post(
                    self.root + "/v1/chat/completions", json=body, headers=headers
                )
            except httpx.TransportError:
                report.cut.add(request_id)
                return
            if response.status_code == 200:
                report.answered.add(request_id)
            else:
                report.refused.add(request_id)

    async def admin(self, http: httpx.AsyncClient, tenant: str) -> None:
        """Open and reset `tenant`'s breaker in turns; each answer is one transition."""
        headers = {"authorization": f"Bearer {ADMIN_TOKEN}"}
        for turn in itertools.count():
            if self.stop.is_set():
                return
            action = "open" if turn % 2 == 0 else "reset"
            url = f"{self.root}/admin/circuits/{tenant}/primary/{action}"
            try:
                response = await http.post(url, headers=headers, json={"reason": "kill9"})
            except httpx.TransportError:
                self.report.admin_cut[tenant] += 1
                return
            response.raise_for_status()
            self.report.admin_answered[tenant] += 1
            await asyncio.sleep(0.01)


async def kill9_run(
    workdir: Path,
    database_url: str,
    *,
    clients: int = 200,
    tenants: int = 40,
    load_s: float = 4.0,
) -> Kill9Report:
    """Load, `kill -9`, restart on the same journal, settle, and count (see the module)."""
    run = Kill9Run(workdir, database_url, clients=clients, tenants=tenants)
    report = run.report
    await run.chaos.start()
    try:
        await wait_up(run.upstream + "/_chaos/faults")
        async with contextlib.AsyncExitStack() as stack:

            async def own_client() -> httpx.AsyncClient:
                """One connection per caller, as separate clients would have: one shared
                pool of 250 (httpcore's) spends its time matching requests to connections
                and stalls the callers for seconds. Loopback http: no certificates."""
                one = httpx.Limits(max_connections=1, max_keepalive_connections=1)
                made = httpx.AsyncClient(limits=one, timeout=30, verify=False)
                return await stack.enter_async_context(made)

            http = await own_client()
            fault = {"fault": {"status": 500}, "model": "gpt-4.1-mini", "probability": 0.6}
            (await http.post(run.upstream + "/_chaos/faults", json=fault)).raise_for_status()
            await run.gateway.start()
            await wait_up(run.root + "/healthz")
            tasks = [asyncio.create_task(run.client(await own_client(), i)) for i in range(clients)]
            tasks += [
                asyncio.create_task(run.admin(await own_client(), f"admin-{j}"))
                for j in range(ADMIN_TENANTS)
            ]
            await asyncio.sleep(load_s)
            for _ in range(100):  # at an instant the journal holds rows: they must survive
                if _journal_lines(run.journal):
                    break
                await asyncio.sleep(0.01)
            assert run.gateway.proc is not None and run.gateway.proc.returncode is None
            run.gateway.proc.send_signal(signal.SIGKILL)  # under load: calls in flight
            run.stop.set()
            await run.gateway.proc.wait()
            report.journal_lines_at_kill = _journal_lines(run.journal)
            await asyncio.gather(*tasks)

            await run.gateway.start()  # the same journal, spool and database
            await wait_up(run.root + "/healthz")
            audit: dict[str, Any] = {}

            async def settled() -> bool:
                nonlocal audit
                body = (await http.get(run.root + "/readyz")).json()
                audit = body.get("audit", {})
                return bool(audit.get("backlog") == {"queued": 0, "spooled": 0})

            await _until(settled, timeout_s=60)
            report.recovered = int(audit.get("recovered", 0))
            await _count(report, database_url)
    finally:
        if run.gateway.proc is not None:
            await run.gateway.stop()
        await run.chaos.stop()
    return report


def _journal_lines(folder: Path) -> int:
    return sum(
        sum(1 for line in path.read_bytes().splitlines() if line.strip())
        for path in folder.glob("journal-*.jsonl")
    )


async def _count(report: Kill9Report, database_url: str) -> None:
    """Compare the database with what the clients saw."""
    conn = await asyncpg.connect(database_url)
    try:
        usage = await conn.fetch("SELECT id, request_id FROM usage_records")
        events = await conn.fetch(
            "SELECT id, tenant_id, provider, from_state, to_state, reason, occurred_at, actor "
            "FROM breaker_events ORDER BY occurred_at"
        )
    finally:
        await conn.close()
    per_request = Counter(row["request_id"] for row in usage)
    report.usage_rows = len(usage)
    report.usage_duplicates = sum(n - 1 for n in per_request.values() if n > 1)
    report.usage_lost = len((report.answered | report.refused) - per_request.keys())
    report.usage_unknown = len(per_request.keys() - report.sent)
    report.usage_of_cut = len(per_request.keys() & report.cut)

    made = [e for e in events if e["reason"] != "process_restart"]
    report.audit_rows = len(made)
    report.opened = sum(1 for e in made if e["to_state"] in ("open", "forced_open"))
    report.closed = sum(1 for e in made if e["to_state"] == "closed")
    same = Counter(
        (e["tenant_id"], e["provider"], e["from_state"], e["to_state"], e["occurred_at"])
        for e in events
    )
    report.audit_duplicates = sum(n - 1 for n in same.values() if n > 1)
    admin_rows = Counter(e["tenant_id"] for e in made if e["actor"] is not None)
    for tenant, answered in report.admin_answered.items():
        rows = admin_rows[tenant]
        report.audit_lost += max(0, answered - rows)
        # more rows than answers: only the one call the kill cut may have been made
        report.audit_duplicates += max(0, rows - answered - report.admin_cut[tenant])
    chains: dict[tuple[str, str], list[Any]] = defaultdict(list)
    for e in events:
        chains[(e["tenant_id"], e["provider"])].append(e)
    report.chain_breaks = sum(_breaks(chain) for chain in chains.values())
    report.audit_lost += report.chain_breaks


def _breaks(chain: list[Any]) -> int:
    """Events whose `from_state` is not the state the trail was in: a transition lost (or
    doubled) before them. Events of one instant are taken in the order that fits."""
    state, breaks = "closed", 0
    rest = list(chain)
    while rest:
        first = rest[0]["occurred_at"]
        same = [e for e in rest if e["occurred_at"] == first]
        pick = next((e for e in same if e["from_state"] == state), same[0])
        if pick["from_state"] != state:
            breaks += 1
        state = pick["to_state"]
        rest.remove(pick)
    return breaks


async def _until(check: Callable[[], Awaitable[bool]], timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while not await check():
        if time.monotonic() > deadline:
            raise AssertionError(f"not true within {timeout_s} s")
        await asyncio.sleep(0.1)


async def main() -> None:
    name = f"bench_crash_{uuid.uuid4().hex[:8]}"
    admin = await asyncpg.connect(f"{PG}/test")
    await admin.execute(f'CREATE DATABASE "{name}"')
    started = time.perf_counter()
    try:
        with tempfile.TemporaryDirectory() as tmp:
            report = await kill9_run(Path(tmp), f"{PG}/{name}", clients=200, load_s=LOAD_S)
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()
    print(f"kill -9 after {LOAD_S:.0f} s of 200 concurrent clients, then a restart on the journal")
    for line in report.lines():
        print(line)
    print(f"({time.perf_counter() - started:.0f} s in all)")
    headline(
        {
            "kill9_calls_answered": len(report.answered) + len(report.refused),
            "kill9_recovered_rows": report.recovered,
            "kill9_audit_lost": report.audit_lost,
            "kill9_usage_lost": report.usage_lost,
            "kill9_duplicates": report.duplicates,
        }
    )


if __name__ == "__main__":
    asyncio.run(main())
