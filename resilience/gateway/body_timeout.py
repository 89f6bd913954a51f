"""A deadline for reading a request body, so slow clients cannot hold the gateway.

Without it, a client that sends headers and then a byte every few seconds
(slowloris) keeps a connection and a task for as long as it likes, and a few
thousand such clients exhaust the process. The deadline covers the whole body,
counted from the request's start; once the body is read, `receive` is left
alone (a streaming answer listens on it for the client going away).
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable

from starlette.datastructures import Headers
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from resilience.client.cutoff import Cutoff
from resilience.tenancy.middleware import OPENAI_ERRORS, ErrorFormat, ErrorFormatFor

DEFAULT_BODY_READ_TIMEOUT_S = 10.0


class BodyReadTimeout(Exception):
    """The client did not finish sending its body within the deadline."""


class BodyReadTimeoutMiddleware:
    """Pure ASGI: a request whose body is not complete within `timeout_s` gets 408."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        timeout_s: float = DEFAULT_BODY_READ_TIMEOUT_S,
        clock: Callable[[], float] = time.monotonic,
        error_format: ErrorFormat | ErrorFormatFor = OPENAI_ERRORS,
    ) -> None:
        if not timeout_s > 0:
            raise ValueError(f"timeout_s: expected a number > 0, got {timeout_s!r}")
        self.app = app
        self.timeout_s = timeout_s
        self._clock = clock
        self.error_format = error_format
        """The 408's shape, as `TenantMiddleware` takes it (the gateway passes the same)."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        deadline = self._clock() + self.timeout_s
        body_done = False
        started = False

        async def timed_receive() -> Message:
            nonlocal body_done
            if body_done:
                return await receive()
            remaining = deadline - self._clock()
            try:
                # `Cutoff`, not asyncio.timeout: no loop timer armed and cancelled per request
                with Cutoff(max(remaining, 0.0)):
                    message = await receive()
            except TimeoutError:
                raise BodyReadTimeout from None
            if message["type"] != "http.request" or not message.get("more_body", False):
                body_done = True
            return message

        async def tracked_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, timed_receive, tracked_send)
        except BodyReadTimeout:
            if started:
                raise
            chosen = self.error_format
            if not isinstance(chosen, ErrorFormat):
                chosen = chosen(scope.get("path", ""), Headers(scope=scope))
            await _request_timeout(send, self.timeout_s, chosen)


async def _request_timeout(send: Send, timeout_s: float, form: ErrorFormat) -> None:
    message = f"request body not received within {timeout_s:g} s"
    request_id = uuid.uuid4().hex
    error = form.body(408, "body_read_timeout", message, request_id)
    body = json.dumps(error).encode()
    await send(
        {
            "type": "http.response.start",
            "status": 408,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"connection", b"close"),
                *((name.encode(), request_id.encode()) for name in form.request_id_headers),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
