"""Redis for the shared-store tests: the server at 127.0.0.1:6379 with a key prefix per test.

When that server is unreachable the tests skip, except under CI=true, where they fail.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import Awaitable, Callable, Iterator

import pytest
import redis

REDIS_URL = os.environ.get("RESILIENCE_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")

pytestmark = pytest.mark.redis


@pytest.fixture(scope="session")
def redis_url() -> str:
    try:
        redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2).ping()
    except redis.RedisError as exc:
        message = f"Redis at {REDIS_URL} is unreachable: {exc}"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    return REDIS_URL


@pytest.fixture
def prefix(redis_url: str) -> Iterator[str]:
    """A namespace of this test's own; its keys are deleted afterwards."""
    name = f"test-{uuid.uuid4().hex[:10]}"
    yield name
    client = redis.Redis.from_url(redis_url)
    keys = list(client.scan_iter(f"{name}:*", count=1000))
    if keys:
        client.delete(*keys)
    client.close()


async def until(
    condition: Callable[[], bool | Awaitable[bool]],
    timeout_s: float = 5.0,
    *,
    every_s: float = 0.002,
) -> None:
    """Wait for something another store or process learns through Redis, polling
    `condition` (plain or async) every `every_s`."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while True:
        held = condition()
        if held if isinstance(held, bool) else await held:
            return
        if loop.time() > deadline:
            raise AssertionError(f"not true within {timeout_s} s")
        await asyncio.sleep(every_s)
