"""The gateway's edges against slow and numerous clients, on a real `resilience serve` process."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

import httpx

from tests.support.load import LoadPlan, Run
from tests.support.processes import Process, wait_up
from tests.support.servers import until

REQUEST = b'{"model": "chat", "messages": [{"role": "user", "content": "hi"}]}'


@contextlib.asynccontextmanager
async def gateway(tmp_path: Path, *flags: str) -> AsyncIterator[Run]:
    """The chaos upstream and `resilience serve FLAGS`, both on loopback, stopped afterwards."""
    run = Run(LoadPlan(clients=0, duration_s=0, tenants=2), tmp_path)
    chaos = run.chaos()
    args = run.python("serve", "--port", str(run.gateway_port), *flags)
    server = Process("gateway", args, run.env, run.gateway_log)
    await chaos.start()
    await server.start()
    try:
        await wait_up(f"{run.upstream}/_chaos/faults")
        await wait_up(f"{run.root}/healthz")
        yield run
    finally:
        await server.stop()
        await chaos.stop()


async def _slow_client(port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """Headers promising a body, and only the first byte of it."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(
        b"POST /v1/chat/completions HTTP/1.1\r\nhost: gateway\r\n"
        b"authorization: Bearer load-key-0\r\ncontent-type: application/json\r\n"
        + f"content-length: {len(REQUEST)}\r\n\r\n".encode()
        + REQUEST[:1]
    )
    await writer.drain()
    return reader, writer


async def _status(reader: asyncio.StreamReader) -> int:
    line = await asyncio.wait_for(reader.readline(), 30)
    return int(line.split()[1])


async def _ordinary(run: Run) -> int:
    async with httpx.AsyncClient() as http:
        response = await http.post(
            f"{run.root}/v1/chat/completions",
            content=REQUEST,
            headers={"authorization": "Bearer load-key-1", "content-type": "application/json"},
            timeout=30,
        )
        return response.status_code


async def test_slow_bodies_get_408_and_the_gateway_keeps_serving(tmp_path: Path) -> None:
    async with gateway(tmp_path, "--body-read-timeout-s", "0.5") as run:
        clients = await asyncio.gather(*(_slow_client(run.gateway_port) for _ in range(200)))
        statuses = await asyncio.gather(*(_status(reader) for reader, _ in clients))
        for _, writer in clients:
            writer.close()
            await writer.wait_closed()
        assert statuses == [408] * 200
        assert await _ordinary(run) == 200
        assert "Traceback" not in run.gateway_log.read_text()


async def test_past_limit_concurrency_new_requests_get_503_not_a_queue(tmp_path: Path) -> None:
    flags = ("--limit-concurrency", "4", "--body-read-timeout-s", "60")
    async with gateway(tmp_path, *flags) as run:
        # idle connections count: the fifth connection's request is refused, not queued
        held = [await asyncio.open_connection("127.0.0.1", run.gateway_port) for _ in range(4)]
        assert await _ordinary(run) == 503
        for _, writer in held:
            writer.close()
            await writer.wait_closed()

        async def served() -> bool:  # once the server has noticed the closed connections
            return await _ordinary(run) == 200

        await until(served, timeout_s=30, every_s=0.05)
