"""An in-process transport that streams, so mid-stream faults look as they do on a socket.

`httpx2.ASGITransport` runs the app to completion and buffers the body: a stream cut
after two chunks would fail before the first byte. `ChaosTransport` hands the response
over at `http.response.start` and the body chunk by chunk, applies the request's read
timeout (so `hang` and `stall_after_chunks` end in `httpx2.ReadTimeout`, as on a socket),
turns `ChaosDrop` into `httpx2.RemoteProtocolError` and `ChaosReset` into
`httpx2.ReadError`, and tells the app the client has gone when the response is closed.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, MutableMapping
from typing import Any

import httpx2

from resilience.chaos.stream import ChaosDrop, ChaosReset

_END = object()
"""Queued after the last body chunk."""


class _Cut:
    """Queued when the app ended before completing its body (`error` None: it just returned)."""

    def __init__(self, error: BaseException | None) -> None:
        self.error = error


class ChaosTransport(httpx2.ASGITransport):
    """`httpx2.ASGITransport` that streams the response instead of buffering it."""

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        timeouts = request.extensions.get("timeout") or {}
        read_timeout: float | None = timeouts.get("read")
        body = await request.aread()
        scope = {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "method": request.method,
            "headers": [(k.lower(), v) for (k, v) in request.headers.raw],
            "scheme": request.url.scheme,
            "path": request.url.path,
            "raw_path": request.url.raw_path.split(b"?")[0],
            "query_string": request.url.query,
            "server": (request.url.host, request.url.port),
            "client": self.client,
            "root_path": self.root_path,
        }
        loop = asyncio.get_running_loop()
        started: asyncio.Future[tuple[int, list[tuple[bytes, bytes]]]] = loop.create_future()
        chunks: asyncio.Queue[object] = asyncio.Queue()
        gone = asyncio.Event()
        body_sent = False

        async def receive() -> dict[str, Any]:
            nonlocal body_sent
            if not body_sent:
                body_sent = True
                return {"type": "http.request", "body": body, "more_body": False}
            await gone.wait()
            return {"type": "http.disconnect"}

        async def send(message: MutableMapping[str, Any]) -> None:
            if gone.is_set():
                return  # like a server whose client has hung up
            if message["type"] == "http.response.start":
                started.set_result((message["status"], list(message.get("headers", []))))
            elif message["type"] == "http.response.body":
                if message.get("body"):
                    chunks.put_nowait(bytes(message["body"]))
                if not message.get("more_body", False):
                    chunks.put_nowait(_END)

        async def run() -> None:
            error: Exception | None = None
            try:
                await self.app(scope, receive, send)
            except Exception as exc:
                error = exc
                if not isinstance(exc, ChaosDrop):
                    stream.app_error = exc
            # once the client has gone nobody waits for a start any more
            if not started.done() and not gone.is_set():
                started.set_exception(error or RuntimeError("the app returned without a response"))
            chunks.put_nowait(_Cut(error))

        stream = _ChaosStream(request, chunks, gone, read_timeout, self.raise_app_exceptions)
        stream.task = asyncio.create_task(run())
        try:
            async with asyncio.timeout(read_timeout):
                status, headers = await asyncio.shield(started)
        except TimeoutError:
            await stream.stop()
            message = "chaos: no response within the read timeout"
            raise httpx2.ReadTimeout(message, request=request) from None
        except BaseException:
            await stream.stop()
            raise
        return httpx2.Response(status, headers=headers, stream=stream)


class _ChaosStream(httpx2.AsyncByteStream):
    def __init__(
        self,
        request: httpx2.Request,
        chunks: asyncio.Queue[object],
        gone: asyncio.Event,
        read_timeout: float | None,
        raise_app_exceptions: bool,
    ) -> None:
        self._request = request
        self.task: asyncio.Task[None] | None = None
        self.app_error: Exception | None = None
        self._chunks = chunks
        self._gone = gone
        self._read_timeout = read_timeout
        self._raise_app_exceptions = raise_app_exceptions

    async def __aiter__(self) -> AsyncIterator[bytes]:
        while True:
            if not self._chunks.empty():
                item = self._chunks.get_nowait()  # no timer needed for what is already here
            else:
                try:
                    async with asyncio.timeout(self._read_timeout):
                        item = await self._chunks.get()
                except TimeoutError:
                    message = "chaos: read timed out"
                    raise httpx2.ReadTimeout(message, request=self._request) from None
            if item is _END:
                return
            if isinstance(item, _Cut):
                raise self._transport_error(item.error)
            assert isinstance(item, bytes)
            yield item

    def _transport_error(self, error: BaseException | None) -> BaseException:
        """What a socket client would see when the body ends early this way."""
        if isinstance(error, ChaosReset):
            return httpx2.ReadError("[Errno 104] Connection reset by peer", request=self._request)
        if error is None or isinstance(error, ChaosDrop) or not self._raise_app_exceptions:
            return httpx2.RemoteProtocolError(
                "peer closed connection without sending complete message body "
                "(incomplete chunked read)",
                request=self._request,
            )
        self.app_error = None  # raised here, not again on close
        return error

    async def aclose(self) -> None:
        """The client is done with the response; an exception the app raised surfaces here."""
        await self.stop()
        if self.app_error is not None and self._raise_app_exceptions:
            error, self.app_error = self.app_error, None
            raise error

    async def stop(self) -> None:
        """The app sees a disconnect, and is cancelled if it does not end on its own."""
        self._gone.set()
        task = self.task
        if task is None:
            return
        if not task.done():
            await asyncio.sleep(0)  # let it notice the disconnect and end by itself
        if not task.done():
            task.cancel()
        try:
            await task
        except asyncio.CancelledError:
            current = asyncio.current_task()
            if current is not None and current.cancelling():
                raise
