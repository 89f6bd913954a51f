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
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.support.load import LOG_ALARMS, LoadPlan, Run

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
    run = Run(LoadPlan(clients=1, duration_s=0, tenants=3), tmp_path)
    chaos, server = run.chaos(), run.gateway()
    await chaos.start()
    await server.start()
    try:
        await run.wait_up(f"{run.root}/healthz")
        yield run.root, run.gateway_log
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
