"""A raw loopback HTTP/1.1 server that misbehaves on cue, and the real SDKs aimed at it.

The server answers every request with one scripted `Reply`: a status line,
headers and a body, or a chunked SSE stream that sends its first events, waits
until the client has read them (`release()`), then ends, closes early, resets
the TCP connection or stalls. Waiting for the client instead of sleeping keeps
mid-stream faults deterministic: a reset can never overtake the events before it.
"""

from __future__ import annotations

import asyncio
import enum
import json
import socket
import struct
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

import anthropic
import openai

API_KEY = "test-key"


class End(enum.Enum):
    """How a reply ends once its scripted bytes are out."""

    FINISH = "finish"
    """The body is complete (the last chunk of a chunked body is sent)."""
    CLOSE = "close"
    """The peer closes the connection before the body is complete."""
    RESET = "reset"
    """The peer aborts with a TCP RST (SO_LINGER 0)."""
    STALL = "stall"
    """Nothing more is sent until the client gives up."""


@dataclass(frozen=True, slots=True)
class Reply:
    status: int = 200
    headers: Sequence[tuple[str, str]] = ()
    body: bytes = b""
    """Sent whole, with Content-Length, unless `events` is given."""
    events: Sequence[bytes] | None = None
    """A chunked body: these chunks first, then (after `release()`) `tail`, then `end`."""
    tail: bytes = b""
    end: End = End.FINISH
    before_headers: bool = False
    """Apply `end` before sending anything at all."""


def json_reply(status: int, payload: object, *headers: tuple[str, str]) -> Reply:
    return Reply(
        status=status,
        headers=(("content-type", "application/json"), *headers),
        body=json.dumps(payload).encode(),
    )


def sse_reply(events: Sequence[bytes], *, tail: bytes = b"", end: End = End.FINISH) -> Reply:
    return Reply(
        headers=(("content-type", "text/event-stream"), ("cache-control", "no-cache")),
        events=events,
        tail=tail,
        end=end,
    )


def anthropic_error_body(error_type: str, message: str) -> dict[str, object]:
    return {
        "type": "error",
        "error": {"type": error_type, "message": message},
        "request_id": "req_test",
    }


def openai_error_body(
    message: str, *, type_: str | None, code: str | int | None
) -> dict[str, object]:
    return {"error": {"message": message, "type": type_, "param": None, "code": code}}


def anthropic_event(name: str, data: object) -> bytes:
    return f"event: {name}\ndata: {json.dumps(data)}\n\n".encode()


def openai_event(data: object) -> bytes:
    return f"data: {json.dumps(data)}\n\n".encode()


ANTHROPIC_STREAM_START: tuple[bytes, ...] = (
    anthropic_event(
        "message_start",
        {
            "type": "message_start",
            "message": {
                "id": "msg_1",
                "type": "message",
                "role": "assistant",
                "model": "claude-test",
                "content": [],
                "stop_reason": None,
                "stop_sequence": None,
                "usage": {"input_tokens": 3, "output_tokens": 0},
            },
        },
    ),
    anthropic_event(
        "content_block_start",
        {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
    ),
    *(
        anthropic_event(
            "content_block_delta",
            {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": t}},
        )
        for t in ("Hel", "lo")
    ),
)
"""An anthropic stream up to its second text chunk."""

OPENAI_STREAM_START: tuple[bytes, ...] = tuple(
    openai_event(
        {
            "id": "chatcmpl-1",
            "object": "chat.completion.chunk",
            "created": 1_700_000_000,
            "model": "gpt-test",
            "choices": [{"index": 0, "delta": {"content": t}, "finish_reason": None}],
        }
    )
    for t in ("Hel", "lo")
)
"""An openai stream up to its second chunk."""


@dataclass(slots=True)
class Seen:
    method: str
    path: str
    headers: dict[str, str] = field(default_factory=dict)


class FaultServer:
    """`asyncio.start_server` on 127.0.0.1:0 replying with `self.reply` to every request."""

    def __init__(self) -> None:
        self.reply = Reply()
        self.seen: list[Seen] = []
        self._released = asyncio.Event()
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self.port = 0

    @property
    def root(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def release(self) -> None:
        """The client has read the first events: go on with the tail and the ending."""
        self._released.set()

    async def released(self) -> None:
        await self._released.wait()

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._server is not None:
            await self._server.wait_closed()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        try:
            await self._serve(reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass  # the client went away first: expected after its own timeouts
        except asyncio.CancelledError:
            pass  # stop(): ending quietly keeps asyncio from logging the cancelled handler
        finally:
            self._tasks.discard(task)
            writer.close()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        request_line, *lines = head.decode("latin-1").split("\r\n")
        method, path, _ = request_line.split(" ", 2)
        headers = {}
        for line in lines:
            if ":" in line:
                name, value = line.split(":", 1)
                headers[name.strip().lower()] = value.strip()
        await reader.readexactly(int(headers.get("content-length", "0")))
        self.seen.append(Seen(method, path, headers))

        reply = self.reply
        if reply.before_headers:
            await self._end(reader, writer, reply.end)
            return
        status_line = f"HTTP/1.1 {reply.status} Scripted\r\n"
        framing = (
            ("transfer-encoding", "chunked")
            if reply.events is not None
            else ("content-length", str(len(reply.body)))
        )
        lines_out = [f"{k}: {v}\r\n" for k, v in (*reply.headers, framing)]
        writer.write((status_line + "".join(lines_out) + "\r\n").encode("latin-1"))
        if reply.events is None:
            writer.write(reply.body)
            await writer.drain()
            return
        for event in reply.events:
            writer.write(_chunk(event))
        await writer.drain()
        await self._released.wait()
        if reply.tail:
            writer.write(_chunk(reply.tail))
            await writer.drain()
        await self._end(reader, writer, reply.end)

    async def _end(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, end: End
    ) -> None:
        if end is End.FINISH:
            writer.write(b"0\r\n\r\n")
            await writer.drain()
        elif end is End.RESET:
            sock = writer.get_extra_info("socket")
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            writer.transport.abort()
        elif end is End.STALL:
            await reader.read()  # until the client gives up and closes (or stop() cancels)
        # End.CLOSE: the caller's `finally` closes the connection


def _chunk(data: bytes) -> bytes:
    return f"{len(data):x}\r\n".encode() + data + b"\r\n"


@asynccontextmanager
async def fault_server() -> AsyncIterator[FaultServer]:
    server = FaultServer()
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


@dataclass(frozen=True, slots=True)
class Raised:
    """What a real SDK call raised, and how many stream items reached the caller first."""

    exc: Exception
    items: int


class NothingRaised(AssertionError):
    """The scripted fault did not make the SDK raise."""


def anthropic_client(
    server: FaultServer, *, timeout_s: float = 5.0, strict: bool = False
) -> anthropic.AsyncAnthropic:
    return anthropic.AsyncAnthropic(
        api_key=API_KEY,
        base_url=server.root,
        max_retries=0,
        timeout=timeout_s,
        _strict_response_validation=strict,
    )


def openai_client(
    server: FaultServer, *, timeout_s: float = 5.0, strict: bool = False
) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(
        api_key=API_KEY,
        base_url=f"{server.root}/v1",
        max_retries=0,
        timeout=timeout_s,
        _strict_response_validation=strict,
    )


async def call_anthropic(
    server: FaultServer, *, stream: bool = False, timeout_s: float = 5.0, strict: bool = False
) -> Raised:
    """Call `messages.create` through the real SDK; return what it raised."""
    items = 0
    async with anthropic_client(server, timeout_s=timeout_s, strict=strict) as client:
        try:
            if not stream:
                await client.messages.create(
                    model="claude-test", max_tokens=16, messages=[{"role": "user", "content": "hi"}]
                )
            else:
                events = await client.messages.create(
                    model="claude-test",
                    max_tokens=16,
                    messages=[{"role": "user", "content": "hi"}],
                    stream=True,
                )
                async for _ in events:
                    items += 1
                    if items == len(server.reply.events or ()):
                        server.release()
        except Exception as exc:
            return Raised(exc, items)
    raise NothingRaised(f"anthropic returned normally after {items} items")


async def call_openai(
    server: FaultServer, *, stream: bool = False, timeout_s: float = 5.0, strict: bool = False
) -> Raised:
    """Call `chat.completions.create` through the real SDK; return what it raised."""
    items = 0
    async with openai_client(server, timeout_s=timeout_s, strict=strict) as client:
        try:
            if not stream:
                await client.chat.completions.create(
                    model="gpt-test", messages=[{"role": "user", "content": "hi"}]
                )
            else:
                chunks = await client.chat.completions.create(
                    model="gpt-test", messages=[{"role": "user", "content": "hi"}], stream=True
                )
                async for _ in chunks:
                    items += 1
                    if items == len(server.reply.events or ()):
                        server.release()
        except Exception as exc:
            return Raised(exc, items)
    raise NothingRaised(f"openai returned normally after {items} items")


def chat_completion(finish_reason: str) -> dict[str, object]:
    """A minimal strict openai ChatCompletion body."""
    return {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "created": 1_700_000_000,
        "model": "gpt-test",
        "choices": [
            {
                "index": 0,
                "finish_reason": finish_reason,
                "message": {"role": "assistant", "content": ""},
            }
        ],
    }


async def call_openai_parse(server: FaultServer) -> Raised:
    """`chat.completions.parse()`: the helper that raises on `finish_reason` itself."""
    async with openai_client(server) as client:
        try:
            await client.chat.completions.parse(
                model="gpt-test", messages=[{"role": "user", "content": "hi"}]
            )
        except Exception as exc:
            return Raised(exc, 0)
    raise NothingRaised("openai parse() returned normally")
