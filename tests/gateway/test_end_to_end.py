"""Once over real sockets: uvicorn runs the gateway (lifespan included), SDKs call it over HTTP."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx2
import openai
import pytest

from resilience.chaos import ChaosUpstream, Fault
from resilience.cli.main import main as cli
from resilience.gateway.factory import Gateway, create_app
from resilience.serving import serve_asgi
from tests.support.gateway import ADMIN, KEYS, settings_for


async def test_gateway_under_uvicorn_answers_streams_and_cancels_on_disconnect(
    tmp_path: Path,
) -> None:
    chaos = ChaosUpstream()
    async with chaos.serve() as upstream:
        app = create_app(settings_for(upstream, tmp_path))
        gateway: Gateway = app.state.gateway
        async with serve_asgi(app, lifespan="on") as root:
            sdk = openai.AsyncOpenAI(api_key=KEYS["acme"], base_url=f"{root}/v1", max_retries=0)
            answer = await sdk.chat.completions.create(
                model="chat", messages=[{"role": "user", "content": "over the wire"}]
            )
            assert answer.choices[0].message.content == "ok: over the wire (answered by chaos)"
            await sdk.close()

            chaos.add_fault(Fault(chunk_delay_s=0.1), upstream="primary")
            body = {
                "model": "chat",
                "stream": True,
                "messages": [{"role": "user", "content": "a b c d e f"}],
            }
            headers = {"authorization": f"Bearer {KEYS['acme']}"}
            async with (
                httpx2.AsyncClient() as http,
                http.stream(
                    "POST", f"{root}/v1/chat/completions", json=body, headers=headers
                ) as response,
            ):
                assert response.status_code == 200
                async for line in response.aiter_lines():
                    if line.startswith("data:"):
                        break  # the caller goes away after the first frame
            breaker = gateway.client.registry.get("acme", "primary")
            # Had the upstream stream gone on, it would end within ~0.6 s and count a
            # success; watch for twice that: the abandoned stream must record nothing.
            for _ in range(60):
                assert breaker.calls_in_window() == 1  # the first request's success only
                await asyncio.sleep(0.02)
            assert breaker.failures_in_window() == 0
            assert chaos.hit_count(upstream="primary") == 2


async def test_admin_commands_act_on_a_running_gateway(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    chaos = ChaosUpstream()
    async with chaos.serve() as upstream:
        app = create_app(settings_for(upstream, tmp_path))
        async with serve_asgi(app, lifespan="on") as root:
            admin = ["--url", root, "--token", ADMIN["ops"]]
            assert (
                await asyncio.to_thread(
                    cli, ["open", "acme", "primary", "--reason", "drill", *admin]
                )
                == 0
            )
            assert "acme/primary: forced_open" in capsys.readouterr().out
            assert await asyncio.to_thread(cli, ["circuits", "--state", "forced_open", *admin]) == 0
            assert "forced_open" in capsys.readouterr().out
            assert await asyncio.to_thread(cli, ["reset", "acme", "primary", *admin]) == 0
            gateway: Gateway = app.state.gateway
            assert gateway.sink is not None
            await gateway.sink.aclose()
            await gateway.sink.start()
            assert await asyncio.to_thread(cli, ["events", "--tenant", "acme", *admin]) == 0
            out = capsys.readouterr().out
            assert "admin_open by ops" in out and "admin_reset by ops" in out
            limited = ["--url", root, "--token", ADMIN["acme-support"]]
            assert await asyncio.to_thread(cli, ["reset", "globex", "primary", *limited]) == 1
            assert "error 403" in capsys.readouterr().err
