"""The gateway in-process on the chaos upstream, with a config a test writes for itself:
tenants with their own rpm limits and routes, a local_only tenant, `[server]` keys.

Time is a `FakeClock`: rate-limit buckets refill only when a test moves it.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import anthropic
import httpx2
import openai

from resilience.chaos import ChaosUpstream
from resilience.config.load import parse_config
from resilience.gateway.factory import create_app
from resilience.gateway.settings import Settings
from resilience.tenancy.resolvers import hash_key
from tests.support.clock import FakeClock
from tests.support.gateway import Running

KEYS = {
    "acme": "gw-key-acme",
    "globex": "gw-key-globex",
    "bank": "gw-key-bank",
    "initech": "gw-key-initech",
}
"""acme: the global routes, its own `chat`; globex: its own rpm of 1 on `primary`;
bank: local_only; initech: its own rpm on `primary` and `capped`."""


def config(root: str, server: dict[str, Any] | None = None) -> dict[str, Any]:
    def keys(tenant: str) -> list[str]:
        return [hash_key(KEYS[tenant])]

    openai_at = {"kind": "openai", "api_key_env": "UPSTREAM_KEY"}
    return {
        "server": server or {},
        "retry": {"max_attempts": 2, "base_delay_s": 0.001, "max_delay_s": 0.002},
        "providers": {
            "primary": {**openai_at, "base_url": f"{root}/primary/v1"},
            "claude": {
                "kind": "anthropic",
                "api_key_env": "UPSTREAM_KEY",
                "base_url": f"{root}/claude",
            },
            "local": {"kind": "openai", "base_url": f"{root}/local/v1", "location": "local"},
            "capped": {**openai_at, "base_url": f"{root}/capped/v1", "rpm": 1},
        },
        "routes": {
            "chat": {"targets": ["primary:gpt-4.1", "claude:claude-sonnet-4-6"]},
            "embed": {"targets": ["primary:text-embedding-3-small"]},
            "solo": {"targets": ["primary:gpt-4.1"]},
            "mixed": {"targets": ["primary:gpt-4.1", "local:meta-llama/Llama-3.1-8B"]},
            "cloud": {"targets": ["claude:claude-sonnet-4-6"]},
            "capped": {"targets": ["capped:gpt-4.1"]},
        },
        "tenants": {
            "acme": {
                "api_key_sha256": keys("acme"),
                "routes": {"chat": ["claude:claude-haiku-4-5"]},
            },
            "globex": {"api_key_sha256": keys("globex"), "providers": {"primary": {"rpm": 1}}},
            "bank": {"api_key_sha256": keys("bank"), "local_only": True},
            "initech": {
                "api_key_sha256": keys("initech"),
                "providers": {"primary": {"rpm": 1}, "capped": {"rpm": 5}},
            },
        },
    }


@contextlib.asynccontextmanager
async def serve(
    tmp_path: Path,
    *,
    server: dict[str, Any] | None = None,
    max_body_bytes: int | None = None,
) -> AsyncIterator[tuple[Running, FakeClock]]:
    clock = FakeClock()
    chaos = ChaosUpstream()
    environ = {"UPSTREAM_KEY": "upstream-secret-key"}
    async with chaos.serve() as root:
        settings = Settings(
            config=parse_config(config(root, server), environ=environ),
            database_url=f"sqlite+aiosqlite:///{tmp_path / 'audit.db'}",
            spool_path=tmp_path / "spool.jsonl",
            environ=environ,
            max_body_bytes=max_body_bytes,
            clock=clock,
        )
        app = create_app(settings)
        async with app.router.lifespan_context(app):
            transport = httpx2.ASGITransport(app=app)
            async with httpx2.AsyncClient(transport=transport, base_url="http://gateway") as http:
                yield Running(app, app.state.gateway, chaos, http), clock


def auth(tenant: str) -> dict[str, str]:
    return {"authorization": f"Bearer {KEYS[tenant]}"}


def openai_sdk(running: Running, tenant: str, *, max_retries: int = 0) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(
        api_key=KEYS[tenant],
        base_url="http://gateway/v1",
        max_retries=max_retries,
        http_client=running.http,
    )


def anthropic_sdk(
    running: Running, tenant: str, *, max_retries: int = 0
) -> anthropic.AsyncAnthropic:
    return anthropic.AsyncAnthropic(
        api_key=KEYS[tenant],
        base_url="http://gateway",
        max_retries=max_retries,
        http_client=running.http,
    )
