"""TenantMiddleware: resolution, refusal before the app runs, and contextvar isolation."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import httpx
import pytest
from starlette.applications import Starlette
from starlette.background import BackgroundTask
from starlette.datastructures import Headers
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response, StreamingResponse
from starlette.routing import Route, WebSocketRoute
from starlette.testclient import TestClient, WebSocketDenialResponse
from starlette.websockets import WebSocket

from resilience.errors import NoTenantError
from resilience.tenancy.context import (
    current_request_id,
    current_tenant,
    current_tenant_or_none,
    tenant_scope,
)
from resilience.tenancy.middleware import TenantMiddleware
from resilience.tenancy.resolvers import (
    ApiKeyResolver,
    HeaderResolver,
    Resolver,
    TenantRejected,
    hash_key,
)


class App:
    """A Starlette app that records what the endpoints saw."""

    def __init__(self, resolver: Resolver) -> None:
        self.calls = 0
        self.seen_in_stream: list[str] = []
        self.seen_in_background: list[str] = []
        self.background_done = asyncio.Event()
        starlette = Starlette(
            routes=[
                Route("/whoami", self.whoami),
                Route("/interleave", self.interleave),
                Route("/stream", self.stream),
                Route("/background", self.background),
                Route("/healthz", self.health),
                WebSocketRoute("/ws", self.websocket),
            ]
        )
        self.asgi = TenantMiddleware(starlette, resolver=resolver)

    async def whoami(self, request: Request) -> Response:
        self.calls += 1
        return JSONResponse({"tenant": current_tenant(), "request_id": current_request_id()})

    async def interleave(self, request: Request) -> Response:
        sent = request.query_params["t"]
        for _ in range(5):
            await asyncio.sleep(0)
            assert current_tenant() == sent
        return PlainTextResponse(current_tenant())

    async def stream(self, request: Request) -> Response:
        async def body() -> AsyncIterator[bytes]:
            for _ in range(3):
                await asyncio.sleep(0)
                self.seen_in_stream.append(current_tenant())
                yield current_tenant().encode()

        return StreamingResponse(body())

    async def background(self, request: Request) -> Response:
        async def later() -> None:
            await asyncio.sleep(0)
            self.seen_in_background.append(current_tenant())
            self.background_done.set()

        return PlainTextResponse("ok", background=BackgroundTask(later))

    async def health(self, request: Request) -> Response:
        return PlainTextResponse(str(current_tenant_or_none()))

    async def websocket(self, websocket: WebSocket) -> None:
        await websocket.accept()
        await websocket.send_text(current_tenant())
        await websocket.close()


def client(app: App) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app.asgi), base_url="http://t")


async def test_header_mode_sets_the_tenant_and_a_request_id() -> None:
    app = App(HeaderResolver())
    async with client(app) as http:
        response = await http.get("/whoami", headers={"x-tenant-id": "acme"})
    assert response.status_code == 200
    body = response.json()
    assert body["tenant"] == "acme"
    assert body["request_id"] == response.headers["x-request-id"]
    assert len(body["request_id"]) == 32


async def test_an_incoming_request_id_is_kept_when_sane() -> None:
    app = App(HeaderResolver())
    async with client(app) as http:
        kept = await http.get("/whoami", headers={"x-tenant-id": "a", "x-request-id": "req-1.2_3"})
        replaced = await http.get(
            "/whoami", headers={"x-tenant-id": "a", "x-request-id": "x" * 200}
        )
    assert kept.json()["request_id"] == "req-1.2_3"
    assert replaced.json()["request_id"] != "x" * 200


async def test_key_mode_maps_the_bearer_key_to_its_tenant() -> None:
    app = App(ApiKeyResolver({hash_key("sk-acme-1"): "acme", hash_key("sk-globex"): "globex"}))
    async with client(app) as http:
        acme = await http.get("/whoami", headers={"authorization": "Bearer sk-acme-1"})
        globex = await http.get("/whoami", headers={"authorization": "Bearer sk-globex"})
        near = await http.get("/whoami", headers={"authorization": "Bearer sk-acme-"})
        unknown = await http.get("/whoami", headers={"authorization": "Bearer nope"})
        missing = await http.get("/whoami")
    assert acme.json()["tenant"] == "acme" and globex.json()["tenant"] == "globex"
    for response, code in (
        (near, "invalid_api_key"),
        (unknown, "invalid_api_key"),
        (missing, "missing_api_key"),
    ):
        assert response.status_code == 401
        assert response.json()["error"]["code"] == code
        assert response.headers["www-authenticate"] == "Bearer"
    assert app.calls == 2


@pytest.mark.parametrize(
    "bad",
    [
        "",
        "a" * 65,
        "acme\r\nx-admin: 1",
        "ac\x00me",
        "\u0430cme",
        "../etc",
        "-lead",
        "a b",
        "x" * 10_000,
    ],
    ids=[
        "empty",
        "65chars",
        "crlf",
        "nul",
        "cyrillic",
        "traversal",
        "leading-dash",
        "space",
        "10kb",
    ],
)
async def test_invalid_tenant_ids_get_400_before_the_app_runs(bad: str) -> None:
    app = App(lambda headers: bad)
    async with client(app) as http:
        response = await http.get("/whoami")
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "invalid_tenant" and error["type"] == "invalid_request_error"
    assert "\n" not in error["message"] and len(error["message"]) < 200
    assert app.calls == 0


async def test_header_values_with_utf8_look_alikes_or_10kb_are_rejected() -> None:
    app = App(HeaderResolver())
    async with client(app) as http:
        cyrillic = await http.get("/whoami", headers={b"x-tenant-id": "\u0430cme".encode()})
        long = await http.get("/whoami", headers={"x-tenant-id": "a" * 10_000})
    assert cyrillic.status_code == 400 and long.status_code == 400
    assert app.calls == 0


async def test_a_missing_tenant_header_is_401() -> None:
    app = App(HeaderResolver())
    async with client(app) as http:
        response = await http.get("/whoami")
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "missing_tenant"
    assert app.calls == 0


async def test_exempt_paths_need_no_tenant() -> None:
    app = App(HeaderResolver())
    async with client(app) as http:
        response = await http.get("/healthz")
    assert response.status_code == 200 and response.text == "None"


async def test_200_concurrent_mixed_tenant_requests_never_see_each_other() -> None:
    app = App(HeaderResolver())
    tenants = [f"t{i % 7}" for i in range(200)]
    async with client(app) as http:
        responses = await asyncio.gather(
            *(http.get("/interleave", params={"t": t}, headers={"x-tenant-id": t}) for t in tenants)
        )
    assert [r.text for r in responses] == tenants
    assert current_tenant_or_none() is None


async def test_the_tenant_holds_inside_a_streaming_body() -> None:
    app = App(HeaderResolver())
    async with client(app) as http:
        response = await http.get("/stream", headers={"x-tenant-id": "streamer"})
    assert response.text == "streamer" * 3
    assert app.seen_in_stream == ["streamer"] * 3


async def test_the_tenant_holds_inside_a_background_task() -> None:
    app = App(HeaderResolver())
    async with client(app) as http:
        await http.get("/background", headers={"x-tenant-id": "bg-tenant"})
    await asyncio.wait_for(app.background_done.wait(), 5)
    assert app.seen_in_background == ["bg-tenant"]


def test_websocket_requests_get_the_tenant_or_are_denied() -> None:
    app = App(HeaderResolver())
    with TestClient(app.asgi) as http:
        with http.websocket_connect("/ws", headers={"x-tenant-id": "ws-tenant"}) as ws:
            assert ws.receive_text() == "ws-tenant"
        with pytest.raises(WebSocketDenialResponse) as denied, http.websocket_connect("/ws") as ws:
            ws.receive_text()
        assert denied.value.status_code == 401
        assert denied.value.json()["error"]["code"] == "missing_tenant"


async def test_lifespan_passes_through() -> None:
    events: list[str] = []

    async def inner(scope: dict[str, object], receive: object, send: object) -> None:
        events.append(str(scope["type"]))

    middleware = TenantMiddleware(inner, resolver=HeaderResolver())  # type: ignore[arg-type]
    await middleware({"type": "lifespan"}, None, None)  # type: ignore[arg-type]
    assert events == ["lifespan"]


async def test_callable_resolvers_sync_and_async_are_accepted() -> None:
    async def from_custom_header(headers: Headers) -> str:
        return headers["x-org"]

    def refuse(headers: Headers) -> str:
        raise TenantRejected(403, "forbidden_tenant", "not here")

    async with client(App(from_custom_header)) as http:
        assert (await http.get("/whoami", headers={"x-org": "org-1"})).json()["tenant"] == "org-1"
    async with client(App(refuse)) as http:
        response = await http.get("/whoami")
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "forbidden_tenant"


def test_current_tenant_outside_a_request_raises_a_clear_error() -> None:
    with pytest.raises(NoTenantError, match="tenant_scope"):
        current_tenant()


def test_tenant_scope_nests_and_restores() -> None:
    with tenant_scope("outer"):
        assert current_tenant() == "outer"
        with tenant_scope("inner", request_id="job-7"):
            assert current_tenant() == "inner"
            assert current_request_id() == "job-7"
        assert current_tenant() == "outer"
        assert current_request_id() is None
    assert current_tenant_or_none() is None


def test_tenant_scope_validates_the_id() -> None:
    with pytest.raises(ValueError, match="invalid tenant id"), tenant_scope("../x"):
        pass
