"""A trivial endpoint, with and without TenantMiddleware, for bench/gateway.py."""

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from resilience.tenancy.middleware import TenantMiddleware
from resilience.tenancy.resolvers import HeaderResolver


async def hello(request: Request) -> Response:
    return PlainTextResponse("ok")


app_plain = Starlette(routes=[Route("/hello", hello)])
app_tenant = TenantMiddleware(Starlette(routes=[Route("/hello", hello)]), resolver=HeaderResolver())
