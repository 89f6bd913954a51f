"""The admin API's endpoints: circuits, reset, isolate, audit events, summary, health.

`resilience.embed.admin.admin_app` mounts them (the gateway at `/admin`). Bearer tokens
(`AdminToken`, from `[admin.tokens.*]` or built in code) are stored as SHA-256 hashes and
compared in constant time against every entry; `AdminGuard` asks `authenticated` before any
route runs, and each endpoint checks again. A token limited to a tenant sees and changes
only that tenant: other tenants (and the provider-wide `*`) are 403. Every input is checked
(`resilience.embed.admin_input`) before anything acts, so a refused request changes
nothing. Every change goes through the client's registry, so it reaches the client's audit
sinks with the token's name as actor. Without an audit database (`engine` None) the
listings read from it (`/events`, `/summary`) answer 503 saying so.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.datastructures import Headers
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from resilience.audit.queries import MAX_PAGE, BadCursor, list_events, provider_summary
from resilience.breaker.events import BreakerState
from resilience.breaker.machine import BreakerSnapshot, check_duration
from resilience.client.resilient import ResilientClient
from resilience.config.checks import NAME as PROVIDER_NAME
from resilience.config.schema import AdminToken
from resilience.embed.admin_input import (
    BadInput,
    only_fields,
    parse_time,
    read_object,
    shown,
    text_field,
)
from resilience.formats.wire import openai_error
from resilience.tenancy.resolvers import TENANT_ID, DigestMatcher
from resilience.types import PROVIDER_WIDE, Clock

_QUERIES = {
    "circuits": ("tenant", "provider", "state"),
    "events": ("tenant", "provider", "since", "until", "cursor", "limit"),
    "summary": ("since", "until"),
    "providers": (),
}
"""The query parameters each listing knows; another is refused (a typo must not widen it)."""


def _error(status: int, message: str, code: str) -> JSONResponse:
    kind = "authentication_error" if status in (401, 403) else "invalid_request_error"
    if status >= 500:
        kind = "server_error"
    headers = {"www-authenticate": "Bearer"} if status == 401 else None
    return JSONResponse(
        openai_error(message, type_=kind, code=code), status_code=status, headers=headers
    )


def unauthenticated() -> Response:
    """The one answer to a request under `/admin` without a valid token, whatever its path."""
    return _error(401, "a valid admin bearer token is required", "invalid_admin_token")


def _refused(exc: BadInput) -> Response:
    return _error(exc.status, str(exc), exc.code)


def circuit(snapshot: BreakerSnapshot) -> dict[str, Any]:
    """A breaker as the admin API, the CLI and the dashboard show it."""
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
        engine: Callable[[], AsyncEngine] | None,
        *,
        wall_clock: Clock = time.time,
    ) -> None:
        self._tokens = DigestMatcher((t.token_sha256, t) for t in tokens.values())
        self._client = client
        self._engine = engine
        self._wall_clock = wall_clock

    def use_tokens(self, tokens: Mapping[str, AdminToken]) -> None:
        """Replace the tokens at once (one assignment: a request sees the old set or the new)."""
        self._tokens = DigestMatcher((t.token_sha256, t) for t in tokens.values())

    def token(self, headers: Headers) -> AdminToken | None:
        """The admin token the request presents, if it is a configured one."""
        scheme, _, presented = headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not presented:
            return None
        return self._tokens.match(presented.strip())

    def authenticated(self, headers: Headers) -> bool:
        """For `AdminGuard`, which asks before any route runs."""
        return self.token(headers) is not None

    def _token(self, request: Request) -> AdminToken | None:
        return self.token(request.headers)

    def _authorize(self, request: Request, tenant: str | None) -> AdminToken | Response:
        token = self._token(request)
        if token is None:
            return unauthenticated()
        return _forbidden(token, tenant) or token

    def _pair(self, request: Request) -> tuple[AdminToken, str, str] | Response:
        """The token and the (tenant, provider) of the path, in this order: authenticated,
        a well-formed tenant, one the token may touch, then a provider that exists."""
        token = self._token(request)
        if token is None:
            return unauthenticated()
        tenant = request.path_params["tenant"]
        provider = request.path_params["provider"]
        if tenant != PROVIDER_WIDE and not TENANT_ID.fullmatch(tenant):
            return _error(400, "invalid tenant id", "invalid_tenant")
        forbidden = _forbidden(token, tenant)
        if forbidden is not None:
            return forbidden
        if provider not in self._client().providers:
            return _error(404, "unknown provider", "unknown_provider")
        return token, tenant, provider

    def _scope(self, request: Request, listing: str) -> str | Response | None:
        """The tenant a listing covers: `?tenant=`, else the token's own tenant, else all.
        A filter that could match nothing (empty, malformed, unknown) is refused, not ignored."""
        token = self._token(request)
        if token is None:
            return unauthenticated()
        params = request.query_params
        for name in params:
            if name not in _QUERIES[listing]:
                return _error(400, f"unknown query parameter {shown(name)}", "invalid_query")
        asked, provider = params.get("tenant"), params.get("provider")
        if asked is not None and asked != PROVIDER_WIDE and not TENANT_ID.fullmatch(asked):
            return _invalid_filter("tenant")
        if provider is not None and not PROVIDER_NAME.fullmatch(provider):
            return _invalid_filter("provider")
        tenant = asked or token.tenant
        return _forbidden(token, tenant) or tenant

    async def circuits(self, request: Request) -> Response:
        params = request.query_params
        tenant = self._scope(request, "circuits")
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
        _, tenant, provider = pair
        registry = self._client().registry
        snapshot = registry.snapshot(tenant, provider) or registry.get(tenant, provider).snapshot()
        return JSONResponse(circuit(snapshot))

    async def reset(self, request: Request) -> Response:
        return await self._change(request, opening=False)

    async def force_open(self, request: Request) -> Response:
        return await self._change(request, opening=True)

    async def _change(self, request: Request, *, opening: bool) -> Response:
        """Everything is checked (token, path, body) before the breaker is touched."""
        pair = self._pair(request)
        if isinstance(pair, Response):
            return pair
        token, tenant, provider = pair
        try:
            body = await read_object(request)
            only_fields(body, ("reason", "duration_s") if opening else ("reason",))
            reason = text_field(body, "reason")
            duration = body.get("duration_s")
            check_duration(duration)
        except BadInput as exc:
            return _refused(exc)
        except ValueError as exc:  # check_duration's message names the field
            return _error(400, str(exc), "invalid_duration")
        registry = self._client().registry
        if not opening:
            snapshot = await registry.areset(tenant, provider, actor=token.name, note=reason)
            return JSONResponse(circuit(snapshot))
        snapshot = await registry.aforce_open(
            tenant,
            provider,
            actor=token.name,
            duration_s=None if duration is None else float(duration),
            note=reason,
        )
        return JSONResponse(circuit(snapshot))

    async def events(self, request: Request) -> Response:
        params = request.query_params
        tenant = self._scope(request, "events")
        if isinstance(tenant, Response):
            return tenant
        if self._engine is None:
            return _no_audit_database()
        try:
            since = parse_time(params.get("since"), "since")
            until = parse_time(params.get("until"), "until")
        except BadInput as exc:
            return _refused(exc)
        limit_text = params.get("limit", "100")
        if not (limit_text.isascii() and limit_text.isdigit() and len(limit_text) <= 4):
            return _error(400, f"limit: must be 1 to {MAX_PAGE}", "invalid_query")
        limit = int(limit_text)
        if not 1 <= limit <= MAX_PAGE:
            return _error(400, f"limit: must be 1 to {MAX_PAGE}", "invalid_query")
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
        EWMA, error rate, calls in flight, and the provider's rpm limit and skips; and each
        provider's concurrency gate (`bulkheads`: learned limit, in flight, waiting). It is about
        upstreams shared by every tenant, so only an unrestricted token may read it."""
        auth = self._unrestricted(request, "providers")
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
        gates = client.bulkheads
        bulkheads = (
            {
                name: {
                    "limit": gate.limit,
                    "in_flight": gate.in_flight,
                    "waiting": gate.waiting,
                    "min_limit": gate.policy.min_limit,
                    "max_limit": gate.policy.max_limit,
                    "refused": {str(k): v for k, v in gate.refused.items()},
                }
                for name in client.providers
                for gate in (gates.gate(name),)
            }
            if gates is not None
            else {}
        )
        return JSONResponse({"providers": rows, "bulkheads": bulkheads})

    async def summary(self, request: Request) -> Response:
        """Per provider over [since, until): opens and open time, both clipped to now."""
        auth = self._unrestricted(request, "summary")
        if isinstance(auth, Response):
            return auth
        if self._engine is None:
            return _no_audit_database()
        try:
            since = parse_time(request.query_params.get("since"), "since")
            until = parse_time(request.query_params.get("until"), "until")
        except BadInput as exc:
            return _refused(exc)
        if since is None or until is None:
            return _error(400, "since and until are required", "invalid_query")
        if since >= until:
            return _error(400, "since: must be before until", "invalid_query")
        now = datetime.fromtimestamp(self._wall_clock(), UTC)
        async with self._engine().connect() as conn:
            rows = await provider_summary(conn, since=since, until=until, now=now)
        return JSONResponse({"providers": [dataclasses.asdict(r) for r in rows]})

    def _unrestricted(self, request: Request, listing: str) -> AdminToken | Response:
        """A listing about every tenant: an unrestricted token, and only its own parameters."""
        auth = self._authorize(request, None)
        if isinstance(auth, Response):
            return auth
        for name in request.query_params:
            if name not in _QUERIES[listing]:
                return _error(400, f"unknown query parameter {shown(name)}", "invalid_query")
        return auth


def _forbidden(token: AdminToken, tenant: str | None) -> Response | None:
    """A tenant-limited token asking about another tenant, the provider-wide `*`, or all."""
    if token.tenant is None or tenant == token.tenant:
        return None
    return _error(
        403, f"token {token.name!r} is limited to tenant {token.tenant!r}", "forbidden_tenant"
    )


def _no_audit_database() -> Response:
    return _error(
        503,
        "no audit database: this admin API was mounted without one (admin_app(engine=...))",
        "audit_unavailable",
    )


def _invalid_filter(name: str) -> Response:
    return _error(400, f"{name}: not a valid {name} name", "invalid_query")
