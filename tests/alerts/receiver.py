"""A webhook receiver the tests start on a real socket, stop, and start again on its port."""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from resilience.audit.alert_payloads import SIGNATURE_HEADER, TIMESTAMP_HEADER, verify_signature
from resilience.serving import serve_asgi

SECRET = b"alerts-test-secret"


@dataclass(frozen=True)
class Post:
    path: str
    headers: dict[str, str]
    body: bytes

    @property
    def json(self) -> Any:
        return json.loads(self.body)

    def verifies(self, secret: bytes = SECRET) -> bool:
        return verify_signature(
            secret,
            self.body,
            self.headers.get(TIMESTAMP_HEADER, ""),
            self.headers.get(SIGNATURE_HEADER, ""),
        )


@dataclass
class Receiver:
    """Records every post; answers each with the next of `statuses` (then 200)."""

    posts: list[Post] = field(default_factory=list)
    statuses: list[int] = field(default_factory=list)
    port: int = 0

    def app(self) -> Starlette:
        async def hook(request: Request) -> Response:
            status = self.statuses.pop(0) if self.statuses else 200
            if status == 200:
                self.posts.append(
                    Post(request.url.path, dict(request.headers), await request.body())
                )
            return Response(status_code=status)

        return Starlette(routes=[Route("/{path:path}", hook, methods=["POST"])])

    @contextlib.asynccontextmanager
    async def serve(self) -> AsyncIterator[str]:
        """Up for the block, on the same port every time (a free one the first time)."""
        async with serve_asgi(self.app(), port=self.port) as root:
            self.port = int(root.rsplit(":", 1)[1])
            yield root

    def on(self, path: str) -> list[Post]:
        return [p for p in self.posts if p.path == path]
