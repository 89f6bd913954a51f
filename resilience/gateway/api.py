"""The model endpoints: `/v1/chat/completions`, `/v1/messages`, `/v1/embeddings`, `/v1/models`.

Thin: parse the public format, call the `ResilientClient`, answer in the same
format, errors included (`resilience.embed.failures`, shared with applications that embed
the library: OpenAI's error body on the OpenAI endpoints, Anthropic's on `/v1/messages`).
`AllTargetsFailed` is 503 with `Retry-After`, or 429 when the tenant's own rate limit is
all that held it back; the caller's own errors keep the upstream's 4xx; a stream that fails
after output began ends with the format's error event, never silently. A body that cannot
be sent on (a lone surrogate, NaN, a model name no provider could have, a request the SDK
failed to encode) is 400 `invalid_body` naming the field, before any upstream is called.
"""

from __future__ import annotations

import json
import math
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from typing import Any

import httpx2
from starlette.datastructures import Headers
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response
from starlette.types import Receive, Scope, Send

from resilience.client.outcomes import OutcomeStatus, Result, TargetOutcome
from resilience.client.resilient import ResilientClient
from resilience.client.streaming import ResilientStream
from resilience.config.schema import DEFAULT_MAX_BODY_BYTES
from resilience.embed.failures import (
    BodyTooLarge,
    Failure,
    error_format_for,
    failure_of,
    failure_response,
    http_error,
    own_concurrency_limit,
    own_rate_limit,
    render,
)
from resilience.errors import AllTargetsFailed, ErrorKind, ProviderError
from resilience.formats.wire import (
    AnthropicStreamWriter,
    OpenAIStreamWriter,
    WireError,
    anthropic_model,
    anthropic_model_page,
    field_of,
    openai_model,
    openai_model_list,
)
from resilience.gateway.catalog import models_for
from resilience.gateway.event_stream import EventStreamResponse
from resilience.gateway.metrics import GatewayMetrics
from resilience.models import json_problem, shown
from resilience.providers.native import NativeApi
from resilience.tenancy.context import current_request_id, current_tenant, current_tenant_or_none

__all__ = ["BodyTooLarge", "ModelEndpoints", "error_format_for", "failure_response", "http_error"]

Writer = OpenAIStreamWriter | AnthropicStreamWriter


async def read_json(request: Request, limit: int) -> Any:
    """The body as JSON, refused past `limit` bytes; the parts are joined once (linear)."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise BodyTooLarge
    body = await _body_within(request.receive, limit)
    try:
        value = _STRICT.decode(body.decode(json.detect_encoding(body), "surrogatepass"))
    except _NotFinite:
        value = json.loads(body)  # parses (only numbers were refused): find where
        raise WireError(json_problem(value, "") or "body: not a finite number") from None
    except (ValueError, RecursionError) as exc:
        raise WireError("body: not valid JSON") from exc
    # lone surrogates (escaped, or raw bytes that surrogatepass lets in) cannot be sent
    # upstream as UTF-8: a body that may hold one is walked, to name the field
    if _SURROGATE.search(body):
        problem = json_problem(value, "")
        if problem is not None:
            raise WireError(problem)
    return value


async def _body_within(receive: Receive, limit: int) -> bytes:
    """The body's messages joined once; read from `receive` as Starlette's `stream()` does,
    without its generator: most bodies are one message."""
    parts: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.request":
            part = message.get("body", b"")
            size += len(part)
            if size > limit:
                raise BodyTooLarge
            parts.append(part)
            if not message.get("more_body", False):
                return parts[0] if len(parts) == 1 else b"".join(parts)
        elif message["type"] == "http.disconnect":
            raise ClientDisconnect


_SURROGATE = re.compile(rb"\\u[dD][89a-fA-F]|\xed[\xa0-\xbf]")
"""A surrogate, escaped or as raw bytes: only a body holding one can hold a lone one."""


async def read_object(request: Request, limit: int) -> dict[str, Any]:
    """`read_json`, refusing anything but a JSON object."""
    value = await read_json(request, limit)
    if not isinstance(value, dict):
        raise WireError(f"body: expected a JSON object, got {type(value).__name__}")
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


def headers_for(result: Result[Any] | ResilientStream[Any]) -> dict[str, str]:
    """Which target answered, and what happened at the ones before it. A `Target` cannot be
    made with a name outside `MODEL_NAME` / `PROVIDER_NAME` (visible ASCII, at most 256
    characters), so both are safe as headers."""
    headers = {
        "x-resilience-provider": result.target.provider,
        "x-resilience-model": result.target.model,
        "x-resilience-attempts": str(result.attempts),
    }
    if len(result.outcomes) > 1:
        headers["x-resilience-skipped"] = skipped_header(result.outcomes[:-1])
    return headers


_UNSAFE = re.compile(r"[^A-Za-z0-9_.\[\]-]")


def skipped_header(outcomes: Sequence[TargetOutcome]) -> str:
    """`target=status` for each target before the one that answered, comma separated; a
    target that could not carry the request names the field: `target=cannot_carry:thinking`.
    Field names come from the caller's body: only visible ASCII of a field path is kept."""
    parts: list[str] = []
    for outcome in outcomes[:16]:
        part = f"{outcome.target}={outcome.status}"
        if outcome.status is OutcomeStatus.CANNOT_CARRY:
            field = field_of(outcome.message) or "body"
            part += ":" + _UNSAFE.sub("", field)[:80]
        parts.append(part)
    return ", ".join(parts)


class ModelEndpoints:
    """The model endpoints, bound to one client, a body size limit and the metrics.

    `sdk_should_retry` false (the default): answers given after the route was walked
    carry `x-should-retry: false`. `wall` gives the `created` time the model list shows
    (the endpoints' start: a route has no release date)."""

    def __init__(
        self,
        client: Callable[[], ResilientClient],
        *,
        max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
        metrics: GatewayMetrics,
        sdk_should_retry: bool = False,
        wall: Callable[[], float] = time.time,
    ) -> None:
        self._client = client
        self._limit = max_body_bytes
        self._metrics = metrics
        self._sdk_should_retry = sdk_should_retry
        self._created = int(wall())

    def _refused(self, outcome: str) -> None:
        """A request no target answered, counted by why."""
        tenant = self._metrics.tenant(current_tenant_or_none())
        self._metrics.requests.labels(tenant, "", outcome).inc()

    def _answered(self, result: Result[Any] | ResilientStream[Any], took: float) -> None:
        """A request answered (a stream: opened) after `took` seconds."""
        fell_back = len(result.outcomes) > 1
        provider = result.target.provider
        self._metrics.answered(current_tenant_or_none(), provider, result.attempts, fell_back, took)

    def _failure(self, exc: Exception, *, anthropic: bool) -> Response:
        """Counted, then answered as `failure_response` does, or 429 when the tenant's own
        rate limit is all that held the request back."""
        limited = None
        if isinstance(exc, AllTargetsFailed):
            limited, outcome = own_rate_limit(self._client(), exc), "tenant_rate_limited"
            if limited is None:
                limited, outcome = own_concurrency_limit(exc), "tenant_concurrency_limited"
        if limited is not None:
            self._refused(outcome)
        else:
            self._refused(_outcome_of(exc))
            relayed = self._relayed(exc, anthropic=anthropic)
            if relayed is not None:
                return relayed
        return render(
            limited or failure_of(exc),
            anthropic=anthropic,
            request_id=current_request_id(),
            sdk_should_retry=self._sdk_should_retry,
        )

    def _relayed(self, exc: Exception, *, anthropic: bool) -> Response | None:
        """The upstream's own refusal of the caller's request, as it sent it (status and
        body: OpenAI's `param` and `code`, Anthropic's error type), when the upstream speaks
        the endpoint's format; None otherwise (then `failure_of` words it)."""
        if not (
            isinstance(exc, ProviderError)
            and exc.sent
            and exc.kind in _CALLERS_OWN
            and exc.status_code is not None
            and 400 <= exc.status_code < 500
        ):
            return None
        provider = self._client().providers.get(exc.provider or "")
        if provider is None or (provider.kind == "anthropic") != anthropic:
            return None
        response = getattr(exc.__cause__, "response", None)
        if not isinstance(response, httpx2.Response) or not response.is_stream_consumed:
            return None
        if not response.headers.get("content-type", "").startswith("application/json"):
            return None
        headers = {} if self._sdk_should_retry else {"x-should-retry": "false"}
        body = response.content
        if anthropic:  # the request id a caller reports is the gateway's, as in its headers
            try:
                data = json.loads(body)
            except ValueError:
                return None
            if not isinstance(data, dict) or not isinstance(data.get("error"), dict):
                return None
            body = json.dumps({**data, "request_id": current_request_id() or ""}).encode()
        return Response(
            body, status_code=exc.status_code, media_type="application/json", headers=headers
        )

    def posts(self) -> dict[str, Callable[[Request], Awaitable[Response]]]:
        """The POST endpoints by path (`resilience.gateway.direct_routes` dispatches them)."""
        return {
            "/v1/chat/completions": self.chat_completions,
            "/v1/messages": self.messages,
            "/v1/messages/count_tokens": self.count_tokens,
            "/v1/embeddings": self.embeddings,
        }

    async def chat_completions(self, request: Request) -> Response:
        return await self._native(request, "openai.chat")

    async def messages(self, request: Request) -> Response:
        return await self._native(request, "anthropic.messages")

    async def count_tokens(self, request: Request) -> Response:
        """`POST /v1/messages/count_tokens`: routed like `/v1/messages`, to the route's
        Anthropic targets only (400 naming why when it has none)."""
        return await self._native(request, "anthropic.count_tokens")

    async def embeddings(self, request: Request) -> Response:
        return await self._native(request, "openai.embeddings")

    async def list_models(self, request: Request) -> Response:
        """`GET /v1/models`: OpenAI's list, or one page of Anthropic's when the request
        carries `anthropic-version` (`limit`, `after_id`, `before_id` as Anthropic's; a bad
        `limit` is refused in either shape)."""
        listed = models_for(self._client(), current_tenant())
        anthropic = "anthropic-version" in request.headers
        query = request.query_params
        try:
            limit = _limit(query.get("limit"))
            if not anthropic:
                data = [
                    openai_model(m.id, owned_by=m.owned_by, created=self._created) for m in listed
                ]
                return JSONResponse(openai_model_list(data))
            page = anthropic_model_page(
                [anthropic_model(m.id, created=self._created) for m in listed],
                limit=limit,
                after_id=query.get("after_id"),
                before_id=query.get("before_id"),
            )
        except WireError as exc:
            return render(failure_of(exc), anthropic=anthropic, request_id=current_request_id())
        return JSONResponse(page)

    async def get_model(self, request: Request) -> Response:
        """`GET /v1/models/{model}`: one entry of the list; 404 for a name it does not hold."""
        wanted = request.path_params["model"]
        anthropic = "anthropic-version" in request.headers
        for m in models_for(self._client(), current_tenant()):
            if m.id == wanted:
                if anthropic:
                    return JSONResponse(anthropic_model(m.id, created=self._created))
                return JSONResponse(openai_model(m.id, owned_by=m.owned_by, created=self._created))
        failure = Failure(
            status=404,
            message=f"model {shown(wanted, 80)!r} is not a route or target this tenant may use",
            type_="invalid_request_error",
            code="model_not_found",
            param="model",
        )
        return render(failure, anthropic=anthropic, request_id=current_request_id())

    async def _native(self, request: Request, api: NativeApi) -> Response:
        """The body goes on as the caller sent it (`ResilientClient.complete_native`): to a
        target of its own format unchanged but for `model`, translated to one of the other
        format, or not at all when that target cannot carry one of its fields."""
        started = time.perf_counter()
        anthropic = api.startswith("anthropic.")
        try:
            body = await read_object(request, self._limit)
            stream = body.get("stream") is True and api in _STREAMING
            forwarded = _forwarded(request.headers) if anthropic else None
            if stream:
                opened = await self._client().stream_native(api, body, headers=forwarded)
            else:
                result = await self._client().complete_native(api, body, headers=forwarded)
        except Exception as exc:
            return self._failure(exc, anthropic=anthropic)
        if not stream:
            took = time.perf_counter() - started
            return _CountedAfter(
                result.value.body, headers_for(result), lambda: self._answered(result, took)
            )
        self._answered(opened, time.perf_counter() - started)
        writer = AnthropicStreamWriter("") if anthropic else OpenAIStreamWriter("")
        return EventStreamResponse(
            _frames(opened, writer), media_type="text/event-stream", headers=headers_for(opened)
        )


def _outcome_of(exc: Exception) -> str:
    """The `outcome` label of a request that failed with `exc`."""
    if isinstance(exc, ProviderError):
        return str(exc.kind)
    return "all_targets_failed" if isinstance(exc, AllTargetsFailed) else "refused"


class _CountedAfter(Response):
    """A JSON answer whose `count` runs once it is sent, sent or not: `resilience serve`'s
    protocol writes a complete response at once (`resilience.one_write`), so counting it
    in the metrics is not on the caller's time."""

    def __init__(self, body: bytes, headers: Mapping[str, str], count: Callable[[], None]):
        super().__init__(body, media_type="application/json", headers=headers)
        self._count = count

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            self._count()


_STREAMING = frozenset({"openai.chat", "anthropic.messages"})

_CALLERS_OWN = frozenset(
    {ErrorKind.BAD_REQUEST, ErrorKind.CONTEXT_LENGTH, ErrorKind.CONTENT_FILTER}
)
"""Refusals of the request itself, which the upstream words best."""

_FORWARDED = ("anthropic-beta",)
"""Request headers that go on to targets of the body's own format: Anthropic's beta
features (1-hour cache, interleaved thinking...) are asked for in `anthropic-beta`."""


def _forwarded(headers: Headers) -> Mapping[str, str] | None:
    found = {name: headers[name] for name in _FORWARDED if name in headers}
    return found or None


def _limit(raw: str | None) -> int:
    """Anthropic's `limit`: 1 to 1000, 20 when absent."""
    if raw is None:
        return 20
    if not (raw.isascii() and raw.isdigit() and len(raw) <= 4 and 1 <= int(raw) <= 1000):
        raise WireError(f"limit: expected an integer from 1 to 1000, got {shown(raw, 40)!r}")
    return int(raw)


async def _frames(stream: ResilientStream[bytes], writer: Writer) -> AsyncIterator[bytes]:
    """The events as they arrive; a failure after output began ends with the format's error
    event, never silently.

    When the caller disconnects, `EventStreamResponse` cancels the request's task here: the
    `finally` closes the upstream stream at once, neutral for the breaker.
    """
    try:
        async for frame in stream:
            yield frame
    except ProviderError as exc:
        yield writer.error(exc.message, str(exc.kind))
    finally:
        await stream.aclose()
