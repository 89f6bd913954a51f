"""The gateway in-process for tests: tenants' keys, admin tokens, settings on a chaos upstream."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx2
from starlette.applications import Starlette

from resilience.chaos import ChaosUpstream
from resilience.config.load import parse_config
from resilience.gateway.factory import Gateway, create_app
from resilience.gateway.settings import Settings
from resilience.tenancy.resolvers import hash_key

KEYS = {"acme": "gw-key-acme", "globex": "gw-key-globex"}


ADMIN = {"ops": "admin-token-ops", "acme-support": "admin-token-acme"}


@dataclass
class Running:
    app: Starlette
    gateway: Gateway
    chaos: ChaosUpstream
    http: httpx2.AsyncClient

    def auth(self, tenant: str) -> dict[str, str]:
        return {"authorization": f"Bearer {KEYS[tenant]}"}

    def admin(self, token: str = "ops") -> dict[str, str]:
        return {"authorization": f"Bearer {ADMIN[token]}"}


def admin_config(tokens: Mapping[str, str]) -> dict[str, Any]:
    """`[admin]` with two tokens: `ops` over every tenant, `acme-support` over acme only."""
    return {
        "tokens": {
            "ops": {"token_sha256": hash_key(tokens["ops"])},
            "acme-support": {"token_sha256": hash_key(tokens["acme-support"]), "tenant": "acme"},
        }
    }


def chaos_providers(root: str) -> dict[str, dict[str, str]]:
    """`primary` (OpenAI's kind) and `claude` (Anthropic's) on the chaos upstream at `root`,
    both on the key in `UPSTREAM_KEY`."""
    return {
        "primary": {
            "kind": "openai",
            "api_key_env": "UPSTREAM_KEY",
            "base_url": f"{root}/primary/v1",
        },
        "claude": {
            "kind": "anthropic",
            "api_key_env": "UPSTREAM_KEY",
            "base_url": f"{root}/claude",
        },
    }


def settings_for(root: str, tmp_path: Path, database_url: str | None = None) -> Settings:
    environ = {"UPSTREAM_KEY": "upstream-secret-key"}
    config = parse_config(
        {
            "retry": {"max_attempts": 2, "base_delay_s": 0.001, "max_delay_s": 0.002},
            "providers": chaos_providers(root),
            "routes": {
                "chat": {"targets": ["primary:gpt-4.1", "claude:claude-sonnet-4-6"]},
                "embed": {"targets": ["primary:text-embedding-3-small"]},
            },
            "tenants": {t: {"api_key_sha256": [hash_key(k)]} for t, k in KEYS.items()},
            "admin": admin_config(ADMIN),
        },
        environ=environ,
    )
    return Settings(
        config=config,
        database_url=database_url or f"sqlite+aiosqlite:///{tmp_path / 'audit.db'}",
        spool_path=tmp_path / "spool.jsonl",
        environ=environ,
        max_body_bytes=64_000,
    )


@contextlib.asynccontextmanager
async def start(tmp_path: Path, database_url: str | None = None) -> AsyncIterator[Running]:
    chaos = ChaosUpstream()
    async with chaos.serve() as root:
        app = create_app(settings_for(root, tmp_path, database_url))
        async with app.router.lifespan_context(app):
            transport = httpx2.ASGITransport(app=app)
            async with httpx2.AsyncClient(transport=transport, base_url="http://gateway") as http:
                yield Running(app, app.state.gateway, chaos, http)
