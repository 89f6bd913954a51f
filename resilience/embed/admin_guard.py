"""In front of every path of the admin app: the admin token first, and the browser's headers.

Authenticating before the router means a caller without a valid token gets the same 401
for every path of the app, existing or not, whatever tenant or provider it names, and
whatever its method: it cannot learn which providers or routes exist. Only the dashboard's
static files (`public`, paths relative to where the app is mounted) load without a token,
with GET or HEAD: a browser navigating to a page sends no bearer token, and the files hold
no data (the page asks for the token and sends it with each API call it makes).

Every answer says: no framing, no inline or foreign scripts, no MIME sniffing, no referrer.
"""

from __future__ import annotations

from collections.abc import Callable, Collection

from starlette.datastructures import Headers
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

SECURITY_HEADERS: list[tuple[bytes, bytes]] = [
    (b"content-security-policy", b"default-src 'self'; frame-ancestors 'none'"),
    (b"x-frame-options", b"DENY"),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
]
_NAMES = {name for name, _ in SECURITY_HEADERS}


class AdminGuard:
    """ASGI middleware of the admin app; see the module docstring."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        authenticated: Callable[[Headers], bool],
        refusal: Callable[[], Response],
        public: Collection[str] = (),
    ) -> None:
        self.app = app
        self._authenticated = authenticated
        self._refusal = refusal
        self._public = frozenset(public)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]
        root: str = scope.get("root_path", "")
        if root and path.startswith(root):  # mounted: the path below the mount point
            path = path[len(root) :]

        async def secured(message: Message) -> None:
            if message["type"] == "http.response.start":
                kept = [(k, v) for k, v in message.get("headers", ()) if k.lower() not in _NAMES]
                message = {**message, "headers": [*kept, *SECURITY_HEADERS]}
            await send(message)

        public = scope["method"] in ("GET", "HEAD") and path in self._public
        if not public and not self._authenticated(Headers(scope=scope)):
            await self._refusal()(scope, receive, secured)
            return
        await self.app(scope, receive, secured)
