"""`resilience serve --workers N`: a scrape of `/metrics` counts every worker's requests,
whichever worker answers it, and a worker that dies takes its gauges with it but not its
counts. The gateway runs as users run it (a process, real sockets), on the chaos upstream.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import signal
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import httpx2
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.parser import text_string_to_metric_families

from resilience.chaos import ChaosUpstream
from resilience.tenancy.resolvers import hash_key
from tests.support.processes import Process, free_port

KEY = "gw-key-acme"
LIMIT = 50
"""Each worker's bulkhead limit for the provider, fixed (its initial and its maximum)."""
CHAT = {"model": "chat", "messages": [{"role": "user", "content": "hello"}]}


@dataclass
class Served:
    root: str
    process: Process
    log: Path

    def directory(self) -> Path:
        """The metrics directory the parent announced in its log."""
        found = re.search(r"PROMETHEUS_MULTIPROC_DIR=(\S+)", self.log.read_text())
        assert found, self.log.read_text()
        return Path(found[1])


Series = dict[tuple[tuple[str, str], ...], float]


def samples(page: str, name: str) -> Series:
    """`name`'s samples on the page, by their labels."""
    found: Series = {}
    for family in text_string_to_metric_families(page):
        for sample in family.samples:
            if sample.name == name:
                found[tuple(sorted(sample.labels.items()))] = sample.value
    return found


def worker_pids(page: str) -> set[int]:
    """The workers whose live families the page shows (one per-worker series each)."""
    return {int(dict(labels)["pid"]) for labels in samples(page, "resilience_event_loop_tasks")}


async def scrape(root: str) -> str:
    """`/metrics` on a connection of its own, so any worker may answer it."""
    async with httpx2.AsyncClient() as http:
        response = await http.get(f"{root}/metrics", timeout=10)
    assert response.status_code == 200, response.text
    return response.text


async def until(check: Callable[[], Awaitable[bool]], what: str, timeout_s: float = 60.0) -> None:
    """Poll `check` until it holds: the gateway is another process, starting on its own."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        with contextlib.suppress(httpx2.TransportError):
            if await check():
                return
        await asyncio.sleep(0.1)
    raise AssertionError(f"not within {timeout_s} s: {what}")


def config(upstream: str) -> str:
    return f"""
[bulkhead]
initial_limit = {LIMIT}
max_limit = {LIMIT}
[providers.primary]
kind = "openai"
api_key_env = "UPSTREAM_KEY"
base_url = "{upstream}/primary/v1"
[routes.chat]
targets = ["primary:gpt-4.1"]
[tenants.acme]
api_key_sha256 = ["{hash_key(KEY)}"]
"""


@contextlib.asynccontextmanager
async def gateway(
    tmp_path: Path, upstream: str, workers: int, env: dict[str, str] | None = None
) -> AsyncIterator[Served]:
    """`resilience serve --workers N` on a free port, up once every worker has published."""
    path = tmp_path / "gateway.toml"
    path.write_text(config(upstream))
    port = free_port()
    args = [sys.executable, "-m", "resilience.cli", "serve", "--workers", str(workers)]
    args += ["--config", str(path), "--port", str(port)]
    environ = {
        **{k: v for k, v in os.environ.items() if k != "PROMETHEUS_MULTIPROC_DIR"},
        "UPSTREAM_KEY": "upstream-secret-key",
        "DATABASE_URL": f"sqlite:///{tmp_path / 'audit.db'}",
        "RESILIENCE_SPOOL": str(tmp_path / "spool.jsonl"),
        **(env or {}),
    }
    process = Process("gateway", args, environ, tmp_path / "gateway.log")
    await process.start()
    served = Served(f"http://127.0.0.1:{port}", process, tmp_path / "gateway.log")
    try:

        async def all_up() -> bool:
            return len(worker_pids(await scrape(served.root))) == workers

        await until(all_up, f"{workers} workers on the page")
        yield served
    finally:
        await process.stop(signal.SIGTERM)


async def send(root: str, requests: int, concurrency: int = 20) -> None:
    """`requests` chat completions, `concurrency` at once, each on a connection of its own."""
    gate = asyncio.Semaphore(concurrency)

    async def one() -> None:
        async with gate, httpx2.AsyncClient() as http:
            response = await http.post(
                f"{root}/v1/chat/completions",
                json=CHAT,
                headers={"authorization": f"Bearer {KEY}"},
                timeout=30,
            )
        assert response.status_code == 200, response.text

    await asyncio.gather(*(one() for _ in range(requests)))


def counts_by_pid(directory: Path, name: str = "resilience_requests_total") -> dict[int, float]:
    """Each worker's own count of `name` (requests), from its counter file."""
    counts: dict[int, float] = {}
    for path in directory.glob("counter_*.db"):
        pid = int(path.stem.removeprefix("counter_"))
        counts[pid] = sum(
            s.value
            for metric in MultiProcessCollector.merge([str(path)])  # type: ignore[no-untyped-call]
            for s in metric.samples
            if s.name == name
        )
    return counts


async def test_every_scrape_counts_every_workers_requests(tmp_path: Path) -> None:
    async with ChaosUpstream().serve() as upstream, gateway(tmp_path, upstream, 4) as served:
        directory = served.directory()
        page = await scrape(served.root)
        pids = worker_pids(page)
        assert served.process.pid not in pids  # the parent serves nothing
        # gauges cross as documented: gates sum, a flag holds only if every worker's does
        assert samples(page, "resilience_bulkhead_limit") == {(("provider", "primary"),): 4 * LIMIT}
        assert samples(page, "resilience_breaker_store_shared") == {(("kind", "memory"),): 0}

        await send(served.root, 200)

        by_pid = counts_by_pid(directory)
        assert sum(by_pid.values()) == 200
        assert len([pid for pid, n in by_pid.items() if n > 0]) > 1, by_pid  # several answered
        # an attempt a request, and one more for each retry (a retryable failure on a loaded
        # machine): the page must show what the workers counted
        attempts = sum(counts_by_pid(directory, "resilience_attempts_total").values())
        assert attempts >= 200
        ok = (("outcome", "ok"), ("provider", "primary"), ("tenant", "acme"))
        for _ in range(12):  # whichever worker answers, it counts the others' requests too
            page = await scrape(served.root)
            assert samples(page, "resilience_requests_total") == {ok: 200}
            by_provider = samples(page, "resilience_attempts_total")
            assert by_provider == {(("provider", "primary"),): attempts}
            assert worker_pids(page) == pids

        # a worker killed outright: uvicorn starts another; the dead one's counts stay on
        # the page, its gauges leave it
        killed = max(by_pid, key=lambda pid: by_pid[pid])
        os.kill(killed, signal.SIGKILL)

        async def replaced() -> bool:
            now = worker_pids(await scrape(served.root))
            return len(now) == 4 and killed not in now

        await until(replaced, f"worker {killed} replaced")
        page = await scrape(served.root)
        assert samples(page, "resilience_requests_total") == {ok: 200}
        assert samples(page, "resilience_bulkhead_limit") == {(("provider", "primary"),): 4 * LIMIT}
        assert not [line for line in page.splitlines() if f'pid="{killed}"' in line]

        await served.process.stop(signal.SIGTERM)
        assert served.process.proc is not None and served.process.proc.returncode == 0
        assert not directory.exists()  # the temporary directory goes with the parent


async def test_an_operators_directory_is_emptied_at_start_and_kept(tmp_path: Path) -> None:
    chosen = tmp_path / "metrics"
    chosen.mkdir()
    (chosen / "notes.txt").write_text("not the gateway's")
    stale = [
        {
            "name": "resilience_audit_received",
            "type": "counter",
            "help": "left by an earlier run",
            "samples": [["resilience_audit_received_total", {}, 1000]],
        }
    ]
    (chosen / "live_1.json").write_text(json.dumps(stale))  # pid 1 runs: it would count
    env = {"PROMETHEUS_MULTIPROC_DIR": str(chosen)}
    async with ChaosUpstream().serve() as upstream, gateway(tmp_path, upstream, 2, env) as served:
        assert served.directory() == chosen
        await send(served.root, 10)
        page = await scrape(served.root)
        ok = (("outcome", "ok"), ("provider", "primary"), ("tenant", "acme"))
        assert samples(page, "resilience_requests_total") == {ok: 10}
        assert samples(page, "resilience_audit_received_total") == {(): 0}
        await served.process.stop(signal.SIGTERM)

    assert (chosen / "notes.txt").read_text() == "not the gateway's"
    left = sorted(chosen.glob("live_*.json"))
    assert len(left) == 2
    for path in left:  # a worker that stopped leaves its counts, not its gauges
        assert {family["type"] for family in json.loads(path.read_text())} == {"counter"}


NEW_KEY = "gw-key-initech"


async def status(root: str, key: str) -> int:
    """A chat completion's status, on a connection of its own (any worker may answer)."""
    async with httpx2.AsyncClient() as http:
        response = await http.post(
            f"{root}/v1/chat/completions",
            json=CHAT,
            headers={"authorization": f"Bearer {key}"},
            timeout=30,
        )
    return response.status_code


async def test_sighup_replaces_every_worker_from_a_good_file_and_none_from_a_bad_one(
    tmp_path: Path,
) -> None:
    """Under `--workers`, uvicorn's supervisor takes SIGHUP: each worker is replaced by one
    that read the file at its start; a file no worker can start on replaces none, and the
    running ones keep serving the last good config."""
    async with ChaosUpstream().serve() as upstream, gateway(tmp_path, upstream, 2) as served:
        path = tmp_path / "gateway.toml"
        first = worker_pids(await scrape(served.root))
        assert await status(served.root, NEW_KEY) == 401

        path.write_text(
            config(upstream) + f'[tenants.initech]\napi_key_sha256 = ["{hash_key(NEW_KEY)}"]\n'
        )
        os.kill(served.process.pid, signal.SIGHUP)

        async def replaced() -> bool:
            now = worker_pids(await scrape(served.root))
            return len(now) == 2 and not now & first

        await until(replaced, "both workers replaced")
        second = worker_pids(await scrape(served.root))
        for _ in range(10):  # a connection each: whichever worker answers knows the new key
            assert await status(served.root, NEW_KEY) == 200
            assert await status(served.root, KEY) == 200

        path.write_text(config(upstream) + "[routes.broken]\ntargets = 42\n")
        os.kill(served.process.pid, signal.SIGHUP)

        async def refused() -> bool:
            return "aborting the restart" in served.log.read_text()

        await until(refused, "the supervisor to give up on the bad file")
        for _ in range(10):
            assert await status(served.root, NEW_KEY) == 200
        assert worker_pids(await scrape(served.root)) == second
