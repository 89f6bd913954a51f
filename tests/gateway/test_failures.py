"""How an error becomes an answer: the field named in `param`, the headers, both shapes."""

from __future__ import annotations

import json

import pytest

from resilience.errors import AllTargetsFailed, ErrorKind, InvalidRequestError, ProviderError
from resilience.formats.wire import WireError, field_of
from resilience.gateway.api import failure_response
from resilience.gateway.failures import failure_of, render


@pytest.mark.parametrize(
    ("message", "field"),
    [
        ("messages[2].role: expected one of user, assistant", "messages[2].role"),
        ("tools[0].function.name: control character", "tools[0].function.name"),
        ("model: expected 1 to 256 letters", "model"),
        ("body: not valid JSON", None),
        ("body: nested deeper than 64 levels", None),
        ("unknown route 'x': not a configured route", None),
        ("no field named here", None),
        ("n: only 1 is supported, got 2", "n"),
    ],
)
def test_the_param_is_the_field_a_message_starts_with(message: str, field: str | None) -> None:
    assert field_of(message) == field
    assert WireError(message).param == field


def test_a_request_that_never_left_names_its_field_and_may_be_sent_again() -> None:
    unsent = ProviderError(
        "messages[0].content: lone surrogate (request not sent)",
        kind=ErrorKind.BAD_REQUEST,
        code="not_sent",
        sent=False,
    )
    response = failure_response(unsent)
    error = json.loads(bytes(response.body))["error"]
    assert (error["param"], error["code"]) == ("messages[0].content", "invalid_body")
    assert "x-should-retry" not in response.headers
    refused = failure_of(InvalidRequestError("model", "expected 1 to 256 letters"))
    assert (refused.status, refused.param) == (400, "model")


def test_every_target_down_in_both_shapes_and_with_sdk_retries_left_on() -> None:
    down = AllTargetsFailed("chat", (), tenant="acme", retry_after_s=2.2)
    openai_shaped = failure_response(down)
    assert openai_shaped.status_code == 503
    assert openai_shaped.headers["retry-after"] == "3"
    assert openai_shaped.headers["x-should-retry"] == "false"
    anthropic_shaped = render(failure_of(down), anthropic=True, request_id="r-1")
    assert json.loads(bytes(anthropic_shaped.body)) == {
        "type": "error",
        "error": {"type": "overloaded_error", "message": down.message},
        "request_id": "r-1",
    }
    left_on = failure_response(down, sdk_should_retry=True)
    assert "x-should-retry" not in left_on.headers


def test_an_upstream_failure_keeps_its_status_or_becomes_502() -> None:
    caller = ProviderError("bad role", kind=ErrorKind.BAD_REQUEST, status_code=422, sent=True)
    assert (failure_of(caller).status, failure_of(caller).walked) == (422, True)
    broken = ProviderError("garbled", kind=ErrorKind.INVALID_RESPONSE, status_code=200, sent=True)
    answer = render(failure_of(broken), anthropic=True, request_id="r")
    assert answer.status_code == 502
    assert json.loads(bytes(answer.body))["error"]["type"] == "api_error"
