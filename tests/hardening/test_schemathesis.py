"""Schemathesis against the gateway's own OpenAPI document, over loopback, in real processes.

Three runs, each with every check schemathesis has (no 5xx, status codes, content types
and bodies as documented, malformed input refused) except where noted:

- the admin API with an unrestricted admin token, all checks;
- `GET /admin/events` without `positive_data_acceptance`: its `cursor` is opaque, so a
  generated one is rightly refused;
- the `/v1` routes with a tenant key, without `positive_data_acceptance`: they speak the
  vendors' formats, which the document only sketches (what we validate is stricter).
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.hardening.load import LOG_ALARMS, Process, free_port, gateway_config

ST = Path(sys.executable).parent / "schemathesis"
RUNS = {
    "admin": ["-H", "Authorization: Bearer load-admin", "--exclude-path", "/admin/events"],
    "events": [
        "-H",
        "Authorization: Bearer load-admin",
        "--include-path",
        "/admin/events",
        "--exclude-checks",
        "positive_data_acceptance",
    ],
    "v1": [
        "-H",
        "Authorization: Bearer load-key-0",
        "--include-path-regex",
        "^/v1/",
        "--exclude-checks",
        "positive_data_acceptance",
    ],
}


@pytest.fixture
async def gateway(tmp_path: Path) -> AsyncIterator[tuple[str, Path]]:
    workdir = tmp_path
    chaos_port, port = free_port(), free_port()
    (workdir / "gateway.toml").write_text(gateway_config(f"http://127.0.0.1:{chaos_port}", 3))
    env = {
        **os.environ,
        "UPSTREAM_KEY": "upstream-secret-key",
        "RESILIENCE_CONFIG": str(workdir / "gateway.toml"),
        "RESILIENCE_SPOOL": str(workdir / "spool.jsonl"),
        "DATABASE_URL": f"sqlite:///{workdir / 'audit.db'}",
    }
    cli = [sys.executable, "-m", "resilience.cli"]
    chaos = Process("chaos", [*cli, "chaos", "--port", str(chaos_port)], env, workdir / "c.log")
    server = Process("gateway", [*cli, "serve", "--port", str(port)], env, workdir / "g.log")
    await chaos.start()
    await server.start()
    try:
        root = f"http://127.0.0.1:{port}"
        for _ in range(300):
            done = await asyncio.to_thread(
                subprocess.run, ["curl", "-sf", f"{root}/healthz"], capture_output=True
            )
            if done.returncode == 0:
                break
            await asyncio.sleep(0.1)
        yield root, workdir / "g.log"
    finally:
        await server.stop()
        await chaos.stop()


async def test_every_response_matches_the_document_and_none_is_a_server_error(
    gateway: tuple[str, Path],
) -> None:
    root, log = gateway
    for run in sorted(RUNS):
        await _schemathesis(root, run)
    alarms = [line for line in log.read_text().splitlines() if any(a in line for a in LOG_ALARMS)]
    assert alarms == []


async def _schemathesis(root: str, run: str) -> None:
    command = [
        str(ST),
        "run",
        f"{root}/openapi.json",
        "--checks",
        "all",
        "--max-examples",
        "40",
        "--generation-deterministic",
        "--no-color",
        *RUNS[run],
    ]
    done = await asyncio.to_thread(
        subprocess.run, command, capture_output=True, text=True, timeout=600, check=False
    )
    assert done.returncode == 0, (run, done.stdout[-4000:])
    assert " passed" in done.stdout, (run, done.stdout[-2000:])
