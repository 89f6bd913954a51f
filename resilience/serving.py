"""Run an ASGI app on a real loopback socket inside the current event loop (tests, demo)."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator
from typing import Literal

from starlette.types import ASGIApp

from resilience.extras import missing


@contextlib.asynccontextmanager
async def serve_asgi(
    app: ASGIApp,
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    lifespan: Literal["on", "off"] = "off",
) -> AsyncIterator[str]:
    """Serve `app` with uvicorn for the duration; yields the root URL. Port 0 picks a free one."""
    try:
        import uvicorn
    except ImportError as exc:
        raise missing("uvicorn", "gateway", "serving an ASGI app") from exc
    from resilience.one_write import PROTOCOL

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    server = uvicorn.Server(
        uvicorn.Config(app, log_level="critical", lifespan=lifespan, http=PROTOCOL)
    )
    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        while not server.started:
            if task.done():
                task.result()
            await asyncio.sleep(0.005)
        yield f"http://{host}:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True  # graceful: lifespan shutdown runs, connections finish
        try:
            await asyncio.wait_for(asyncio.shield(task), 3.0)
        except TimeoutError:
            server.force_exit = True  # a connection left hanging: stop waiting for it
            await task
        sock.close()
