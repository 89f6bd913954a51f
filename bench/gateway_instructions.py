"""Instructions the gateway executes per request, against the bare proxy: a figure that does
not move with the machine.

Usage: python bench/gateway_instructions.py [--quick]    (needs valgrind; about 4 minutes)

`bench/gateway.py`'s wall-clock figures move by 0.1 to 0.3 ms from run to run on a shared
2-core VM, more than most changes to the gateway's own work. This counts that work
instead: the gateway's ASGI app (`create_app`, lifespan run, the usage record, its journal
line and the audit writer on, as `resilience serve` runs it) is called in-process with
raw ASGI messages, OpenAI body to an OpenAI-kind route, one request after another,
against the chaos upstream in its own process on loopback. The process runs under
`valgrind --tool=callgrind`, which counts every instruction it executes (its threads
included: the audit writer's SQLite work counts, one batch every 15 rows, about what its
0.2 s batch age gives at `bench/gateway.py`'s rate). Each side runs twice, with `N` requests
and with none after the same warm-up; the difference over `N` is the count per request,
start-up and warm-up cancelled out. The bare proxy (`bench/_bare_proxy.py` on the
gateway's own HTTP client) is measured the same way: the floor.

Figures: `gateway_instructions_per_request`, `bare_proxy_instructions_per_request`, their
ratio, and `gateway_own_instructions_per_request` (the first less the second: the
gateway's own work).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._stats import headline
from bench.gateway import KEY, MESSAGES, PYTHON, free_port, gateway_config, server

QUICK = "--quick" in sys.argv
REQUESTS = 105 if QUICK else 405
"""Requests counted: whole audit batches, as the warm-up."""
WARM_UP = 105
BATCH = 15
"""Rows per audit batch: about what the gateway's 0.2 s batch age gives at
`bench/gateway.py`'s rate (75 requests a second)."""
_COLLECTED = re.compile(r"Collected : (\d+)")

Message = dict[str, object]


def main() -> None:
    if shutil.which("valgrind") is None:
        sys.exit("bench/gateway_instructions.py needs valgrind (Debian: apt install valgrind)")
    port = free_port()
    with server([PYTHON, "-m", "resilience.cli", "chaos", "--port", str(port)], port) as chaos:
        runs = [(side, n) for side in ("gateway", "bare") for n in (0, REQUESTS)]
        with ThreadPoolExecutor(max_workers=2) as pool:  # one run per core
            found = pool.map(lambda run: _count(run[0], run[1], chaos.url), runs)
            counts = dict(zip(runs, found, strict=True))
    per = {
        side: (counts[(side, REQUESTS)] - counts[(side, 0)]) / REQUESTS
        for side in ("gateway", "bare")
    }
    print(f"instructions per request, {REQUESTS} requests one after another, in-process ASGI:")
    print(f"  gateway (same format)  {per['gateway']:>10,.0f}")
    print(f"  bare proxy (floor)     {per['bare']:>10,.0f}")
    headline(
        {
            "gateway_instructions_per_request": round(per["gateway"]),
            "bare_proxy_instructions_per_request": round(per["bare"]),
            "gateway_own_instructions_per_request": round(per["gateway"] - per["bare"]),
            "gateway_vs_bare_instructions_ratio": per["gateway"] / per["bare"],
        }
    )


def _count(side: str, requests: int, upstream: str) -> int:
    """Instructions of one driver process (`--drive`) under callgrind."""
    with tempfile.TemporaryDirectory() as tmp:
        done = subprocess.run(
            [
                "valgrind",
                "--tool=callgrind",
                f"--callgrind-out-file={tmp}/callgrind.out",
                PYTHON,
                __file__,
                "--drive",
                side,
                str(requests),
                upstream,
            ],
            capture_output=True,
            text=True,
            check=False,
        )
    found = _COLLECTED.search(done.stderr)
    if done.returncode != 0 or found is None:
        raise RuntimeError(f"{side} {requests}: rc {done.returncode}\n{done.stderr[-2000:]}")
    return int(found.group(1))


# -- the driver, run under valgrind --------------------------------------------------------


def drive(side: str, requests: int, upstream: str) -> None:
    """`WARM_UP` requests, then `requests` more, then exit at once (no shutdown counted)."""
    import uvloop

    with tempfile.TemporaryDirectory() as tmp:
        uvloop.run(_drive(side, requests, upstream, Path(tmp)))


async def _drive(side: str, requests: int, upstream: str, tmp: Path) -> None:
    from starlette.types import ASGIApp

    app: ASGIApp
    started = contextlib.AsyncExitStack()  # never closed: the driver exits inside it
    if side == "bare":
        os.environ.update(
            BARE_PROXY_UPSTREAM=f"{upstream}/openai/v1/chat/completions",
            BARE_PROXY_MODEL="gpt-4.1",
            BARE_PROXY_CLIENT="lean",
        )
        from bench._bare_proxy import app as bare

        app = bare
    else:
        from resilience.audit.sink import DatabaseSink
        from resilience.gateway import factory
        from resilience.gateway.factory import create_app
        from resilience.gateway.settings import Settings

        class EveryBatchOf(DatabaseSink):
            """The gateway's sink, writing a batch every `BATCH` rows rather than every
            0.2 s, so the writer's share per request does not move with the speed
            valgrind runs at."""

            def __init__(self, *args: Any, **kwargs: Any) -> None:
                super().__init__(*args, batch_size=BATCH, batch_age_s=3600.0, **kwargs)

        factory.DatabaseSink = EveryBatchOf  # type: ignore[attr-defined]  # the lifespan makes it

        config = tmp / "gateway.toml"
        config.write_text(gateway_config(upstream))
        environ = {
            **os.environ,
            "RESILIENCE_CONFIG": str(config),
            "BENCH_UPSTREAM_KEY": "k",
            "DATABASE_URL": f"sqlite:///{tmp}/audit.db",
            "RESILIENCE_SPOOL": f"{tmp}/spool.jsonl",
        }
        gateway = create_app(Settings.from_env(environ))
        await started.enter_async_context(gateway.router.lifespan_context(gateway))
        app = gateway
    body = json.dumps({"model": "chat", "messages": MESSAGES}).encode()
    for _ in range(WARM_UP + requests):
        await _post(app, body)
    sys.stdout.flush()
    os._exit(0)


async def _post(app: object, body: bytes) -> None:
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": "/v1/chat/completions",
        "raw_path": b"/v1/chat/completions",
        "root_path": "",
        "query_string": b"",
        "headers": [
            (b"host", b"127.0.0.1"),
            (b"authorization", f"Bearer {KEY}".encode()),
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
        ],
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 8000),
        "state": {},
    }
    sent: list[Message] = []
    delivered = False

    async def receive() -> Message:
        nonlocal delivered
        if not delivered:
            delivered = True
            return {"type": "http.request", "body": body, "more_body": False}
        await asyncio.Event().wait()  # the client stays: never a disconnect
        raise AssertionError("unreachable")

    async def send(message: Message) -> None:
        sent.append(message)

    await app(scope, receive, send)  # type: ignore[operator]
    if not sent or sent[0].get("status") != 200:
        raise AssertionError(f"not answered 200: {sent[:2]!r}")


if __name__ == "__main__":
    if sys.argv[1:2] == ["--drive"]:
        drive(sys.argv[2], int(sys.argv[3]), sys.argv[4])
    else:
        main()
