"""uvicorn's HTTP protocol with each answer's head and body sent in one write.

uvicorn writes a response's status line and headers when the app sends
`http.response.start`, and the body in a second write. On loopback and on a busy host,
the first write wakes the client, which can take the CPU from the server before the
second one goes out: the client then waits for the rest of an answer that is already
built. On a 2-core VM, sending both in one write took about 0.15 ms off the gateway's
added p50 in `bench/gateway.py`.

`OneWriteTransport` holds what uvicorn's protocol writes until the event loop's next
turn (`loop.call_soon`), so everything written in one turn leaves in one `write`: the
head with a `Response`'s body, or with a stream's first event when it is already there.
Nothing waits longer than that turn, and a response leaves as soon as it is complete
(`on_response_complete`), before anything the app does after it; a stream's later
events leave as they come. `close` sends what is held first; `abort` drops it, as the
real transport drops its own buffer.

`OneWriteHttpToolsProtocol` is uvicorn's httptools protocol on such a transport.
`resilience serve` and `resilience.serving.serve_asgi` run uvicorn with it (`PROTOCOL`);
any uvicorn user can pass `http="resilience.one_write:OneWriteHttpToolsProtocol"`.
"""

from __future__ import annotations

import asyncio
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

PROTOCOL = "resilience.one_write:OneWriteHttpToolsProtocol"
"""What `uvicorn.Config(http=...)` takes: an import string, so `--workers` children
(fresh interpreters) load it too."""


class OneWriteTransport(asyncio.Transport):
    """A transport that sends what one event-loop turn wrote in one `write` at the next."""

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        super().__init__()
        self._transport = transport
        self._loop = loop
        self._held: list[bytes] = []
        self._due = False

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self._held.append(bytes(data))
        if not self._due:
            self._due = True
            self._loop.call_soon(self.flush)

    def writelines(self, list_of_data: Any) -> None:
        for data in list_of_data:
            self.write(data)

    def flush(self) -> None:
        """Send what is held now, in one write; nothing when the connection is closing."""
        self._due = False
        if not self._held:
            return
        data = self._held[0] if len(self._held) == 1 else b"".join(self._held)
        self._held.clear()
        if not self._transport.is_closing():
            self._transport.write(data)

    def get_write_buffer_size(self) -> int:
        held = sum(len(part) for part in self._held)
        return held + self._transport.get_write_buffer_size()

    def close(self) -> None:
        self.flush()
        self._transport.close()

    def abort(self) -> None:
        self._held.clear()
        self._transport.abort()

    def can_write_eof(self) -> bool:
        return self._transport.can_write_eof()

    def write_eof(self) -> None:
        self.flush()
        self._transport.write_eof()

    def is_closing(self) -> bool:
        return self._transport.is_closing()

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return self._transport.get_extra_info(name, default)

    def pause_reading(self) -> None:
        self._transport.pause_reading()

    def resume_reading(self) -> None:
        self._transport.resume_reading()

    def is_reading(self) -> bool:
        return self._transport.is_reading()

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        self._transport.set_write_buffer_limits(high, low)

    def get_write_buffer_limits(self) -> tuple[int, int]:
        return self._transport.get_write_buffer_limits()

    def set_protocol(self, protocol: asyncio.BaseProtocol) -> None:
        self.flush()  # an upgrade (websockets) takes the connection from here on
        self._transport.set_protocol(protocol)

    def get_protocol(self) -> asyncio.BaseProtocol:
        return self._transport.get_protocol()


class OneWriteHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol on a `OneWriteTransport`; a response that is complete
    leaves at once, so what the app does after it (counting it in metrics) runs after."""

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(OneWriteTransport(transport, self.loop))

    def on_response_complete(self) -> None:
        transport = self.transport
        if isinstance(transport, OneWriteTransport):
            transport.flush()
        super().on_response_complete()
