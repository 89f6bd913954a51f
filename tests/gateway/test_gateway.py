"""The gateway used through the real openai and anthropic SDKs, and its admin API."""

from __future__ import annotations

from collections.abc import Iterator, MutableMapping, Sequence
from typing import Any

import anthropic
import httpx2
import openai
import pytest
from anthropic.types import MessageParam
from openai.types.chat import ChatCompletionUserMessageParam
from prometheus_client.parser import text_string_to_metric_families
from starlette.routing import BaseRoute, Mount

from resilience.chaos import Fault
from resilience.gateway.api import _CountedAfter
from tests.support.gateway import KEYS, Running


def openai_client(running: Running, tenant: str = "acme") -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(
        api_key=KEYS[tenant], base_url="http://gateway/v1", max_retries=0, http_client=running.http
    )


def anthropic_client(running: Running, tenant: str = "acme") -> anthropic.AsyncAnthropic:
    return anthropic.AsyncAnthropic(
        api_key=KEYS[tenant], base_url="http://gateway", max_retries=0, http_client=running.http
    )


MESSAGES = [{"role": "user", "content": "hello gateway"}]
OPENAI_MESSAGES: list[ChatCompletionUserMessageParam] = [
    {"role": "user", "content": "hello gateway"}
]
ANTHROPIC_MESSAGES: list[MessageParam] = [{"role": "user", "content": "hello gateway"}]


async def test_chat_completions_through_the_openai_sdk(running: Running) -> None:
    raw = await openai_client(running).chat.completions.with_raw_response.create(
        model="chat",
        messages=OPENAI_MESSAGES,
    )
    completion = raw.parse()
    assert completion.choices[0].message.content
    assert completion.choices[0].finish_reason == "stop"
    assert raw.headers["x-resilience-provider"] == "primary"
    assert raw.headers["x-resilience-model"] == "gpt-4.1"
    assert raw.headers["x-resilience-attempts"] == "1"
    assert raw.headers["x-request-id"]


async def test_chat_completions_streamed_through_the_openai_sdk(running: Running) -> None:
    stream = await openai_client(running).chat.completions.create(
        model="chat",
        messages=OPENAI_MESSAGES,
        stream=True,
    )
    pieces = []
    finish = None
    async for chunk in stream:
        for choice in chunk.choices:
            pieces.append(choice.delta.content or "")
            finish = choice.finish_reason or finish
    assert "".join(pieces).startswith("ok: hello gateway")
    assert finish == "stop"


async def test_messages_plain_and_streamed_through_the_anthropic_sdk(running: Running) -> None:
    client = anthropic_client(running)
    message = await client.messages.create(model="chat", max_tokens=50, messages=ANTHROPIC_MESSAGES)
    assert message.content[0].type == "text" and message.content[0].text.startswith("ok: hello")
    assert message.stop_reason == "end_turn"
    events = await client.messages.create(
        model="chat", max_tokens=50, messages=ANTHROPIC_MESSAGES, stream=True
    )
    kinds = [event.type async for event in events]
    assert kinds[0] == "message_start" and kinds[-1] == "message_stop"
    assert "content_block_delta" in kinds


async def test_embeddings_through_the_openai_sdk(running: Running) -> None:
    result = await openai_client(running).embeddings.create(model="embed", input=["a", "b"])
    assert len(result.data) == 2 and len(result.data[0].embedding) == 8


async def test_fallback_and_all_targets_failed_map_to_headers_and_503(running: Running) -> None:
    running.chaos.add_fault(Fault(status=503), upstream="primary")
    raw = await openai_client(running).chat.completions.with_raw_response.create(
        model="chat",
        messages=OPENAI_MESSAGES,
    )
    assert raw.headers["x-resilience-provider"] == "claude"
    assert raw.headers["x-resilience-attempts"] == "3"
    running.chaos.add_fault(Fault(status=529), upstream="claude")
    response = await running.http.post(
        "/v1/chat/completions",
        headers=running.auth("acme"),
        json={"model": "chat", "messages": MESSAGES},
    )
    assert response.status_code == 503
    assert int(response.headers["retry-after"]) >= 1
    assert response.json()["error"]["code"] == "all_targets_failed"


async def test_caller_errors_keep_the_upstream_4xx(running: Running) -> None:
    running.chaos.add_fault(Fault(status=400, message="bad role"), upstream="primary")
    with pytest.raises(openai.BadRequestError) as info:
        await openai_client(running).chat.completions.create(model="chat", messages=OPENAI_MESSAGES)
    assert info.value.status_code == 400
    assert running.chaos.hit_count(upstream="claude") == 0


async def test_stream_failing_after_output_began_ends_with_an_error_event(running: Running) -> None:
    running.chaos.add_fault(Fault(drop_after_chunks=2), upstream="primary")
    response = await running.http.post(
        "/v1/chat/completions",
        headers=running.auth("acme"),
        json={"model": "chat", "messages": MESSAGES, "stream": True},
    )
    body = response.text
    assert response.status_code == 200
    assert '"error"' in body and "stream_interrupted" in body
    assert "[DONE]" not in body
    running.chaos.add_fault(Fault(error_event_after_chunks=2), upstream="primary")
    response = await running.http.post(
        "/v1/messages",
        headers=running.auth("acme"),
        json={"model": "primary:gpt-4.1", "max_tokens": 20, "messages": MESSAGES, "stream": True},
    )
    assert "event: error" in response.text and "event: message_stop" not in response.text


@pytest.mark.parametrize(
    ("body", "status", "fragment"),
    [
        ({"model": "chat"}, 400, "messages: expected a"),
        (
            {"model": "chat", "messages": [{"role": "robot", "content": "x"}]},
            400,
            "messages[0].role",
        ),
        ({"model": "nope", "messages": MESSAGES}, 404, "unknown route 'nope'"),
        ({"model": "chat", "messages": MESSAGES, "max_tokens": -1}, 400, "max_tokens"),
    ],
)
async def test_bad_bodies_get_clear_openai_shaped_errors(
    running: Running, body: dict[str, object], status: int, fragment: str
) -> None:
    response = await running.http.post(
        "/v1/chat/completions", headers=running.auth("acme"), json=body
    )
    assert response.status_code == status
    assert fragment in response.json()["error"]["message"]


async def test_oversized_and_deeply_nested_bodies_are_refused(running: Running) -> None:
    big = await running.http.post(
        "/v1/chat/completions",
        headers=running.auth("acme"),
        json={"model": "chat", "messages": [{"role": "user", "content": "x" * 70_000}]},
    )
    assert big.status_code == 413
    bomb = "[" * 100_000 + "]" * 100_000
    nested = await running.http.post(
        "/v1/chat/completions",
        headers={**running.auth("acme"), "content-type": "application/json"},
        content=bomb,
    )
    assert nested.status_code in (400, 413)


async def test_unknown_gateway_key_is_401(running: Running) -> None:
    response = await running.http.post(
        "/v1/chat/completions", headers={"authorization": "Bearer nope"}, json={"model": "chat"}
    )
    assert response.status_code == 401


# -- admin ------------------------------------------------------------------------------------


async def test_admin_routes_need_a_token(running: Running) -> None:
    paths = [
        ("GET", "/admin/circuits"),
        ("GET", "/admin/circuits/acme/primary"),
        ("POST", "/admin/circuits/acme/primary/reset"),
        ("POST", "/admin/circuits/acme/primary/open"),
        ("GET", "/admin/events"),
        ("GET", "/admin/summary?since=2026-01-01T00:00:00Z&until=2026-12-31T00:00:00Z"),
        ("GET", "/admin/providers"),
    ]
    for method, path in paths:
        for headers in ({}, {"authorization": "Bearer wrong"}):
            response = await running.http.request(method, path, headers=headers)
            assert response.status_code == 401, (method, path)


async def test_tenant_limited_token_sees_and_changes_only_its_tenant(running: Running) -> None:
    limited = running.admin("acme-support")
    for method, path in [
        ("GET", "/admin/circuits?tenant=globex"),
        ("GET", "/admin/circuits/globex/primary"),
        ("POST", "/admin/circuits/globex/primary/reset"),
        ("POST", "/admin/circuits/*/primary/open"),
        ("GET", "/admin/events?tenant=globex"),
        ("GET", "/admin/summary?since=2026-01-01T00:00:00Z&until=2026-12-31T00:00:00Z"),
        ("GET", "/admin/providers"),
    ]:
        response = await running.http.request(method, path, headers=limited)
        assert response.status_code == 403, (method, path)
    await openai_client(running, "globex").chat.completions.create(
        model="chat", messages=OPENAI_MESSAGES
    )
    await openai_client(running, "acme").chat.completions.create(
        model="chat", messages=OPENAI_MESSAGES
    )
    listed = (await running.http.get("/admin/circuits", headers=limited)).json()["circuits"]
    assert {c["tenant"] for c in listed} == {"acme"}
    full = (await running.http.get("/admin/circuits", headers=running.admin())).json()["circuits"]
    assert {"acme", "globex"} <= {c["tenant"] for c in full}


async def test_force_open_and_reset_change_routing_and_are_audited(
    running_on_each_database: Running,
) -> None:
    running = running_on_each_database
    opened = await running.http.post(
        "/admin/circuits/acme/primary/open",
        headers=running.admin(),
        json={"reason": "key rotation"},
    )
    assert opened.status_code == 200 and opened.json()["state"] == "forced_open"
    assert set(opened.json()) == {
        "tenant",
        "provider",
        "state",
        "failures",
        "opened_at",
        "retry_at",
    }
    raw = await openai_client(running).chat.completions.with_raw_response.create(
        model="chat",
        messages=OPENAI_MESSAGES,
    )
    assert raw.headers["x-resilience-provider"] == "claude"
    reset = await running.http.post(
        "/admin/circuits/acme/primary/reset", headers=running.admin(), json={}
    )
    assert reset.json()["state"] == "closed"
    raw = await openai_client(running).chat.completions.with_raw_response.create(
        model="chat",
        messages=OPENAI_MESSAGES,
    )
    assert raw.headers["x-resilience-provider"] == "primary"
    sink = running.gateway.sink
    assert sink is not None
    await sink.aclose()  # flush, then look at the audit table through the API
    await sink.start()
    events = (await running.http.get("/admin/events?tenant=acme", headers=running.admin())).json()[
        "events"
    ]
    assert [(e["reason"], e["actor"]) for e in events] == [
        ("admin_reset", "ops"),
        ("admin_open", "ops"),
    ]
    assert events[1]["detail"] == {"note": "key rotation"}


async def test_a_target_opened_without_an_end_answers_503_with_a_finite_retry_after(
    running: Running,
) -> None:
    """An admin open with no duration waits forever (inf): the header still says a number
    (this answered 500, an OverflowError, before)."""
    opened = await running.http.post(
        "/admin/circuits/acme/primary/open", headers=running.admin(), json={}
    )
    assert opened.json()["retry_at"] is None
    with pytest.raises(openai.APIStatusError) as refused:
        await openai_client(running).chat.completions.create(
            model="primary:gpt-4.1", messages=OPENAI_MESSAGES
        )
    assert refused.value.status_code == 503
    assert refused.value.response.headers["retry-after"] == "60"


async def test_health_and_readiness(running: Running) -> None:
    assert (await running.http.get("/healthz")).json() == {"status": "ok"}
    ready = await running.http.get("/readyz")
    assert ready.status_code == 200 and ready.json()["database"] is True
    assert ready.json()["breakers"] == {"kind": "memory", "shared": False}


async def test_metrics_parse_and_count_requests_breakers_and_audit(running: Running) -> None:
    running.chaos.add_fault(Fault(status=503), upstream="primary")
    await openai_client(running).chat.completions.create(model="chat", messages=OPENAI_MESSAGES)
    response = await running.http.get("/metrics")
    assert response.status_code == 200
    families = {f.name: f for f in text_string_to_metric_families(response.text)}
    requests = {
        (s.labels["tenant"], s.labels["provider"], s.labels["outcome"]): s.value
        for s in families["resilience_requests"].samples
        if s.name == "resilience_requests_total"
    }
    assert requests[("acme", "claude", "ok")] == 1
    fallbacks = [s for s in families["resilience_fallbacks"].samples if s.name.endswith("_total")]
    assert fallbacks[0].value == 1
    states = {
        (s.labels["provider"], s.labels["state"]) for s in families["resilience_breakers"].samples
    }
    assert ("primary", "open") in states
    assert "resilience_audit_queued" in families
    assert "resilience_upstream_latency_seconds" in families


async def test_an_answer_is_counted_after_it_is_sent_and_when_the_caller_is_gone() -> None:
    """The metrics count of an answer runs once its messages are sent, or failed to be."""
    seen: list[str] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.disconnect"}

    async def send(message: MutableMapping[str, Any]) -> None:
        seen.append(message["type"])

    scope = {"type": "http"}
    await _CountedAfter(b"{}", {}, lambda: seen.append("counted"))(scope, receive, send)
    assert seen == ["http.response.start", "http.response.body", "counted"]

    async def gone(message: MutableMapping[str, Any]) -> None:
        raise OSError("the caller went away")

    seen.clear()
    with pytest.raises(OSError):
        await _CountedAfter(b"{}", {}, lambda: seen.append("counted"))(scope, receive, gone)
    assert seen == ["counted"]


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/v1/chat/completions", {"model": "chat", "messages": MESSAGES}),
        ("/v1/messages", {"model": "chat", "max_tokens": 16, "messages": MESSAGES}),
        ("/v1/embeddings", {"model": "embed", "input": "hello"}),
    ],
)
async def test_a_calls_usage_record_is_journaled_before_its_answer_is_sent(
    running: Running, path: str, body: dict[str, Any]
) -> None:
    """An answer the caller got has its usage row even if the process is killed right
    after: the record is in the journal before the answer's last message leaves."""
    sink = running.gateway.sink
    assert sink is not None
    when_sent: list[tuple[int, int]] = []

    async def watched(scope: Any, receive: Any, send: Any) -> None:
        async def watching(message: MutableMapping[str, Any]) -> None:
            if message["type"] == "http.response.body" and not message.get("more_body"):
                when_sent.append((sink.stats.usage_received, sink.stats.journaled))
            await send(message)

        await running.app(scope, receive, watching)

    received, journaled = sink.stats.usage_received, sink.stats.journaled
    transport = httpx2.ASGITransport(app=watched)
    async with httpx2.AsyncClient(transport=transport, base_url="http://gateway") as http:
        response = await http.post(path, json=body, headers=running.auth("acme"))
    assert response.status_code == 200, response.text
    assert when_sent == [(received + 1, journaled + 1)]
    assert sink.stats.usage_received == received + 1


async def test_admin_providers_reports_health_per_provider_and_model(running: Running) -> None:
    running.chaos.add_fault(Fault(status=503), upstream="primary", times=1)
    for _ in range(3):
        await openai_client(running).chat.completions.create(model="chat", messages=OPENAI_MESSAGES)
    response = await running.http.get("/admin/providers", headers=running.admin())
    assert response.status_code == 200
    rows = {(r["provider"], r["model"]): r for r in response.json()["providers"]}
    primary = rows[("primary", "gpt-4.1")]
    # 3 requests, 2 attempts allowed each: the first failed once then retried on primary.
    assert (primary["calls_total"], primary["errors_total"], primary["in_flight"]) == (4, 1, 0)
    assert primary["error_rate"] == 0.25
    assert primary["p50_ms"] > 0 and primary["p99_ms"] >= primary["p50_ms"]
    assert (primary["rpm"], primary["rate_limit_skips"]) == (0.0, 0)
    assert ("claude", "claude-sonnet-4-6") not in rows  # never called


async def test_metrics_expose_health_and_rate_limit_skips(running: Running) -> None:
    await openai_client(running).chat.completions.create(model="chat", messages=OPENAI_MESSAGES)
    text = (await running.http.get("/metrics")).text
    families = {f.name: f for f in text_string_to_metric_families(text)}
    in_flight = families["resilience_upstream_in_flight"].samples
    assert [(s.labels["provider"], s.labels["model"], s.value) for s in in_flight] == [
        ("primary", "gpt-4.1", 0.0)
    ]
    quantiles = {
        s.labels["quantile"] for s in families["resilience_upstream_latency_recent_seconds"].samples
    }
    assert quantiles == {"0.5", "0.99", "ewma"}
    assert families["resilience_upstream_error_rate"].samples[0].value == 0.0
    skips = {
        s.labels["provider"]: s.value
        for s in families["resilience_rate_limit_skips"].samples
        if s.name.endswith("_total")
    }
    assert skips == {"primary": 0.0, "claude": 0.0}


def route_paths(routes: Sequence[BaseRoute], prefix: str = "") -> Iterator[str]:
    """Every route's path, those of a mounted app (the admin API at /admin) included."""
    for route in routes:
        if isinstance(route, Mount):
            yield from route_paths(route.routes, prefix + route.path)
        else:
            yield prefix + getattr(route, "path_format", "")


async def test_openapi_document_lists_every_route(running: Running) -> None:
    response = await running.http.get("/openapi.json")
    assert response.status_code == 200
    paths = set(response.json()["paths"])
    routes = set(route_paths(running.app.routes)) - {
        "/openapi.json",
        "/admin/",
        "/admin/summary",
    }
    assert "/admin/circuits/{tenant}/{provider}/reset" in routes
    assert routes <= paths


async def test_the_upstreams_own_refusal_comes_back_as_it_sent_it(running: Running) -> None:
    """A 400 of a same-format upstream keeps its status, `param` and `code` (the gateway does
    not reword what the provider said of the caller's request), and is not retried."""
    running.chaos.add_fault(
        Fault(status=400, error_code="invalid_value", message="messages[0].content: too odd"),
        upstream="primary",
    )
    response = await running.http.post(
        "/v1/chat/completions",
        headers=running.auth("acme"),
        json={"model": "primary:gpt-4.1", "messages": MESSAGES},
    )
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "invalid_value"
    assert error["message"] == "messages[0].content: too odd"
    assert response.headers["x-should-retry"] == "false"
    assert running.chaos.hit_count(upstream="primary") == 1
