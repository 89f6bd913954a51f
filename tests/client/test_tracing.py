"""Tracing is optional: without the `otel` extra, or without an SDK, calls are not traced."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

from opentelemetry.sdk.trace import TracerProvider

from resilience.client.tracing import Tracing

ROOT = Path(__file__).resolve().parents[2]


def test_a_given_tracer_provider_is_used() -> None:
    assert Tracing(TracerProvider()).tracer() is not None


def test_without_any_sdk_configured_there_is_no_tracer() -> None:
    assert Tracing().tracer() is None


def test_without_opentelemetry_installed_the_client_still_works() -> None:
    # A fresh interpreter in which `import opentelemetry` fails, as without the extra.
    script = textwrap.dedent(
        """
        import asyncio, sys
        sys.modules["opentelemetry"] = None
        from resilience import ResilientClient, Route
        from resilience.models import ChatRequest, ChatResponse, Message, Usage

        class Echo:
            name, kind, location, can_embed = "p", "openai", "cloud", False
            async def complete(self, request, *, model, api_key=None):
                return ChatResponse(text="hi", content=(), finish_reason="stop",
                                    raw_finish_reason="stop", usage=Usage(), provider="p",
                                    model=model)
            async def aclose(self): pass

        async def main():
            client = ResilientClient(providers={"p": Echo()}, routes={"c": Route.of("c", "p:m")})
            result = await client.complete(
                ChatRequest(messages=(Message(role="user", content="x"),)), route="c", tenant="t"
            )
            assert client.tracing.tracer() is None
            print(result.value.text, result.target)

        asyncio.run(main())
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "hi p:m"
