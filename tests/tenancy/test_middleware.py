"""TenantMiddleware through real Starlette apps: who gets in, what they see, what leaks."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.background import BackgroundTask
from starlette.datastructures import Headers
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response, StreamingResponse
from starlette.routing import Route, WebSocketRoute
from starlette.testclient import TestClient, WebSocketDenialResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from starlette.websockets import WebSocket

from resilience.tenancy.context import current_request_id, current_tenant, current_tenant_or_none
from resilience.tenancy.middleware import (
    ANTHROPIC_ERRORS,
    OPENAI_ERRORS,
    ErrorFormat,
    TenantMiddleware,
)
from resilience.tenancy.resolvers import (
    ApiKeyResolver,
    HeaderResolver,
    InvalidTenantId,
    Resolver,
    TenantRejected,
    hash_key,
)

CONCURRENT = 200


class Recorder:
    """A Starlette app behind TenantMiddleware that records what its endpoints saw."""

    def __init__(self, resolver: Resolver, **options: Any) -> None:
        self.calls = 0
        self.seen: list[tuple[str, str | None]] = []
        self.barrier = asyncio.Barrier(CONCURRENT)
        app = Starlette(
            routes=[
                Route("/whoami", self.whoami),
                Route("/interleave", self.interleave),
                Route("/stream", self.stream),
                Route("/background", self.background),
                Route("/own-id", self.own_request_id),
                Route("/boom", self.boom),
                Route("/healthz", self.health),
                Route("/healthz/deep", self.health),
                Route("/static/app.css", self.health),
                WebSocketRoute("/ws", self.websocket),
            ]
        )
        self.asgi = TenantMiddleware(app, resolver=resolver, **options)

    async def whoami(self, request: Request) -> Response:
        self.calls += 1
        return JSONResponse({"tenant": current_tenant(), "request_id": current_request_id()})

    async def interleave(self, request: Request) -> Response:
        """Hold every request inside the app at once, then yield repeatedly between checks."""
        sent = request.query_params["t"]
        assert current_tenant() == sent
        async with asyncio.timeout(10):
            await self.barrier.wait()
        for _ in range(5):
            await asyncio.sleep(0)
            assert current_tenant() == sent
        return PlainTextResponse(current_tenant())

    async def stream(self, request: Request) -> Response:
        async def body() -> AsyncIterator[bytes]:
            for _ in range(3):
                await asyncio.sleep(0)
                self.seen.append(("stream", current_tenant()))
                yield current_tenant().encode()

        return StreamingResponse(body())

    async def background(self, request: Request) -> Response:
        async def later() -> None:
            await asyncio.sleep(0)
            self.seen.append(("background", current_tenant()))

        return PlainTextResponse("ok", background=BackgroundTask(later))

    async def own_request_id(self, request: Request) -> Response:
        return PlainTextResponse("mine", headers={"x-request-id": "app-chosen"})

    async def boom(self, request: Request) -> Response:
        raise RuntimeError("endpoint failed")

    async def health(self, request: Request) -> Response:
        self.seen.append((request.url.path, current_tenant_or_none()))
        return PlainTextResponse("ok")

    async def websocket(self, websocket: WebSocket) -> None:
        await websocket.accept()
        await websocket.send_text(current_tenant())
        await websocket.close()


def client(app: ASGIApp) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t")


def raw_scope(kind: str, headers: list[tuple[bytes, bytes]], path: str = "/whoami") -> Scope:
    """A scope as an ASGI server builds it: raw header bytes that httpx would refuse to send."""
    return {
        "type": kind,
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http" if kind == "http" else "ws",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": headers,
        "server": ("t", 80),
        "client": ("127.0.0.1", 5000),
        "extensions": {},
    }


async def serve_raw(app: ASGIApp, scope: Scope) -> list[Message]:
    first: Message = (
        {"type": "http.request", "body": b"", "more_body": False}
        if scope["type"] == "http"
        else {"type": "websocket.connect"}
    )
    inbox = [first]
    sent: list[Message] = []

    async def receive() -> Message:
        return inbox.pop(0) if inbox else {"type": "http.disconnect"}

    async def send(message: Message) -> None:
        sent.append(message)

    await app(scope, receive, send)
    return sent


def error_of(response: httpx.Response) -> dict[str, str]:
    """The OpenAI-shaped refusal's error, less `param` (always there, null for a refusal)."""
    error: dict[str, str] = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert error.pop("param") is None
    return error


async def test_header_mode_gives_the_endpoint_the_tenant_and_a_generated_request_id() -> None:
    app = Recorder(HeaderResolver())
    async with client(app.asgi) as http:
        response = await http.get("/whoami", headers={"X-Tenant-ID": "acme"})
    assert response.status_code == 200
    body = response.json()
    assert body["tenant"] == "acme"
    assert body["request_id"] == response.headers["x-request-id"]
    assert len(body["request_id"]) == 32 and int(body["request_id"], 16) >= 0


async def test_a_custom_tenant_header_is_read_case_insensitively() -> None:
    app = Recorder(HeaderResolver("X-Org-Id"))
    async with client(app.asgi) as http:
        response = await http.get("/whoami", headers={"x-org-id": "org-7"})
    assert response.json()["tenant"] == "org-7"


async def test_key_mode_maps_each_bearer_key_to_its_tenant_and_refuses_others() -> None:
    keys = {hash_key("sk-acme-1"): "acme", hash_key("sk-acme-2"): "acme", hash_key("sk-g"): "g"}
    app = Recorder(ApiKeyResolver(keys))
    async with client(app.asgi) as http:
        first = await http.get("/whoami", headers={"authorization": "Bearer sk-acme-1"})
        second = await http.get("/whoami", headers={"authorization": "bearer sk-acme-2"})
        other = await http.get("/whoami", headers={"authorization": "Bearer sk-g"})
        unknown = await http.get("/whoami", headers={"authorization": "Bearer sk-nope"})
        missing = await http.get("/whoami")
    assert [r.json()["tenant"] for r in (first, second, other)] == ["acme", "acme", "g"]
    assert unknown.status_code == 401 and missing.status_code == 401
    assert error_of(unknown) == {
        "message": "unknown API key",
        "type": "authentication_error",
        "code": "invalid_api_key",
    }
    assert error_of(missing)["code"] == "missing_api_key"
    assert unknown.headers["www-authenticate"] == "Bearer"
    assert app.calls == 3


async def test_a_key_sharing_a_prefix_with_a_real_key_is_refused() -> None:
    app = Recorder(ApiKeyResolver({hash_key("sk-live-abcdef"): "acme"}))
    async with client(app.asgi) as http:
        right = await http.get("/whoami", headers={"authorization": "Bearer sk-live-abcdef"})
        responses = [
            await http.get("/whoami", headers={"authorization": f"Bearer {key}"})
            for key in ("sk-live-abcde", "sk-live-abcdeg", "sk-live-abcdef0", "SK-LIVE-ABCDEF")
        ]
    assert right.json()["tenant"] == "acme"
    assert [r.status_code for r in responses] == [401] * 4
    assert {error_of(r)["code"] for r in responses} == {"invalid_api_key"}
    assert app.calls == 1


async def test_a_missing_tenant_header_is_401_and_the_app_never_runs() -> None:
    app = Recorder(HeaderResolver())
    async with client(app.asgi) as http:
        response = await http.get("/whoami", headers={"x-request-id": "req-42"})
    assert response.status_code == 401
    assert error_of(response) == {
        "message": "missing x-tenant-id header",
        "type": "authentication_error",
        "code": "missing_tenant",
    }
    assert response.headers["x-request-id"] == "req-42"
    assert app.calls == 0


async def test_two_tenant_headers_are_refused_as_ambiguous() -> None:
    app = Recorder(HeaderResolver())
    sent = await serve_raw(
        app.asgi, raw_scope("http", [(b"x-tenant-id", b"acme"), (b"x-tenant-id", b"globex")])
    )
    assert sent[0]["status"] == 400
    assert json.loads(sent[1]["body"])["error"]["code"] == "invalid_tenant"
    assert app.calls == 0


HOSTILE_HEADER_VALUES = {
    "empty": b"",
    "65-chars": b"a" * 65,
    "crlf": b"acme\r\nx-admin: 1",
    "lf": b"acme\n",
    "nul": b"ac\x00me",
    "cyrillic-a": "\u0430cme".encode(),
    "fullwidth": "\uff41cme".encode(),
    "traversal": b"../acme",
    "slash": b"acme/../globex",
    "leading-dot": b".acme",
    "space": b"ac me",
    "10kb": b"x" * 10_240,
}


@pytest.mark.parametrize("value", HOSTILE_HEADER_VALUES.values(), ids=HOSTILE_HEADER_VALUES)
async def test_a_hostile_tenant_header_is_400_before_the_app_runs(value: bytes) -> None:
    app = Recorder(HeaderResolver())
    sent = await serve_raw(app.asgi, raw_scope("http", [(b"x-tenant-id", value)]))
    assert app.calls == 0
    assert [m["type"] for m in sent] == ["http.response.start", "http.response.body"]
    assert sent[0]["status"] == 400
    body: bytes = sent[1]["body"]
    error = json.loads(body)["error"]
    assert error["code"] == "invalid_tenant" and error["type"] == "invalid_request_error"
    assert body.isascii() and b"\r" not in body and b"\n" not in body and b"\x00" not in body
    assert len(body) < 400
    for _, header_value in sent[0]["headers"]:
        assert b"\r" not in header_value and b"\n" not in header_value


async def test_an_invalid_tenant_from_a_resolver_is_400_with_a_short_message() -> None:
    app = Recorder(lambda headers: "y" * 10_240)
    async with client(app.asgi) as http:
        response = await http.get("/whoami")
    assert response.status_code == 400
    error = error_of(response)
    assert error["code"] == "invalid_tenant"
    assert "too long" in error["message"] and len(error["message"]) <= 200
    assert app.calls == 0


async def test_exact_exempt_paths_and_slash_prefixes_need_no_tenant() -> None:
    app = Recorder(HeaderResolver(), exempt_paths=("/healthz", "/static/"))
    async with client(app.asgi) as http:
        health = await http.get("/healthz")
        static = await http.get("/static/app.css")
        deeper = await http.get("/healthz/deep")
        tenant_on_exempt = await http.get("/healthz", headers={"x-tenant-id": "acme"})
    assert health.status_code == 200 and static.status_code == 200
    assert "x-request-id" in health.headers
    assert deeper.status_code == 401, "an exempt path without a trailing '/' is not a prefix"
    assert tenant_on_exempt.status_code == 200
    assert app.seen == [("/healthz", None), ("/static/app.css", None), ("/healthz", None)]


def test_exempt_paths_must_be_paths() -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        raise AssertionError("never called")

    with pytest.raises(ValueError, match="exempt_paths"):
        TenantMiddleware(app, resolver=HeaderResolver(), exempt_paths=("healthz",))
    with pytest.raises(ValueError, match="exempt_paths"):
        TenantMiddleware(app, resolver=HeaderResolver(), exempt_paths="/healthz")


async def test_200_concurrent_mixed_tenant_requests_each_see_only_their_own_tenant() -> None:
    """A barrier holds all requests inside the app together, so they truly interleave."""
    app = Recorder(HeaderResolver())
    tenants = [f"tenant-{i % 13}" for i in range(CONCURRENT)]

    async def one(tenant: str) -> httpx.Response:
        return await http.get("/interleave", params={"t": tenant}, headers={"x-tenant-id": tenant})

    async with client(app.asgi) as http:
        responses = await asyncio.gather(*(one(t) for t in tenants))
    assert [r.status_code for r in responses] == [200] * CONCURRENT
    assert [r.text for r in responses] == tenants
    assert len({r.headers["x-request-id"] for r in responses}) == CONCURRENT
    assert current_tenant_or_none() is None and current_request_id() is None


async def test_the_tenant_is_reset_after_each_request_even_when_the_app_fails() -> None:
    """httpx's ASGITransport runs the app in the caller's task: a leak would show here."""
    app = Recorder(HeaderResolver())
    async with client(app.asgi) as http:
        await http.get("/whoami", headers={"x-tenant-id": "first"})
        assert current_tenant_or_none() is None
        with pytest.raises(RuntimeError, match="endpoint failed"):
            await http.get("/boom", headers={"x-tenant-id": "second"})
        assert current_tenant_or_none() is None and current_request_id() is None
        after = await http.get("/whoami", headers={"x-tenant-id": "third"})
    assert after.json()["tenant"] == "third"


async def test_the_tenant_holds_inside_a_streaming_body_which_carries_the_request_id() -> None:
    app = Recorder(HeaderResolver())
    async with client(app.asgi) as http:
        response = await http.get(
            "/stream", headers={"x-tenant-id": "streamer", "x-request-id": "stream-1"}
        )
    assert response.text == "streamer" * 3
    assert response.headers["x-request-id"] == "stream-1"
    assert app.seen == [("stream", "streamer")] * 3


async def test_the_tenant_holds_inside_a_background_task_run_after_the_response() -> None:
    app = Recorder(HeaderResolver())
    async with client(app.asgi) as http:
        response = await http.get("/background", headers={"x-tenant-id": "bg-tenant"})
    assert response.text == "ok"
    assert app.seen == [("background", "bg-tenant")]
    assert current_tenant_or_none() is None


@pytest.mark.parametrize(
    ("incoming", "kept"),
    [
        ("req-1.2_3", True),
        ("A" * 128, True),
        ("A" * 129, False),
        ("has space", False),
        ("semi;colon", False),
        ("", False),
    ],
)
async def test_a_sane_incoming_request_id_is_kept_and_any_other_replaced(
    incoming: str, kept: bool
) -> None:
    app = Recorder(HeaderResolver())
    async with client(app.asgi) as http:
        response = await http.get(
            "/whoami", headers={"x-tenant-id": "acme", "x-request-id": incoming}
        )
    request_id = response.json()["request_id"]
    assert response.headers["x-request-id"] == request_id
    if kept:
        assert request_id == incoming
    else:
        assert request_id != incoming and len(request_id) == 32


async def test_a_request_id_header_set_by_the_app_is_not_overwritten() -> None:
    app = Recorder(HeaderResolver())
    async with client(app.asgi) as http:
        response = await http.get("/own-id", headers={"x-tenant-id": "acme"})
    assert response.headers.get_list("x-request-id") == ["app-chosen"]


async def test_sync_and_async_callable_resolvers_are_accepted() -> None:
    def sync_resolver(headers: Headers) -> str:
        return headers["x-org"]

    async def async_resolver(headers: Headers) -> str | None:
        await asyncio.sleep(0)
        return headers.get("x-org")

    for resolver in (sync_resolver, async_resolver):
        app = Recorder(resolver)
        async with client(app.asgi) as http:
            response = await http.get("/whoami", headers={"x-org": "org-1"})
        assert response.json()["tenant"] == "org-1"

    app = Recorder(async_resolver)
    async with client(app.asgi) as http:
        missing = await http.get("/whoami")
    assert missing.status_code == 401 and error_of(missing)["code"] == "missing_tenant"


@pytest.mark.parametrize(
    ("rejection", "error_type"),
    [
        (TenantRejected(403, "forbidden_tenant", "not here"), "permission_error"),
        (TenantRejected(429, "tenant_quota", "slow down"), "rate_limit_error"),
        (TenantRejected(503, "directory_down", "try later"), "api_error"),
    ],
)
async def test_a_resolver_rejection_is_answered_with_its_status_and_code(
    rejection: TenantRejected, error_type: str
) -> None:
    async def refuse(headers: Headers) -> str:
        raise rejection

    app = Recorder(refuse)
    async with client(app.asgi) as http:
        response = await http.get("/whoami")
    assert response.status_code == rejection.status
    assert error_of(response) == {
        "message": rejection.message,
        "type": error_type,
        "code": rejection.code,
    }
    assert app.calls == 0


async def test_a_resolver_raising_invalid_tenant_id_gets_400() -> None:
    def strict(headers: Headers) -> str:
        raise InvalidTenantId("no such tenant format")

    app = Recorder(strict)
    async with client(app.asgi) as http:
        response = await http.get("/whoami")
    assert response.status_code == 400 and error_of(response)["code"] == "invalid_tenant"


async def test_a_resolver_returning_a_non_string_is_a_programming_error() -> None:
    async def broken(headers: Headers) -> object:
        return 42

    app = Recorder(broken)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="returned int"):
        await serve_raw(app.asgi, raw_scope("http", []))
    assert app.calls == 0


def test_a_websocket_gets_the_tenant_and_a_refusal_is_an_http_denial() -> None:
    app = Recorder(HeaderResolver())
    with TestClient(app.asgi) as http:
        with http.websocket_connect("/ws", headers={"x-tenant-id": "ws-tenant"}) as ws:
            assert ws.receive_text() == "ws-tenant"
        with pytest.raises(WebSocketDenialResponse) as denied, http.websocket_connect("/ws"):
            pass
    assert denied.value.status_code == 401
    assert denied.value.json()["error"]["code"] == "missing_tenant"
    assert "x-request-id" in denied.value.headers


async def test_a_websocket_refusal_without_the_denial_extension_closes_with_1008() -> None:
    app = Recorder(HeaderResolver())
    sent = await serve_raw(app.asgi, raw_scope("websocket", [], path="/ws"))
    assert sent == [{"type": "websocket.close", "code": 1008, "reason": "missing_tenant"}]


async def test_a_websocket_accept_carries_the_request_id() -> None:
    app = Recorder(HeaderResolver())
    scope = raw_scope("websocket", [(b"x-tenant-id", b"acme"), (b"x-request-id", b"ws-1")], "/ws")
    sent = await serve_raw(app.asgi, scope)
    assert sent[0]["type"] == "websocket.accept"
    assert (b"x-request-id", b"ws-1") in sent[0]["headers"]
    assert sent[1] == {"type": "websocket.send", "text": "acme"}


async def test_lifespan_scopes_pass_through_untouched() -> None:
    seen: list[tuple[Scope, Receive, Send]] = []

    async def inner(scope: Scope, receive: Receive, send: Send) -> None:
        seen.append((scope, receive, send))

    async def receive() -> Message:
        return {"type": "lifespan.startup"}

    async def send(message: Message) -> None:
        raise AssertionError("not used")

    scope: Scope = {"type": "lifespan", "asgi": {"version": "3.0"}}
    await TenantMiddleware(inner, resolver=HeaderResolver())(scope, receive, send)
    assert seen == [(scope, receive, send)]
    assert seen[0][0] is scope and seen[0][1] is receive and seen[0][2] is send


def test_a_starlette_lifespan_runs_through_the_middleware_without_a_tenant() -> None:
    events: list[str | None] = []

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        events.append(current_tenant_or_none() or "startup")
        yield
        events.append("shutdown")

    inner = Starlette(lifespan=lifespan)
    with TestClient(TenantMiddleware(inner, resolver=HeaderResolver())):
        pass
    assert events == ["startup", "shutdown"]


async def test_a_long_rejection_message_is_cut_and_its_control_characters_escaped() -> None:
    def chatty(headers: Headers) -> str:
        raise TenantRejected(403, "forbidden_tenant", "line\r\n" * 1_000)

    sent = await serve_raw(Recorder(chatty).asgi, raw_scope("http", []))
    body: bytes = sent[1]["body"]
    message = json.loads(body)["error"]["message"]
    assert len(message) == 200 and message.endswith("...")
    assert message.startswith("line\r\nline\r\n")
    assert b"\r" not in body and b"\n" not in body


# -- error formats ------------------------------------------------------------------------------


async def test_anthropic_errors_refuse_in_anthropics_shape_with_a_request_id_header() -> None:
    app = Recorder(HeaderResolver(), error_format=ANTHROPIC_ERRORS)
    async with client(app.asgi) as http:
        missing = await http.get("/whoami", headers={"x-request-id": "req-9"})
        served = await http.get("/whoami", headers={"x-tenant-id": "acme"})
    assert missing.status_code == 401
    assert missing.json() == {
        "type": "error",
        "error": {"type": "authentication_error", "message": "missing x-tenant-id header"},
        "request_id": "req-9",
    }
    assert missing.headers["request-id"] == missing.headers["x-request-id"] == "req-9"
    assert served.headers["request-id"] == served.headers["x-request-id"]
    assert app.calls == 1


@pytest.mark.parametrize(
    ("status", "anthropic_type"),
    [
        (400, "invalid_request_error"),
        (403, "permission_error"),
        (404, "not_found_error"),
        (429, "rate_limit_error"),
        (500, "api_error"),
        (503, "overloaded_error"),
    ],
)
async def test_each_status_gets_the_error_type_anthropic_gives_it(
    status: int, anthropic_type: str
) -> None:
    def refuse(headers: Headers) -> str:
        raise TenantRejected(status, "nope", "refused")

    app = Recorder(refuse, error_format=ANTHROPIC_ERRORS)
    sent = await serve_raw(app.asgi, raw_scope("http", []))
    assert sent[0]["status"] == status
    assert json.loads(sent[1]["body"])["error"]["type"] == anthropic_type
    assert app.calls == 0


async def test_a_chooser_picks_the_format_by_path_and_headers() -> None:
    chosen: list[tuple[str, str | None]] = []

    def by_path(path: str, headers: Headers) -> ErrorFormat:
        chosen.append((path, headers.get("anthropic-version")))
        if path.startswith("/static/") or "anthropic-version" in headers:
            return ANTHROPIC_ERRORS
        return OPENAI_ERRORS

    app = Recorder(HeaderResolver(), error_format=by_path)
    async with client(app.asgi) as http:
        openai_shaped = await http.get("/whoami")
        versioned = await http.get("/whoami", headers={"anthropic-version": "2023-06-01"})
        exempt = await http.get("/healthz")
    assert set(openai_shaped.json()) == {"error"} and "request-id" not in openai_shaped.headers
    assert versioned.json()["type"] == "error" and "request-id" in versioned.headers
    assert exempt.status_code == 200 and "request-id" not in exempt.headers
    assert chosen == [("/whoami", None), ("/whoami", "2023-06-01"), ("/healthz", None)]


async def test_an_applications_own_error_format_is_used_as_given() -> None:
    def plain(status: int, code: str, message: str, request_id: str) -> dict[str, str]:
        return {"status": str(status), "code": code, "detail": message, "trace": request_id}

    app = Recorder(
        HeaderResolver(), error_format=ErrorFormat(plain, ("x-request-id", "x-trace-id"))
    )
    sent = await serve_raw(
        app.asgi, raw_scope("http", [(b"x-tenant-id", b"../x"), (b"x-request-id", b"t-1")])
    )
    body = json.loads(sent[1]["body"])
    assert (body["status"], body["code"], body["trace"]) == ("400", "invalid_tenant", "t-1")
    assert (b"x-trace-id", b"t-1") in sent[0]["headers"]


def test_a_websocket_denial_uses_the_chosen_format() -> None:
    app = Recorder(HeaderResolver(), error_format=ANTHROPIC_ERRORS)
    with (
        TestClient(app.asgi) as http,
        pytest.raises(WebSocketDenialResponse) as denied,
        http.websocket_connect("/ws"),
    ):
        pass
    assert denied.value.status_code == 401
    assert denied.value.json()["error"]["type"] == "authentication_error"
    assert denied.value.headers["request-id"] == denied.value.headers["x-request-id"]
