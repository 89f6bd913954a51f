"""`resilience demo`: gateway and chaos upstream, an outage script, the audit trail's answers.

No API key and no database server: the chaos upstream and the gateway run on
loopback in this process, the audit trail goes to an embedded SQLite file, and
tenants call the gateway with the real `openai` SDK. The script, with short
cooldowns so it fits well under two minutes:

1. healthy traffic from every tenant;
2. one tenant's own OpenAI key is revoked (401): only that tenant's breaker opens;
3. OpenAI goes down (503): tenants' breakers open, then the provider-wide one,
   and traffic moves to Anthropic;
4. OpenAI comes back: half-open probes close the breakers;
5. a rate-limit burst (429, Retry-After 2 s) for one tenant: answered by the
   fallback at once while everyone else stays on OpenAI.

Then an operator isolates one tenant through the admin API, and the demo ends
with the breaker table and the answers of the README's audit queries.
"""

from __future__ import annotations

import asyncio
import random
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx2
import openai
from sqlalchemy import text

from resilience.audit.readme import readme_queries
from resilience.chaos import ChaosUpstream, Fault
from resilience.config.load import parse_config
from resilience.gateway.factory import Gateway, create_app
from resilience.gateway.settings import Settings
from resilience.serving import serve_asgi
from resilience.tenancy.resolvers import hash_key

TENANTS = [f"tenant-{i:02d}" for i in range(1, 11)] + ["globex", "initech"]
ADMIN_TOKEN = "demo-admin-token"
ENVIRON = {
    "DEMO_UPSTREAM_KEY": "demo-upstream-key",
    "GLOBEX_OPENAI_KEY": "globex-key",
    "INITECH_OPENAI_KEY": "initech-key",
}


def gateway_key(tenant: str) -> str:
    return f"demo-key-{tenant}"


def demo_settings(upstream: str, folder: Path) -> Settings:
    config = parse_config(
        {
            "breaker": {
                "failure_threshold": 3,
                "window_s": 10,
                "cooldown_s": 3,
                "max_cooldown_s": 12,
                "provider_wide_min_tenants": 3,
            },
            "retry": {
                "max_attempts": 2,
                "base_delay_s": 0.05,
                "max_delay_s": 0.2,
                "deadline_s": 10,
            },
            "providers": {
                "openai": {
                    "kind": "openai",
                    "api_key_env": "DEMO_UPSTREAM_KEY",
                    "base_url": f"{upstream}/openai/v1",
                },
                "anthropic": {
                    "kind": "anthropic",
                    "api_key_env": "DEMO_UPSTREAM_KEY",
                    "base_url": f"{upstream}/anthropic",
                },
                "local": {
                    "kind": "openai",
                    "base_url": f"{upstream}/local/v1",
                    "location": "local",
                },
            },
            "routes": {
                "chat": {
                    "targets": ["openai:gpt-4.1", "anthropic:claude-sonnet-4-6", "local:llama3.1"]
                }
            },
            "tenants": {
                tenant: {
                    "api_key_sha256": [hash_key(gateway_key(tenant))],
                    **(
                        {"providers": {"openai": {"api_key_env": f"{tenant.upper()}_OPENAI_KEY"}}}
                        if tenant in ("globex", "initech")
                        else {}
                    ),
                }
                for tenant in TENANTS
            },
            "admin": {"tokens": {"demo": {"token_sha256": hash_key(ADMIN_TOKEN)}}},
        },
        environ=ENVIRON,
    )
    return Settings(
        config=config,
        database_url=f"sqlite+aiosqlite:///{folder / 'audit.db'}",
        spool_path=folder / "audit-spool.jsonl",
        environ=ENVIRON,
    )


@dataclass
class Phase:
    title: str
    seconds: float
    setup: Callable[[ChaosUpstream], object]
    burst: str | None = None


def revoke_globex_key(chaos: ChaosUpstream) -> None:
    chaos.add_fault(Fault(status=401), upstream="openai", api_key="globex-key")


def openai_back(chaos: ChaosUpstream) -> None:
    chaos.clear_faults()
    revoke_globex_key(chaos)


PHASES = [
    Phase("healthy traffic", 3.0, lambda chaos: None),
    Phase("globex's own OpenAI key is revoked (401)", 4.0, revoke_globex_key),
    Phase(
        "OpenAI is down (503)",
        6.0,
        lambda chaos: chaos.add_fault(
            Fault(status=503), upstream="openai", api_key="demo-upstream-key"
        ),
    ),
    Phase("OpenAI is back (globex's key stays revoked)", 8.0, openai_back),
    Phase(
        "initech sends a burst and is rate limited (429, Retry-After 2s)",
        3.0,
        lambda chaos: chaos.add_fault(
            Fault(status=429, retry_after="2"), upstream="openai", api_key="initech-key", times=20
        ),
        burst="initech",
    ),
]


def progress(done: float, width: int = 30) -> str:
    filled = int(done * width)
    return "[" + "#" * filled + "." * (width - filled) + "]"


async def drive(root: str, phase: Phase, seconds: float) -> Counter[str]:
    """Each tenant sends a request every ~0.25 s through the gateway with the openai SDK."""
    tally: Counter[str] = Counter()
    started = time.monotonic()
    rng = random.Random(1)
    async with httpx2.AsyncClient(timeout=30) as http:
        clients = {
            t: openai.AsyncOpenAI(
                api_key=gateway_key(t), base_url=f"{root}/v1", max_retries=0, http_client=http
            )
            for t in TENANTS
        }

        async def tenant_loop(tenant: str) -> None:
            await asyncio.sleep(rng.random() * 0.25)
            while time.monotonic() - started < seconds:
                for _ in range(4 if tenant == phase.burst else 1):
                    try:
                        raw = await clients[tenant].chat.completions.with_raw_response.create(
                            model="chat", messages=[{"role": "user", "content": "status report"}]
                        )
                        tally[raw.headers["x-resilience-provider"]] += 1
                    except openai.APIStatusError as exc:
                        tally[f"http {exc.status_code}"] += 1
                await asyncio.sleep(0.25)

        async def bar() -> None:
            while (elapsed := time.monotonic() - started) < seconds:
                sys.stdout.write(f"\r  {progress(elapsed / seconds)} {elapsed:4.1f}s")
                sys.stdout.flush()
                await asyncio.sleep(0.2)
            sys.stdout.write(f"\r  {progress(1.0)} {seconds:4.1f}s\n")

        await asyncio.gather(bar(), *(tenant_loop(t) for t in TENANTS))
    return tally


async def operator_actions(root: str) -> None:
    """What an on-call engineer does from the dashboard, through the admin API."""
    headers = {"authorization": f"Bearer {ADMIN_TOKEN}"}
    async with httpx2.AsyncClient() as http:
        await http.post(
            f"{root}/admin/circuits/tenant-07/anthropic/open",
            headers=headers,
            json={"reason": "suspected abuse", "duration_s": 600},
        )
    print("\noperator: tenant-07 isolated from anthropic for 10 minutes (admin API)")


async def print_circuits(root: str) -> None:
    async with httpx2.AsyncClient() as http:
        response = await http.get(
            f"{root}/admin/circuits", headers={"authorization": f"Bearer {ADMIN_TOKEN}"}
        )
    circuits = [c for c in response.json()["circuits"] if c["state"] != "closed" or c["failures"]]
    print(f"\nbreakers not closed, or with failures in their window ({len(circuits)}):")
    print(f"  {'tenant':<12} {'provider':<10} {'state':<12} {'failures':>8}")
    for c in circuits:
        print(f"  {c['tenant']:<12} {c['provider']:<10} {c['state']:<12} {c['failures']:>8}")


async def print_audit_answers(gateway: Gateway) -> dict[str, list[tuple[Any, ...]]]:
    """Flush the audit sink, then run every README query on the SQLite file and print the rows."""
    assert gateway.sink is not None
    await gateway.sink.aclose()
    await gateway.sink.start()
    answers: dict[str, list[tuple[Any, ...]]] = {}
    async with gateway.engine.connect() as conn:
        for name, sql in readme_queries(gateway.engine.dialect.name).items():
            result = await conn.execute(text(sql))
            answers[name] = [tuple(row) for row in result.all()]
            print(f"\n-- {name}: {len(answers[name])} rows")
            print("   " + " | ".join(result.keys()))
            for row in answers[name][:8]:
                print("   " + " | ".join("" if v is None else str(v)[:26] for v in row))
    return answers


async def run_demo(*, fast: bool = False, keep: bool = False, port: int = 0) -> int:
    chaos = ChaosUpstream()
    folder = Path(tempfile.mkdtemp(prefix="resilience-demo-"))
    async with chaos.serve() as upstream:
        app = create_app(demo_settings(upstream, folder))
        async with serve_asgi(app, lifespan="on", port=port) as root:
            gateway: Gateway = app.state.gateway
            print(f"gateway {root}  (chaos upstream {upstream}, audit trail {folder / 'audit.db'})")
            for number, phase in enumerate(PHASES, start=1):
                phase.setup(chaos)
                print(f"\n{number}. {phase.title}")
                tally = await drive(root, phase, phase.seconds / (3 if fast else 1))
                served = {p: tally[p] for p in ("openai", "anthropic", "local")}
                errors = {k: v for k, v in tally.items() if k.startswith("http")}
                print(f"  answered by {served}; errors {errors or 'none'}")
            await operator_actions(root)
            await print_circuits(root)
            answers = await print_audit_answers(gateway)
            opened = len(answers.get("open_now", []))
            recovered = sum(row[1] for row in answers.get("mean_time_to_recovery", []))
            print(f"\nsummary: {recovered} open periods closed again, {opened} still open")
            if keep:
                print(f"\ndashboard: {root}/admin/  (admin token: {ADMIN_TOKEN}); Ctrl-C to stop")
                await asyncio.Event().wait()
    return 0
