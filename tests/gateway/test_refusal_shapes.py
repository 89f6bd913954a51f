"""Refusals made before any endpoint runs speak the path's API too: Starlette's 404 and 405,
and the 408 for a body that never finished arriving."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from starlette.types import Message, Receive, Scope, Send

from resilience.gateway.api import error_format_for
from resilience.gateway.body_timeout import BodyReadTimeoutMiddleware
from tests.gateway.configured import auth, serve
from tests.gateway.schemas import assert_valid
from tests.support.gateway import Running


@pytest.fixture
async def running(tmp_path: Path) -> AsyncIterator[Running]:
    async with serve(tmp_path) as (running, _):
        yield running


async def test_an_unknown_openai_path_is_a_json_404_in_openais_shape(running: Running) -> None:
    response = await running.http.get("/v1/nope", headers=auth("acme"))
    assert response.status_code == 404
    body = response.json()
    assert_valid("ErrorResponse", body)
    assert body["error"]["code"] == "not_found" and body["error"]["param"] is None


async def test_a_wrong_method_on_messages_is_a_405_in_anthropics_shape(running: Running) -> None:
    response = await running.http.get("/v1/messages", headers=auth("acme"))
    assert response.status_code == 405
    assert response.headers["allow"] == "POST"
    body = response.json()
    assert body["type"] == "error" and body["error"]["type"] == "invalid_request_error"
    assert body["request_id"] == response.headers["request-id"]


def _ticks(*values: float) -> Iterator[float]:
    yield from values
    while True:
        yield values[-1]


async def _time_out(path: str) -> list[Message]:
    """Drive the middleware with a body that never comes, on a clock already past it."""

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await receive()  # the endpoint reads its body

    async def never() -> Message:
        await asyncio.Event().wait()
        raise AssertionError("unreachable")

    sent: list[Message] = []

    async def send(message: Message) -> None:
        sent.append(message)

    ticks = _ticks(0.0, 100.0)
    middleware = BodyReadTimeoutMiddleware(
        app, timeout_s=10.0, clock=lambda: next(ticks), error_format=error_format_for
    )
    scope: Scope = {"type": "http", "path": path, "headers": [], "method": "POST"}
    await middleware(scope, never, send)
    return sent


async def test_the_408_on_messages_is_anthropic_shaped_with_a_request_id() -> None:
    start, body = await _time_out("/v1/messages")
    assert start["status"] == 408
    headers = dict(start["headers"])
    error = json.loads(body["body"])
    assert error["type"] == "error" and error["error"]["type"] == "invalid_request_error"
    assert headers[b"request-id"].decode() == error["request_id"]


async def test_the_408_on_chat_completions_is_openai_shaped() -> None:
    start, body = await _time_out("/v1/chat/completions")
    assert start["status"] == 408
    error = json.loads(body["body"])
    assert_valid("ErrorResponse", error)
    assert error["error"]["code"] == "body_read_timeout"
