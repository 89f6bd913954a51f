"""`/v1/messages` answers errors as Anthropic does, the tenancy middleware's refusals
included, with a `request-id` header beside `x-request-id`; the OpenAI endpoints keep
OpenAI's shape and no `request-id`."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import anthropic
import httpx2
import pytest
from anthropic.types import MessageParam

from resilience.chaos import Fault
from tests.gateway.configured import anthropic_sdk, auth, serve
from tests.support.gateway import Running

HELLO: list[MessageParam] = [{"role": "user", "content": "hello"}]
TYPES = {
    "invalid_request_error",
    "authentication_error",
    "permission_error",
    "not_found_error",
    "rate_limit_error",
    "api_error",
    "overloaded_error",
}


@pytest.fixture
async def running(tmp_path: Path) -> AsyncIterator[Running]:
    async with serve(tmp_path, server={"max_body_bytes": 4096}) as (running, _):
        yield running


def assert_anthropic_error(response: httpx2.Response, error_type: str) -> dict[str, Any]:
    body: dict[str, Any] = response.json()
    assert set(body) == {"type", "error", "request_id"}, body
    assert body["type"] == "error" and set(body["error"]) == {"type", "message"}
    assert body["error"]["type"] == error_type and error_type in TYPES
    assert body["request_id"] == response.headers["request-id"] == response.headers["x-request-id"]
    return body


CASES: list[tuple[str, dict[str, str] | None, Any, int, str]] = [
    ("no_key", {}, {"model": "chat"}, 401, "authentication_error"),
    ("wrong_key", {"x-api-key": "nope"}, {"model": "chat"}, 401, "authentication_error"),
    ("no_max_tokens", None, {"model": "chat", "messages": HELLO}, 400, "invalid_request_error"),
    ("not_json", None, "{", 400, "invalid_request_error"),
    (
        "unknown_route",
        None,
        {"model": "nope", "max_tokens": 5, "messages": HELLO},
        404,
        "not_found_error",
    ),
    (
        "too_large",
        None,
        {"model": "chat", "max_tokens": 5, "messages": [{"role": "user", "content": "x" * 5000}]},
        413,
        "invalid_request_error",
    ),
]


@pytest.mark.parametrize(
    ("name", "headers", "body", "status", "error_type"), CASES, ids=[c[0] for c in CASES]
)
async def test_each_refusal_is_anthropic_shaped(
    running: Running,
    name: str,
    headers: dict[str, str] | None,
    body: Any,
    status: int,
    error_type: str,
) -> None:
    sent = auth("acme") if headers is None else headers
    if isinstance(body, str):
        response = await running.http.post(
            "/v1/messages", headers={**sent, "content-type": "application/json"}, content=body
        )
    else:
        response = await running.http.post("/v1/messages", headers=sent, json=body)
    assert response.status_code == status
    assert_anthropic_error(response, error_type)


async def test_the_middleware_refuses_below_v1_messages_in_anthropics_shape(
    running: Running,
) -> None:
    response = await running.http.post("/v1/messages/count_tokens", json={"model": "chat"})
    assert response.status_code == 401
    assert_anthropic_error(response, "authentication_error")


async def test_every_target_down_is_an_overloaded_error_that_stops_sdk_retries(
    running: Running,
) -> None:
    running.chaos.add_fault(Fault(status=503), upstream="primary")
    running.chaos.add_fault(Fault(status=529), upstream="claude")
    for stream in (False, True):
        response = await running.http.post(
            "/v1/messages",
            headers=auth("globex"),
            json={"model": "chat", "max_tokens": 5, "messages": HELLO, "stream": stream},
        )
        assert response.status_code == 503
        assert_anthropic_error(response, "overloaded_error")
        assert response.headers["x-should-retry"] == "false"
        assert int(response.headers["retry-after"]) >= 1


async def test_the_anthropic_sdk_raises_its_own_errors_with_the_request_id(
    running: Running,
) -> None:
    client = anthropic_sdk(running, "acme")
    with pytest.raises(anthropic.NotFoundError) as missing:
        await client.messages.create(model="nope", max_tokens=5, messages=HELLO)
    assert missing.value.request_id == missing.value.response.headers["x-request-id"]
    assert isinstance(missing.value.body, dict)
    assert missing.value.body["error"]["message"].startswith("unknown route 'nope'")
    with pytest.raises(anthropic.AuthenticationError):
        await anthropic.AsyncAnthropic(
            api_key="wrong", base_url="http://gateway", max_retries=0, http_client=running.http
        ).messages.create(model="chat", max_tokens=5, messages=HELLO)


async def test_answers_carry_request_id_only_on_anthropic_paths(running: Running) -> None:
    client = anthropic_sdk(running, "acme")
    raw = await client.messages.with_raw_response.create(
        model="chat", max_tokens=5, messages=HELLO, extra_headers={"x-request-id": "req-7"}
    )
    assert raw.headers["request-id"] == raw.headers["x-request-id"] == "req-7"
    assert raw.request_id == "req-7"
    openai = await running.http.post(
        "/v1/chat/completions", headers=auth("acme"), json={"model": "chat", "messages": HELLO}
    )
    assert "request-id" not in openai.headers and openai.headers["x-request-id"]
    refused = await running.http.post("/v1/chat/completions", json={})
    assert "request-id" not in refused.headers
    assert set(refused.json()["error"]) == {"message", "type", "param", "code"}


async def test_an_invalid_tenant_header_is_anthropic_shaped_in_header_mode(
    tmp_path: Path,
) -> None:
    async with serve(tmp_path, server={"tenant_from": "header"}) as (running, _):
        response = await running.http.post(
            "/v1/messages", headers={"x-tenant-id": "../acme"}, json={"model": "chat"}
        )
        assert response.status_code == 400
        assert_anthropic_error(response, "invalid_request_error")
        served = await running.http.post(
            "/v1/messages",
            headers={"x-tenant-id": "acme"},
            json={"model": "chat", "max_tokens": 5, "messages": HELLO},
        )
        assert served.status_code == 200 and served.json()["type"] == "message"
