"""Provider adapters against the chaos upstream (in-process) or a canned upstream.

`Upstream` holds the httpx2 pool the adapters share and records what each request
sent (URL, headers, JSON body) through an httpx2 event hook, so tests can check
what the real SDK put on the wire. `canned()` answers every request with fixed
bytes, for answer shapes the chaos upstream does not produce (tool calls, other
stop reasons).
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from resilience.chaos import ChaosUpstream
from tests.support.providers import Sent, Upstream, recording_client


@pytest.fixture
def chaos() -> ChaosUpstream:
    return ChaosUpstream()


@pytest.fixture
async def upstream(chaos: ChaosUpstream) -> AsyncIterator[Upstream]:
    sent: list[Sent] = []
    async with recording_client(sent, transport=chaos.transport()) as http:
        yield Upstream("http://chaos", http, sent)


PROXY_VARIABLES = ("http_proxy", "https_proxy", "all_proxy")


@pytest.fixture
def no_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    """A proxy in the test machine's environment would turn the lean HTTP client off."""
    for name in PROXY_VARIABLES:
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.upper(), raising=False)
