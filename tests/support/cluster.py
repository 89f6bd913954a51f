"""Several gateway processes sharing breakers through Redis, in front of one chaos upstream.

Each gateway is `resilience serve` in its own process with its own audit database,
so whatever they agree on went through Redis.
"""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from types import TracebackType
from typing import Any

import httpx

from resilience.tenancy.resolvers import hash_key
from tests.support.processes import Process, free_port, wait_up
from tests.support.servers import until

ADMIN = {"authorization": "Bearer cluster-admin"}
PROVIDER = "primary"


def cluster_config(upstream: str, *, cooldown_s: float, half_open_max_calls: int) -> str:
    return f"""
[server]
tenant_from = "header"

[retry]
max_attempts = 1
deadline_s = 10

[breaker]
failure_threshold = 5
cooldown_s = {cooldown_s}
half_open_max_calls = {half_open_max_calls}
provider_wide_min_tenants = 0

[providers.{PROVIDER}]
kind = "openai"
api_key_env = "UPSTREAM_KEY"
base_url = "{upstream}/primary/v1"
timeout_s = 10

[routes.chat]
targets = ["{PROVIDER}:gpt-4.1"]

[routes.flaky]
targets = ["{PROVIDER}:gpt-4.1-mini"]

[admin.tokens.ops]
token_sha256 = "{hash_key("cluster-admin")}"
"""


class Cluster:
    """`n` gateways on `redis_url` under `prefix`, and the chaos upstream they call."""

    def __init__(
        self,
        workdir: Path,
        *,
        redis_url: str,
        prefix: str,
        n: int,
        cooldown_s: float = 30.0,
        half_open_max_calls: int = 1,
        uvicorn_workers: int = 0,
    ) -> None:
        """With `uvicorn_workers`, each gateway is
        `uvicorn resilience.gateway:create_app --factory --workers N` (the README's
        deployment): its workers share the port, an audit database and Redis."""
        self.workdir = workdir
        chaos_port = free_port()
        self.upstream = f"http://127.0.0.1:{chaos_port}"
        self.roots = [f"http://127.0.0.1:{free_port()}" for _ in range(n)]
        (workdir / "gateway.toml").write_text(
            cluster_config(
                self.upstream, cooldown_s=cooldown_s, half_open_max_calls=half_open_max_calls
            )
        )
        env = {
            **os.environ,
            "UPSTREAM_KEY": "cluster-upstream-key",
            "RESILIENCE_CONFIG": str(workdir / "gateway.toml"),
            "REDIS_URL": redis_url,
            "REDIS_PREFIX": prefix,
            "PYTHONUNBUFFERED": "1",
        }
        cli = [sys.executable, "-m", "resilience.cli"]
        self.chaos = Process(
            "chaos", [*cli, "chaos", "--port", str(chaos_port)], env, workdir / "chaos.log"
        )
        self.gateways = []
        for i, root in enumerate(self.roots):
            own = {
                **env,
                "DATABASE_URL": f"sqlite:///{workdir / f'audit-{i}.db'}",
                "RESILIENCE_SPOOL": str(workdir / f"spool-{i}.jsonl"),
            }
            port = root.rsplit(":", 1)[1]
            args = [*cli, "serve", "--port", port, "--grace-s", "5"]
            if uvicorn_workers:
                app = ["resilience.gateway:create_app", "--factory"]
                uvicorn = [sys.executable, "-m", "uvicorn", *app, "--port", port]
                args = [*uvicorn, "--workers", str(uvicorn_workers)]
            self.gateways.append(Process(f"gateway-{i}", args, own, workdir / f"gateway-{i}.log"))
        self.http = httpx.AsyncClient(timeout=30, limits=httpx.Limits(max_connections=200))

    async def __aenter__(self) -> Cluster:
        await self.chaos.start()
        for gateway in self.gateways:
            await gateway.start()
        await wait_up(self.upstream + "/_chaos/faults")
        await asyncio.gather(*(wait_up(root + "/healthz") for root in self.roots))
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await asyncio.gather(*(g.stop() for g in self.gateways), self.chaos.stop())
        await self.http.aclose()

    # -- traffic ---------------------------------------------------------------------------

    async def chat(self, i: int, tenant: str = "t0", route: str = "chat") -> int:
        """One chat completion through gateway `i`; the status code."""
        body = {"model": route, "messages": [{"role": "user", "content": "hi"}]}
        response = await self.http.post(
            self.roots[i] + "/v1/chat/completions", json=body, headers={"x-tenant-id": tenant}
        )
        return response.status_code

    # -- the upstream ----------------------------------------------------------------------

    async def fault(self, fault: dict[str, Any], **match: Any) -> None:
        response = await self.http.post(
            self.upstream + "/_chaos/faults", json={"fault": fault, **match}
        )
        response.raise_for_status()

    async def clear_faults(self) -> None:
        (await self.http.delete(self.upstream + "/_chaos/faults")).raise_for_status()

    async def hits(self) -> int:
        """Requests the upstream received since the last `clear_hits()`."""
        response = await self.http.get(self.upstream + "/_chaos/hits")
        return len(response.json()["hits"])

    async def clear_hits(self) -> None:
        (await self.http.delete(self.upstream + "/_chaos/hits")).raise_for_status()

    # -- the gateways' own view ------------------------------------------------------------

    async def state(self, i: int, tenant: str = "t0") -> str:
        url = f"{self.roots[i]}/admin/circuits/{tenant}/{PROVIDER}"
        response = await self.http.get(url, headers=ADMIN)
        response.raise_for_status()
        return str(response.json()["state"])

    async def admin(self, i: int, action: str, tenant: str = "t0") -> dict[str, Any]:
        url = f"{self.roots[i]}/admin/circuits/{tenant}/{PROVIDER}/{action}"
        response = await self.http.post(url, headers=ADMIN, json={"reason": "test"})
        response.raise_for_status()
        result: dict[str, Any] = response.json()
        return result

    async def events(self, i: int) -> list[dict[str, Any]]:
        """Gateway `i`'s audit trail (its own database)."""
        response = await self.http.get(self.roots[i] + "/admin/events", headers=ADMIN)
        response.raise_for_status()
        found: list[dict[str, Any]] = response.json()["events"]
        return found

    async def readyz(self, i: int) -> dict[str, Any]:
        body: dict[str, Any] = (await self.http.get(self.roots[i] + "/readyz")).json()
        return body

    async def until(self, check: Callable[[], Awaitable[bool]], timeout_s: float = 10.0) -> None:
        """Poll the async predicate `check()` (it asks the gateways) until it holds."""
        await until(check, timeout_s, every_s=0.02)

    def logs(self) -> str:
        return "\n".join(
            p.log.read_text(errors="replace")
            for p in [self.chaos, *self.gateways]
            if p.log.exists()
        )
