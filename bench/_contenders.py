"""The three ways to call the chaos upstream that bench/vs_litellm.py compares, and the upstream.

Each contender is `ask(tenant) -> provider that answered` ("primary" / "fallback"), and
raises when the client gives up. The route is the same for all: an OpenAI-compatible
primary, then an Anthropic fallback, 3 attempts per target (LiteLLM: num_retries=2).
A tenant may have its own primary key (that is how the chaos upstream tells tenants
apart); LiteLLM gets it per request, as `api_key=`, the way its users pass tenants' keys.

The chaos upstream runs in its own process (`resilience chaos`), scripted over its
control API, so its work never shares an event loop with the client being measured.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

import httpx2
import openai

from resilience import ChatRequest, Message, ResilientClient, RetryPolicy, Route, TenantPolicy
from resilience.providers import ProviderSettings, build_provider

Ask = Callable[[str], Awaitable[str]]


@dataclass(frozen=True)
class Contender:
    ask: Ask
    warm: Callable[[], Awaitable[None]]
    """Call each target once directly, so no scenario pays an SDK's first-use cost."""


PRIMARY_MODEL = "gpt-4.1"
FALLBACK_MODEL = "claude-sonnet-4-5"
KEY = "shared-key"
MESSAGES = [{"role": "user", "content": "hello"}]


class Chaos:
    """The chaos upstream in a child process, scripted over `/_chaos/*`."""

    def __init__(self, root: str) -> None:
        self.root = root
        self._http = httpx2.AsyncClient(base_url=root, timeout=10.0)

    async def fault(self, fault: dict[str, Any], **match: Any) -> None:
        answer = await self._http.post("/_chaos/faults", json={"fault": fault, **match})
        answer.raise_for_status()

    async def reset(self) -> None:
        (await self._http.post("/_chaos/reset")).raise_for_status()

    async def clear_faults(self) -> None:
        (await self._http.delete("/_chaos/faults")).raise_for_status()

    async def hits(self) -> list[dict[str, Any]]:
        answer = await self._http.get("/_chaos/hits")
        answer.raise_for_status()
        found = answer.json()
        return list(found["hits"] if isinstance(found, dict) else found)

    async def aclose(self) -> None:
        await self._http.aclose()


@contextlib.asynccontextmanager
async def chaos_process() -> AsyncIterator[Chaos]:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    child = await asyncio.create_subprocess_exec(
        *(sys.executable, "-m", "resilience.cli", "chaos", "--port", str(port)),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    chaos = Chaos(f"http://127.0.0.1:{port}")
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                await chaos.hits()
                break
            except httpx2.TransportError:
                if time.monotonic() > deadline or child.returncode is not None:
                    raise
                await asyncio.sleep(0.1)
        yield chaos
    finally:
        await chaos.aclose()
        child.terminate()
        await asyncio.wait_for(child.wait(), timeout=10)


def bare_sdk(root: str) -> Contender:
    """The baseline: one `openai` SDK call to the primary, no resilience at all."""
    sdk = openai.AsyncOpenAI(api_key=KEY, base_url=f"{root}/primary/v1", max_retries=0)

    async def ask(tenant: str) -> str:
        await sdk.chat.completions.create(
            model=PRIMARY_MODEL,
            messages=MESSAGES,  # type: ignore[arg-type]
            max_tokens=16,
        )
        return "primary"

    async def warm() -> None:
        await ask("warm-up")

    return Contender(ask, warm)


def ours(root: str, tenant_keys: Mapping[str, str] | None = None) -> Contender:
    """`ResilientClient` with default policies and the same retries (3 attempts per target)."""
    providers = {
        "primary": build_provider(
            "primary", ProviderSettings(kind="openai", api_key=KEY, base_url=f"{root}/primary/v1")
        ),
        "fallback": build_provider(
            "fallback", ProviderSettings(kind="anthropic", api_key=KEY, base_url=f"{root}/fallback")
        ),
    }
    tenants = {t: TenantPolicy(api_keys={"primary": k}) for t, k in (tenant_keys or {}).items()}
    client = ResilientClient(
        providers=providers,
        routes={"chat": Route.of("chat", f"primary:{PRIMARY_MODEL}", f"fallback:{FALLBACK_MODEL}")},
        tenants=tenants,
        retry=RetryPolicy(max_attempts=3),
    )
    request = ChatRequest(messages=(Message(role="user", content="hello"),), max_tokens=16)

    async def ask(tenant: str) -> str:
        result = await client.complete(request, route="chat", tenant=tenant)
        return result.target.provider

    async def warm() -> None:
        for target in (f"primary:{PRIMARY_MODEL}", f"fallback:{FALLBACK_MODEL}"):
            await client.complete(request, route=target, tenant="warm-up")

    return Contender(ask, warm)


def litellm_router(
    root: str, *, allowed_fails: int | None, tenant_keys: Mapping[str, str] | None = None
) -> Contender:
    """LiteLLM's Router as its docs configure it: num_retries=2, a fallback, cooldown_time=30."""
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")  # no fetch at import
    import litellm

    litellm.suppress_debug_info = True
    logging.getLogger("LiteLLM").setLevel(logging.CRITICAL)
    logging.getLogger("LiteLLM Router").setLevel(logging.CRITICAL)
    settings: dict[str, Any] = {"num_retries": 2, "cooldown_time": 30}
    if allowed_fails is not None:
        settings["allowed_fails"] = allowed_fails
    router = litellm.Router(
        model_list=[
            {
                "model_name": "primary",
                "litellm_params": {
                    "model": f"openai/{PRIMARY_MODEL}",
                    "api_base": f"{root}/primary/v1",
                    "api_key": KEY,
                },
            },
            {
                "model_name": "fallback",
                "litellm_params": {
                    "model": f"anthropic/{FALLBACK_MODEL}",
                    "api_base": f"{root}/fallback",
                    "api_key": KEY,
                },
            },
        ],
        fallbacks=[{"primary": ["fallback"]}],
        **settings,
    )
    keys = dict(tenant_keys or {})

    async def ask(tenant: str) -> str:
        extra = {"api_key": keys[tenant]} if tenant in keys else {}
        response = await router.acompletion(
            model="primary", messages=MESSAGES, max_tokens=16, **extra
        )
        return "fallback" if "claude" in str(response.model) else "primary"

    async def warm() -> None:
        for group in ("primary", "fallback"):
            await router.acompletion(model=group, messages=MESSAGES, max_tokens=16)

    return Contender(ask, warm)
