"""`exception_handlers()`: every error the walk raises, answered by an app as the gateway
answers it (status, headers, body), in OpenAI's format or Anthropic's by path."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import httpx2
import pytest
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from resilience.breaker.events import BreakerState
from resilience.chaos import Fault
from resilience.client.outcomes import OutcomeStatus, TargetOutcome
from resilience.embed import exception_handlers
from resilience.embed.failures import failure_response
from resilience.errors import (
    AllTargetsFailed,
    CircuitOpenError,
    ErrorKind,
    InvalidRequestError,
    NoTenantError,
    ProviderError,
    TenantLookupFailed,
    UnknownRouteError,
)
from resilience.gateway.factory import create_app
from resilience.routing.bulkhead import Refusal
from resilience.routing.routes import Target
from resilience.serving import serve_asgi
from resilience.tenancy.middleware import TenantMiddleware
from resilience.tenancy.resolvers import HeaderResolver, TenantRejected
from tests.embed.test_fastapi_app import ASK, key, serve
from tests.support.gateway import KEYS as GATEWAY_KEYS
from tests.support.gateway import settings_for

PRIMARY = Target.parse("primary:gpt-4.1")

ERRORS: dict[str, Exception] = {
    "all_targets_failed": AllTargetsFailed(
        "chat",
        (TargetOutcome(PRIMARY, OutcomeStatus.FAILED, attempts=2, kind=ErrorKind.SERVER_ERROR),),
        tenant="acme",
        retry_after_s=2.2,
    ),
    "circuit_open": CircuitOpenError(
        tenant="acme", provider="primary", state=BreakerState.OPEN, retry_after_s=29.5
    ),
    "callers_own": ProviderError(
        "max_tokens: too large", kind=ErrorKind.BAD_REQUEST, status_code=422, code="too_large"
    ),
    "upstream": ProviderError("bad gateway", kind=ErrorKind.SERVER_ERROR, status_code=500),
    "unknown_route": UnknownRouteError("unknown route 'nope'"),
    "invalid": InvalidRequestError("model", "expected 1 to 256 letters"),
    "rejected": TenantRejected(403, "tenant_suspended", "tenant acme is suspended"),
    "lookup_failed": TenantLookupFailed("acme"),
}


def raising(exc: Exception) -> Starlette:
    """An app whose every path raises `exc` inside `TenantMiddleware` (tenant from a header)."""

    async def endpoint(request: Request) -> Response:
        raise exc

    return Starlette(
        routes=[Route("/{path:path}", endpoint, methods=["GET", "POST"])],
        middleware=[Middleware(TenantMiddleware, resolver=HeaderResolver())],
        exception_handlers=exception_handlers(),
    )


async def call(app: Starlette, path: str, **headers: str) -> httpx2.Response:
    transport = httpx2.ASGITransport(app=app)
    async with httpx2.AsyncClient(transport=transport, base_url="http://app") as http:
        return await http.post(path, headers={"x-tenant-id": "acme", **headers}, json={})


@pytest.mark.parametrize("name", sorted(ERRORS))
async def test_each_error_is_answered_as_the_gateway_answers_it(name: str) -> None:
    exc = ERRORS[name]
    response = await call(raising(exc), "/v1/answer", **{"x-request-id": "r-1"})
    gateway = failure_response(exc)  # what resilience.gateway.api answers
    assert response.status_code == gateway.status_code
    assert response.json() == json.loads(bytes(gateway.body))
    for header in ("retry-after", "x-should-retry", "www-authenticate"):
        assert response.headers.get(header) == gateway.headers.get(header), header
    assert response.headers["x-request-id"] == "r-1"


def test_the_statuses_are_the_gateways() -> None:
    statuses = {name: failure_response(exc).status_code for name, exc in ERRORS.items()}
    assert statuses == {
        "all_targets_failed": 503,
        "circuit_open": 503,
        "callers_own": 422,
        "upstream": 502,
        "unknown_route": 404,
        "invalid": 400,
        "rejected": 403,
        "lookup_failed": 503,
    }
    lookup = failure_response(ERRORS["lookup_failed"])
    assert json.loads(bytes(lookup.body))["error"]["code"] == "tenant_lookup_failed"
    assert lookup.headers["retry-after"] == "1"
    assert failure_response(ERRORS["circuit_open"]).headers["retry-after"] == "30"


async def test_anthropics_paths_answer_in_anthropics_format() -> None:
    """Where the gateway answers in Anthropic's format (`error_format_for`), so do the
    handlers: its body and its overloaded type for a 503."""
    exc = ERRORS["all_targets_failed"]
    response = await call(raising(exc), "/v1/messages", **{"x-request-id": "r-2"})
    assert response.status_code == 503
    assert response.json() == {
        "type": "error",
        "error": {"type": "overloaded_error", "message": str(exc)},
        "request_id": "r-2",
    }
    assert response.headers["retry-after"] == "3"
    openai_shaped = await call(raising(exc), "/v1/answer")
    assert openai_shaped.json()["error"]["type"] == "server_error"


async def test_a_tenants_own_concurrency_cap_is_429_without_a_client() -> None:
    capped = TargetOutcome(
        PRIMARY,
        OutcomeStatus.BULKHEAD_FULL,
        retry_after_s=0.4,
        message=str(Refusal.TENANT_LIMIT),
    )
    exc = AllTargetsFailed("chat", (capped,), tenant="acme", retry_after_s=0.4)
    response = await call(raising(exc), "/v1/answer")
    assert response.status_code == 429
    assert response.json()["error"]["code"] == "concurrency_limit_exceeded"
    assert response.headers["retry-after"] == "1"


async def test_no_tenant_outside_the_middleware_is_401() -> None:
    async def endpoint(request: Request) -> Response:
        raise NoTenantError("no tenant is set")

    app = Starlette(
        routes=[Route("/x", endpoint)], exception_handlers=exception_handlers(client=None)
    )
    transport = httpx2.ASGITransport(app=app)
    async with httpx2.AsyncClient(transport=transport, base_url="http://app") as http:
        response = await http.get("/x")
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"
    assert response.json()["error"]["code"] == "missing_tenant"


async def test_an_outage_answers_the_same_from_the_gateway_and_from_an_embedding_app(
    tmp_path: Path,
) -> None:
    """The same route (primary, then claude) down on the same chaos upstream."""
    async with serve(tmp_path / "embedded") as embedded:
        embedded.chaos.add_fault(Fault(status=503))
        gateway_app = create_app(settings_for(embedded.chaos_root, tmp_path))
        async with (
            serve_asgi(gateway_app, lifespan="on") as root,
            httpx2.AsyncClient(base_url=root, timeout=10) as http,
        ):
            from_gateway = await http.post(
                "/v1/chat/completions",
                headers={"authorization": f"Bearer {GATEWAY_KEYS['acme']}"},
                json={"model": "chat", "messages": [{"role": "user", "content": "hello there"}]},
            )
        from_app = await embedded.http.post("/v1/answer", headers=key("acme"), json=ASK)
    assert from_app.status_code == from_gateway.status_code == 503
    assert from_app.json() == from_gateway.json()
    for header in ("retry-after", "x-should-retry", "content-type"):
        assert from_app.headers[header] == from_gateway.headers[header], header


def test_importing_resilience_embed_needs_neither_fastapi_nor_the_gateway_extra() -> None:
    code = (
        "import sys, resilience.embed\n"
        "loaded = {m.split('.')[0] for m in sys.modules}\n"
        "print(sorted(loaded & {'fastapi', 'prometheus_client', 'uvicorn', 'pydantic'}))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert out.stdout.strip() == "[]"
