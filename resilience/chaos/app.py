"""`ChaosUpstream`: fake Anthropic and OpenAI APIs that misbehave on cue."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator, Awaitable, Sequence
from typing import Any

import httpx2
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from resilience.chaos import anthropic_api, openai_api, required
from resilience.chaos.healthy import healthy, models
from resilience.chaos.inprocess import ChaosTransport
from resilience.chaos.prompt_cache import PromptCache
from resilience.chaos.script import Api, Fault, Hit, Script
from resilience.chaos.stream import TRANSPORT_KEY, transport_of, until_disconnect
from resilience.serving import serve_asgi
from resilience.types import Clock, Sleep

_UPSTREAM = "{upstream}"


class _ChaosApp(Starlette):
    """Starlette, plus the connection's transport in the scope (for drops and resets) and
    the set of connections with a request in flight (so `serve()` can cut them on exit)."""

    in_flight: set[asyncio.Transport]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        transport = transport_of(send) if scope["type"] == "http" else None
        if transport is None:
            await super().__call__(scope, receive, send)
            return
        scope[TRANSPORT_KEY] = transport
        self.in_flight.add(transport)
        try:
            await super().__call__(scope, receive, send)
        finally:
            self.in_flight.discard(transport)


class _NoResponse(Response):
    """For a client that has gone: nothing left to send."""

    def __init__(self) -> None:
        self.background = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        return None


class ChaosUpstream:
    """Serves `/U/v1/messages`, `/U/v1/messages/count_tokens`, `/U/v1/chat/completions`,
    `/U/v1/embeddings` and `/U/v1/models` for any name U.

    An Anthropic SDK uses `base_url=f"{root}/U"`, an OpenAI SDK `f"{root}/U/v1"`. Faults
    are scripted with `add_fault` (or `POST /_chaos/faults` from another process); every
    request is recorded in `hits`.

    Args:
        clock: stamps each `Hit.at`.
        sleep: waits out `Fault.latency_s` and `Fault.chunk_delay_s`; pass a recording
            fake to keep tests instant.
        seed: seeds the draws of faults added with a `probability`, for repeatable runs.
    """

    def __init__(
        self,
        *,
        clock: Clock = time.monotonic,
        sleep: Sleep = asyncio.sleep,
        seed: int | None = None,
    ) -> None:
        self._script = Script(clock, seed=seed)
        self._sleep = sleep
        self._cache = PromptCache()
        self._app = _ChaosApp(
            routes=[
                Route(f"/{_UPSTREAM}/v1/messages", self._messages, methods=["POST"]),
                Route(f"/{_UPSTREAM}/v1/messages/count_tokens", self._count, methods=["POST"]),
                Route(f"/{_UPSTREAM}/v1/chat/completions", self._chat, methods=["POST"]),
                Route(f"/{_UPSTREAM}/v1/embeddings", self._embeddings, methods=["POST"]),
                Route(f"/{_UPSTREAM}/v1/models", self._models, methods=["GET"]),
                Route("/_chaos/faults", self._faults, methods=["GET", "POST", "DELETE"]),
                Route("/_chaos/faults/{rule_id:int}", self._remove, methods=["DELETE"]),
                Route("/_chaos/sequence", self._sequence, methods=["POST"]),
                Route("/_chaos/hits", self._hits, methods=["GET", "DELETE"]),
                Route("/_chaos/reset", self._reset, methods=["POST"]),
            ]
        )
        self._app.in_flight = set()
        self.app: Starlette = self._app

    # -- scripting -------------------------------------------------------------------------

    def add_fault(
        self,
        fault: Fault | None,
        *,
        upstream: str | None = None,
        model: str | None = None,
        api_key: str | None = None,
        api: Api | None = None,
        times: int | None = None,
        probability: float | None = None,
    ) -> int:
        """Apply `fault` to matching requests; returns the id for `remove_fault`.

        Args:
            fault: what to do; None answers healthily (useful to let some requests through
                ahead of a broader fault).
            upstream, model, api_key, api: what a request must match; None matches anything.
            times: how many matching requests this applies to; None means forever.
            probability: apply to this share of matching requests, drawn per request from
                the upstream's seeded generator (`ChaosUpstream(seed=...)`); a request not
                drawn goes on to the later rules. None: every matching request.

        The first live match in insertion order decides a request's fault.
        """
        return self._script.add(
            fault,
            upstream=upstream,
            model=model,
            api_key=api_key,
            api=api,
            times=times,
            probability=probability,
        )

    def sequence(
        self,
        faults: Sequence[Fault | None],
        *,
        upstream: str | None = None,
        model: str | None = None,
        api_key: str | None = None,
        api: Api | None = None,
    ) -> list[int]:
        """One matching request each, in order; None means a healthy answer."""
        return [
            self.add_fault(f, upstream=upstream, model=model, api_key=api_key, api=api, times=1)
            for f in faults
        ]

    def remove_fault(self, rule_id: int) -> bool:
        """False if there was no such rule (or it was used up)."""
        return self._script.remove(rule_id)

    def clear_faults(self) -> None:
        self._script.rules.clear()

    def reset(self) -> None:
        """Forget every fault, every hit and every cached prompt prefix."""
        self._script.rules.clear()
        self._script.hits.clear()
        self._cache.clear()

    @property
    def hits(self) -> list[Hit]:
        """Every request received, in order (requests whose body was not JSON included)."""
        return self._script.hits

    def hit_count(
        self,
        upstream: str | None = None,
        model: str | None = None,
        api: Api | None = None,
        api_key: str | None = None,
    ) -> int:
        return self._script.count(upstream, model, api, api_key)

    # -- ways to reach it ------------------------------------------------------------------

    def transport(self) -> httpx2.ASGITransport:
        """In-process: `httpx2.AsyncClient(transport=chaos.transport())`.

        Streams, honours the read timeout, and ends cut streams with the httpx2 errors a
        socket gives (see `resilience.chaos.inprocess`).
        """
        return ChaosTransport(app=self.app)

    @contextlib.asynccontextmanager
    async def serve(self, host: str = "127.0.0.1", port: int = 0) -> AsyncIterator[str]:
        """A real uvicorn server in this event loop for the duration; yields its root URL.

        Port 0 picks a free port. On exit, connections with a request still in flight (a
        hang, a stall) are closed first, as a server going away would, so leaving never
        waits on them and leaves no task behind.
        """
        async with serve_asgi(self.app, host=host, port=port) as root:
            try:
                yield root
            finally:
                bound = int(root.rsplit(":", 1)[1])
                for transport in list(self._app.in_flight):
                    sockname = transport.get_extra_info("sockname")
                    if isinstance(sockname, tuple) and sockname[1] == bound:
                        transport.close()

    # -- the fake APIs ---------------------------------------------------------------------

    async def _messages(self, request: Request) -> Response:
        return await self._answer(request, "messages")

    async def _chat(self, request: Request) -> Response:
        return await self._answer(request, "chat")

    async def _embeddings(self, request: Request) -> Response:
        return await self._answer(request, "embeddings")

    async def _count(self, request: Request) -> Response:
        return await self._answer(request, "count_tokens")

    async def _models(self, request: Request) -> Response:
        """A fixed list, never faulted nor recorded: clients ask it once at start-up."""
        return JSONResponse(models(anthropic="anthropic-version" in request.headers))

    async def _answer(self, request: Request, api: Api) -> Response:
        upstream = request.path_params["upstream"]
        api_key = _api_key(request)
        try:
            body = json.loads(await request.body())
            if not isinstance(body, dict):
                raise ValueError("not an object")
        except ValueError:
            at = self._script.clock()
            self._script.record(Hit(upstream, api, None, api_key, False, None, at))
            return _error(api, Fault(status=400, message="chaos: the body is not a JSON object"))
        model = body.get("model") if isinstance(body.get("model"), str) else None
        stream = body.get("stream") is True and api in ("messages", "chat")
        fault = self._script.take(upstream, api, model, api_key, stream, body) or Fault()
        if fault.latency_s and await _gone_during(request, self._sleep(fault.latency_s)):
            return _NoResponse()
        if fault.hang:
            await until_disconnect(request.receive)
            return _NoResponse()
        if fault.status is not None:
            return _error(api, fault)
        if fault.wrong_content_type:
            return Response("<html><body>502 Bad Gateway</body></html>", media_type="text/html")
        refused = required.problem(api, body)
        if refused is not None:  # what the real API refuses, it refuses here too
            return _error(api, Fault(status=400, message=refused))
        return healthy(
            api,
            upstream=upstream,
            model=model or "chaos-model",
            body=body,
            fault=fault,
            sleep=self._sleep,
            cache=self._cache,
        )

    # -- control API for other processes ---------------------------------------------------

    async def _faults(self, request: Request) -> Response:
        if request.method == "GET":
            return JSONResponse({"faults": [r.as_dict() for r in self._script.rules]})
        if request.method == "DELETE":
            self.clear_faults()
            return JSONResponse({"ok": True})
        try:
            data = await _json_object(request)
            rule_id = self.add_fault(
                _fault_of(data.get("fault")), **_match_of(data, "times", "probability")
            )
        except (ValueError, TypeError) as exc:
            return JSONResponse({"error": str(exc)}, status_code=400)
        return JSONResponse({"id": rule_id})

    async def _remove(self, request: Request) -> Response:
        removed = self.remove_fault(request.path_params["rule_id"])
        return JSONResponse({"ok": removed}, status_code=200 if removed else 404)

    async def _sequence(self, request: Request) -> Response:
        try:
            data = await _json_object(request)
            faults = data.get("faults")
            if not isinstance(faults, list):
                raise ValueError("faults: must be a list of faults or nulls")
            parsed = [_fault_of(f) for f in faults]
            ids = self.sequence(parsed, **_match_of(data))
        except (ValueError, TypeError) as exc:
            return JSONResponse({"error": str(exc)}, status_code=400)
        return JSONResponse({"ids": ids})

    async def _hits(self, request: Request) -> Response:
        if request.method == "DELETE":
            self._script.hits.clear()
            return JSONResponse({"ok": True})
        return JSONResponse({"hits": [h.as_dict() for h in self._script.hits]})

    async def _reset(self, request: Request) -> Response:
        self.reset()
        return JSONResponse({"ok": True})


async def _json_object(request: Request) -> dict[str, Any]:
    try:
        data = json.loads(await request.body())
    except ValueError:
        raise ValueError("the body is not JSON") from None
    if not isinstance(data, dict):
        raise ValueError("the body must be a JSON object")
    return data


def _fault_of(data: Any) -> Fault | None:
    return None if data is None else Fault.from_dict(data)


def _match_of(data: dict[str, Any], *extra: str) -> dict[str, Any]:
    allowed = {"fault", "faults", "upstream", "model", "api_key", "api", *extra}
    unknown = sorted(set(data) - allowed)
    if unknown:
        raise ValueError(f"unknown field(s) {', '.join(unknown)}")
    return {k: data[k] for k in ("upstream", "model", "api_key", "api", *extra) if k in data}


async def _gone_during(request: Request, wait: Awaitable[None]) -> bool:
    """Waits; True if the client went away first (then the wait is cancelled)."""
    waiting = asyncio.ensure_future(wait)
    gone = asyncio.ensure_future(until_disconnect(request.receive))
    try:
        await asyncio.wait({waiting, gone}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        waiting.cancel()
        gone.cancel()
        await asyncio.gather(waiting, gone, return_exceptions=True)
    return gone.done() and not gone.cancelled()


def _api_key(request: Request) -> str | None:
    key = request.headers.get("x-api-key")
    if key:
        return key
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    return token or None if scheme.lower() == "bearer" else None


def _error(api: Api, fault: Fault) -> Response:
    status = fault.status or 500
    headers: dict[str, str] = {}
    if fault.retry_after is not None:
        headers["retry-after"] = fault.retry_after
    if fault.retry_after_ms is not None:
        headers["retry-after-ms"] = fault.retry_after_ms
    if api in ("messages", "count_tokens"):
        body, ids = anthropic_api.error(status, fault.error_type, fault.message, fault.error_code)
        headers.update(ids)
    else:
        body = openai_api.error(status, fault.error_type, fault.error_code, fault.message)
    return JSONResponse(body, status_code=status, headers=headers)
