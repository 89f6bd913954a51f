"""An SSE answer streamed from the request's own task, stopped when the caller goes away.

Starlette's `StreamingResponse`, under a server that speaks ASGI 2.3 (uvicorn), starts a
task group: the events are sent from a new task while the request's task waits for the
disconnect. The first event then waits for that task to be scheduled, and the group's
set-up sits on every stream's time to first byte: sending from the request's task took
0.13 to 0.19 ms off the gateway's at p50 (`bench/gateway.py`'s streams, A/B in one run, on
a 2-core VM).

`EventStreamResponse` sends the head and the events from the request's task, so the
head and the first event leave together (`resilience.one_write`). After the first event a
watcher task waits for `http.disconnect`; if it comes before the last event, the watcher
cancels the request's task, which ends the stream there: the events' iterator is closed
(the gateway's closes the upstream stream, neutral for the breaker) and the cancellation
is absorbed, the way `asyncio.timeout` absorbs its own. A cancellation from anywhere else
goes on.
"""

from __future__ import annotations

import asyncio

from starlette.requests import ClientDisconnect
from starlette.responses import StreamingResponse
from starlette.types import Receive, Scope, Send


class EventStreamResponse(StreamingResponse):
    """`StreamingResponse` (same head, same events) without a task group on the way to the
    first event. `content` must be an async iterator of bytes."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        streaming = asyncio.current_task()
        if scope["type"] != "http" or streaming is None:
            await super().__call__(scope, receive, send)
            return
        cancelling = streaming.cancelling()
        gone = False
        finished = False

        async def watch() -> None:
            nonlocal gone
            while True:
                try:
                    message = await receive()
                except Exception:  # nothing left to watch with (an app's own receive)
                    return
                if message["type"] == "http.disconnect":
                    if not finished:
                        gone = True
                        streaming.cancel()
                    return

        watcher: asyncio.Task[None] | None = None
        try:
            start = {"status": self.status_code, "headers": self.raw_headers}
            await send({"type": "http.response.start", **start})
            async for chunk in self.body_iterator:
                body = chunk.encode(self.charset) if isinstance(chunk, str) else chunk
                await send({"type": "http.response.body", "body": body, "more_body": True})
                if watcher is None:  # after the first event: its time owes nothing to this
                    watcher = asyncio.create_task(watch())
            await send({"type": "http.response.body", "body": b"", "more_body": False})
        except asyncio.CancelledError:
            if not gone or streaming.uncancel() > cancelling:
                raise  # not (only) ours: the server is stopping, or the caller's scope
        except OSError:  # a server on ASGI 2.4 raises it on a send after a disconnect
            raise ClientDisconnect() from None
        finally:
            finished = True
            if watcher is not None:
                watcher.cancel()
            closing = getattr(self.body_iterator, "aclose", None)
            if closing is not None:  # cancelled while sending: the iterator is still open
                await closing()
        if self.background is not None:
            await self.background()
