"""A ceiling on the size of an upstream's answer.

Without one, a runaway or hostile upstream can send a body of any size, and the
SDK reads a non-streamed answer whole into memory. With it, an answer that declares
a larger `content-length` is refused before its body is read, and one without (a
stream) is counted as it arrives; the attempt fails with `ResponseTooLarge`
(classified `invalid_response`: retried, counted on the breaker, free to fall
back), and the connection is closed, not returned to the pool half read.
"""

from __future__ import annotations

import weakref
from collections.abc import AsyncIterator

import httpx2

from resilience.errors import ResponseTooLarge

DEFAULT_MAX_RESPONSE_BYTES = 32 * 1024 * 1024
"""32 MiB: far above any chat or embeddings answer, far below trouble for the worker."""

_LIMITS: weakref.WeakKeyDictionary[httpx2.AsyncClient, int] = weakref.WeakKeyDictionary()


class _Capped(httpx2.AsyncByteStream):
    """The response body, counted; raises once it passes `limit` bytes."""

    def __init__(self, inner: httpx2.AsyncByteStream, limit: int) -> None:
        self._inner = inner
        self._limit = limit

    async def __aiter__(self) -> AsyncIterator[bytes]:
        seen = 0
        async for chunk in self._inner:
            seen += len(chunk)
            if seen > self._limit:
                raise ResponseTooLarge(self._limit)
            yield chunk

    async def aclose(self) -> None:
        await self._inner.aclose()


def cap_response_size(client: httpx2.AsyncClient, max_bytes: int) -> None:
    """Fail answers larger than `max_bytes` on `client`. A client shared by several
    providers keeps the smallest of their limits."""
    if not max_bytes > 0:
        raise ValueError(f"max_response_bytes: must be > 0, got {max_bytes!r}")
    current = _LIMITS.get(client)
    _LIMITS[client] = max_bytes if current is None else min(current, max_bytes)
    if current is not None:
        return
    ref = weakref.ref(client)

    async def cap(response: httpx2.Response) -> None:
        owner = ref()
        limit = _LIMITS.get(owner) if owner is not None else None
        if limit is None:
            return
        declared = response.headers.get("content-length")
        if declared is not None and declared.isdigit():
            if int(declared) > limit:
                raise ResponseTooLarge(limit)
            return  # HTTP/1.1 and HTTP/2 refuse a body longer than it declared
        stream = response.stream
        if isinstance(stream, httpx2.AsyncByteStream):
            response.stream = _Capped(stream, limit)

    hooks = client.event_hooks
    client.event_hooks = {**hooks, "response": [*hooks.get("response", []), cap]}
