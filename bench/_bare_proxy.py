"""The floor under any Python gateway of this shape: a bare Starlette proxy.

No tenancy, no breaker, no SDK, no metrics: read the body, set `model`, post it upstream
on one pooled client, check the answer is JSON, send it back. `BARE_PROXY_CLIENT` picks
the client: `httpx2` (the usual way to write one) or `lean` (the gateway's own
`resilience.providers.http1.Pool`). `bench/gateway.py` runs both beside the gateway: what
the gateway adds beyond the lean one is its own work; what the lean one adds over a direct
call is the extra loopback hop's.
"""

from __future__ import annotations

import json
import os
from urllib.parse import urlsplit

import httpx2
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from resilience.providers.http1 import Pool, Timeouts

UPSTREAM = os.environ.get("BARE_PROXY_UPSTREAM", "http://127.0.0.1:1/openai/v1/chat/completions")
MODEL = os.environ.get("BARE_PROXY_MODEL", "gpt-4.1")
LEAN = os.environ.get("BARE_PROXY_CLIENT", "httpx2") == "lean"
_HEADERS = {"content-type": "application/json", "authorization": "Bearer k"}
_http = httpx2.AsyncClient(timeout=10.0)
_pool = Pool(UPSTREAM, Timeouts(5.0, 10.0, 10.0, 10.0))
_prepared = _pool.prepare("POST", urlsplit(UPSTREAM).path, _HEADERS)


async def chat(request: Request) -> Response:
    body = json.loads(await request.body())
    body["model"] = MODEL
    sent = json.dumps(body).encode()
    if LEAN:
        answer = await _pool.send(_prepared, sent)
        try:
            content = await answer.aread()
        finally:
            await answer.aclose()
        status = answer.status_code
    else:
        response = await _http.post(UPSTREAM, content=sent, headers=_HEADERS)
        content, status = response.content, response.status_code
    json.loads(content)
    return Response(content, status_code=status, media_type="application/json")


app = Starlette(routes=[Route("/v1/chat/completions", chat, methods=["POST"])])
