"""The floor under any Python gateway of this shape: a bare Starlette + httpx2 proxy.

No tenancy, no breaker, no SDK, no metrics: read the body, set `model`, post it upstream
on one pooled client, check the answer is JSON, send it back. `bench/gateway.py` runs it
beside the gateway, so what the gateway adds beyond this is its own cost and what this
adds over a direct call is the extra loopback hop's.
"""

from __future__ import annotations

import json
import os

import httpx2
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

UPSTREAM = os.environ.get("BARE_PROXY_UPSTREAM", "http://127.0.0.1:1/openai/v1/chat/completions")
MODEL = os.environ.get("BARE_PROXY_MODEL", "gpt-4.1")
_http = httpx2.AsyncClient(timeout=10.0)
_HEADERS = {"content-type": "application/json", "authorization": "Bearer k"}


async def chat(request: Request) -> Response:
    body = json.loads(await request.body())
    body["model"] = MODEL
    answer = await _http.post(UPSTREAM, content=json.dumps(body).encode(), headers=_HEADERS)
    json.loads(answer.content)
    return Response(answer.content, status_code=answer.status_code, media_type="application/json")


app = Starlette(routes=[Route("/v1/chat/completions", chat, methods=["POST"])])
