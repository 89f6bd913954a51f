"""The model endpoints: `/v1/chat/completions`, `/v1/messages`, `/v1/embeddings`.

Thin: parse the public format, call the `ResilientClient`, answer in the same
format. `AllTargetsFailed` is 503 with `Retry-After`; the caller's own errors
keep the upstream's 4xx; a stream that fails after output began ends with the
format's error event, never silently. A body that cannot be sent on (a lone
surrogate, NaN, a model name no provider could have, a request the SDK failed to
encode) is 400 `invalid_body` naming the field, before any upstream is called.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse

from resilience.client.outcomes import Result
from resilience.client.resilient import ResilientClient
from resilience.client.streaming import ResilientStream
from resilience.errors import (
    AllTargetsFailed,
    CircuitOpenError,
    ErrorKind,
    InvalidRequestError,
    ProviderError,
    UnknownRouteError,
)
from resilience.gateway.metrics import GatewayMetrics
from resilience.gateway.wire import (
    AnthropicStreamWriter,
    OpenAIStreamWriter,
    WireError,
    chat_request_from_anthropic,
    chat_request_from_openai,
    chat_response_to_anthropic,
    chat_response_to_openai,
    embedding_request_from_openai,
    embedding_response_to_openai,
    openai_error,
)
from resilience.models import ChatRequest, json_problem
from resilience.tenancy.context import current_tenant_or_none

Writer = OpenAIStreamWriter | AnthropicStreamWriter


class BodyTooLarge(Exception):
    pass


def error(
    status: int,
    message: str,
    *,
    type_: str,
    code: str | None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    return JSONResponse(
        openai_error(message, type_=type_, code=code), status_code=status, headers=headers
    )


async def read_json(request: Request, limit: int) -> Any:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise BodyTooLarge
    body = b""
    async for part in request.stream():
        body += part
        if len(body) > limit:
            raise BodyTooLarge
    try:
        value = _STRICT.decode(body.decode(json.detect_encoding(body), "surrogatepass"))
    except _NotFinite:
        value = json.loads(body)  # parses (only numbers were refused): find where
        raise WireError(json_problem(value, "") or "body: not a finite number") from None
    except (ValueError, RecursionError) as exc:
        raise WireError("body: not valid JSON") from exc
    # lone surrogates (escaped, or raw bytes that surrogatepass lets in) are left for the
    # wire parsers, which check every string and key of every body once (`_sendable`)
    return value


class _NotFinite(Exception):
    """NaN, Infinity or a number past float's range: Python's JSON, not JSON."""


def _finite(text: str) -> float:
    value = float(text)
    if math.isinf(value):  # 1e400
        raise _NotFinite
    return value


def _constant(name: str) -> float:
    raise _NotFinite


_STRICT = json.JSONDecoder(parse_constant=_constant, parse_float=_finite)
"""Made once: `json.loads(..., parse_constant=...)` would build a decoder per request."""


def _retry_after_header(seconds: float) -> int:
    """Whole seconds, at least 1; an admin open without an end (inf) says 60: ask again."""
    return max(1, math.ceil(seconds)) if math.isfinite(seconds) else 60


def failure_response(exc: Exception) -> Response:
    """The HTTP answer for an error raised by parsing or by the client."""
    if isinstance(exc, BodyTooLarge):
        return error(
            413, "request body too large", type_="invalid_request_error", code="body_too_large"
        )
    if isinstance(exc, WireError | InvalidRequestError):
        return error(400, str(exc), type_="invalid_request_error", code="invalid_body")
    if isinstance(exc, UnknownRouteError):
        return error(404, exc.message, type_="invalid_request_error", code="model_not_found")
    if isinstance(exc, AllTargetsFailed):
        retry = _retry_after_header(exc.retry_after_s or 1.0)
        return error(
            503,
            exc.message,
            type_="server_error",
            code="all_targets_failed",
            headers={"retry-after": str(retry)},
        )
    if isinstance(exc, CircuitOpenError):
        retry = _retry_after_header(exc.retry_after_s)
        return error(
            503,
            exc.message,
            type_="server_error",
            code="circuit_open",
            headers={"retry-after": str(retry)},
        )
    if isinstance(exc, ProviderError) and not exc.sent and exc.kind is ErrorKind.BAD_REQUEST:
        # it never left: the caller's body could not be sent (the field is named)
        return error(400, exc.message, type_="invalid_request_error", code="invalid_body")
    if isinstance(exc, ProviderError):
        status = exc.status_code if exc.status_code and 400 <= exc.status_code < 500 else 400
        if exc.kind not in (
            ErrorKind.BAD_REQUEST,
            ErrorKind.CONTENT_FILTER,
            ErrorKind.CONTEXT_LENGTH,
        ):
            status = 502
        return error(
            status,
            exc.message,
            type_="invalid_request_error" if status < 500 else "server_error",
            code=str(exc.kind),
        )
    raise exc


def headers_for(result: Result[Any] | ResilientStream) -> dict[str, str]:
    """Which target answered. A `Target` cannot be made with a name outside `MODEL_NAME` /
    `PROVIDER_NAME` (visible ASCII, at most 256 characters), so both are safe as headers."""
    return {
        "x-resilience-provider": result.target.provider,
        "x-resilience-model": result.target.model,
        "x-resilience-attempts": str(result.attempts),
    }


class ModelEndpoints:
    """The three endpoints, bound to one client, a body size limit and the metrics."""

    def __init__(
        self,
        client: Callable[[], ResilientClient],
        *,
        max_body_bytes: int,
        metrics: GatewayMetrics,
    ) -> None:
        self._client = client
        self._limit = max_body_bytes
        self._metrics = metrics

    def _record(
        self, started: float, result: Result[Any] | ResilientStream | None, exc: Exception | None
    ) -> None:
        metrics = self._metrics
        tenant = metrics.tenant(current_tenant_or_none())
        if result is not None:
            provider = result.target.provider
            metrics.requests.labels(tenant, provider, "ok").inc()
            metrics.attempts.labels(provider).inc(result.attempts)
            if len(result.outcomes) > 1:
                metrics.fallbacks.labels(provider).inc()
            metrics.latency.labels(provider).observe(time.perf_counter() - started)
            return
        outcome = "all_targets_failed" if isinstance(exc, AllTargetsFailed) else "refused"
        if isinstance(exc, ProviderError):
            outcome = str(exc.kind)
        metrics.requests.labels(tenant, "", outcome).inc()

    async def chat_completions(self, request: Request) -> Response:
        return await self._chat(
            request, chat_request_from_openai, chat_response_to_openai, OpenAIStreamWriter
        )

    async def messages(self, request: Request) -> Response:
        return await self._chat(
            request, chat_request_from_anthropic, chat_response_to_anthropic, AnthropicStreamWriter
        )

    async def embeddings(self, request: Request) -> Response:
        started = time.perf_counter()
        try:
            model, body = embedding_request_from_openai(await read_json(request, self._limit))
            result = await self._client().embed(body, route=model)
        except Exception as exc:
            self._record(started, None, exc)
            return failure_response(exc)
        self._record(started, result, None)
        return JSONResponse(
            embedding_response_to_openai(result.value, model=model), headers=headers_for(result)
        )

    async def _chat(
        self,
        request: Request,
        parse: Callable[[Any], tuple[str, bool, ChatRequest]],
        render: Callable[..., dict[str, Any]],
        writer: type[Writer],
    ) -> Response:
        started = time.perf_counter()
        try:
            model, stream, body = parse(await read_json(request, self._limit))
            if stream:
                opened = await self._client().stream(body, route=model)
            else:
                result = await self._client().complete(body, route=model)
        except Exception as exc:
            self._record(started, None, exc)
            return failure_response(exc)
        self._record(started, opened if stream else result, None)
        if not stream:
            return JSONResponse(render(result.value, model=model), headers=headers_for(result))
        return StreamingResponse(
            _frames(opened, writer(model)),
            media_type="text/event-stream",
            headers=headers_for(opened),
        )


async def _frames(stream: ResilientStream, writer: Writer) -> AsyncIterator[bytes]:
    """SSE frames; a failure after output began ends with the format's error event.

    When the caller disconnects, Starlette cancels this generator: the `finally`
    closes the upstream stream at once, neutral for the breaker.
    """
    try:
        yield writer.start()
        async for chunk in stream:
            yield writer.chunk(chunk)
        yield writer.end()
    except ProviderError as exc:
        yield writer.error(exc.message, str(exc.kind))
    finally:
        await stream.aclose()
