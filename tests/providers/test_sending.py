"""The adapters report whether a request reached the transport; `attempt()` acts on it.

A failure before that point (the SDK could not encode the body) is the caller's: a
bad_request that moves no breaker. A failure after it (refused connection, a bad answer)
is still the provider's, as before.
"""

from __future__ import annotations

import socket
from dataclasses import replace

import httpx2
import pytest

from resilience.breaker.events import BreakerState
from resilience.breaker.policy import BreakerPolicy
from resilience.breaker.registry import BreakerRegistry
from resilience.client.attempt import attempt
from resilience.deadline import Deadline
from resilience.errors import ErrorKind, ProviderError
from resilience.models import ChatRequest, EmbeddingRequest, Message
from resilience.providers.anthropic import AnthropicProvider
from resilience.providers.openai import OpenAIProvider
from resilience.providers.sending import dispatch, track_sending, watch
from resilience.providers.settings import ProviderSettings
from tests.support.clock import FakeClock
from tests.support.providers import KINDS, Kind, Upstream

HI = ChatRequest(messages=(Message("user", "hi"),))
UNSENDABLE = {
    "lone_surrogate": ChatRequest(messages=(Message("user", "hi \udc80"),)),
    "nan_in_extra": replace(HI, extra={"seed": float("nan")}),
}


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("name", sorted(UNSENDABLE))
async def test_an_sdk_that_cannot_encode_the_body_never_reaches_the_transport(
    upstream: Upstream, kind: Kind, name: str
) -> None:
    provider = upstream.provider(kind)
    # UnicodeEncodeError, or json's "Out of range float values are not JSON compliant"
    with dispatch() as sending, pytest.raises(ValueError):
        await provider.complete(UNSENDABLE[name], model="m")
    assert (sending.watched, sending.sent, sending.left) == (True, False, False)
    assert upstream.sent == []


@pytest.mark.parametrize("kind", KINDS)
async def test_a_request_that_went_out_is_marked_sent(upstream: Upstream, kind: Kind) -> None:
    provider = upstream.provider(kind)
    with dispatch() as sending:
        await provider.complete(HI, model="m")
    assert sending.left and len(upstream.sent) == 1
    with dispatch() as streamed:
        chunks = [c async for c in provider.stream(HI, model="m")]
    assert chunks and streamed.sent


async def test_embeddings_report_too(upstream: Upstream) -> None:
    provider = upstream.provider("openai")
    with dispatch() as sending, pytest.raises(UnicodeEncodeError):
        await provider.embed(EmbeddingRequest(inputs=("\ud800",)), model="e")
    assert not sending.left


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


@pytest.mark.parametrize("kind", KINDS)
async def test_a_refused_connection_still_counts_as_sent(kind: Kind) -> None:
    root = f"http://127.0.0.1:{_closed_port()}"
    provider: AnthropicProvider | OpenAIProvider
    if kind == "anthropic":
        settings = ProviderSettings(kind="anthropic", api_key="k", base_url=root, timeout_s=2)
        provider = AnthropicProvider("p", settings)
    else:
        settings = ProviderSettings(kind="openai", api_key="k", base_url=f"{root}/v1", timeout_s=2)
        provider = OpenAIProvider("p", settings)
    try:
        with dispatch() as sending, pytest.raises(Exception, match="onnection"):
            await provider.complete(HI, model="m")
    finally:
        await provider.aclose()
    assert sending.left  # handed to the transport: the provider's to answer for


async def test_a_provider_that_does_not_report_is_taken_as_having_sent() -> None:
    with dispatch() as sending:
        pass
    assert sending.left
    with dispatch() as reported:
        watch()
    assert not reported.left


def test_the_hook_is_added_once_and_keeps_the_clients_own_hooks() -> None:
    async def mine(request: httpx2.Request) -> None:
        return None

    client = httpx2.AsyncClient(event_hooks={"request": [mine]})
    settings = ProviderSettings(kind="openai", api_key="k")
    OpenAIProvider("a", settings, http_client=client)
    OpenAIProvider("b", settings, http_client=client)
    track_sending(client)
    hooks = client.event_hooks["request"]
    assert hooks[0] is mine and len(hooks) == 2
    assert len(client.event_hooks["response"]) == 1  # the response size cap, untouched


class _Unreporting:
    """A provider that does not say whether it sent: its failures keep their old meaning."""

    async def complete(self) -> None:
        raise ValueError("answer without choices")


class _Reporting:
    async def complete(self) -> None:
        watch()
        raise ValueError("could not build the request")


@pytest.mark.parametrize(
    ("provider", "kind", "sent", "failures"),
    [
        (_Unreporting(), ErrorKind.INVALID_RESPONSE, True, 1),
        (_Reporting(), ErrorKind.BAD_REQUEST, False, 0),
    ],
)
async def test_attempt_gives_the_breaker_no_verdict_for_a_request_that_never_left(
    provider: _Unreporting | _Reporting, kind: ErrorKind, sent: bool, failures: int
) -> None:
    clock = FakeClock()
    breaker = BreakerRegistry(policy=BreakerPolicy(failure_threshold=1), clock=clock).get("t", "p")
    with pytest.raises(ProviderError) as raised:
        await attempt(
            provider.complete, breaker=breaker, deadline=Deadline.after(5, clock=clock), number=1
        )
    assert (raised.value.kind, raised.value.sent) == (kind, sent)
    assert breaker.failures_in_window() == failures
    assert breaker.state is (BreakerState.OPEN if failures else BreakerState.CLOSED)
