"""Hostile input against the admin API (issue findings 3, 5, 8 and 9, admin part).

The gateway runs under uvicorn on a loopback socket with a chaos upstream, as in
production; each finding's exact input is sent with the tenant-scoped admin token
(`acme-support`, limited to tenant acme) and with the unrestricted one (`ops`). A refused
request must be a 4xx, must change nothing, and must leave `/metrics`, `/admin/circuits`
and `/admin/providers` answering 200. A hypothesis test then drives the admin API
in-process with arbitrary values in every body field and query parameter.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

import httpx2
import pytest
import redis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.testclient import TestClient

from resilience import cli
from resilience.audit.queries import provider_summary
from resilience.breaker.machine import MAX_DURATION_S
from resilience.chaos import ChaosUpstream
from resilience.gateway.factory import create_app
from resilience.serving import serve_asgi
from tests.audit.test_audit_db import write
from tests.support.audit import T0, event
from tests.support.gateway import ADMIN, KEYS, settings_for

OPS = {"authorization": f"Bearer {ADMIN['ops']}"}
SCOPED = {"authorization": f"Bearer {ADMIN['acme-support']}"}
TOKENS = {"ops": OPS, "scoped": SCOPED}
SECURITY_HEADERS = {
    "content-security-policy": "default-src 'self'; frame-ancestors 'none'",
    "x-frame-options": "DENY",
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
}


@dataclass
class Served:
    root: str
    http: httpx2.AsyncClient

    async def state(self, tenant: str, provider: str) -> str:
        response = await self.http.get(f"/admin/circuits/{tenant}/{provider}", headers=OPS)
        assert response.status_code == 200, response.text
        state: str = response.json()["state"]
        return state

    async def assert_monitoring_answers(self) -> None:
        """What finding 3 took down for everyone: all must still answer 200."""
        for path in ("/metrics", "/admin/circuits", "/admin/providers"):
            response = await self.http.get(path, headers=OPS)
            assert response.status_code == 200, (path, response.status_code, response.text)

    async def raw(self, head: bytes, *parts: bytes, timeout_s: float = 10.0) -> bytes:
        """Send a request over a plain socket and return what the server answered, without
        finishing the body first (a server that waits for all of it times out here)."""
        url = urlsplit(self.root)
        reader, writer = await asyncio.open_connection(url.hostname, url.port)
        try:
            writer.write(head)
            for part in parts:
                writer.write(part)
                with contextlib.suppress(ConnectionError):
                    await writer.drain()
            return await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), timeout_s)
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()


@contextlib.asynccontextmanager
async def serve(
    tmp_path: Path, *, redis_at: str | None = None, redis_prefix: str = ""
) -> AsyncIterator[Served]:
    chaos = ChaosUpstream()
    async with chaos.serve() as upstream:
        gateway_settings = settings_for(upstream, tmp_path)
        if redis_at is not None:
            config = replace(gateway_settings.config, redis_url=redis_at, redis_prefix=redis_prefix)
            gateway_settings = replace(gateway_settings, config=config)
        app = create_app(gateway_settings)
        async with (
            serve_asgi(app, lifespan="on") as root,
            httpx2.AsyncClient(base_url=root, timeout=10) as http,
        ):
            yield Served(root, http)


@pytest.fixture
async def gateway(tmp_path: Path) -> AsyncIterator[Served]:
    async with serve(tmp_path) as served:
        yield served


def secured(response: httpx2.Response) -> bool:
    return all(response.headers.get(k) == v for k, v in SECURITY_HEADERS.items())


def open_request(path: str, token: dict[str, str], body: bytes) -> dict[str, Any]:
    return {
        "method": "POST",
        "url": path,
        "headers": {**token, "content-type": "application/json"},
        "content": body,
    }


# -- finding 3: durations --------------------------------------------------------------------

UNREPRESENTABLE = [
    b'{"duration_s": 1e12}',
    b'{"duration_s": 1e308}',
    b'{"duration_s": 1e999}',
    b'{"duration_s": NaN}',
    b'{"duration_s": Infinity}',
    b'{"duration_s": -1}',
    b'{"duration_s": 0}',
    b'{"duration_s": 2592000.5}',
    b'{"duration_s": 1' + b"0" * 400 + b"}",
    b'{"duration_s": "600"}',
    b'{"duration_s": true}',
    b'{"duration": 600}',
]


@pytest.mark.parametrize("token", sorted(TOKENS))
async def test_a_duration_no_breaker_can_hold_is_refused_and_opens_nothing(
    gateway: Served, token: str
) -> None:
    for body in UNREPRESENTABLE:
        response = await gateway.http.request(
            **open_request("/admin/circuits/acme/claude/open", TOKENS[token], body)
        )
        assert response.status_code == 400, (body, response.text)
        assert "duration" in response.json()["error"]["message"], body
        assert "retry-after" not in response.headers
        assert await gateway.state("acme", "claude") == "closed", body
        await gateway.assert_monitoring_answers()


@pytest.mark.parametrize("duration", ["1e12", "1e308", "nan", "inf", "0", "2592001"])
def test_the_cli_refuses_what_the_gateway_would_before_calling_it(
    duration: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """Port 9 (discard) on loopback: a CLI that called it would fail with another error."""
    argv = ["open", "acme", "claude", "--url", "http://127.0.0.1:9", "--token", "t"]
    with pytest.raises(SystemExit) as refused:
        cli.main([*argv, "--duration-s", duration])
    assert refused.value.code == 2
    assert "duration_s: expected seconds" in capsys.readouterr().err


async def test_thirty_days_is_the_longest_open_and_its_retry_time_is_representable(
    gateway: Served,
) -> None:
    longer = await gateway.http.post(
        "/admin/circuits/acme/primary/open", headers=SCOPED, json={"duration_s": MAX_DURATION_S + 1}
    )
    assert longer.status_code == 400
    assert await gateway.state("acme", "primary") == "closed"
    before = datetime.now(UTC)
    opened = await gateway.http.post(
        "/admin/circuits/acme/primary/open", headers=SCOPED, json={"duration_s": MAX_DURATION_S}
    )
    after = datetime.now(UTC)
    assert opened.status_code == 200, opened.text
    retry_at = datetime.fromisoformat(opened.json()["retry_at"])
    assert before + timedelta(days=30) <= retry_at + timedelta(seconds=1)
    assert retry_at <= after + timedelta(days=30, seconds=1)
    await gateway.assert_monitoring_answers()
    refused = await gateway.http.post(
        "/v1/chat/completions",
        headers={"authorization": f"Bearer {KEYS['acme']}"},
        json={"model": "primary:gpt-4.1", "messages": [{"role": "user", "content": "x"}]},
    )
    assert refused.status_code == 503
    assert 0 < int(refused.headers["retry-after"]) <= MAX_DURATION_S


@pytest.mark.redis
async def test_with_redis_a_refused_duration_leaves_no_key_and_thirty_days_a_bounded_ttl(
    tmp_path: Path,
    redis_url: str,
    prefix: str,
) -> None:
    shared = redis.Redis.from_url(redis_url)
    breaker_key = f"{prefix}:b:claude:acme"
    try:
        async with serve(tmp_path, redis_at=redis_url, redis_prefix=prefix) as gateway:
            for body in (b'{"duration_s": 1e12}', b'{"duration_s": 1e308}'):
                refused = await gateway.http.request(
                    **open_request("/admin/circuits/acme/claude/open", SCOPED, body)
                )
                assert refused.status_code == 400, refused.text
            assert not shared.exists(breaker_key)
            assert await gateway.state("acme", "claude") == "closed"
            await gateway.assert_monitoring_answers()
            opened = await gateway.http.post(
                "/admin/circuits/acme/claude/open",
                headers=SCOPED,
                json={"duration_s": MAX_DURATION_S},
            )
            assert opened.status_code == 200, opened.text
            ttl = shared.ttl(breaker_key)
            idle_ttl_s = 300  # the store's default: an open breaker lives its cooldown plus this
            assert MAX_DURATION_S - 60 < ttl <= MAX_DURATION_S + idle_ttl_s + 1
            await gateway.assert_monitoring_answers()
    finally:
        shared.close()


# -- finding 8 (reasons too): every field checked, refused before anything acts ---------------

BAD_REASONS = [
    "nul\u0000byte",
    "line\nbreak",
    "escape\u001b[31m",
    "del\u007f",
    "c1\u0085",
    "lone \ud800 surrogate",
    "x" * 501,
]


@pytest.mark.parametrize("token", sorted(TOKENS))
@pytest.mark.parametrize("verb", ["open", "reset"])
async def test_a_reason_that_is_not_short_printable_text_is_refused_naming_it(
    gateway: Served, token: str, verb: str
) -> None:
    # the state the refused change must leave alone: closed for an open, open for a reset
    start = "reset" if verb == "open" else "open"
    await gateway.http.post(f"/admin/circuits/acme/claude/{start}", headers=OPS, json={})
    before = await gateway.state("acme", "claude")
    for reason in [*BAD_REASONS, 5, ["list"]]:
        body = json.dumps({"reason": reason}).encode()  # ensure_ascii: a surrogate as \ud800
        response = await gateway.http.request(
            **open_request(f"/admin/circuits/acme/claude/{verb}", TOKENS[token], body)
        )
        assert response.status_code == 400, (reason, response.text)
        assert response.json()["error"]["message"].startswith("reason: "), reason
        assert await gateway.state("acme", "claude") == before, reason
        await gateway.assert_monitoring_answers()


NESTED = [
    (b'{"reason": ' + b"[" * 100_000 + b"]" * 100_000 + b"}", 413),
    (b'{"reason": ' + b"[" * 20_000 + b"]" * 20_000 + b"}", 400),
    (b'{"reason": ' + b'{"a":' * 40 + b"1" + b"}" * 40 + b"}", 400),
    (b"[" * 33 + b"]" * 33, 400),
    (b"\xff\xfe{", 400),
    (b"[]", 400),
]


@pytest.mark.parametrize("token", sorted(TOKENS))
async def test_a_body_too_deep_too_big_or_not_an_object_is_a_4xx(
    gateway: Served, token: str
) -> None:
    for body, status in NESTED:
        response = await gateway.http.request(
            **open_request("/admin/circuits/acme/claude/open", TOKENS[token], body)
        )
        assert response.status_code == status, (body[:40], response.text)
        assert await gateway.state("acme", "claude") == "closed"
        await gateway.assert_monitoring_answers()


def _cursor(data: object) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).decode().rstrip("=")


CURSORS = [
    _cursor({"t": "2030-01-01T00:00:00+00:00", "id": ["a"]}),
    _cursor({"t": ["2030"], "id": "0b6c3c5e-7d8f-4f7e-9a3c-2d1f0e9b8a7c"}),
    _cursor({"t": "0001-01-01T00:00:00+01:00", "id": "0b6c3c5e-7d8f-4f7e-9a3c-2d1f0e9b8a7c"}),
    _cursor(["t", "id"]),
    _cursor("a string"),
    _cursor(12),
    _cursor({"t": {"t": {"t": None}}}),
    base64.urlsafe_b64encode(b"[" * 100).decode(),
    "not-a-cursor",
    "%ff%fe",
    "A" * 5000,
]
TIMES = ["0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-01:00", "2026-13-01T00:00:00Z"]


@pytest.mark.parametrize("token", sorted(TOKENS))
async def test_any_cursor_not_handed_out_and_any_time_out_of_range_is_a_400(
    gateway: Served, token: str
) -> None:
    for cursor in CURSORS:
        response = await gateway.http.get(
            "/admin/events", params={"cursor": cursor}, headers=TOKENS[token]
        )
        assert response.status_code == 400, (cursor[:40], response.text)
        assert response.json()["error"]["message"] == "cursor: invalid"
        await gateway.assert_monitoring_answers()
    for name in ("since", "until"):
        for value in TIMES:
            events = await gateway.http.get(
                "/admin/events", params={name: value}, headers=TOKENS[token]
            )
            assert events.status_code == 400, (name, value, events.text)
            assert events.json()["error"]["message"].startswith(f"{name}: ")
            window = {"since": "2020-01-01T00:00:00Z", "until": "2030-01-01T00:00:00Z"}
            summary = await gateway.http.get(
                "/admin/summary", params={**window, name: value}, headers=TOKENS[token]
            )
            # about every tenant: the scoped token is refused before its input is read
            assert summary.status_code == (400 if token == "ops" else 403), summary.text
            await gateway.assert_monitoring_answers()


# -- finding 9 (admin part): body size, framing, enumeration ----------------------------------


@pytest.mark.parametrize("token", sorted(TOKENS))
async def test_a_declared_300_mb_body_is_refused_before_it_is_read(
    gateway: Served, token: str
) -> None:
    head = (
        "POST /admin/circuits/acme/claude/open HTTP/1.1\r\nhost: gateway\r\n"
        f"authorization: {TOKENS[token]['authorization']}\r\n"
        "content-type: application/json\r\ncontent-length: 300000000\r\n\r\n"
    ).encode()
    answer = await gateway.raw(head, b'{"reason": "' + b"a" * 1024)
    assert answer.startswith(b"HTTP/1.1 413"), answer
    assert await gateway.state("acme", "claude") == "closed"
    await gateway.assert_monitoring_answers()


@pytest.mark.parametrize("token", sorted(TOKENS))
async def test_a_chunked_body_is_counted_while_it_arrives(gateway: Served, token: str) -> None:
    """No length is declared: the server must stop at 64 KiB, not wait for the end."""
    head = (
        "POST /admin/circuits/acme/claude/open HTTP/1.1\r\nhost: gateway\r\n"
        f"authorization: {TOKENS[token]['authorization']}\r\n"
        "content-type: application/json\r\ntransfer-encoding: chunked\r\n\r\n"
    ).encode()
    chunk = b"4000\r\n" + b" " * 0x4000 + b"\r\n"  # 16 KiB of JSON whitespace each
    answer = await gateway.raw(head, *[chunk] * 8)  # 128 KiB, and never the last chunk
    assert answer.startswith(b"HTTP/1.1 413"), answer
    await gateway.assert_monitoring_answers()


UNAUTHENTICATED_PATHS = [
    ("GET", "/admin/circuits"),
    ("GET", "/admin/circuits/acme/claude"),
    ("GET", "/admin/circuits/acme/no-such-provider"),
    ("GET", "/admin/circuits/*/claude"),
    ("GET", "/admin/circuits/bad tenant!/claude"),
    ("POST", "/admin/circuits/acme/claude/open"),
    ("POST", "/admin/circuits/acme/no-such-provider/open"),
    ("POST", "/admin/circuits/globex/no-such-provider/reset"),
    ("GET", "/admin/circuits/acme/claude/open"),
    ("DELETE", "/admin/circuits"),
    ("GET", "/admin/no-such-route"),
    ("GET", "/admin/events?cursor=not-a-cursor"),
    ("GET", "/admin/summary"),
    ("GET", "/admin/providers"),
    ("POST", "/admin/"),
]


@pytest.mark.parametrize("credentials", [{}, {"authorization": "Bearer wrong"}, {"x": "y"}])
async def test_without_a_valid_token_every_admin_path_answers_the_same_401(
    gateway: Served, credentials: dict[str, str]
) -> None:
    answers = set()
    for method, path in UNAUTHENTICATED_PATHS:
        response = await gateway.http.request(method, path, headers=credentials, json={})
        assert response.status_code == 401, (method, path, response.status_code)
        answers.add((response.text, response.headers["content-type"]))
    assert len(answers) == 1, answers


async def test_the_dashboard_and_the_admin_api_forbid_framing_sniffing_and_inline_code(
    gateway: Served,
) -> None:
    public = ["/admin/", "/admin/dashboard.js", "/admin/dashboard.css"]
    for path in public:  # static, no data: loads without a token, as a browser navigates
        response = await gateway.http.get(path)
        assert response.status_code == 200, path
        assert secured(response), path
    page = (await gateway.http.get("/admin/")).text
    assert "<style" not in page and " style=" not in page and "<script>" not in page
    for response in (
        await gateway.http.get("/admin/circuits", headers=OPS),
        await gateway.http.get("/admin/circuits"),
        await gateway.http.post("/admin/circuits/acme/claude/open", headers=SCOPED, content=b"["),
    ):
        assert secured(response), response.request.url


# -- finding 5 (part): the summary stops at now -----------------------------------------------


async def test_summary_over_a_decade_counts_an_open_period_up_to_now_only(
    gateway: Served,
) -> None:
    before_open = time.time()
    opened = await gateway.http.post("/admin/circuits/acme/primary/open", headers=OPS, json={})
    after_open = time.time()
    assert opened.status_code == 200
    for _ in range(200):  # the audit sink writes in the background: wait for the row
        rows = await gateway.http.get("/admin/events?tenant=acme", headers=OPS)
        if any(e["reason"] == "admin_open" for e in rows.json()["events"]):
            break
        await asyncio.sleep(0.025)
    before_ask = time.time()
    summary = await gateway.http.get(
        "/admin/summary",
        params={"since": "2020-01-01T00:00:00Z", "until": "2030-01-01T00:00:00Z"},
        headers=OPS,
    )
    after_ask = time.time()
    assert summary.status_code == 200
    [primary] = [p for p in summary.json()["providers"] if p["provider"] == "primary"]
    assert primary["opens"] == 1
    # open since a moment in [before_open, after_open], counted up to one in [before_ask,
    # after_ask]; before the fix it was counted up to 2030 (about 1e8 s)
    assert before_ask - after_open - 0.001 <= primary["open_seconds"]
    assert primary["open_seconds"] <= after_ask - before_open + 0.001


async def test_provider_summary_clips_a_period_still_open_to_the_given_now(
    engine: AsyncEngine,
    tmp_path: Path,
) -> None:
    await write(engine, tmp_path, [event("acme", "openai", "closed", "open", "threshold", 2)])
    async with engine.connect() as conn:
        [row] = await provider_summary(
            conn,
            since=datetime(2020, 1, 1, tzinfo=UTC),
            until=datetime(2030, 1, 1, tzinfo=UTC),
            now=T0 + timedelta(minutes=10),
        )
        [before] = await provider_summary(
            conn, since=T0, until=T0 + timedelta(minutes=5), now=T0 + timedelta(minutes=10)
        )
    assert (row.opens, row.open_seconds) == (1, 8 * 60)
    assert before.open_seconds == 3 * 60  # the range ends before now: clipped to the range


# -- every field, any value: never a 5xx ------------------------------------------------------

TEXT = st.text(st.characters() | st.characters(categories=["Cs"]), max_size=40)
NUMBERS = st.one_of(
    st.integers(),
    st.floats(),
    st.sampled_from(
        [1e12, 2.6e11, 1e308, 10**400, -(10**400), 2**63, -0.0, 1e-300, MAX_DURATION_S]
    ),
)
JSON = st.recursive(
    st.none() | st.booleans() | NUMBERS | TEXT,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(TEXT, inner, max_size=4),
    max_leaves=12,
)
RAW_BODIES = st.sampled_from(
    [
        b'{"duration_s": 1e999}',
        b'{"duration_s": -Infinity, "reason": "x"}',
        b'{"duration_s": NaN}',
        b'{"reason": "\\udfff"}',
        b'{"reason": "\\u0000"}',
        b"[" * 40 + b"]" * 40,
        b'{"reason": ' + b"[" * 5000 + b"]" * 5000 + b"}",
        b'{"duration_s": 1' + b"0" * 5000 + b"}",
        b"\xff\xfe\xfa",
        b"",
        b"null",
        b"  ",
        b'{"reason": "a", "reason": 5}',
    ]
)
FIELDS = st.fixed_dictionaries(
    {}, optional={"reason": TEXT | JSON, "duration_s": NUMBERS | JSON, "extra": JSON}
)
BODIES = st.one_of(
    FIELDS.map(lambda d: json.dumps(d).encode()),
    JSON.map(lambda v: json.dumps(v).encode()),
    RAW_BODIES,
)
# the known names often, so that most calls get past authentication and the path checks
TENANTS = st.one_of(st.sampled_from(["acme", "globex", "*"]), st.just("acme"), TEXT)
PROVIDERS = st.one_of(st.sampled_from(["primary", "claude"]), st.just("nope"), TEXT)
CREDENTIALS = st.one_of(
    st.sampled_from([OPS, SCOPED]), st.sampled_from([{}, {"authorization": "Bearer nope"}])
)
TIME_VALUES = TEXT | st.builds(
    lambda y, h, sign, oh, om: f"{y:04d}-12-31T{h:02d}:00:00{sign}{oh:02d}:{om:02d}",
    st.sampled_from([1, 2, 1970, 2026, 9998, 9999]),
    st.integers(0, 23),
    st.sampled_from("+-"),
    st.integers(0, 23),
    st.integers(0, 59),
)
CURSOR_VALUES = st.one_of(
    TEXT,
    JSON.map(_cursor),
    st.fixed_dictionaries({"t": TIME_VALUES | JSON, "id": st.uuids().map(str) | JSON}).map(_cursor),
)
QUERIES = st.fixed_dictionaries(
    {},
    optional={
        "tenant": TENANTS,
        "provider": PROVIDERS,
        "state": st.sampled_from(["open", "forced_open"]) | TEXT,
        "since": TIME_VALUES,
        "until": TIME_VALUES,
        "cursor": CURSOR_VALUES,
        "limit": NUMBERS.map(str) | TEXT,
        "other": TEXT,
    },
)


def _query(params: dict[str, str]) -> str:
    """Percent-encoded as raw bytes: a lone surrogate goes over the wire as its UTF-8 form."""
    return "&".join(
        f"{quote(k)}={quote(v.encode('utf-8', 'surrogatepass'), safe='')}"
        for k, v in params.items()
    )


def _segment(value: str) -> str:
    return quote(value.encode("utf-8", "surrogatepass"), safe="") or "x"


@dataclass
class Call:
    method: str
    path: str
    body: bytes
    headers: dict[str, str]


CALLS = st.one_of(
    st.builds(
        lambda t, p, verb, body, h: Call("POST", f"/admin/circuits/{t}/{p}/{verb}", body, h),
        TENANTS.map(_segment),
        PROVIDERS.map(_segment),
        st.sampled_from(["open", "reset"]),
        BODIES,
        CREDENTIALS,
    ),
    st.builds(
        lambda path, q, h: Call("GET", f"{path}?{_query(q)}", b"", h),
        st.sampled_from(["/admin/events", "/admin/summary", "/admin/circuits", "/admin/providers"]),
        QUERIES,
        CREDENTIALS,
    ),
    st.builds(
        lambda t, p, h: Call("GET", f"/admin/circuits/{t}/{p}", b"", h),
        TENANTS.map(_segment),
        PROVIDERS.map(_segment),
        CREDENTIALS,
    ),
)


@pytest.fixture
def in_process(tmp_path: Path) -> Iterator[TestClient]:
    app = create_app(settings_for("http://127.0.0.1:9", tmp_path))
    with TestClient(app, base_url="http://gateway", raise_server_exceptions=False) as client:
        yield client


@settings(
    max_examples=500,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(calls=st.lists(CALLS, min_size=1, max_size=3))
def test_any_admin_input_is_answered_below_500_and_changes_nothing_when_refused(
    in_process: TestClient, calls: list[Call]
) -> None:
    http = in_process
    for call in calls:
        pair, _, verb = call.path.rpartition("/")
        # one circuit's page: not a redirect (empty segments redirect to the list)
        page = http.get(pair, headers=OPS, follow_redirects=False)
        watched = call.method == "POST" and page.status_code == 200
        # what a refused change must not have done: forced it open, or closed it
        done = "forced_open" if verb == "open" else "closed"
        was_done = watched and page.json()["state"] == done
        response = http.request(
            call.method,
            call.path,
            content=call.body,
            headers={**call.headers, "content-type": "application/json"},
        )
        assert response.status_code < 500, (call, response.text)
        if watched and not was_done and response.status_code >= 400:
            after = http.get(pair, headers=OPS, follow_redirects=False)
            assert after.json()["state"] != done, call
    for path in ("/metrics", "/admin/circuits", "/admin/providers"):
        assert http.get(path, headers=OPS).status_code == 200, path
