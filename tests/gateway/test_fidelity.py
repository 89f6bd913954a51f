"""What a client sends is what the upstream gets, or the gateway says which field it cannot
carry: the request fields real clients send, over every kind of route.

- Same format (an OpenAI body to an OpenAI-kind provider, an Anthropic body to an
  Anthropic-kind one): the upstream receives the body exactly as sent, `model` aside.
- Across formats (a route whose first target is of the other kind, whose second is of the
  body's own): the field is carried (the crossed target answers and received the field's
  counterpart), or that target is skipped without a call, its outcome naming the field in
  `x-resilience-skipped`, and the second target answers.
- With no target of the body's own format: carried as above, or 400 naming the field.

One gateway serves the whole module (starting one per test would be most of the run); each
test forgets the upstream's recorded requests first.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import httpx2
import pytest
import pytest_asyncio

from resilience.chaos import ChaosUpstream
from resilience.config.load import parse_config
from resilience.gateway.factory import create_app
from resilience.gateway.settings import Settings
from tests.gateway.configured import anthropic_sdk, auth, config, openai_sdk
from tests.gateway.schemas import assert_valid
from tests.support.clock import FakeClock
from tests.support.gateway import Running

pytestmark = pytest.mark.asyncio(loop_scope="module")

Format = Literal["openai", "anthropic"]
Check = Callable[[dict[str, Any]], None]

CLAUDE, GPT = "claude:claude-sonnet-4-6", "primary:gpt-4.1"
ROUTES = {
    # same format: one target of the body's own kind
    "openai": {"same": [GPT], "cross": [CLAUDE, GPT], "other_only": [CLAUDE]},
    "anthropic": {"same": [CLAUDE], "cross": [GPT, CLAUDE], "other_only": [GPT]},
}
PATHS = {"openai": "/v1/chat/completions", "anthropic": "/v1/messages"}
WEATHER: dict[str, Any] = {
    "type": "object",
    "properties": {"city": {"type": "string"}},
    "required": ["city"],
}
PNG = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJ"  # the start of a PNG; nobody decodes it
EPHEMERAL = {"type": "ephemeral"}


@dataclass(frozen=True)
class Case:
    """Fields added to a minimal body; `cannot` is the field a crossed target cannot carry
    (None: it is carried, and `check` reads the crossed upstream's body for its counterpart)."""

    id: str
    format: Format
    fields: dict[str, Any]
    cannot: str | None = None
    check: Check = field(default=lambda body: None)


def counterpart(path: str, expected: Any) -> Check:
    def check(body: dict[str, Any]) -> None:
        found: Any = body
        for key in path.split("."):
            found = found[int(key)] if isinstance(found, list) else found[key]
        assert found == expected, f"{path}: {found!r} != {expected!r}"

    return check


def nowhere(text: str) -> Check:
    def check(body: dict[str, Any]) -> None:
        assert text not in json.dumps(body)

    return check


def openai_user(*parts: dict[str, Any]) -> dict[str, Any]:
    return {"messages": [{"role": "user", "content": [{"type": "text", "text": "hi"}, *parts]}]}


def anthropic_user(*blocks: dict[str, Any]) -> dict[str, Any]:
    return {"messages": [{"role": "user", "content": [{"type": "text", "text": "hi"}, *blocks]}]}


FUNCTION: dict[str, Any] = {
    "type": "function",
    "function": {"name": "weather", "parameters": WEATHER},
}
STRICT = {"type": "function", "function": {**FUNCTION["function"], "strict": True}}
TOOL = {"name": "weather", "input_schema": WEATHER}
OPENAI_TOOL_TURNS = [
    {"role": "user", "content": "weather in Paris?"},
    {
        "role": "assistant",
        "content": None,
        "tool_calls": [
            {
                "id": "call_1",
                "type": "function",
                "function": {"name": "weather", "arguments": '{"city":"Paris"}'},
            }
        ],
    },
    {"role": "tool", "tool_call_id": "call_1", "content": "rain"},
]
ANTHROPIC_TOOL_TURNS = [
    {"role": "user", "content": "weather in Paris?"},
    {
        "role": "assistant",
        "content": [
            {"type": "tool_use", "id": "toolu_1", "name": "weather", "input": {"city": "Paris"}}
        ],
    },
    {
        "role": "user",
        "content": [{"type": "tool_result", "tool_use_id": "toolu_1", "content": "rain"}],
    },
]

OPENAI_CASES = [
    Case(
        "response_format.json_schema",
        "openai",
        {
            "response_format": {
                "type": "json_schema",
                "json_schema": {"name": "w", "schema": WEATHER},
            }
        },
        cannot="response_format",
    ),
    Case(
        "response_format.json_object",
        "openai",
        {"response_format": {"type": "json_object"}},
        "response_format",
    ),
    Case(
        "tools[].function.strict",
        "openai",
        {"tools": [STRICT]},
        check=counterpart("tools.0.strict", True),
    ),
    Case(
        "tool_choice",
        "openai",
        {"tools": [FUNCTION], "tool_choice": "required"},
        check=counterpart("tool_choice", {"type": "any"}),
    ),
    Case(
        "parallel_tool_calls",
        "openai",
        {"tools": [FUNCTION], "parallel_tool_calls": False},
        check=counterpart("tool_choice", {"type": "auto", "disable_parallel_tool_use": True}),
    ),
    Case(
        "tool messages",
        "openai",
        {"messages": OPENAI_TOOL_TURNS, "tools": [FUNCTION]},
        check=counterpart("messages.2.content.0.tool_use_id", "call_1"),
    ),
    Case("metadata", "openai", {"metadata": {"project": "alpha"}}, cannot="metadata"),
    Case("service_tier flex", "openai", {"service_tier": "flex"}, cannot="service_tier"),
    Case(
        "service_tier default",
        "openai",
        {"service_tier": "default"},
        check=counterpart("service_tier", "standard_only"),
    ),
    Case(
        "prediction",
        "openai",
        {"prediction": {"type": "content", "content": "x = 1"}},
        cannot="prediction",
    ),
    Case("modalities", "openai", {"modalities": ["text", "audio"]}, cannot="modalities"),
    Case("logprobs", "openai", {"logprobs": True}, cannot="logprobs"),
    Case("top_logprobs", "openai", {"top_logprobs": 2, "logprobs": True}, cannot="top_logprobs"),
    Case("seed", "openai", {"seed": 42}, cannot="seed"),
    Case("logit_bias", "openai", {"logit_bias": {"1734": -100}}, cannot="logit_bias"),
    Case("presence_penalty", "openai", {"presence_penalty": 0.5}, cannot="presence_penalty"),
    Case("frequency_penalty", "openai", {"frequency_penalty": 0.5}, cannot="frequency_penalty"),
    Case("reasoning_effort", "openai", {"reasoning_effort": "low"}, cannot="reasoning_effort"),
    Case("verbosity", "openai", {"verbosity": "low"}, cannot="verbosity"),
    Case("web_search_options", "openai", {"web_search_options": {}}, cannot="web_search_options"),
    Case(
        "user", "openai", {"user": "user-1"}, check=counterpart("metadata", {"user_id": "user-1"})
    ),
    Case(
        "safety_identifier",
        "openai",
        {"safety_identifier": "h-1"},
        check=counterpart("metadata.user_id", "h-1"),
    ),
    Case("store", "openai", {"store": True}, cannot="store"),
    Case(
        "max_completion_tokens",
        "openai",
        {"max_completion_tokens": 77},
        check=counterpart("max_tokens", 77),
    ),
    Case("max_tokens", "openai", {"max_tokens": 33}, check=counterpart("max_tokens", 33)),
    Case("n", "openai", {"n": 2}, cannot="n"),
    Case("temperature", "openai", {"temperature": 0.5}, check=counterpart("temperature", 0.5)),
    Case("temperature above 1", "openai", {"temperature": 1.5}, cannot="temperature"),
    Case("top_p", "openai", {"top_p": 0.9}, check=counterpart("top_p", 0.9)),
    Case("stop", "openai", {"stop": ["END"]}, check=counterpart("stop_sequences", ["END"])),
    Case(
        "developer message",
        "openai",
        {
            "messages": [
                {"role": "developer", "content": "be brief"},
                {"role": "user", "content": "hi"},
            ]
        },
        check=counterpart("system", "be brief"),
    ),
    Case(
        "message name",
        "openai",
        {"messages": [{"role": "user", "content": "hi", "name": "ann"}]},
        cannot="messages[0].name",
    ),
    Case(
        "image_url data",
        "openai",
        openai_user({"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG}"}}),
        check=counterpart(
            "messages.0.content.1",
            {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PNG}},
        ),
    ),
    Case(
        "image_url https",
        "openai",
        openai_user(
            {
                "type": "image_url",
                "image_url": {"url": "https://example.com/a.png", "detail": "auto"},
            }
        ),
        check=counterpart(
            "messages.0.content.1.source", {"type": "url", "url": "https://example.com/a.png"}
        ),
    ),
    Case(
        "input_audio",
        "openai",
        openai_user({"type": "input_audio", "input_audio": {"data": "UklGRg==", "format": "wav"}}),
        cannot="messages[0].content[1].input_audio",
    ),
    Case(
        "file",
        "openai",
        openai_user({"type": "file", "file": {"file_id": "file-1"}}),
        cannot="messages[0].content[1].file",
    ),
    Case("prompt_cache_key", "openai", {"prompt_cache_key": "k-1"}, cannot="prompt_cache_key"),
    Case("stream_options", "openai", {"stream": True, "stream_options": {"include_usage": True}}),
    Case(
        "legacy functions",
        "openai",
        {"functions": [{"name": "f", "parameters": WEATHER}]},
        cannot="functions",
    ),
]

ANTHROPIC_CASES = [
    Case(
        "cache_control on system",
        "anthropic",
        {"system": [{"type": "text", "text": "a long system prompt", "cache_control": EPHEMERAL}]},
        check=counterpart("messages.0", {"role": "system", "content": "a long system prompt"}),
    ),
    Case(
        "cache_control on message blocks",
        "anthropic",
        anthropic_user({"type": "text", "text": "long document", "cache_control": EPHEMERAL}),
        check=nowhere("cache_control"),
    ),
    Case(
        "cache_control top-level",
        "anthropic",
        {"cache_control": EPHEMERAL},
        check=nowhere("cache_control"),
    ),
    Case(
        "thinking",
        "anthropic",
        {"thinking": {"type": "enabled", "budget_tokens": 1024}, "max_tokens": 2048},
        cannot="thinking",
    ),
    Case("thinking adaptive", "anthropic", {"thinking": {"type": "adaptive"}}, cannot="thinking"),
    Case(
        "metadata",
        "anthropic",
        {"metadata": {"user_id": "user-1"}},
        check=counterpart("user", "user-1"),
    ),
    Case(
        "service_tier auto",
        "anthropic",
        {"service_tier": "auto"},
        check=counterpart("service_tier", "auto"),
    ),
    Case(
        "service_tier standard_only",
        "anthropic",
        {"service_tier": "standard_only"},
        check=counterpart("service_tier", "default"),
    ),
    Case("top_k", "anthropic", {"top_k": 40}, cannot="top_k"),
    Case(
        "stop_sequences",
        "anthropic",
        {"stop_sequences": ["END", "STOP"]},
        check=counterpart("stop", ["END", "STOP"]),
    ),
    Case(
        "stop_sequences over 4",
        "anthropic",
        {"stop_sequences": ["a", "b", "c", "d", "e"]},
        cannot="stop_sequences",
    ),
    Case("temperature", "anthropic", {"temperature": 0.3}, check=counterpart("temperature", 0.3)),
    Case("top_p", "anthropic", {"top_p": 0.8}, check=counterpart("top_p", 0.8)),
    Case(
        "tool_choice",
        "anthropic",
        {"tools": [TOOL], "tool_choice": {"type": "any", "disable_parallel_tool_use": True}},
        check=counterpart("parallel_tool_calls", False),
    ),
    Case(
        "tools strict",
        "anthropic",
        {"tools": [{**TOOL, "strict": True}]},
        check=counterpart("tools.0.function.strict", True),
    ),
    Case(
        "tool_use turns",
        "anthropic",
        {"messages": ANTHROPIC_TOOL_TURNS, "tools": [TOOL]},
        check=counterpart("messages.2.tool_call_id", "toolu_1"),
    ),
    Case(
        "image base64",
        "anthropic",
        anthropic_user(
            {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PNG}}
        ),
        check=counterpart("messages.0.content.1.image_url.url", f"data:image/png;base64,{PNG}"),
    ),
    Case(
        "image url",
        "anthropic",
        anthropic_user(
            {"type": "image", "source": {"type": "url", "url": "https://example.com/a.png"}}
        ),
        check=counterpart("messages.0.content.1.image_url.url", "https://example.com/a.png"),
    ),
    Case(
        "document",
        "anthropic",
        anthropic_user(
            {
                "type": "document",
                "source": {"type": "text", "media_type": "text/plain", "data": "x"},
            }
        ),
        cannot="messages[0].content[1].document",
    ),
    Case(
        "thinking blocks in history",
        "anthropic",
        {
            "messages": [
                {"role": "user", "content": "hi"},
                {
                    "role": "assistant",
                    "content": [
                        {"type": "thinking", "thinking": "hmm", "signature": "s"},
                        {"type": "text", "text": "hello"},
                    ],
                },
                {"role": "user", "content": "go on"},
            ]
        },
        cannot="messages[1].content[0].thinking",
    ),
    Case(
        "server tool",
        "anthropic",
        {"tools": [{"type": "web_search_20250305", "name": "web_search"}]},
        cannot="tools[0].type",
    ),
    Case(
        "mcp_servers",
        "anthropic",
        {"mcp_servers": [{"type": "url", "url": "https://mcp.example.com", "name": "m"}]},
        cannot="mcp_servers",
    ),
    Case("container", "anthropic", {"container": "container_1"}, cannot="container"),
    Case(
        "context_management",
        "anthropic",
        {"context_management": {"edits": []}},
        cannot="context_management",
    ),
    Case(
        "output_config",
        "anthropic",
        {"output_config": {"format": {"type": "json_schema", "schema": WEATHER}}},
        cannot="output_config",
    ),
    Case("stream", "anthropic", {"stream": True}),
]

CASES = OPENAI_CASES + ANTHROPIC_CASES


def body_of(case: Case, route: str) -> dict[str, Any]:
    base: dict[str, Any] = {"model": route, "messages": [{"role": "user", "content": "hi"}]}
    if case.format == "anthropic":
        base["max_tokens"] = 64
    return {**base, **case.fields}


@contextlib.asynccontextmanager
async def gateway(tmp_path: Path) -> AsyncIterator[Running]:
    """The gateway of tests/gateway/configured.py, plus a route of each shape per format."""
    chaos = ChaosUpstream()
    environ = {"UPSTREAM_KEY": "upstream-secret-key"}
    async with chaos.serve() as root:
        raw = config(root)
        for fmt, routes in ROUTES.items():
            for shape, targets in routes.items():
                raw["routes"][f"{fmt}_{shape}"] = {"targets": targets}
        settings = Settings(
            config=parse_config(raw, environ=environ),
            database_url=f"sqlite+aiosqlite:///{tmp_path / 'audit.db'}",
            spool_path=tmp_path / "spool.jsonl",
            environ=environ,
            clock=FakeClock(),
        )
        app = create_app(settings)
        async with app.router.lifespan_context(app):
            transport = httpx2.ASGITransport(app=app)
            async with httpx2.AsyncClient(transport=transport, base_url="http://gateway") as http:
                yield Running(app, app.state.gateway, chaos, http)


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def shared(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Running]:
    async with gateway(tmp_path_factory.mktemp("fidelity")) as running:
        yield running


@pytest.fixture
def running(shared: Running) -> Running:
    shared.chaos.reset()
    return shared


async def send(running: Running, case: Case, shape: str) -> tuple[dict[str, Any], httpx2.Response]:
    body = body_of(case, f"{case.format}_{shape}")
    headers = auth("acme")
    if case.format == "anthropic":
        headers["anthropic-version"] = "2023-06-01"
    response = await running.http.post(PATHS[case.format], json=body, headers=headers)
    return body, response


def upstream_of(target: str) -> str:
    return target.partition(":")[0]


@pytest.mark.parametrize("case", CASES, ids=lambda c: f"{c.format}:{c.id}")
async def test_same_format_the_upstream_gets_the_body_as_sent(running: Running, case: Case) -> None:
    body, response = await send(running, case, "same")
    assert response.status_code == 200, response.text
    (target,) = ROUTES[case.format]["same"]
    hits = running.chaos.hits
    assert [h.upstream for h in hits] == [upstream_of(target)]
    assert hits[-1].body == {**body, "model": target.partition(":")[2]}


@pytest.mark.parametrize("case", CASES, ids=lambda c: f"{c.format}:{c.id}")
async def test_across_formats_a_field_is_carried_or_its_target_skipped_naming_it(
    running: Running, case: Case
) -> None:
    crossed, own = ROUTES[case.format]["cross"]
    _, response = await send(running, case, "cross")
    assert response.status_code == 200, response.text
    hits = running.chaos.hits
    if case.cannot is None:
        assert response.headers["x-resilience-provider"] == upstream_of(crossed)
        assert "x-resilience-skipped" not in response.headers
        assert [h.upstream for h in hits] == [upstream_of(crossed)]
        assert hits[-1].body is not None
        case.check(hits[-1].body)
        answered_in_its_own_format(case, response)
    else:
        assert response.headers["x-resilience-provider"] == upstream_of(own)
        skipped = f"{crossed}=cannot_carry:{case.cannot}"
        assert response.headers["x-resilience-skipped"] == skipped
        assert [h.upstream for h in hits] == [upstream_of(own)]  # skipped without a call


@pytest.mark.parametrize("case", CASES, ids=lambda c: f"{c.format}:{c.id}")
async def test_with_no_target_of_its_own_format_a_field_is_carried_or_named_in_a_400(
    running: Running, case: Case
) -> None:
    (crossed,) = ROUTES[case.format]["other_only"]
    _, response = await send(running, case, "other_only")
    if case.cannot is None:
        assert response.status_code == 200, response.text
        assert response.headers["x-resilience-provider"] == upstream_of(crossed)
        return
    assert response.status_code == 400, response.text
    assert running.chaos.hits == []
    error = response.json()["error"]
    if case.format == "openai":
        assert_valid("ErrorResponse", response.json())
        assert (error["param"], error["code"]) == (case.cannot, "cannot_carry")
    else:
        assert response.json()["type"] == "error"
        assert error["type"] == "invalid_request_error"
    assert f"{case.cannot}: " in error["message"]


def answered_in_its_own_format(case: Case, response: httpx2.Response) -> None:
    """The crossed target's answer, translated back: a completion or a message, or a stream
    of the body's format (with OpenAI's usage chunk when `include_usage` asked for it)."""
    if "text/event-stream" not in response.headers["content-type"]:
        answer = response.json()
        if case.format == "openai":
            assert_valid("CreateChatCompletionResponse", answer)
        else:
            assert answer["type"] == "message"
        return
    events = [e for e in response.text.split("\n\n") if e]
    if case.format == "anthropic":
        assert events[0].startswith("event: message_start")
        assert events[-1].startswith("event: message_stop")
        return
    datas = [e.removeprefix("data: ") for e in events]
    assert datas[-1] == "[DONE]"
    chunks = [json.loads(d) for d in datas[:-1]]
    for chunk in chunks:
        assert_valid("CreateChatCompletionStreamResponse", chunk)
    *earlier, last = chunks
    assert all(c["usage"] is None for c in earlier)
    assert last["choices"] == [] and last["usage"]["total_tokens"] > 0


async def test_the_openai_sdk_streams_usage_last_from_an_anthropic_target(running: Running) -> None:
    stream = await openai_sdk(running, "acme").chat.completions.create(
        model="openai_other_only",
        messages=[{"role": "user", "content": "hi"}],
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = [chunk async for chunk in stream]
    *earlier, last = chunks
    assert all(c.usage is None and c.choices for c in earlier)
    assert last.choices == [] and last.usage is not None and last.usage.total_tokens > 0
    assert "".join(c.choices[0].delta.content or "" for c in earlier)
    assert [h.upstream for h in running.chaos.hits] == ["claude"]


async def test_the_anthropic_sdk_gets_a_forced_tool_call_from_an_openai_target(
    running: Running,
) -> None:
    message = await anthropic_sdk(running, "acme").messages.create(
        model="anthropic_other_only",
        max_tokens=64,
        messages=[{"role": "user", "content": "weather in Paris?"}],
        tools=[{"name": "weather", "input_schema": WEATHER, "strict": True}],
        tool_choice={"type": "tool", "name": "weather"},
    )
    assert message.stop_reason == "tool_use"
    (call,) = [b for b in message.content if b.type == "tool_use"]
    assert call.name == "weather" and isinstance(call.input, dict) and "city" in call.input
    sent = running.chaos.hits[-1].body
    assert sent is not None and sent["tools"][0]["function"]["strict"] is True
