"""classify() against exceptions the real SDKs raise from a misbehaving loopback server."""

from __future__ import annotations

import asyncio
import email.utils
import json
import socket
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator
from dataclasses import dataclass
from typing import Any

import anthropic
import anyio
import httpx
import httpx2
import openai
import pydantic
import pytest
from hypothesis import given
from hypothesis import strategies as st

from resilience.classify import classify, parse_retry_after
from resilience.errors import (
    POLICIES,
    Classification,
    ErrorKind,
    ProviderError,
    Scope,
    StreamTruncatedError,
)
from tests.support.sdk_faults import (
    ANTHROPIC_STREAM_START,
    API_KEY,
    OPENAI_STREAM_START,
    End,
    FaultServer,
    Raised,
    Reply,
    anthropic_error_body,
    anthropic_event,
    call_anthropic,
    call_openai,
    call_openai_parse,
    chat_completion,
    fault_server,
    json_reply,
    openai_error_body,
    openai_event,
    sse_reply,
)

NOW = 1_767_225_600.0
"""2026-01-01T00:00:00Z, the wall clock handed to classify()."""
HTTP_DATE_30S_LATER = "Thu, 01 Jan 2026 00:00:30 GMT"
STALL_TIMEOUT_S = 0.25
"""The SDK's own read timeout in the stall tests: real time, kept small."""

K = ErrorKind


def at_now() -> float:
    return NOW


@dataclass(frozen=True, slots=True)
class Sdk:
    name: str
    call: Callable[..., Coroutine[Any, Any, Raised]]
    stream_start: tuple[bytes, ...]
    status_error: type[Exception]
    connection_error: type[Exception]

    def error_reply(
        self,
        status: int,
        message: str,
        *,
        anthropic_type: str,
        openai_type: str | None,
        openai_code: str | None,
        headers: tuple[tuple[str, str], ...] = (),
    ) -> Reply:
        if self.name == "anthropic":
            return json_reply(status, anthropic_error_body(anthropic_type, message), *headers)
        body = openai_error_body(message, type_=openai_type, code=openai_code)
        return json_reply(status, body, *headers)

    def expected_code(
        self, anthropic_type: str, openai_type: str | None, code: str | None
    ) -> str | None:
        return anthropic_type if self.name == "anthropic" else code or openai_type


ANTHROPIC = Sdk(
    "anthropic",
    call_anthropic,
    ANTHROPIC_STREAM_START,
    anthropic.APIStatusError,
    anthropic.APIConnectionError,
)
OPENAI = Sdk(
    "openai", call_openai, OPENAI_STREAM_START, openai.APIStatusError, openai.APIConnectionError
)
both_sdks = pytest.mark.parametrize("sdk", [ANTHROPIC, OPENAI], ids=lambda sdk: sdk.name)


@pytest.fixture
async def server() -> AsyncIterator[FaultServer]:
    async with fault_server() as started:
        yield started


@pytest.fixture
def refused_port() -> Iterator[int]:
    """A port that is bound but not listening: connecting to it is refused at once."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        yield sock.getsockname()[1]


# --- HTTP error statuses, one row per status, both SDKs ------------------------------------


@dataclass(frozen=True, slots=True)
class StatusCase:
    status: int
    kind: ErrorKind
    anthropic_type: str
    openai_type: str | None
    openai_code: str | None


STATUS_CASES = [
    StatusCase(400, K.BAD_REQUEST, "invalid_request_error", "invalid_request_error", None),
    StatusCase(401, K.AUTH, "authentication_error", "invalid_request_error", "invalid_api_key"),
    StatusCase(402, K.AUTH, "billing_error", None, None),
    StatusCase(403, K.AUTH, "permission_error", "invalid_request_error", "unsupported_region"),
    StatusCase(404, K.BAD_REQUEST, "not_found_error", "invalid_request_error", "model_not_found"),
    StatusCase(408, K.TIMEOUT, "timeout_error", None, None),
    StatusCase(409, K.SERVER_ERROR, "conflict_error", None, None),
    StatusCase(413, K.BAD_REQUEST, "request_too_large", "invalid_request_error", None),
    StatusCase(422, K.BAD_REQUEST, "invalid_request_error", "invalid_request_error", None),
    StatusCase(429, K.RATE_LIMITED, "rate_limit_error", "tokens", "rate_limit_exceeded"),
    StatusCase(500, K.SERVER_ERROR, "api_error", "server_error", None),
    StatusCase(502, K.SERVER_ERROR, "api_error", "server_error", None),
    # the status decides, not the label: a 503 "api_error" is still overload,
    # a 504 "timeout_error" the gateway's failure
    StatusCase(503, K.OVERLOADED, "api_error", "server_error", None),
    StatusCase(504, K.SERVER_ERROR, "timeout_error", "server_error", None),
    StatusCase(529, K.OVERLOADED, "overloaded_error", "server_error", None),
]


@both_sdks
@pytest.mark.parametrize("case", STATUS_CASES, ids=lambda case: str(case.status))
async def test_error_status_maps_to_kind_with_status_and_provider_code(
    sdk: Sdk, case: StatusCase, server: FaultServer
) -> None:
    server.reply = sdk.error_reply(
        case.status,
        "scripted failure",
        anthropic_type=case.anthropic_type,
        openai_type=case.openai_type,
        openai_code=case.openai_code,
    )
    raised = await sdk.call(server)
    assert isinstance(raised.exc, sdk.status_error)

    found = classify(raised.exc, now=at_now)

    assert found.kind is case.kind
    assert found.status_code == case.status
    assert found.code == sdk.expected_code(case.anthropic_type, case.openai_type, case.openai_code)
    assert found.retry_after_s is None
    assert found.underlying is None
    assert f"{sdk.name} HTTP {case.status}" in found.message
    assert "scripted failure" in found.message
    assert found.policy is POLICIES[case.kind]


async def test_the_servers_saw_each_sdk_post_to_its_own_endpoint(server: FaultServer) -> None:
    server.reply = json_reply(500, {"error": {"type": "api_error", "message": "x"}})
    await call_anthropic(server)
    await call_openai(server)
    assert [(s.method, s.path) for s in server.seen] == [
        ("POST", "/v1/messages"),
        ("POST", "/v1/chat/completions"),
    ]


# --- Retry-After on 429, 503 and 529 ------------------------------------------------------


@both_sdks
@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ((("retry-after", "12"),), 12.0),
        ((("Retry-After", "2.5"),), 2.5),
        ((("retry-after-ms", "1500"),), 1.5),
        ((("retry-after", "9"), ("retry-after-ms", "250")), 0.25),
        ((("retry-after", HTTP_DATE_30S_LATER),), 30.0),
        ((), None),
    ],
    ids=["seconds", "float-seconds", "ms", "ms-wins", "http-date", "absent"],
)
async def test_rate_limit_carries_retry_after_from_the_response_headers(
    sdk: Sdk, headers: tuple[tuple[str, str], ...], expected: float | None, server: FaultServer
) -> None:
    server.reply = sdk.error_reply(
        429,
        "slow down",
        anthropic_type="rate_limit_error",
        openai_type="requests",
        openai_code="rate_limit_exceeded",
        headers=headers,
    )
    found = classify((await sdk.call(server)).exc, now=at_now)
    assert found.kind is K.RATE_LIMITED
    assert found.status_code == 429
    assert found.retry_after_s == expected


@both_sdks
@pytest.mark.parametrize("status", [503, 529])
async def test_overload_carries_retry_after_when_the_provider_sends_one(
    sdk: Sdk, status: int, server: FaultServer
) -> None:
    server.reply = sdk.error_reply(
        status,
        "Overloaded",
        anthropic_type="overloaded_error",
        openai_type="server_error",
        openai_code=None,
        headers=(("retry-after", "4"),),
    )
    found = classify((await sdk.call(server)).exc, now=at_now)
    assert (found.kind, found.status_code, found.retry_after_s) == (K.OVERLOADED, status, 4.0)


@both_sdks
async def test_retry_after_is_ignored_on_kinds_that_do_not_wait(
    sdk: Sdk, server: FaultServer
) -> None:
    server.reply = sdk.error_reply(
        500,
        "boom",
        anthropic_type="api_error",
        openai_type="server_error",
        openai_code=None,
        headers=(("retry-after", "4"),),
    )
    found = classify((await sdk.call(server)).exc, now=at_now)
    assert (found.kind, found.retry_after_s) == (K.SERVER_ERROR, None)


# --- 400 refined by the provider's code: context length, content policy ------------------


async def test_anthropic_prompt_too_long_is_context_length(server: FaultServer) -> None:
    body = anthropic_error_body(
        "invalid_request_error", "prompt is too long: 208310 tokens > 200000 maximum"
    )
    server.reply = json_reply(400, body)
    found = classify((await call_anthropic(server)).exc)
    assert found.kind is K.CONTEXT_LENGTH
    assert (found.status_code, found.code) == (400, "invalid_request_error")


async def test_anthropic_message_merely_mentioning_prompt_length_stays_bad_request(
    server: FaultServer,
) -> None:
    body = anthropic_error_body("invalid_request_error", "max_tokens: prompt is too long a word")
    server.reply = json_reply(400, body)
    found = classify((await call_anthropic(server)).exc)
    assert (found.kind, found.code) == (K.BAD_REQUEST, "invalid_request_error")


async def test_openai_context_length_exceeded_code_is_context_length(server: FaultServer) -> None:
    server.reply = json_reply(
        400,
        openai_error_body(
            "This model's maximum context length is 128000 tokens. However, your messages "
            "resulted in 130000 tokens. Please reduce the length of the messages.",
            type_="invalid_request_error",
            code="context_length_exceeded",
        ),
    )
    found = classify((await call_openai(server)).exc)
    assert found.kind is K.CONTEXT_LENGTH
    assert (found.status_code, found.code) == (400, "context_length_exceeded")


@pytest.mark.parametrize("status", [400, 403])
@pytest.mark.parametrize("code", ["content_policy_violation", "content_filter"])
async def test_openai_content_policy_refusal_is_content_filter(
    status: int, code: str, server: FaultServer
) -> None:
    server.reply = json_reply(
        status,
        openai_error_body(
            "Your request was rejected as a result of our safety system.",
            type_="invalid_request_error",
            code=code,
        ),
    )
    found = classify((await call_openai(server)).exc)
    assert (found.kind, found.status_code, found.code) == (K.CONTENT_FILTER, status, code)


async def test_openai_insufficient_quota_429_is_auth_not_a_rate_limit(server: FaultServer) -> None:
    server.reply = json_reply(
        429,
        openai_error_body(
            "You exceeded your current quota.",
            type_="insufficient_quota",
            code="insufficient_quota",
        ),
        ("retry-after", "20"),
    )
    found = classify((await call_openai(server)).exc)
    assert (found.kind, found.status_code, found.code) == (K.AUTH, 429, "insufficient_quota")
    assert found.retry_after_s is None


async def test_openai_content_filter_finish_reason_from_parse_is_content_filter(
    server: FaultServer,
) -> None:
    server.reply = json_reply(200, chat_completion("content_filter"))
    raised = await call_openai_parse(server)
    assert isinstance(raised.exc, openai.ContentFilterFinishReasonError)
    found = classify(raised.exc)
    assert (found.kind, found.code, found.status_code) == (K.CONTENT_FILTER, "content_filter", None)


async def test_openai_length_finish_reason_from_parse_is_the_callers_bad_request(
    server: FaultServer,
) -> None:
    server.reply = json_reply(200, chat_completion("length"))
    raised = await call_openai_parse(server)
    assert isinstance(raised.exc, openai.LengthFinishReasonError)
    assert classify(raised.exc).kind is K.BAD_REQUEST


# --- Bodies that are not what was promised -------------------------------------------------


@both_sdks
async def test_malformed_json_on_200_is_invalid_response(sdk: Sdk, server: FaultServer) -> None:
    server.reply = Reply(headers=(("content-type", "application/json"),), body=b'{"id": "msg_')
    raised = await sdk.call(server)
    assert isinstance(raised.exc, json.JSONDecodeError)  # both SDKs let it through raw
    found = classify(raised.exc)
    assert (found.kind, found.status_code, found.code) == (K.INVALID_RESPONSE, None, None)


@both_sdks
async def test_schema_violation_under_strict_validation_is_invalid_response(
    sdk: Sdk, server: FaultServer
) -> None:
    server.reply = json_reply(200, {"id": 1})
    raised = await sdk.call(server, strict=True)
    assert type(raised.exc).__name__ == "APIResponseValidationError"
    found = classify(raised.exc)
    assert (found.kind, found.status_code) == (K.INVALID_RESPONSE, None)


# --- Transport faults before any output ----------------------------------------------------


@both_sdks
async def test_connection_closed_before_a_response_is_network(
    sdk: Sdk, server: FaultServer
) -> None:
    server.reply = Reply(before_headers=True, end=End.CLOSE)
    raised = await sdk.call(server)
    assert isinstance(raised.exc, sdk.connection_error)
    found = classify(raised.exc)
    assert (found.kind, found.status_code, found.retry_after_s) == (K.NETWORK, None, None)
    assert "RemoteProtocolError" in found.message


@both_sdks
async def test_connection_reset_before_a_response_is_network(sdk: Sdk, server: FaultServer) -> None:
    server.reply = Reply(before_headers=True, end=End.RESET)
    found = classify((await sdk.call(server)).exc)
    assert found.kind is K.NETWORK


@both_sdks
async def test_connection_refused_is_network(sdk: Sdk, refused_port: int) -> None:
    nobody = FaultServer()  # never started: only its address is used
    nobody.port = refused_port
    raised = await sdk.call(nobody)
    assert isinstance(raised.exc, sdk.connection_error)
    assert classify(raised.exc).kind is K.NETWORK


@both_sdks
async def test_no_response_within_the_read_timeout_is_timeout(
    sdk: Sdk, server: FaultServer
) -> None:
    server.reply = Reply(before_headers=True, end=End.STALL)
    raised = await sdk.call(server, timeout_s=STALL_TIMEOUT_S)
    assert type(raised.exc).__name__ == "APITimeoutError"
    found = classify(raised.exc, stream_started=False)
    assert (found.kind, found.underlying) == (K.TIMEOUT, None)


class TimingOutTransport(httpx2.AsyncBaseTransport):
    """A transport (a proxy's, say) that times out with the builtin TimeoutError."""

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        raise TimeoutError("upstream proxy timed out")


async def test_builtin_timeout_from_the_transport_is_timeout_wrapped_or_not() -> None:
    """anthropic wraps it in a plain APIConnectionError; openai lets it through raw."""
    loopback = "http://127.0.0.1:9"
    async with (
        httpx2.AsyncClient(transport=TimingOutTransport()) as http,
        anthropic.AsyncAnthropic(
            api_key=API_KEY, base_url=loopback, max_retries=0, http_client=http
        ) as ant,
        openai.AsyncOpenAI(
            api_key=API_KEY, base_url=f"{loopback}/v1", max_retries=0, http_client=http
        ) as oai,
    ):
        with pytest.raises(anthropic.APIConnectionError) as ant_info:
            await ant.messages.create(
                model="claude-test", max_tokens=8, messages=[{"role": "user", "content": "hi"}]
            )
        with pytest.raises(TimeoutError) as oai_info:
            await oai.chat.completions.create(
                model="gpt-test", messages=[{"role": "user", "content": "hi"}]
            )
    assert not isinstance(ant_info.value, anthropic.APITimeoutError)
    for exc in (ant_info.value, oai_info.value):
        found = classify(exc)
        assert found.kind is K.TIMEOUT
        assert "upstream proxy timed out" in found.message


# --- Faults after output began -------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class MidStream:
    end: End
    underlying: ErrorKind
    anthropic_raises: type[Exception]
    openai_raises: type[Exception]


MID_STREAM = [
    MidStream(End.CLOSE, K.NETWORK, httpx2.RemoteProtocolError, openai.APIConnectionError),
    MidStream(End.RESET, K.NETWORK, httpx2.ReadError, openai.APIConnectionError),
    MidStream(End.STALL, K.TIMEOUT, httpx2.ReadTimeout, openai.APITimeoutError),
]


@both_sdks
@pytest.mark.parametrize("case", MID_STREAM, ids=lambda case: case.end.value)
async def test_transport_fault_after_two_chunks_is_stream_interrupted(
    sdk: Sdk, case: MidStream, server: FaultServer
) -> None:
    server.reply = sse_reply(sdk.stream_start, end=case.end)
    # only a stall needs the SDK's short read timeout to end it; a close or a reset keeps
    # the 5 s default, so a loaded machine cannot time it out before its first chunks
    stalls = case.end is End.STALL
    raised = await sdk.call(server, stream=True, timeout_s=STALL_TIMEOUT_S if stalls else 5.0)
    assert raised.items == len(sdk.stream_start)
    expected = case.anthropic_raises if sdk is ANTHROPIC else case.openai_raises
    assert type(raised.exc) is expected  # anthropic lets httpx2's own exceptions through

    interrupted = classify(raised.exc, stream_started=True)
    before_output = classify(raised.exc, stream_started=False)

    assert interrupted.kind is K.STREAM_INTERRUPTED
    assert interrupted.underlying is case.underlying
    assert interrupted.status_code is None
    assert interrupted.policy is POLICIES[K.STREAM_INTERRUPTED]
    assert (before_output.kind, before_output.underlying) == (case.underlying, None)


ANTHROPIC_EVENT_TYPES = [
    ("overloaded_error", K.OVERLOADED),
    ("api_error", K.SERVER_ERROR),
    ("rate_limit_error", K.RATE_LIMITED),
    ("authentication_error", K.AUTH),
    ("permission_error", K.AUTH),
    ("billing_error", K.AUTH),
    ("invalid_request_error", K.BAD_REQUEST),
    ("not_found_error", K.BAD_REQUEST),
    ("request_too_large", K.BAD_REQUEST),
    ("timeout_error", K.TIMEOUT),
    ("some_future_error", K.SERVER_ERROR),
]


@pytest.mark.parametrize(("error_type", "kind"), ANTHROPIC_EVENT_TYPES)
async def test_anthropic_error_event_mid_stream_is_classified_by_its_type(
    error_type: str, kind: ErrorKind, server: FaultServer
) -> None:
    tail = anthropic_event("error", anthropic_error_body(error_type, "stream failed"))
    server.reply = sse_reply(ANTHROPIC_STREAM_START, tail=tail)
    raised = await call_anthropic(server, stream=True)
    assert isinstance(raised.exc, anthropic.APIStatusError)
    assert raised.exc.status_code == 200
    assert raised.items == len(ANTHROPIC_STREAM_START)

    interrupted = classify(raised.exc, stream_started=True)
    first_event = classify(raised.exc)

    assert (interrupted.kind, interrupted.underlying) == (K.STREAM_INTERRUPTED, kind)
    assert (interrupted.status_code, interrupted.code) == (None, error_type)
    assert "anthropic stream error" in interrupted.message
    assert (first_event.kind, first_event.underlying, first_event.code) == (kind, None, error_type)


@pytest.mark.parametrize(
    ("type_", "code", "kind", "label"),
    [
        ("server_error", None, K.SERVER_ERROR, "server_error"),
        ("tokens", "rate_limit_exceeded", K.RATE_LIMITED, "rate_limit_exceeded"),
        ("invalid_request_error", "context_length_exceeded", K.CONTEXT_LENGTH, None),
        ("invalid_request_error", "content_filter", K.CONTENT_FILTER, None),
        ("InternalServerError", 503, K.OVERLOADED, "InternalServerError"),  # vLLM style
        ("BadRequestError", 400, K.BAD_REQUEST, "BadRequestError"),
        (None, None, K.SERVER_ERROR, None),
    ],
)
async def test_openai_error_data_mid_stream_is_classified_by_code_then_type(
    type_: str | None,
    code: str | int | None,
    kind: ErrorKind,
    label: str | None,
    server: FaultServer,
) -> None:
    error = openai_error_body("stream failed", type_=type_, code=code)
    server.reply = sse_reply(OPENAI_STREAM_START, tail=openai_event(error))
    raised = await call_openai(server, stream=True)
    assert type(raised.exc) is openai.APIError
    assert raised.items == len(OPENAI_STREAM_START)

    found = classify(raised.exc, stream_started=True)

    assert (found.kind, found.underlying, found.status_code) == (K.STREAM_INTERRUPTED, kind, None)
    assert found.code == (label if label is not None else code)
    assert "stream failed" in found.message


@both_sdks
async def test_cancelled_stream_is_cancelled_even_after_output_began(
    sdk: Sdk, server: FaultServer
) -> None:
    server.reply = sse_reply(sdk.stream_start, end=End.STALL)
    task = asyncio.create_task(sdk.call(server, stream=True))
    await server.released()  # the caller has read every chunk and waits for more
    task.cancel()
    with pytest.raises(asyncio.CancelledError) as info:
        await task

    for started in (False, True):
        found = classify(info.value, stream_started=started)
        assert (found.kind, found.underlying) == (K.CANCELLED, None)
        assert found.policy is POLICIES[K.CANCELLED]


@pytest.mark.parametrize("exc", [KeyboardInterrupt(), SystemExit(1), GeneratorExit()])
def test_other_base_exceptions_are_cancelled_not_provider_faults(exc: BaseException) -> None:
    assert classify(exc, stream_started=True).kind is K.CANCELLED


def test_truncated_stream_is_invalid_response_or_interrupted_once_output_began() -> None:
    exc = StreamTruncatedError("stream ended without message_stop", provider="anthropic")
    assert classify(exc).kind is K.INVALID_RESPONSE
    found = classify(exc, stream_started=True)
    assert (found.kind, found.underlying) == (K.STREAM_INTERRUPTED, K.INVALID_RESPONSE)
    assert found.message == "stream ended without message_stop"


# --- Raw transport libraries and builtins --------------------------------------------------


async def test_raw_httpx2_and_httpx_transport_errors_map_like_the_sdks(
    server: FaultServer, refused_port: int
) -> None:
    server.reply = Reply(before_headers=True, end=End.CLOSE)
    found: list[tuple[str, ErrorKind]] = []
    async with httpx2.AsyncClient() as c2, httpx.AsyncClient() as c1:
        for client in (c2, c1):
            for url in (server.root, f"http://127.0.0.1:{refused_port}"):
                with pytest.raises(Exception) as info:
                    await client.get(url)
                found.append((type(info.value).__name__, classify(info.value).kind))
    assert found == [
        ("RemoteProtocolError", K.NETWORK),
        ("ConnectError", K.NETWORK),
        ("RemoteProtocolError", K.NETWORK),
        ("ConnectError", K.NETWORK),
    ]


async def test_raw_httpx_read_timeout_is_timeout(server: FaultServer) -> None:
    server.reply = Reply(before_headers=True, end=End.STALL)
    async with httpx.AsyncClient(timeout=STALL_TIMEOUT_S) as client:
        with pytest.raises(httpx.ReadTimeout) as info:
            await client.get(server.root)
    found = classify(info.value, stream_started=True)
    assert (found.kind, found.underlying) == (K.STREAM_INTERRUPTED, K.TIMEOUT)


@pytest.mark.parametrize("lib", ["httpx2", "httpx"])
async def test_raw_http_status_errors_map_by_status_with_retry_after(
    lib: str, server: FaultServer
) -> None:
    server.reply = json_reply(429, {}, ("retry-after-ms", "750"))
    client = httpx2.AsyncClient() if lib == "httpx2" else httpx.AsyncClient()
    async with client:
        response = await client.get(server.root)
        with pytest.raises(Exception) as info:
            response.raise_for_status()
    assert type(info.value).__name__ == "HTTPStatusError"
    found = classify(info.value)
    assert (found.kind, found.status_code, found.retry_after_s) == (K.RATE_LIMITED, 429, 0.75)


def _json_error() -> Exception:
    try:
        json.loads("{")
    except json.JSONDecodeError as exc:
        return exc
    raise AssertionError("unreachable")


def _pydantic_error() -> Exception:
    try:
        pydantic.TypeAdapter(int).validate_python("not a number")
    except pydantic.ValidationError as exc:
        return exc
    raise AssertionError("unreachable")


@pytest.mark.parametrize(
    ("exc", "kind"),
    [
        (TimeoutError(), K.TIMEOUT),
        (TimeoutError(), K.TIMEOUT),
        (ConnectionResetError(104, "Connection reset by peer"), K.NETWORK),
        (ConnectionRefusedError(111, "Connection refused"), K.NETWORK),
        (OSError(113, "No route to host"), K.NETWORK),
        (anyio.EndOfStream(), K.NETWORK),  # openai wraps these; httpx2 may leak them raw
        (anyio.BrokenResourceError(), K.NETWORK),
        (_json_error(), K.INVALID_RESPONSE),
        (_pydantic_error(), K.INVALID_RESPONSE),
    ],
    ids=lambda value: type(value).__name__ if isinstance(value, BaseException) else str(value),
)
def test_builtin_and_parsing_errors_map_to_their_kind(exc: Exception, kind: ErrorKind) -> None:
    found = classify(exc)
    assert (found.kind, found.status_code, found.code, found.underlying) == (kind, None, None, None)
    assert found.message.startswith(type(exc).__name__)


# --- Unknown exceptions, idempotence, safe messages ----------------------------------------


def test_unknown_exception_is_unclassified_invalid_response_not_raised() -> None:
    found = classify(ValueError("adapter could not read choices[0]"))
    assert found.kind is K.INVALID_RESPONSE
    assert found.message == "unclassified ValueError: adapter could not read choices[0]"
    assert (found.status_code, found.code) == (None, None)
    after_output = classify(KeyError("delta"), stream_started=True)
    assert (after_output.kind, after_output.underlying) == (
        K.STREAM_INTERRUPTED,
        K.INVALID_RESPONSE,
    )


async def test_unknown_exception_is_classified_by_the_vendor_error_that_caused_it(
    server: FaultServer,
) -> None:
    server.reply = ANTHROPIC.error_reply(
        429,
        "slow down",
        anthropic_type="rate_limit_error",
        openai_type=None,
        openai_code=None,
        headers=(("retry-after", "3"),),
    )
    vendor = (await call_anthropic(server)).exc
    try:
        raise RuntimeError("adapter failed") from vendor
    except RuntimeError as wrapped:
        found = classify(wrapped, now=at_now)
    assert (found.kind, found.status_code, found.retry_after_s) == (K.RATE_LIMITED, 429, 3.0)

    try:
        try:
            raise vendor
        except anthropic.APIStatusError:
            raise KeyError("while handling") from None
    except KeyError as suppressed:
        assert classify(suppressed).kind is K.INVALID_RESPONSE  # `from None`: not its cause


async def test_exception_raised_while_handling_a_vendor_error_follows_its_context(
    server: FaultServer,
) -> None:
    server.reply = Reply(before_headers=True, end=End.CLOSE)
    vendor = (await call_openai(server)).exc
    try:
        try:
            raise vendor
        except openai.APIConnectionError:
            raise TypeError("cleanup failed")  # noqa: B904 - the implicit context is the point
    except TypeError as during:
        assert classify(during).kind is K.NETWORK


@both_sdks
async def test_classifying_our_own_provider_error_gives_the_same_classification(
    sdk: Sdk, server: FaultServer
) -> None:
    server.reply = sdk.error_reply(
        529,
        "Overloaded",
        anthropic_type="overloaded_error",
        openai_type="server_error",
        openai_code=None,
        headers=(("retry-after", "6"),),
    )
    first = classify((await sdk.call(server)).exc, now=at_now)
    ours = provider_error(first)

    assert classify(ours, now=at_now) == first
    again = classify(ours, stream_started=True)
    assert (again.kind, again.underlying, again.retry_after_s) == (
        K.STREAM_INTERRUPTED,
        K.OVERLOADED,
        6.0,
    )


async def test_stream_interrupted_provider_error_recovers_underlying_from_its_cause(
    server: FaultServer,
) -> None:
    server.reply = sse_reply(ANTHROPIC_STREAM_START, end=End.RESET)
    vendor = (await call_anthropic(server, stream=True)).exc
    interrupted = classify(vendor, stream_started=True)
    try:
        raise provider_error(interrupted) from vendor
    except ProviderError as ours:
        found = classify(ours)
    assert (found.kind, found.underlying) == (K.STREAM_INTERRUPTED, K.NETWORK)


def provider_error(found: Classification) -> ProviderError:
    return ProviderError(
        found.message,
        kind=found.kind,
        status_code=found.status_code,
        retry_after_s=found.retry_after_s,
        code=found.code,
    )


@both_sdks
async def test_message_never_repeats_the_api_key_the_provider_echoed(
    sdk: Sdk, server: FaultServer
) -> None:
    server.reply = sdk.error_reply(
        401,
        f"Incorrect API key provided: {API_KEY}. Header was 'Bearer {API_KEY}'.",
        anthropic_type="authentication_error",
        openai_type="invalid_request_error",
        openai_code="invalid_api_key",
    )
    raised = await sdk.call(server)
    sent = server.seen[-1].headers
    assert API_KEY in sent.get("x-api-key", "") + sent.get("authorization", "")
    found = classify(raised.exc)
    assert found.kind is K.AUTH
    assert API_KEY not in found.message
    assert "[redacted]" in found.message
    assert "Incorrect API key provided" in found.message


def test_message_redacts_key_shaped_strings_and_bearer_tokens_without_a_request() -> None:
    found = classify(ValueError("bad key sk-ant-api03-abcDEF123456 and Bearer tok3n-value"))
    assert "sk-ant" not in found.message
    assert "tok3n" not in found.message
    assert found.message.count("[redacted]") == 2


async def test_message_is_one_short_line_even_for_a_huge_error_body(server: FaultServer) -> None:
    server.reply = ANTHROPIC.error_reply(
        500,
        "line\n" * 5_000,
        anthropic_type="api_error",
        openai_type=None,
        openai_code=None,
    )
    found = classify((await call_anthropic(server)).exc)
    assert len(found.message) <= 240
    assert "\n" not in found.message


# --- parse_retry_after ---------------------------------------------------------------------


@given(
    st.floats(min_value=0, max_value=1e9, allow_nan=False),
    st.sampled_from(["retry-after", "Retry-After", "RETRY-AFTER"]),
)
def test_retry_after_seconds_round_trip_under_any_header_case(seconds: float, name: str) -> None:
    assert parse_retry_after({name: f"{seconds:.6f}"}) == pytest.approx(seconds, abs=1e-6)


@given(st.integers(min_value=0, max_value=10**9), st.integers(min_value=0, max_value=10**6))
def test_retry_after_ms_is_preferred_over_seconds_and_read_as_milliseconds(
    millis: int, seconds: int
) -> None:
    headers = {"Retry-After-Ms": str(millis), "retry-after": str(seconds)}
    assert parse_retry_after(headers) == pytest.approx(millis / 1000)


@given(st.integers(min_value=-(10**6), max_value=10**6))
def test_http_date_is_relative_to_now_and_never_negative(offset: int) -> None:
    date = email.utils.formatdate(NOW + offset, usegmt=True)
    assert parse_retry_after({"retry-after": date}, now=at_now) == max(0.0, float(offset))


@given(st.floats(max_value=0, allow_nan=False, allow_infinity=False))
def test_negative_waits_are_zero(value: float) -> None:
    assert parse_retry_after({"retry-after": f"{value:f}"}) == 0.0
    assert parse_retry_after({"retry-after-ms": f"{value:f}"}) == 0.0


@pytest.mark.parametrize(
    "raw", ["", "soon", "1e3", "inf", "nan", "1_000", "5, 6", "Mon, 99 Foo 2026 25:61:00 GMT"]
)
def test_garbage_retry_after_is_none(raw: str) -> None:
    assert parse_retry_after({"retry-after": raw}, now=at_now) is None


def test_garbage_retry_after_ms_falls_back_to_retry_after() -> None:
    assert parse_retry_after({"retry-after-ms": "later", "retry-after": "7"}) == 7.0


def test_absent_headers_give_none_and_httpx2_headers_are_accepted() -> None:
    assert parse_retry_after({}) is None
    assert parse_retry_after({"content-type": "text/plain"}) is None
    assert parse_retry_after(httpx2.Headers({"Retry-After": "3"})) == 3.0


def test_http_date_without_zone_is_read_as_utc() -> None:
    assert parse_retry_after({"retry-after": "Thu, 01 Jan 2026 00:01:00 -0000"}, now=at_now) == 60.0


# --- Requests that never left ---------------------------------------------------------------


def _sdk_encoding_error() -> Exception:
    """What both SDKs raise when a body holds a lone surrogate: before anything is sent."""
    try:
        json.dumps({"content": "hi \udc80"}, ensure_ascii=False).encode()
    except UnicodeEncodeError as exc:
        return exc
    raise AssertionError("unreachable")


@pytest.mark.parametrize(
    "exc",
    [
        _sdk_encoding_error(),
        ValueError("Out of range float values are not JSON compliant"),  # temperature NaN
        TypeError("Missing required arguments"),
        _json_error(),
        _pydantic_error(),
    ],
    ids=lambda exc: type(exc).__name__,
)
def test_an_unknown_failure_before_the_request_left_is_the_callers_bad_request(
    exc: Exception,
) -> None:
    sent = classify(exc)
    assert sent.kind is K.INVALID_RESPONSE and sent.sent  # as before, once it went out
    found = classify(exc, sent=False)
    assert (found.kind, found.code, found.sent) == (K.BAD_REQUEST, "not_sent", False)
    policy = found.policy
    assert (policy.retryable, policy.counts_on_breaker, policy.fallback) == (False, False, False)
    assert policy.scope is Scope.REQUEST
    assert found.message.startswith("request not sent: ")
    assert "unclassified" not in found.message


@pytest.mark.parametrize(
    ("exc", "kind"),
    [
        (ConnectionRefusedError(111, "Connection refused"), K.NETWORK),
        (TimeoutError(), K.TIMEOUT),
        (asyncio.CancelledError(), K.CANCELLED),
        (ProviderError("ours", kind=K.OVERLOADED), K.OVERLOADED),
    ],
    ids=lambda value: type(value).__name__ if isinstance(value, BaseException) else str(value),
)
def test_a_known_kind_keeps_its_meaning_when_nothing_was_sent(
    exc: BaseException, kind: ErrorKind
) -> None:
    found = classify(exc, sent=False)
    assert (found.kind, found.sent) == (kind, False)


def test_a_stream_that_began_was_sent_whatever_the_flag_says() -> None:
    found = classify(ValueError("bad chunk"), stream_started=True, sent=False)
    assert (found.kind, found.underlying) == (K.STREAM_INTERRUPTED, K.INVALID_RESPONSE)


@pytest.mark.parametrize("sent", [True, False])
def test_a_message_carrying_a_lone_surrogate_or_nul_stays_encodable(sent: bool) -> None:
    found = classify(ValueError("model 'x\udc80\x00' unknown"), sent=sent)
    found.message.encode("utf-8")  # would raise on the raw surrogate
    assert "\x00" not in found.message
    assert "\\udc80" in found.message and "\\u0000" in found.message
    json.dumps({"message": found.message}, ensure_ascii=False).encode("utf-8")
