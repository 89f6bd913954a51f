"""Requests that cannot leave must not count against providers, nor break the gateway.

Each finding's exact input goes to the gateway over a real socket (uvicorn on loopback, the
chaos upstream on another), in header mode, from three tenants, twice each. Before the
fixes these opened the provider-wide breaker (the SDK failed to encode the body, and that
was blamed on the provider), answered 500, or dropped the connection after the upstream
had been called and paid for. Now: a 400 naming the field, no upstream call, no breaker or
health figure moved, the admin pages and `/metrics` still answer, and an innocent tenant
is served.

The library gets the same protection: `ResilientClient.complete` called directly.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import httpx2
import pytest

from resilience.chaos import ChaosUpstream
from resilience.client.resilient import ResilientClient
from resilience.config.load import parse_config
from resilience.errors import ErrorKind, InvalidRequestError, ProviderError
from resilience.gateway.api import failure_response
from resilience.gateway.factory import create_app
from resilience.models import ChatRequest, EmbeddingRequest, Message
from resilience.providers import ProviderSettings, build_provider
from resilience.routing.health import HealthSnapshot
from resilience.routing.routes import Route
from resilience.serving import serve_asgi
from resilience.tenancy.resolvers import hash_key
from tests.support.gateway import ADMIN, settings_for

HOSTILE_TENANTS = ("t1", "t2", "t3")
INNOCENT = "innocent"
OK_BODY = {"model": "openai:gpt-4.1", "messages": [{"role": "user", "content": "hi"}]}


def config(root: str) -> dict[str, Any]:
    """Providers named as in the findings; breakers and retries at their defaults but fast."""
    return {
        "server": {"tenant_from": "header"},
        "retry": {"max_attempts": 2, "base_delay_s": 0.001, "max_delay_s": 0.002},
        "providers": {
            "openai": {
                "kind": "openai",
                "api_key_env": "UPSTREAM_KEY",
                "base_url": f"{root}/openai/v1",
            },
            "claude": {
                "kind": "anthropic",
                "api_key_env": "UPSTREAM_KEY",
                "base_url": f"{root}/claude",
            },
        },
        "routes": {"chat": {"targets": ["openai:gpt-4.1", "claude:claude-sonnet-4-6"]}},
        "admin": {"tokens": {"ops": {"token_sha256": hash_key(ADMIN["ops"])}}},
    }


@dataclass
class Served:
    """The gateway and the chaos upstream, each behind its own loopback socket."""

    root: str
    http: httpx2.AsyncClient
    chaos: ChaosUpstream

    async def post(self, path: str, body: bytes, tenant: str) -> httpx2.Response:
        headers = {"x-tenant-id": tenant, "content-type": "application/json"}
        return await self.http.post(f"{self.root}{path}", content=body, headers=headers)

    async def admin(self, path: str) -> httpx2.Response:
        headers = {"authorization": f"Bearer {ADMIN['ops']}"}
        return await self.http.get(f"{self.root}{path}", headers=headers)

    async def state(self) -> tuple[int, Any, Any]:
        """(upstream hits, every breaker, every health row): what a hostile call must not move."""
        circuits = await self.admin("/admin/circuits")
        providers = await self.admin("/admin/providers")
        assert (circuits.status_code, providers.status_code) == (200, 200)
        return self.chaos.hit_count(), circuits.json(), providers.json()

    async def serve_innocent(self) -> None:
        for model in ("openai:gpt-4.1", "chat"):
            body = {**OK_BODY, "model": model}
            response = await self.http.post(
                f"{self.root}/v1/chat/completions", json=body, headers={"x-tenant-id": INNOCENT}
            )
            assert response.status_code == 200, response.text
            assert response.headers["x-resilience-model"] == "gpt-4.1"


@pytest.fixture
async def served(tmp_path: Path) -> AsyncIterator[Served]:
    chaos = ChaosUpstream()
    async with chaos.serve() as upstream:
        base = settings_for(upstream, tmp_path)
        parsed = parse_config(config(upstream), environ=base.environ)
        app = create_app(replace(base, config=parsed))
        async with (
            serve_asgi(app, lifespan="on") as root,
            httpx2.AsyncClient(timeout=30) as http,
        ):
            yield Served(root, http, chaos)


@dataclass(frozen=True)
class Hostile:
    name: str
    path: str
    body: bytes
    field: str
    """The start of the error message: the field the caller must fix."""


def chat(fields: str, model: str = "openai:gpt-4.1", content: str = "hi") -> bytes:
    """A chat body written as JSON text, so escapes such as `\\udc80` reach the gateway as is."""
    text = (
        f'{{"model": "{model}", "messages": [{{"role": "user", "content": "{content}"}}]{fields}}}'
    )
    return text.encode("utf-8")


CASES = [
    # 1. never sent, yet blamed on the provider
    Hostile(
        "lone_surrogate",
        "/v1/chat/completions",
        chat("", content="hi \\udc80"),
        "messages[0].content",
    ),
    Hostile(
        "lone_surrogate_stream",
        "/v1/chat/completions",
        chat(', "stream": true', content="hi \\udc80"),
        "messages[0].content",
    ),
    Hostile("nan_temperature", "/v1/chat/completions", chat(', "temperature": NaN'), "temperature"),
    Hostile("infinity_top_p", "/v1/chat/completions", chat(', "top_p": -Infinity'), "top_p"),
    Hostile("huge_number", "/v1/chat/completions", chat(', "temperature": 1e400'), "temperature"),
    Hostile(
        "lone_surrogate_in_a_deep_key",
        "/v1/chat/completions",
        chat(
            ', "tools": [{"type": "function", "function": {"name": "f", "parameters": '
            '{"type": "object", "properties": {"\\udc80": {"type": "string"}}}}}]'
        ),
        "tools[0]",
    ),
    Hostile(
        "raw_surrogate_bytes",  # CESU-8: json.loads lets a raw surrogate in
        "/v1/chat/completions",
        chat("", content="hi ").replace(b"hi ", b"hi \xed\xb2\x80"),
        "messages[0].content",
    ),
    Hostile(
        "lone_surrogate_messages_api",
        "/v1/messages",
        b'{"model": "claude:claude-sonnet-4-6", "max_tokens": 16, '
        b'"messages": [{"role": "user", "content": "hi \\udc80"}]}',
        "messages[0].content",
    ),
    Hostile(
        "lone_surrogate_embeddings",
        "/v1/embeddings",
        b'{"model": "openai:text-embedding-3-small", "input": ["ok", "\\ud800"]}',
        "input[1]",
    ),
    # 2. a name no provider could have, refused before anything is made for it
    Hostile(
        "lone_surrogate_in_model",
        "/v1/chat/completions",
        chat("", model="openai:x\\udc80"),
        "model",
    ),
    # 7. echoed into a header after the upstream was called and paid for
    Hostile(
        "crlf_in_model",
        "/v1/chat/completions",
        chat("", model="openai:gpt-4.1\\r\\nx-a: b"),
        "model",
    ),
    Hostile(
        "nul_in_model", "/v1/chat/completions", chat("", model="openai:gpt-4.1\\u0000"), "model"
    ),
    Hostile("non_ascii_model", "/v1/chat/completions", chat("", model="openai:模型"), "model"),
    Hostile(
        "overlong_model", "/v1/chat/completions", chat("", model="openai:" + "m" * 300), "model"
    ),
]


PASSED_ON = [
    Hostile(
        "control_character_in_a_tool_name",
        "/v1/chat/completions",
        chat(', "tools": [{"type": "function", "function": {"name": "get\\u0000weather"}}]'),
        "tools[0].function.name",
    ),
    Hostile(
        "control_character_in_a_tool_call_id",
        "/v1/messages",
        b'{"model": "claude:claude-sonnet-4-6", "max_tokens": 16, "messages": ['
        b'{"role": "assistant", "content": [{"type": "tool_use", "id": "t\\r\\n1", '
        b'"name": "f", "input": {}}]}, {"role": "user", "content": "go"}]}',
        "messages[0].content[0].id",
    ),
    Hostile(
        "control_character_in_the_user_id",
        "/v1/chat/completions",
        chat(', "user": "u\\u001b[31m"'),
        "user",
    ),
]
"""Strings JSON carries escaped: a body of the target's own format goes upstream as it is,
and the provider judges them (an Anthropic or OpenAI 400 counts on no breaker)."""


@pytest.mark.parametrize("case", PASSED_ON, ids=[c.name for c in PASSED_ON])
async def test_control_characters_in_identifiers_reach_the_upstream_as_sent(
    served: Served, case: Hostile
) -> None:
    response = await served.post(case.path, case.body, HOSTILE_TENANTS[0])
    assert response.status_code == 200, response.text
    received = served.chaos.hits[-1].body
    assert received is not None
    sent = json.loads(case.body)
    assert received == {**sent, "model": sent["model"].split(":", 1)[1]}


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
async def test_a_request_that_cannot_leave_is_the_callers_400_and_moves_nothing(
    served: Served, case: Hostile
) -> None:
    await served.serve_innocent()  # every health row and breaker the test watches exists
    before = await served.state()
    for tenant in HOSTILE_TENANTS:
        for _ in range(2):
            response = await served.post(case.path, case.body, tenant)
            assert response.status_code == 400, response.text
            error = response.json()["error"]
            if case.path == "/v1/messages":  # Anthropic's shape: a type, no code
                assert error["type"] == "invalid_request_error", error
            else:
                assert error["code"] == "invalid_body", error
                assert (error["param"] or "body").startswith(case.field), error
            assert error["message"].startswith(case.field), error
    assert await served.state() == before  # no upstream call, no breaker, no health figure
    for page in ("/metrics", "/admin/circuits", "/admin/providers"):
        assert (await served.admin(page)).status_code == 200, page
    await served.serve_innocent()
    assert served.chaos.hit_count() == before[0] + 2


async def test_refused_model_names_leave_no_trace_in_metrics_or_health(served: Served) -> None:
    await served.serve_innocent()
    for model in ("openai:x\\udc80", "openai:模型", "openai:gpt-4.1\\u0000"):
        response = await served.post("/v1/chat/completions", chat("", model=model), "t1")
        assert response.status_code == 400
    metrics = (await served.admin("/metrics")).text
    rows = (await served.admin("/admin/providers")).json()["providers"]
    assert {(r["provider"], r["model"]) for r in rows} == {("openai", "gpt-4.1")}
    assert "模型" not in metrics and "udc80" not in metrics


# -- the library ---------------------------------------------------------------------------------


@contextlib.asynccontextmanager
async def library() -> AsyncIterator[tuple[ResilientClient, ChaosUpstream]]:
    chaos = ChaosUpstream()
    async with chaos.serve() as root:
        providers = {
            "openai": build_provider(
                "openai", ProviderSettings(kind="openai", api_key="k", base_url=f"{root}/openai/v1")
            ),
            "claude": build_provider(
                "claude", ProviderSettings(kind="anthropic", api_key="k", base_url=f"{root}/c")
            ),
        }
        route = Route.of("chat", "openai:gpt-4.1", "claude:claude-sonnet-4-6")
        client = ResilientClient(providers=providers, routes={"chat": route})
        try:
            yield client, chaos
        finally:
            await client.aclose()


Circuit = tuple[str, str, str, int]


def figures(client: ResilientClient) -> tuple[tuple[Circuit, ...], tuple[HealthSnapshot, ...]]:
    circuits = tuple(
        (s.tenant, s.provider, str(s.state), s.failures) for s in client.registry.circuits()
    )
    return circuits, tuple(client.health.snapshot())


HI = ChatRequest(messages=(Message("user", "hi"),))
UNSENDABLE = [
    (ChatRequest(messages=(Message("user", "hi \udc80"),)), "messages[0].content: lone surrogate"),
    (replace(HI, temperature=float("nan")), "temperature: not a finite number"),
    (replace(HI, extra={"seed": float("inf")}), "extra.seed: not a finite number"),
    (
        ChatRequest(messages=(Message("user", ({"type": "text", "text": "\ud800"},)),)),
        "messages[0].content[0].text: lone surrogate",
    ),
]


@pytest.mark.parametrize(("request_", "named"), UNSENDABLE, ids=lambda v: str(v)[:30])
async def test_the_library_blames_the_caller_for_a_request_that_never_left(
    request_: ChatRequest, named: str
) -> None:
    async with library() as (client, chaos):
        await client.complete(HI, route="chat", tenant=INNOCENT)
        before = figures(client)
        for tenant in HOSTILE_TENANTS:
            for _ in range(2):
                with pytest.raises(ProviderError) as raised:
                    await client.complete(request_, route="chat", tenant=tenant)
                error = raised.value
                assert (error.kind, error.sent) == (ErrorKind.BAD_REQUEST, False)
                assert error.message.startswith(named), error.message
                assert error.attempt == 1  # neither retried nor moved to the fallback
        assert chaos.hit_count() == 1
        after = figures(client)
        # the hostile tenants' breakers exist now (made before the attempt), all untouched
        assert after[1] == before[1]
        assert {c for c in after[0] if c[0] not in HOSTILE_TENANTS} == set(before[0])
        assert all(c[2] == "closed" and c[3] == 0 for c in after[0] if c[0] in HOSTILE_TENANTS)
        result = await client.complete(HI, route="chat", tenant=INNOCENT)
        assert str(result.target) == "openai:gpt-4.1"


async def test_the_library_stream_and_embeddings_get_the_same_protection() -> None:
    async with library() as (client, chaos):
        for tenant in HOSTILE_TENANTS:
            with pytest.raises(ProviderError) as raised:
                await client.stream(
                    ChatRequest(messages=(Message("user", "\udc80"),)), route="chat", tenant=tenant
                )
            assert (raised.value.kind, raised.value.sent) == (ErrorKind.BAD_REQUEST, False)
            with pytest.raises(ProviderError) as raised:
                await client.embed(
                    EmbeddingRequest(inputs=("ok", "\udfff")), route="openai:e", tenant=tenant
                )
            assert raised.value.message.startswith("inputs[1]: lone surrogate")
        assert chaos.hit_count() == 0
        assert all(s.calls_total == 0 and s.in_flight == 0 for s in client.health.snapshot())
        assert all(c.failures == 0 for c in client.registry.circuits())


@pytest.mark.parametrize(
    "route", ["openai:x\udc80", "openai:模型", "openai:gpt-4.1\r\nx: y", "openai:" + "m" * 300]
)
async def test_the_library_refuses_a_model_name_before_making_anything_for_it(route: str) -> None:
    async with library() as (client, chaos):
        with pytest.raises(InvalidRequestError) as raised:
            await client.complete(HI, route=route, tenant="t1")
        assert raised.value.field == "model"
        assert len(client.health) == 0 and client.registry.circuits() == []
        assert chaos.hit_count() == 0


def test_the_gateway_answers_a_request_that_never_left_with_400_naming_the_field() -> None:
    unsent = ProviderError(
        "messages[0].content: lone surrogate (request not sent)",
        kind=ErrorKind.BAD_REQUEST,
        code="not_sent",
        sent=False,
    )
    response = failure_response(unsent)
    assert response.status_code == 400
    error = json.loads(bytes(response.body))["error"]
    assert (error["code"], error["message"]) == ("invalid_body", unsent.message)
    refused = failure_response(InvalidRequestError("model", "expected 1 to 256 letters"))
    assert refused.status_code == 400
