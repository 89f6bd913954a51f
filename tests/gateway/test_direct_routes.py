"""`DirectRoutes`: the model POSTs reach their endpoint by exact path; everything else goes
through the app behind it, as before."""

from __future__ import annotations

import json

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.types import Message, Receive, Scope, Send

from resilience.gateway.direct_routes import DirectRoutes


class _Behind:
    """The app behind the middleware: records the scopes it saw, answers 418."""

    def __init__(self) -> None:
        self.seen: list[Scope] = []

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        self.seen.append(scope)
        await Response(b"behind", status_code=418)(scope, receive, send)


async def _chat(request: Request) -> Response:
    body = await request.body()
    return JSONResponse({"echo": json.loads(body), "path": request.url.path})


async def _refuses(request: Request) -> Response:
    raise HTTPException(409, "taken")


async def _on_http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    return JSONResponse({"status": exc.status_code, "detail": exc.detail}, exc.status_code)


def _routes(behind: _Behind) -> DirectRoutes:
    return DirectRoutes(
        behind,
        routes={"/v1/chat/completions": _chat, "/v1/refuses": _refuses},
        on_http_error=_on_http_error,
    )


async def _call(app: DirectRoutes, method: str, path: str, **extra: object) -> list[Message]:
    scope: Scope = {
        "type": "http",
        "method": method,
        "path": path,
        "root_path": "",
        "headers": [],
        "query_string": b"",
        **extra,
    }
    sent: list[Message] = []

    async def receive() -> Message:
        return {"type": "http.request", "body": b'{"model": "chat"}', "more_body": False}

    async def send(message: Message) -> None:
        sent.append(message)

    await app(scope, receive, send)
    return sent


async def test_a_listed_post_reaches_its_endpoint_and_not_the_app_behind() -> None:
    behind = _Behind()
    start, body = await _call(_routes(behind), "POST", "/v1/chat/completions")
    assert start["status"] == 200
    assert json.loads(body["body"]) == {"echo": {"model": "chat"}, "path": "/v1/chat/completions"}
    assert behind.seen == []


async def test_another_method_another_path_and_the_lifespan_go_behind() -> None:
    behind = _Behind()
    app = _routes(behind)
    for method, path in (("GET", "/v1/chat/completions"), ("POST", "/v1/chat/completions/x")):
        start, _ = await _call(app, method, path)
        assert start["status"] == 418
    assert [(s["method"], s["path"]) for s in behind.seen] == [
        ("GET", "/v1/chat/completions"),
        ("POST", "/v1/chat/completions/x"),
    ]
    seen: list[Scope] = []

    async def lifespan_app(scope: Scope, receive: Receive, send: Send) -> None:
        seen.append(scope)

    lifespan: Scope = {"type": "lifespan"}
    await DirectRoutes(lifespan_app, routes={}, on_http_error=_on_http_error)(
        lifespan, _no_receive, _no_send
    )
    assert seen == [lifespan]


async def _no_receive() -> Message:
    raise AssertionError("not expected")


async def _no_send(message: Message) -> None:
    raise AssertionError("not expected")


async def test_an_http_exception_from_an_endpoint_is_answered_by_the_handler() -> None:
    start, body = await _call(_routes(_Behind()), "POST", "/v1/refuses")
    assert start["status"] == 409
    assert json.loads(body["body"]) == {"status": 409, "detail": "taken"}


async def test_under_a_root_path_the_route_is_matched_without_it() -> None:
    behind = _Behind()
    start, _ = await _call(
        _routes(behind), "POST", "/gateway/v1/chat/completions", root_path="/gateway"
    )
    assert start["status"] == 200
    assert behind.seen == []
