"""`resilience.one_write`: what one event-loop turn writes leaves in one write, at the next
turn; nothing held is lost on close or written after the connection closed; and uvicorn,
as `serve_asgi` and `resilience serve` run it, answers in one segment."""

from __future__ import annotations

import asyncio
import logging
import socket
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from resilience.cli import main
from resilience.one_write import PROTOCOL, OneWriteHttpToolsProtocol, OneWriteTransport
from resilience.serving import serve_asgi


class RecordingTransport(asyncio.Transport):
    """The real transport's side: what reached it, in which calls."""

    def __init__(self) -> None:
        super().__init__()
        self.writes: list[bytes] = []
        self.closing = False
        self.closed = False
        self.aborted = False
        self.buffered = 0

    def write(self, data: Any) -> None:
        self.writes.append(bytes(data))

    def is_closing(self) -> bool:
        return self.closing

    def close(self) -> None:
        self.closing = self.closed = True

    def abort(self) -> None:
        self.closing = self.aborted = True

    def get_write_buffer_size(self) -> int:
        return self.buffered

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return {"peername": ("127.0.0.1", 1)}.get(name, default)


async def next_turn() -> None:
    await asyncio.sleep(0)


async def test_writes_of_one_turn_leave_in_one_write_at_the_next() -> None:
    real = RecordingTransport()
    transport = OneWriteTransport(real, asyncio.get_running_loop())
    transport.write(b"HTTP/1.1 200 OK\r\n\r\n")
    transport.write(bytearray(b"he"))
    transport.writelines([b"ll", memoryview(b"o")])
    assert real.writes == []
    assert transport.get_write_buffer_size() == 24
    await next_turn()
    assert real.writes == [b"HTTP/1.1 200 OK\r\n\r\nhello"]
    transport.write(b"a")
    await next_turn()
    transport.write(b"b")
    await next_turn()
    assert real.writes[1:] == [b"a", b"b"]  # a later turn's write is not held back further


async def test_close_sends_what_is_held_first_and_abort_drops_it() -> None:
    real = RecordingTransport()
    transport = OneWriteTransport(real, asyncio.get_running_loop())
    transport.write(b"last words")
    transport.close()
    assert (real.writes, real.closed) == ([b"last words"], True)
    await next_turn()  # the flush already due finds nothing more
    assert real.writes == [b"last words"]

    real = RecordingTransport()
    transport = OneWriteTransport(real, asyncio.get_running_loop())
    transport.write(b"never sent")
    transport.abort()
    await next_turn()
    assert (real.writes, real.aborted) == ([], True)


async def test_nothing_is_written_to_a_connection_already_closing() -> None:
    real = RecordingTransport()
    transport = OneWriteTransport(real, asyncio.get_running_loop())
    transport.write(b"too late")
    real.closing = True  # the peer went away before the next turn
    await next_turn()
    assert real.writes == []
    assert transport.is_closing()


async def test_the_rest_of_the_transport_is_the_real_one() -> None:
    real = RecordingTransport()
    real.buffered = 7
    transport = OneWriteTransport(real, asyncio.get_running_loop())
    assert transport.get_extra_info("peername") == ("127.0.0.1", 1)
    assert transport.get_extra_info("sockname", "none") == "none"
    assert transport.get_write_buffer_size() == 7


async def test_a_complete_response_leaves_before_what_the_app_does_after_it() -> None:
    """The protocol writes a response at once when it is complete, so work the app does
    after sending it (the gateway's metrics) is not on the caller's time."""
    real = RecordingTransport()
    seen_after: list[list[bytes]] = []
    done = asyncio.Event()

    class Then(Response):
        async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
            await super().__call__(scope, receive, send)
            seen_after.append(list(real.writes))  # what had left when the app went on
            done.set()

    async def hello(request: Request) -> Response:
        return Then(b"hello", media_type="text/plain")

    config = uvicorn.Config(Starlette(routes=[Route("/hello", hello)]), lifespan="off")
    protocol = OneWriteHttpToolsProtocol(config, uvicorn.server.ServerState(), {})
    protocol.connection_made(real)
    protocol.data_received(b"GET /hello HTTP/1.1\r\nhost: x\r\n\r\n")
    await asyncio.wait_for(done.wait(), 5)
    (writes,) = seen_after
    assert len(writes) == 1 and writes[0].startswith(b"HTTP/1.1 200 OK\r\n"), writes
    assert writes[0].endswith(b"\r\n\r\nhello")
    protocol.connection_lost(None)


def app() -> Starlette:
    async def hello(request: Request) -> Response:
        return Response(b"x" * 2000, media_type="text/plain")

    return Starlette(routes=[Route("/hello", hello)])


async def test_serve_asgi_runs_uvicorn_on_the_one_write_protocol() -> None:
    assert PROTOCOL.endswith(":" + OneWriteHttpToolsProtocol.__name__)
    async with serve_asgi(app()) as root:
        port = int(root.rsplit(":", 1)[1])
        answers = await asyncio.to_thread(first_reads, port, 20, "/hello")
    for answer in answers:
        # head and body in one write arrive in one read: the whole answer is there at once
        assert answer.startswith(b"HTTP/1.1 200 OK\r\n"), answer[:100]
        assert answer.endswith(b"\r\n\r\n" + b"x" * 2000)


def first_reads(port: int, count: int, path: str) -> list[bytes]:
    """The first `recv` of each of `count` GETs of `path` on one keep-alive connection."""
    seen = []
    with socket.create_connection(("127.0.0.1", port)) as sock:
        for _ in range(count):
            sock.sendall(f"GET {path} HTTP/1.1\r\nhost: x\r\n\r\n".encode())
            seen.append(sock.recv(65536))
    return seen


def test_resilience_serve_runs_uvicorn_on_the_one_write_protocol(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What `resilience serve` hands uvicorn (its workers load the same import string:
    tests/gateway/test_metrics_workers.py runs them)."""
    config = tmp_path / "gateway.toml"
    config.write_text(
        '[providers.p]\nkind = "openai"\nbase_url = "http://127.0.0.1:9/v1"\n'
        'location = "local"\n[routes.chat]\ntargets = ["p:m"]\n'
    )
    handed: dict[str, Any] = {}
    monkeypatch.setattr(uvicorn, "run", lambda app, **options: handed.update(options))
    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{tmp_path / 'audit.db'}")
    monkeypatch.setenv("RESILIENCE_CONFIG", str(config))  # `serve` sets it: undone after
    root = logging.getLogger()
    monkeypatch.setattr(root, "handlers", list(root.handlers))  # and `basicConfig`'s handler
    monkeypatch.setattr(root, "level", root.level)
    assert main(["serve", "--config", str(config), "--port", "1"]) == 0
    assert handed["http"] == PROTOCOL
