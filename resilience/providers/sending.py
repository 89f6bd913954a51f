"""Whether an attempt's request left this process: only then may its failure blame the provider.

A failure before the request reaches the transport (the SDK cannot encode the body, a
value the wire format cannot carry, our own parameter building) says nothing about the
upstream: it is the caller's error. `attempt()` opens a `Dispatch` for each attempt; an
adapter that can tell calls `watch()` when it starts, and the request hook this module
puts on its httpx2 client calls `mark_sent()` when the SDK hands a request over to the
transport. A provider that never calls `watch()` is assumed to have sent its request.

A custom `Provider` can take part the same way: call `watch()` first, and `mark_sent()`
when its request goes out (or `track_sending()` on its httpx2 client).
"""

from __future__ import annotations

import weakref
from contextvars import ContextVar, Token

import httpx2


class Dispatch:
    """One attempt's request: `watched` once the adapter reports, `sent` once it went out.

    `with Dispatch() as sending:` makes it the current one for the calls made inside the
    block (the current task); a class rather than a generator, as every attempt opens one.
    """

    __slots__ = ("_token", "sent", "watched")

    def __init__(self) -> None:
        self.watched = False
        self.sent = False
        self._token: Token[Dispatch | None] | None = None

    @property
    def left(self) -> bool:
        """False only when the adapter reported and the request never reached the transport."""
        return self.sent or not self.watched

    def __enter__(self) -> Dispatch:
        self._token = _CURRENT.set(self)
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self._token is not None:
            _CURRENT.reset(self._token)
            self._token = None


_CURRENT: ContextVar[Dispatch | None] = ContextVar("resilience_dispatch", default=None)


def dispatch() -> Dispatch:
    """A new `Dispatch` for the calls made inside `with dispatch() as sending:`."""
    return Dispatch()


def watch() -> None:
    """Called by an adapter as its call starts: from now on, not sent means not sent."""
    current = _CURRENT.get()
    if current is not None:
        current.watched = True


def mark_sent() -> None:
    """The request was handed to the transport: bytes may have reached the upstream."""
    current = _CURRENT.get()
    if current is not None:
        current.sent = True


async def _on_request(request: httpx2.Request) -> None:
    mark_sent()


_TRACKED: weakref.WeakSet[httpx2.AsyncClient] = weakref.WeakSet()


def track_sending(client: httpx2.AsyncClient) -> None:
    """Mark requests sent on `client` as httpx2 hands them to its transport (once per client)."""
    if client in _TRACKED:
        return
    _TRACKED.add(client)
    hooks = client.event_hooks
    client.event_hooks = {**hooks, "request": [*hooks.get("request", []), _on_request]}
