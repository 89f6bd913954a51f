"""The real SDKs aimed at a chaos upstream, in-process or over a loopback socket."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx2
import pytest

from resilience.chaos import ChaosUpstream
from tests.support.chaos import Upstream
from tests.support.clock import FakeClock


@pytest.fixture
async def inproc() -> AsyncIterator[Upstream]:
    """In-process over `chaos.transport()`; latency and chunk delays go to a fake clock."""
    clock = FakeClock()
    chaos = ChaosUpstream(clock=clock, sleep=clock.sleep)
    async with httpx2.AsyncClient(transport=chaos.transport()) as http:
        yield Upstream(chaos, clock, "http://chaos", http)


@pytest.fixture(params=["in-process", "socket"])
async def either(request: pytest.FixtureRequest) -> AsyncIterator[Upstream]:
    """The same upstream in-process and over a real loopback socket (`chaos.serve()`)."""
    clock = FakeClock()
    chaos = ChaosUpstream(clock=clock, sleep=clock.sleep)
    if request.param == "in-process":
        async with httpx2.AsyncClient(transport=chaos.transport()) as http:
            yield Upstream(chaos, clock, "http://chaos", http)
    else:
        async with chaos.serve() as root, httpx2.AsyncClient() as http:
            yield Upstream(chaos, clock, root, http)
