"""A raw HTTP/1.1 server on 127.0.0.1 whose every byte a test scripts.

Why: a client's framing, reuse and failure handling show only against a server that can
send exactly the wrong thing (a cut body, a split chunk line, a close mid-answer), which a
real framework never does. The test gives a per-connection `Handler`; it reads requests
with `RawConnection.read_request` and writes the bytes it wants, when it wants.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field

from resilience.providers.http1 import Timeouts

PATIENT = Timeouts(connect=5.0, read=5.0, write=5.0, pool=5.0)
"""Pool timeouts no test waits out: a test shortens the one it is about (`_replace`)."""


@dataclass(frozen=True)
class RawRequest:
    """One request as it arrived: the head's lines, and the body its content-length framed."""

    line: bytes
    headers: list[tuple[bytes, bytes]]
    body: bytes
    connection: int
    """Which accepted connection (0, 1, ...) carried it."""

    def header(self, name: bytes) -> bytes | None:
        for key, value in self.headers:
            if key.lower() == name.lower():
                return value
        return None


@dataclass
class RawConnection:
    """One accepted connection, handed to the test's handler."""

    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    index: int
    server: RawServer

    async def read_request(self) -> RawRequest | None:
        """The next request, or None when the client closed (or sent nothing more)."""
        try:
            head = await self.reader.readuntil(b"\r\n\r\n")
        except (asyncio.IncompleteReadError, ConnectionError):
            return None
        self.server.bytes_received += len(head)
        lines = head[:-4].split(b"\r\n")
        headers = [
            (name.strip(), value.strip())
            for name, _, value in (line.partition(b":") for line in lines[1:])
        ]
        length = next((int(v) for k, v in headers if k.lower() == b"content-length"), 0)
        body = await self.reader.readexactly(length) if length else b""
        self.server.bytes_received += len(body)
        request = RawRequest(lines[0], headers, body, self.index)
        self.server.requests.append(request)
        self.server.arrived.set()
        return request

    async def write(self, *parts: bytes) -> None:
        """Each part in its own write, the client given the chance to read it alone."""
        for part in parts:
            self.writer.write(part)
            await self.writer.drain()
            await let_client_read()

    async def wait_closed_by_client(self) -> None:
        """Hold the connection open (never answering) until the client gives up on it."""
        with contextlib.suppress(ConnectionError):
            await self.reader.read()

    def close(self) -> None:
        self.writer.close()


Handler = Callable[[RawConnection], Awaitable[None]]


@dataclass
class RawServer:
    """What the server saw: connections accepted, requests read, bytes received."""

    handler: Handler
    port: int = 0
    connections: int = 0
    bytes_received: int = 0
    requests: list[RawRequest] = field(default_factory=list)
    arrived: asyncio.Event = field(default_factory=asyncio.Event)
    """Set at each request read; a test clears it to wait for the next."""

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


async def let_client_read() -> None:
    """Yield a few loop turns so bytes already on loopback reach the client's
    `data_received` before the next write: splits then arrive as separate reads. Nothing
    waits on time, and the tests hold whether or not the kernel coalesces the writes."""
    for _ in range(3):
        await asyncio.sleep(0)


@contextlib.asynccontextmanager
async def raw_server(handler: Handler) -> AsyncIterator[RawServer]:
    """Serve `handler` (once per accepted connection) for the block; on exit every
    connection is aborted and every handler task ended, so nothing outlives the test."""
    state = RawServer(handler)
    tasks: set[asyncio.Task[None]] = set()
    writers: list[asyncio.StreamWriter] = []

    async def accept(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        index = state.connections
        state.connections += 1
        writers.append(writer)
        task = asyncio.current_task()
        assert task is not None
        tasks.add(task)
        try:
            await handler(RawConnection(reader, writer, index, state))
        except (ConnectionError, asyncio.CancelledError):
            # the client went away mid-write (some tests do it on purpose), or the server is
            # closing: ending quietly keeps asyncio from logging the handler as failed
            pass
        finally:
            tasks.discard(task)
            writer.close()

    server = await asyncio.start_server(accept, "127.0.0.1", 0)
    state.port = server.sockets[0].getsockname()[1]
    try:
        yield state
    finally:
        server.close()
        for writer in writers:
            writer.transport.abort()
        for task in list(tasks):
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await server.wait_closed()


def answer_each(*answers: bytes) -> Handler:
    """A handler that reads requests on its connection and gives each the next answer
    (the same one again once the list runs out), in one write."""

    async def handle(connection: RawConnection) -> None:
        served = 0
        while await connection.read_request() is not None:
            await connection.write(answers[min(served, len(answers) - 1)])
            served += 1

    return handle


def ok(body: bytes = b"ok", *headers: bytes) -> bytes:
    """A 200 framed by content-length, with extra header lines as given."""
    extra = b"".join(line + b"\r\n" for line in headers)
    return b"HTTP/1.1 200 OK\r\ncontent-length: %d\r\n%s\r\n%s" % (len(body), extra, body)
