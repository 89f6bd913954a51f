"""`EventStreamResponse`: Starlette's head and events, sent from the request's own task; a
disconnect ends the stream and closes its events at once, and is absorbed; any other
cancellation goes on. Driven as uvicorn drives it: `receive` blocks until the caller goes
away (tests/gateway/test_end_to_end.py runs the real thing)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
from starlette.requests import ClientDisconnect
from starlette.responses import StreamingResponse
from starlette.types import Message

from resilience.gateway.event_stream import EventStreamResponse

SCOPE: dict[str, Any] = {"type": "http", "asgi": {"spec_version": "2.3"}, "method": "POST"}


class Caller:
    """The server's side of one request: what was sent, and when the caller goes away."""

    def __init__(self) -> None:
        self.sent: list[Message] = []
        self.gone = asyncio.Event()
        self.receives = 0

    async def receive(self) -> Message:
        self.receives += 1
        await self.gone.wait()
        return {"type": "http.disconnect"}

    async def send(self, message: Message) -> None:
        self.sent.append(message)

    @property
    def bodies(self) -> list[bytes]:
        return [m["body"] for m in self.sent if m["type"] == "http.response.body"]


class Events:
    """Events whose pace the test sets; records whether it was closed."""

    def __init__(self, *ready: bytes | None) -> None:
        self.queue: asyncio.Queue[bytes | None] = asyncio.Queue()
        for event in ready:
            self.queue.put_nowait(event)
        self.closed = False

    async def __call__(self) -> AsyncIterator[bytes]:
        try:
            while (event := await self.queue.get()) is not None:
                yield event
        finally:
            self.closed = True


async def started(caller: Caller, events: Events) -> asyncio.Task[None]:
    """The response running, its first event sent and its watcher waiting."""
    response = EventStreamResponse(events(), media_type="text/event-stream")
    task = asyncio.create_task(response(SCOPE, caller.receive, caller.send))
    for _ in range(3):
        await asyncio.sleep(0)
    return task


async def test_the_head_and_events_are_starlettes() -> None:
    ours, theirs = Caller(), Caller()
    for response, caller in (
        (EventStreamResponse(Events(b"a", b"b", None)(), media_type="text/event-stream"), ours),
        (StreamingResponse(Events(b"a", b"b", None)(), media_type="text/event-stream"), theirs),
    ):
        response.headers["x-resilience-provider"] = "p"
        await response(SCOPE, caller.receive, caller.send)
    assert ours.sent == theirs.sent
    assert (b"content-type", b"text/event-stream; charset=utf-8") in ours.sent[0]["headers"]
    assert (b"x-resilience-provider", b"p") in ours.sent[0]["headers"]
    assert ours.bodies == [b"a", b"b", b""]


async def test_the_first_event_is_sent_before_any_other_task_runs() -> None:
    caller, events = Caller(), Events(b"first")
    response = EventStreamResponse(events(), media_type="text/event-stream")
    task = asyncio.create_task(response(SCOPE, caller.receive, caller.send))
    await asyncio.sleep(0)  # one turn: the response's task ran once
    assert caller.bodies == [b"first"]
    events.queue.put_nowait(None)
    await task
    assert caller.bodies == [b"first", b""]


async def test_a_disconnect_ends_the_stream_closes_the_events_and_is_absorbed() -> None:
    caller, events = Caller(), Events(b"first")
    task = await started(caller, events)
    assert caller.bodies == [b"first"] and caller.receives == 1
    caller.gone.set()  # the caller goes away while the next event is awaited
    await asyncio.wait_for(task, 5)  # returns, not cancelled
    assert events.closed
    assert caller.bodies == [b"first"]  # no end marker: the stream was cut
    assert task.cancelling() == 0


async def test_a_disconnect_while_an_event_is_being_sent_closes_the_events() -> None:
    caller, events = Caller(), Events(b"first", b"second")
    slow = asyncio.Event()

    async def send(message: Message) -> None:
        caller.sent.append(message)
        if message.get("body") == b"second":
            caller.gone.set()
            await slow.wait()  # the write waits for room; the disconnect comes meanwhile

    response = EventStreamResponse(events(), media_type="text/event-stream")
    await asyncio.wait_for(response(SCOPE, caller.receive, send), 5)
    assert events.closed  # it was suspended at a yield: closed by the response
    assert caller.bodies == [b"first", b"second"]


async def test_a_disconnect_after_the_last_event_changes_nothing() -> None:
    caller, events = Caller(), Events(b"a", None)
    response = EventStreamResponse(events(), media_type="text/event-stream")
    caller.gone.set()  # already gone: the watcher would see it at its first receive
    await response(SCOPE, caller.receive, caller.send)
    assert caller.bodies == [b"a", b""]
    await asyncio.sleep(0)
    assert asyncio.current_task().cancelling() == 0  # type: ignore[union-attr]


async def test_a_cancellation_from_elsewhere_goes_on() -> None:
    caller, events = Caller(), Events(b"first")
    task = await started(caller, events)
    task.cancel()  # the server stopping
    with pytest.raises(asyncio.CancelledError):
        await task
    assert events.closed


async def test_a_cancellation_from_elsewhere_goes_on_even_beside_a_disconnect() -> None:
    caller, events = Caller(), Events(b"first")
    task = await started(caller, events)
    caller.gone.set()
    await asyncio.sleep(0)  # the watcher cancels the stream ...
    task.cancel()  # ... and the server stops too
    with pytest.raises(asyncio.CancelledError):
        await task
    assert events.closed


async def test_a_send_refused_by_an_asgi_2_4_server_is_a_client_disconnect() -> None:
    events = Events(b"first")

    async def send(message: Message) -> None:
        if message["type"] == "http.response.body":
            raise OSError("the connection is gone")

    async def receive() -> Message:
        await asyncio.Event().wait()
        return {}

    response = EventStreamResponse(events(), media_type="text/event-stream")
    with pytest.raises(ClientDisconnect):
        await response({**SCOPE, "asgi": {"spec_version": "2.4"}}, receive, send)
    assert events.closed


async def test_a_receive_that_fails_leaves_the_stream_to_finish() -> None:
    events = Events(b"first")
    sent: list[Message] = []

    async def send(message: Message) -> None:
        sent.append(message)

    async def receive() -> Message:
        raise RuntimeError("this app's receive cannot be watched")

    response = EventStreamResponse(events(), media_type="text/event-stream")
    task = asyncio.create_task(response(SCOPE, receive, send))
    for _ in range(3):
        await asyncio.sleep(0)
    events.queue.put_nowait(b"second")
    events.queue.put_nowait(None)
    await asyncio.wait_for(task, 5)
    assert [m["body"] for m in sent if m["type"] == "http.response.body"] == [
        b"first",
        b"second",
        b"",
    ]
