"""The admin API under `/admin`: circuits, reset, isolate, audit events.

Bearer tokens from `[admin.tokens.*]`, stored as SHA-256 hashes and compared
in constant time against every entry. A token limited to a tenant sees and
changes only that tenant: other tenants (and the provider-wide `*`) are 403.
Every change is audited with the token's name as actor.
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from resilience.audit.queries import MAX_PAGE, BadCursor, list_events, provider_summary
from resilience.breaker import BreakerSnapshot
from resilience.client import ResilientClient
from resilience.config import AdminToken
from resilience.config_checks import NAME as PROVIDER_NAME
from resilience.events import BreakerState
from resilience.resolvers import TENANT_ID, DigestMatcher
from resilience.types import PROVIDER_WIDE
from resilience.wire import openai_error


def _error(status: int, message: str, code: str) -> JSONResponse:
    kind = "authentication_error" if status in (401, 403) else "invalid_request_error"
    return JSONResponse(openai_error(message, type_=kind, code=code), status_code=status)


def circuit(snapshot: BreakerSnapshot) -> dict[str, Any]:
    """DESIGN.md's circuit shape."""
    return {
        "tenant": snapshot.tenant,
        "provider": snapshot.provider,
        "state": str(snapshot.state),
        "failures": snapshot.failures,
        "opened_at": snapshot.opened_at.isoformat() if snapshot.opened_at else None,
        "retry_at": snapshot.retry_at.isoformat() if snapshot.retry_at else None,
    }


class AdminEndpoints:
    def __init__(
        self,
        tokens: Mapping[str, AdminToken],
        client: Callable[[], ResilientClient],
        engine: Callable[[], AsyncEngine],
    ) -> None:
        self._tokens = DigestMatcher((t.token_sha256, t) for t in tokens.values())
        self._client = client
        self._engine = engine

    def _token(self, request: Request) -> AdminToken | None:
        scheme, _, presented = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not presented:
            return None
        return self._tokens.match(presented.strip())

    def _authorize(self, request: Request, tenant: str | None) -> AdminToken | Response:
        token = self._token(request)
        if token is None:
            return _error(401, "a valid admin bearer token is required", "invalid_admin_token")
        if token.tenant is not None and tenant != token.tenant:
            return _error(
                403,
                f"token {token.name!r} is limited to tenant {token.tenant!r}",
                "forbidden_tenant",
            )
        return token

    def _pair(self, request: Request) -> tuple[str, str] | Response:
        tenant = request.path_params["tenant"]
        provider = request.path_params["provider"]
        if tenant != PROVIDER_WIDE and not TENANT_ID.fullmatch(tenant):
            return _error(400, "invalid tenant id", "invalid_tenant")
        if provider not in self._client().providers:
            return _error(404, "unknown provider", "unknown_provider")
        return tenant, provider

    def _scope(self, request: Request) -> str | Response | None:
        """The tenant a listing covers: `?tenant=`, else the token's own tenant, else all.
        A filter that could match nothing (empty, malformed) is refused, not ignored."""
        token = self._token(request)
        params = request.query_params
        asked, provider = params.get("tenant"), params.get("provider")
        invalid = None
        if asked is not None and asked != PROVIDER_WIDE and not TENANT_ID.fullmatch(asked):
            invalid = "tenant"
        elif provider is not None and not PROVIDER_NAME.fullmatch(provider):
            invalid = "provider"
        if invalid is not None:  # only a valid token learns that its filter is malformed
            auth = self._authorize(request, token.tenant if token else None)
            return auth if isinstance(auth, Response) else _invalid_filter(invalid)
        tenant = asked or (token.tenant if token else None)
        auth = self._authorize(request, tenant)
        return auth if isinstance(auth, Response) else tenant

    async def circuits(self, request: Request) -> Response:
        params = request.query_params
        tenant = self._scope(request)
        if isinstance(tenant, Response):
            return tenant
        state = params.get("state")
        if state is not None and state not in {s.value for s in BreakerState}:
            return _error(
                400,
                f"state: expected one of {', '.join(s.value for s in BreakerState)}",
                "invalid_state",
            )
        found = self._client().registry.circuits(
            tenant=tenant,
            provider=params.get("provider"),
            state=BreakerState(state) if state else None,
        )
        return JSONResponse({"circuits": [circuit(s) for s in found]})

    async def get_circuit(self, request: Request) -> Response:
        pair = self._pair(request)
        if isinstance(pair, Response):
            return pair
        auth = self._authorize(request, pair[0])
        if isinstance(auth, Response):
            return auth
        registry = self._client().registry
        snapshot = registry.snapshot(*pair) or registry.get(*pair).snapshot()
        return JSONResponse(circuit(snapshot))

    async def reset(self, request: Request) -> Response:
        return await self._change(request, opening=False)

    async def force_open(self, request: Request) -> Response:
        return await self._change(request, opening=True)

    async def _change(self, request: Request, *, opening: bool) -> Response:
        pair = self._pair(request)
        if isinstance(pair, Response):
            return pair
        auth = self._authorize(request, pair[0])
        if isinstance(auth, Response):
            return auth
        try:
            body = json.loads(await request.body() or b"{}")
        except ValueError:
            return _error(400, "body: not valid JSON", "invalid_body")
        if not isinstance(body, dict):
            return _error(400, "body: expected a JSON object", "invalid_body")
        reason = body.get("reason")
        if reason is not None and (not isinstance(reason, str) or len(reason) > 500):
            return _error(
                400, "reason: expected a string of at most 500 characters", "invalid_reason"
            )
        registry = self._client().registry
        if not opening:
            snapshot = await registry.areset(*pair, actor=auth.name, note=reason)
            return JSONResponse(circuit(snapshot))
        duration = body.get("duration_s")
        if duration is not None and (
            isinstance(duration, bool)
            or not isinstance(duration, int | float)
            or not 0 < duration < math.inf
        ):
            return _error(400, "duration_s: expected a number > 0", "invalid_duration")
        snapshot = await registry.aforce_open(
            *pair, actor=auth.name, duration_s=duration, note=reason
        )
        return JSONResponse(circuit(snapshot))

    async def events(self, request: Request) -> Response:
        params = request.query_params
        tenant = self._scope(request)
        if isinstance(tenant, Response):
            return tenant
        try:
            since = _time(params.get("since"), "since")
            until = _time(params.get("until"), "until")
            limit = int(params.get("limit", "100"))
            if not 1 <= limit <= MAX_PAGE:
                raise ValueError(f"limit: must be 1 to {MAX_PAGE}")
        except ValueError as exc:
            return _error(400, str(exc), "invalid_query")
        try:
            async with self._engine().connect() as conn:
                page = await list_events(
                    conn,
                    tenant=tenant,
                    provider=params.get("provider"),
                    since=since,
                    until=until,
                    limit=limit,
                    cursor=params.get("cursor"),
                )
        except BadCursor:
            return _error(400, "cursor: invalid", "invalid_cursor")
        events = [
            {**dataclasses.asdict(e), "id": str(e.id), "occurred_at": e.occurred_at.isoformat()}
            for e in page.events
        ]
        return JSONResponse({"events": events, "next_cursor": page.next_cursor})

    async def providers(self, request: Request) -> Response:
        """Health of each (provider, model) this process has called: latency p50/p99 and
        EWMA, error rate, calls in flight, and the provider's rpm limit and skips. It is about
        upstreams shared by every tenant, so only an unrestricted token may read it."""
        auth = self._authorize(request, None)
        if isinstance(auth, Response):
            return auth
        client = self._client()
        rows = [
            {
                **snap.as_dict(),
                "rpm": client.rpm.get(snap.provider, 0.0),
                "rate_limit_skips": client.rate_limit_skips.get(snap.provider, 0),
            }
            for snap in client.health.snapshot()
        ]
        return JSONResponse({"providers": rows})

    async def summary(self, request: Request) -> Response:
        auth = self._authorize(request, None)
        if isinstance(auth, Response):
            return auth
        try:
            since = _time(request.query_params.get("since"), "since")
            until = _time(request.query_params.get("until"), "until")
        except ValueError as exc:
            return _error(400, str(exc), "invalid_query")
        if since is None or until is None:
            return _error(400, "since and until are required", "invalid_query")
        async with self._engine().connect() as conn:
            rows = await provider_summary(conn, since=since, until=until)
        return JSONResponse({"providers": [dataclasses.asdict(r) for r in rows]})


def _invalid_filter(name: str) -> Response:
    return _error(400, f"{name}: not a valid {name} name", "invalid_query")


def _time(value: str | None, name: str) -> datetime | None:
    if value is None:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise ValueError(f"{name}: expected an ISO 8601 time") from None
    if parsed.tzinfo is None:
        raise ValueError(f"{name}: include a time zone (e.g. Z or +00:00)")
    return parsed
