"""`ChaosUpstream`: fake Anthropic and OpenAI APIs that misbehave on cue."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import AbstractAsyncContextManager
from typing import Any

import httpx2
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from resilience.chaos import formats as wire
from resilience.chaos.script import Api, Fault, Hit, Script
from resilience.serving import serve_asgi
from resilience.types import Clock, Sleep


class ChaosDrop(ConnectionError):
    """Raised inside a streaming body to make the server drop the connection."""


class ChaosUpstream:
    """Serves `/U/v1/messages`, `/U/v1/chat/completions` and `/U/v1/embeddings` for any name U.

    An Anthropic SDK uses `base_url=f"{root}/U"`; an OpenAI SDK `f"{root}/U/v1"`.
    Faults are scripted with `add_fault` (or `POST /_chaos/faults` from another
    process); every request is recorded in `hits`.
    """

    def __init__(self, *, clock: Clock = time.monotonic, sleep: Sleep = asyncio.sleep) -> None:
        self._script = Script(clock)
        self._sleep = sleep
        self.app = Starlette(
            routes=[
                Route("/{upstream}/v1/messages", self._messages, methods=["POST"]),
                Route("/{upstream}/v1/chat/completions", self._chat, methods=["POST"]),
                Route("/{upstream}/v1/embeddings", self._embeddings, methods=["POST"]),
                Route("/_chaos/faults", self._control_faults, methods=["POST", "DELETE"]),
                Route("/_chaos/hits", self._control_hits, methods=["GET", "DELETE"]),
                Route("/_chaos/reset", self._control_reset, methods=["POST"]),
            ]
        )

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
    ) -> int:
        """Apply `fault` to matching requests (None matches anything); returns the rule id."""
        return self._script.add(
            fault, upstream=upstream, model=model, api_key=api_key, api=api, times=times
        )

    def sequence(
        self,
        faults: Sequence[Fault | None],
        *,
        upstream: str | None = None,
        model: str | None = None,
        api_key: str | None = None,
        api: Api | None = None,
    ) -> None:
        """One matching request each, in order; None means a healthy answer."""
        for fault in faults:
            self.add_fault(fault, upstream=upstream, model=model, api_key=api_key, api=api, times=1)

    def remove_fault(self, rule_id: int) -> None:
        self._script.remove(rule_id)

    def clear_faults(self) -> None:
        self._script.rules.clear()

    def reset(self) -> None:
        self._script.rules.clear()
        self._script.hits.clear()

    @property
    def hits(self) -> list[Hit]:
        return self._script.hits

    def hit_count(
        self,
        *,
        upstream: str | None = None,
        model: str | None = None,
        api: Api | None = None,
        api_key: str | None = None,
    ) -> int:
        return sum(
            1
            for h in self._script.hits
            if upstream in (None, h.upstream)
            and model in (None, h.model)
            and api in (None, h.api)
            and api_key in (None, h.api_key)
        )

    # -- ways to reach it ----------------------------------------------------------------------

    def transport(self) -> httpx2.ASGITransport:
        """In-process: `httpx2.AsyncClient(transport=chaos.transport())`. Responses are buffered,
        so faults after N chunks land before the first byte; use `serve()` for those."""
        return httpx2.ASGITransport(app=self.app)

    def serve(self, host: str = "127.0.0.1", port: int = 0) -> AbstractAsyncContextManager[str]:
        """A real uvicorn server on loopback for the duration; yields its root URL."""
        return serve_asgi(self.app, host=host, port=port)

    # -- the fake APIs -------------------------------------------------------------------------

    async def _messages(self, request: Request) -> Response:
        return await self._serve(request, "messages")

    async def _chat(self, request: Request) -> Response:
        return await self._serve(request, "chat")

    async def _embeddings(self, request: Request) -> Response:
        return await self._serve(request, "embeddings")

    async def _serve(self, request: Request, api: Api) -> Response:
        anthropic = api == "messages"
        try:
            body = json.loads(await request.body())
            if not isinstance(body, dict):
                raise ValueError("body is not an object")
        except ValueError:
            return _error(anthropic, 400, None, None, "chaos: request body is not valid JSON")
        upstream = request.path_params["upstream"]
        model = body.get("model") if isinstance(body.get("model"), str) else None
        stream = body.get("stream") is True
        fault = self._script.take(upstream, api, model, _api_key(request), stream)
        fault = fault or Fault()
        if fault.latency_s:
            await self._sleep(fault.latency_s)
        if fault.hang:
            await _until_disconnect(request)
            return Response(status_code=499)
        if fault.status is not None:
            return _error(
                anthropic,
                fault.status,
                fault.error_type,
                fault.error_code,
                fault.message,
                headers=_retry_headers(fault),
            )
        if fault.wrong_content_type:
            return Response("<html><body>502 Bad Gateway</body></html>", media_type="text/html")
        model = model or "chaos-model"
        if api == "embeddings":
            inputs = body.get("input")
            items = [inputs] if isinstance(inputs, str) else [str(i) for i in inputs or []]
            encoding = str(body.get("encoding_format") or "float")
            return _json(wire.openai_embeddings(model, items, encoding), fault)
        prompt = wire.last_user_text(body.get("messages"))
        if stream:
            frames = self._anthropic_frames if anthropic else self._openai_frames
            return StreamingResponse(frames(model, prompt, fault), media_type="text/event-stream")
        payload = (
            wire.anthropic_message(model, prompt)
            if anthropic
            else wire.openai_completion(model, prompt)
        )
        return _json(payload, fault)

    async def _anthropic_frames(
        self, model: str, prompt: str, fault: Fault
    ) -> AsyncIterator[bytes]:
        for frame in wire.anthropic_stream_head(model, prompt):
            yield frame
        text = wire.answer(prompt)
        async for piece in self._content(wire.words(text), fault, wire.anthropic_delta):
            if piece is None:
                yield wire.anthropic_error_event(fault.error_type, fault.message)
                return
            yield piece
        if fault.no_end_marker:
            return
        for frame in wire.anthropic_stream_tail(wire.token_count(text)):
            yield frame

    async def _openai_frames(self, model: str, prompt: str, fault: Fault) -> AsyncIterator[bytes]:
        completion_id = f"chatcmpl-{uuid.uuid4().hex[:24]}"
        yield wire.openai_chunk(completion_id, model, {"role": "assistant", "content": ""})
        text = wire.answer(prompt)

        def delta(piece: str) -> bytes:
            return wire.openai_chunk(completion_id, model, {"content": piece})

        async for frame in self._content(wire.words(text), fault, delta):
            if frame is None:
                yield wire.openai_error_event(fault.error_type, fault.error_code, fault.message)
                return
            yield frame
        if fault.no_end_marker:
            return
        yield wire.openai_chunk(completion_id, model, {}, finish="stop")
        yield wire.openai_usage_chunk(completion_id, model, prompt, text)
        yield wire.sse("[DONE]")

    async def _content(
        self, pieces: list[str], fault: Fault, frame: Callable[[str], bytes]
    ) -> AsyncIterator[bytes | None]:
        """Content frames with the after-N faults applied; None asks for an error event."""
        for sent, piece in enumerate(pieces):
            if sent == fault.error_event_after_chunks:
                yield None
                return
            if sent == fault.drop_after_chunks:
                raise ChaosDrop(f"chaos: dropped after {sent} chunks")
            if sent == fault.stall_after_chunks:
                await asyncio.Event().wait()
            if fault.chunk_delay_s and sent:
                await self._sleep(fault.chunk_delay_s)
            yield frame(piece)

    # -- control API for other processes -------------------------------------------------

    async def _control_faults(self, request: Request) -> Response:
        if request.method == "DELETE":
            self.clear_faults()
            return JSONResponse({"ok": True})
        try:
            data = await request.json()
            fault_data = data.get("fault")
            fault = Fault.from_dict(fault_data) if fault_data is not None else None
            match = {k: data.get(k) for k in ("upstream", "model", "api_key", "api", "times")}
            rule_id = self.add_fault(fault, **match)
        except (ValueError, TypeError, AttributeError) as exc:
            return JSONResponse({"error": str(exc)}, status_code=400)
        return JSONResponse({"id": rule_id})

    async def _control_hits(self, request: Request) -> Response:
        if request.method == "DELETE":
            self._script.hits.clear()
            return JSONResponse({"ok": True})
        return JSONResponse({"hits": [h.as_dict() for h in self._script.hits]})

    async def _control_reset(self, request: Request) -> Response:
        self.reset()
        return JSONResponse({"ok": True})


def _api_key(request: Request) -> str | None:
    key = request.headers.get("x-api-key")
    if key:
        return key
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    return token or None if scheme.lower() == "bearer" else None


def _retry_headers(fault: Fault) -> dict[str, str]:
    headers = {}
    if fault.retry_after is not None:
        headers["retry-after"] = fault.retry_after
    if fault.retry_after_ms is not None:
        headers["retry-after-ms"] = fault.retry_after_ms
    return headers


def _error(
    anthropic: bool,
    status: int,
    error_type: str | None,
    code: str | None,
    message: str | None,
    *,
    headers: dict[str, str] | None = None,
) -> Response:
    headers = dict(headers or {})
    if anthropic:
        body: dict[str, Any] = wire.anthropic_error(status, error_type, message)
        headers["request-id"] = str(body["request_id"])
    else:
        body = wire.openai_error(status, error_type, code, message)
    return JSONResponse(body, status_code=status, headers=headers)


def _json(payload: dict[str, Any], fault: Fault) -> Response:
    text = json.dumps(payload)
    if fault.malformed_body:
        return Response("{this is not json", media_type="application/json")
    if fault.truncated_body:
        return Response(text[: len(text) // 2], media_type="application/json")
    return Response(text, media_type="application/json")


async def _until_disconnect(request: Request) -> None:
    while (await request.receive())["type"] != "http.disconnect":
        pass
