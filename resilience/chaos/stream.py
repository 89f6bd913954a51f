"""Sending a streamed answer with its mid-stream faults: slowed, cut, reset, stalled or garbled.

A drop and a reset need the connection itself. Under uvicorn (`ChaosUpstream.serve()`,
`resilience chaos`) the app reaches it through uvicorn's `send` callable, closes it (FIN) or
aborts it with SO_LINGER 0 (RST). Anywhere else the body raises `ChaosDrop` / `ChaosReset`
instead: `ChaosUpstream.transport()` turns those into the httpx2 errors a socket gives, another
server closes the connection (so a reset degrades to a drop there).
"""

from __future__ import annotations

import asyncio
import socket
import struct
from collections.abc import Callable
from typing import Any

from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from resilience.chaos.frames import Frames
from resilience.chaos.script import Fault
from resilience.types import Sleep

TRANSPORT_KEY = "resilience.chaos.transport"
"""Scope key of the connection's asyncio transport, when the server exposes it."""
_FLUSH_WAIT_S = 1.0


class ChaosDrop(ConnectionError):
    """Raised inside a streaming body to make the server drop the connection."""


class ChaosReset(ChaosDrop):
    """Raised inside a streaming body to make the connection end with a TCP reset."""


def transport_of(send: Callable[..., Any]) -> asyncio.Transport | None:
    """The socket transport behind uvicorn's `send` (its bound method's owner holds it)."""
    transport = getattr(getattr(send, "__self__", None), "transport", None)
    return transport if isinstance(transport, asyncio.Transport) else None


async def until_disconnect(receive: Receive) -> None:
    """Returns when the client has gone; the request body must have been read already."""
    while (await receive())["type"] != "http.disconnect":
        pass


class EventStream(Response):
    """`text/event-stream` of `frames`, with `fault`'s mid-stream effects applied.

    The body is sent by one task while another watches for the client going away; whichever
    ends first stops the other, so a stalled stream ends when its client gives up.
    """

    media_type = "text/event-stream"

    def __init__(self, frames: Frames, fault: Fault, sleep: Sleep) -> None:
        self.frames, self.fault, self.sleep = frames, fault, sleep
        self.status_code = 200
        self.background = None
        self.init_headers({"cache-control": "no-cache"})

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        connection = scope.get(TRANSPORT_KEY)
        body = asyncio.ensure_future(self._send_body(send, connection))
        gone = asyncio.ensure_future(until_disconnect(receive))
        try:
            await asyncio.wait({body, gone}, return_when=asyncio.FIRST_COMPLETED)
            if body.done() and body.result():
                await gone  # cut: return once the server has seen the connection go
        finally:
            body.cancel()
            gone.cancel()
            await asyncio.gather(body, gone, return_exceptions=True)

    async def _send_body(self, send: Send, connection: asyncio.Transport | None) -> bool:
        """Sends the stream; True when it cut the connection."""
        await send({"type": "http.response.start", "status": 200, "headers": self.raw_headers})

        async def emit(frame: bytes) -> None:
            await send({"type": "http.response.body", "body": frame, "more_body": True})

        fault, frames = self.fault, self.frames
        content = list(frames.content)
        if fault.malformed_body:
            content[0] = frames.garbled
        for frame in frames.head:
            await emit(frame)
        padding = fault.body_bytes or 0
        while padding > 0:  # SSE comment lines: parsers skip them, the bytes still come
            line = min(padding, 65_536)
            await emit(b":" + b"x" * line + b"\n\n")
            padding -= line
        for sent in range(len(content) + 1):
            if sent and fault.chunk_delay_s:
                await self.sleep(fault.chunk_delay_s)
            action = self._action_at(sent, len(content))
            if action == "error":
                await emit(frames.error)
                break
            if action == "drop":
                return _drop(connection, sent)
            if action == "reset":
                return await _reset(connection, sent)
            if action == "stall":
                await asyncio.get_running_loop().create_future()  # until the client goes
            if sent == len(content):
                if not fault.no_end_marker:
                    for frame in frames.tail:
                        await emit(frame)
                break
            await emit(content[sent])
        await send({"type": "http.response.body", "body": b"", "more_body": False})
        return False

    def _action_at(self, sent: int, total: int) -> str | None:
        """The fault due after `sent` content chunks; a count past the end means at the end."""
        fault = self.fault
        for action, after in (
            ("error", fault.error_event_after_chunks),
            ("drop", fault.drop_after_chunks),
            ("reset", fault.reset_after_chunks),
            ("stall", fault.stall_after_chunks),
        ):
            if after is not None and min(after, total) == sent:
                return action
        return None


def _drop(connection: asyncio.Transport | None, sent: int) -> bool:
    if connection is None:
        raise ChaosDrop(f"chaos: connection dropped after {sent} chunks")
    connection.close()  # a FIN once what was written has gone out
    return True


async def _reset(connection: asyncio.Transport | None, sent: int) -> bool:
    if connection is None:
        raise ChaosReset(f"chaos: connection reset after {sent} chunks")
    sock = connection.get_extra_info("socket")
    # an RST can overtake unacknowledged data: wait until the client's kernel holds every byte
    loop = asyncio.get_running_loop()
    give_up = loop.time() + _FLUSH_WAIT_S
    # (no event says "acknowledged": poll briefly; on loopback it is about one round)
    while (connection.get_write_buffer_size() or _unacked(sock)) and loop.time() < give_up:  # noqa: ASYNC110
        await asyncio.sleep(0.001)
    if sock is not None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    connection.abort()
    return True


def _unacked(sock: Any) -> int:
    """Bytes sent but not yet acknowledged (Linux); 0 where that cannot be asked."""
    try:
        import fcntl
        import termios

        buffer = fcntl.ioctl(sock.fileno(), termios.TIOCOUTQ, b"\0\0\0\0")
    except (ImportError, AttributeError, OSError):
        return 0
    value: int = struct.unpack("i", buffer)[0]
    return value
