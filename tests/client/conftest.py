"""A ResilientClient wired to the chaos upstream through the real SDKs.

Providers: `primary` (OpenAI-compatible, cloud), `fallback` (Anthropic, cloud),
`local` (OpenAI-compatible, local). In-process over an httpx2 ASGI transport by
default; `served=True` goes over a real loopback socket (needed for drops).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack

import pytest

from tests.support.client import Harness


@pytest.fixture
async def harness() -> AsyncIterator[Harness]:
    async with AsyncExitStack() as stack:
        yield Harness(stack)
