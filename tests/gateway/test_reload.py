"""SIGHUP: the gateway re-reads its config file; a good file's tenants, routes and admin
tokens serve at once, a bad file changes nothing and the log names its key.

In-process first (the reloader's rules, through the app), then `resilience serve` as an
operator runs it: requests flow the whole time, every one answered 200.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import httpx2
import pytest
from starlette.applications import Starlette

from resilience.chaos import ChaosUpstream
from resilience.config.load import load_config
from resilience.config.schema import ConfigError
from resilience.gateway.factory import Gateway, create_app
from resilience.gateway.reload import ConfigReloader
from resilience.gateway.settings import Settings
from resilience.tenancy.resolvers import hash_key
from tests.support.gateway import settings_for
from tests.support.processes import Process, free_port, wait_up
from tests.support.servers import until

ENV = {"UPSTREAM_KEY": "upstream-secret-key"}
KEYS = {"acme": "gw-key-acme", "initech": "gw-key-initech"}
TOKENS = {"ops": "admin-token-ops", "ops2": "admin-token-ops2"}


def config_text(
    upstream: str,
    *,
    tenants: tuple[str, ...] = ("acme",),
    routes: tuple[str, ...] = ("chat",),
    tokens: tuple[str, ...] = ("ops",),
    extra: str = "",
) -> str:
    """A gateway config: the listed tenants, routes (each to `primary:gpt-4.1`) and tokens."""
    lines = [
        "[retry]\nmax_attempts = 2\nbase_delay_s = 0.001\nmax_delay_s = 0.002\n",
        f'[providers.primary]\nkind = "openai"\napi_key_env = "UPSTREAM_KEY"\n'
        f'base_url = "{upstream}/primary/v1"\n',
    ]
    lines += [f'[routes.{name}]\ntargets = ["primary:gpt-4.1"]\n' for name in routes]
    lines += [f'[tenants.{t}]\napi_key_sha256 = ["{hash_key(KEYS[t])}"]\n' for t in tenants]
    lines += [f'[admin.tokens.{n}]\ntoken_sha256 = "{hash_key(TOKENS[n])}"\n' for n in tokens]
    return "\n".join(lines) + extra


def write(path: Path, text: str) -> None:
    path.write_text(text)


def read(log: Path) -> str:
    return log.read_text(errors="replace")


def bearer(secret: str) -> dict[str, str]:
    return {"authorization": f"Bearer {secret}"}


def chat(model: str = "chat") -> dict[str, object]:
    return {"model": model, "messages": [{"role": "user", "content": "hello"}]}


@dataclass
class InProcess:
    app: Starlette
    gateway: Gateway
    http: httpx2.AsyncClient
    path: Path
    upstream: str

    @property
    def reloader(self) -> ConfigReloader:
        assert self.gateway.reloader is not None
        return self.gateway.reloader

    def write(self, text: str) -> None:
        self.path.write_text(text)

    async def status(self, tenant: str, model: str = "chat") -> int:
        response = await self.http.post(
            "/v1/chat/completions", json=chat(model), headers=bearer(KEYS[tenant])
        )
        return response.status_code

    async def admin(self, token: str) -> int:
        response = await self.http.get("/admin/circuits", headers=bearer(TOKENS[token]))
        return response.status_code


@contextlib.asynccontextmanager
async def in_process(tmp_path: Path) -> AsyncIterator[InProcess]:
    chaos = ChaosUpstream()
    async with chaos.serve() as upstream:
        path = tmp_path / "gateway.toml"
        path.write_text(config_text(upstream))
        settings = Settings(
            config=load_config(path, environ=ENV),
            database_url=f"sqlite+aiosqlite:///{tmp_path / 'audit.db'}",
            spool_path=tmp_path / "spool.jsonl",
            environ=ENV,
        )
        app = create_app(settings)
        async with app.router.lifespan_context(app):
            transport = httpx2.ASGITransport(app=app)
            async with httpx2.AsyncClient(transport=transport, base_url="http://gateway") as http:
                yield InProcess(app, app.state.gateway, http, path, upstream)


async def test_a_good_file_brings_a_tenant_a_route_and_admin_tokens_at_once(
    tmp_path: Path,
) -> None:
    async with in_process(tmp_path) as gw:
        assert await gw.status("initech") == 401
        assert await gw.status("acme", "chat2") == 404
        assert (await gw.admin("ops"), await gw.admin("ops2")) == (200, 401)

        gw.write(
            config_text(
                gw.upstream, tenants=("acme", "initech"), routes=("chat", "chat2"), tokens=("ops2",)
            )
        )
        done = await gw.reloader.reload()

        assert done.applied == ("tenants", "routes", "admin.tokens")
        assert done.needs_restart == ()
        assert await gw.status("initech", "chat2") == 200
        assert await gw.status("acme", "chat") == 200
        assert (await gw.admin("ops"), await gw.admin("ops2")) == (401, 200)
        assert gw.reloader.config.tenants.keys() == {"acme", "initech"}

        gw.write(config_text(gw.upstream))  # and back: initech's key and chat2 are gone
        await gw.reloader.reload()
        assert await gw.status("initech") == 401
        assert await gw.status("acme", "chat2") == 404


async def test_a_bad_file_changes_nothing_and_the_log_names_the_key(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    async with in_process(tmp_path) as gw:
        good = config_text(gw.upstream, tenants=("acme", "initech"), routes=("chat", "chat2"))
        bad = (
            good.replace(hash_key(KEYS["initech"]), "not-a-digest")
            + '\n[routes.chat3]\ntargets = ["primary:gpt-4.1"]\n'
        )
        gw.write(bad)
        with pytest.raises(ConfigError) as refused:
            await gw.reloader.reload()
        assert refused.value.key == "tenants.initech.api_key_sha256[0]"
        assert await gw.status("initech") == 401  # nothing of the bad file applied
        assert await gw.status("acme", "chat3") == 404

        caplog.set_level(logging.INFO, logger="resilience.gateway")
        assert await gw.reloader.reload_and_log() is None
        assert (
            "config reload refused, the previous config keeps serving: "
            "tenants.initech.api_key_sha256[0]:" in caplog.text
        )
        assert await gw.status("acme") == 200


async def test_sections_that_need_a_restart_are_logged_and_left_as_they_were(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="resilience.gateway")
    async with in_process(tmp_path) as gw:
        client = gw.gateway.client
        providers, policy = dict(client.providers), client.registry.policy_for("primary")
        text = config_text(gw.upstream, tenants=("acme", "initech")).replace(
            "[retry]\n",
            "[breaker]\nfailure_threshold = 9\n\n"
            '[alerts.webhooks.ops]\nurl = "http://127.0.0.1:9/hook"\nformat = "slack"\n\n'
            "[retry]\n",
        )
        text = text.replace(
            "[providers.primary]\n",
            '[providers.spare]\nkind = "openai"\nbase_url = "http://127.0.0.1:9/v1"\n\n'
            "[providers.primary]\ntimeout_s = 7\n",
        )
        gw.write(text)
        done = await gw.reloader.reload_and_log()

        assert done is not None
        assert done.needs_restart == (
            "breaker",
            "alerts",
            "providers.primary",
            "providers.spare",
        )
        assert done.applied == ("tenants",)
        assert client.providers == providers
        assert client.registry.policy_for("primary") == policy
        assert done.config.providers == gw.gateway.settings.config.providers  # as started
        assert await gw.status("initech") == 200  # what may change did
        for section in done.needs_restart:
            assert f"config reload: {section} changed in the file; needs a restart" in caplog.text

        again = await gw.reloader.reload()  # still differs from what runs: still said
        assert again.needs_restart == done.needs_restart and again.applied == ()


async def test_a_route_or_tenant_naming_a_provider_not_running_is_refused(tmp_path: Path) -> None:
    spare = '\n[providers.spare]\nkind = "openai"\nbase_url = "http://127.0.0.1:9/v1"\n'
    async with in_process(tmp_path) as gw:
        gw.write(
            config_text(gw.upstream, extra=spare + '\n[routes.spare]\ntargets = ["spare:m"]\n')
        )
        with pytest.raises(ConfigError) as refused:
            await gw.reloader.reload()
        assert refused.value.key == "routes.spare"
        assert "needs a restart" in refused.value.problem

        own = "\n[tenants.initech.providers.spare]\nrpm = 5\n"
        gw.write(config_text(gw.upstream, tenants=("acme", "initech"), extra=spare + own))
        with pytest.raises(ConfigError) as refused:
            await gw.reloader.reload()
        assert refused.value.key == "tenants.initech.providers.spare"
        assert await gw.status("initech") == 401


async def test_a_file_that_cannot_be_read_is_logged_and_changes_nothing(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    async with in_process(tmp_path) as gw:
        gw.path.unlink()
        assert await gw.reloader.reload_and_log() is None
        assert "cannot read the file" in caplog.text and str(gw.path) in caplog.text
        assert await gw.status("acme") == 200


async def test_requests_under_way_during_many_reloads_are_all_answered(tmp_path: Path) -> None:
    async with in_process(tmp_path) as gw:
        one = config_text(gw.upstream, tenants=("acme",), routes=("chat",))
        two = config_text(gw.upstream, tenants=("acme", "initech"), routes=("chat", "chat2"))
        statuses: list[int] = []

        async def traffic() -> None:
            statuses.extend([await gw.status("acme") for _ in range(20)])

        async def reloads() -> None:
            for i in range(20):
                gw.write(two if i % 2 == 0 else one)
                await gw.reloader.reload()

        await asyncio.gather(*(traffic() for _ in range(25)), reloads())
        assert statuses == [200] * 500


async def test_a_config_built_in_code_takes_no_sighup(tmp_path: Path) -> None:
    before = signal.getsignal(signal.SIGHUP)
    chaos = ChaosUpstream()
    async with chaos.serve() as upstream:
        app = create_app(settings_for(upstream, tmp_path))
        async with app.router.lifespan_context(app):
            assert app.state.gateway.reloader is None  # no file to read again
            assert signal.getsignal(signal.SIGHUP) is before


async def test_the_handler_is_there_while_the_gateway_serves_and_gone_after(
    tmp_path: Path,
) -> None:
    before = signal.getsignal(signal.SIGHUP)
    async with in_process(tmp_path):
        assert signal.getsignal(signal.SIGHUP) is not before
    assert signal.getsignal(signal.SIGHUP) is before


# -- `resilience serve`, as an operator runs it ----------------------------------------------


async def test_sighup_with_a_good_then_a_bad_file_keeps_every_request_answered(
    tmp_path: Path,
) -> None:
    chaos = ChaosUpstream()
    async with chaos.serve() as upstream:
        path = tmp_path / "gateway.toml"
        path.write_text(config_text(upstream))
        port = free_port()
        root = f"http://127.0.0.1:{port}"
        env = {
            **os.environ,
            **ENV,
            "DATABASE_URL": f"sqlite:///{tmp_path / 'audit.db'}",
            "RESILIENCE_SPOOL": str(tmp_path / "spool.jsonl"),
            "PYTHONUNBUFFERED": "1",
        }
        args = [sys.executable, "-m", "resilience.cli", "serve", "--config", str(path)]
        log = tmp_path / "gateway.log"
        gateway = Process("gateway", [*args, "--port", str(port), "--grace-s", "5"], env, log)
        await gateway.start()
        try:
            await wait_up(root + "/healthz")
            async with httpx2.AsyncClient(base_url=root, timeout=30) as http:
                await _reloads_while_serving(http, gateway, path, log, upstream)
        finally:
            await gateway.stop(signal.SIGINT)


async def _reloads_while_serving(
    http: httpx2.AsyncClient, gateway: Process, path: Path, log: Path, upstream: str
) -> None:
    answered: list[tuple[str, int]] = []
    phase = "before"
    stop = asyncio.Event()

    async def traffic() -> None:
        while not stop.is_set():
            response = await http.post(
                "/v1/chat/completions", json=chat(), headers=bearer(KEYS["acme"])
            )
            answered.append((phase, response.status_code))

    async def initech_served() -> bool:
        response = await http.post(
            "/v1/chat/completions", json=chat("chat2"), headers=bearer(KEYS["initech"])
        )
        return response.status_code == 200

    def logged(text: str) -> bool:
        return text in read(log)

    senders = [asyncio.create_task(traffic()) for _ in range(4)]
    try:
        await until(lambda: len(answered) >= 20, timeout_s=30, every_s=0.01)
        assert not await initech_served()

        phase = "good"
        write(path, config_text(upstream, tenants=("acme", "initech"), routes=("chat", "chat2")))
        os.kill(gateway.pid, signal.SIGHUP)
        await until(initech_served, timeout_s=30, every_s=0.05)
        await until(lambda: logged("config reloaded from"), timeout_s=30)
        count = len(answered)
        await until(lambda: len(answered) >= count + 20, timeout_s=30, every_s=0.01)

        phase = "bad"
        write(
            path,
            config_text(upstream, tenants=("acme", "initech"), routes=("chat", "chat2")).replace(
                'targets = ["primary:gpt-4.1"]', 'targets = ["primary:gpt-4.1"]\nweight = 3', 1
            ),
        )
        os.kill(gateway.pid, signal.SIGHUP)
        await until(lambda: logged("config reload refused"), timeout_s=30)
        count = len(answered)
        await until(lambda: len(answered) >= count + 20, timeout_s=30, every_s=0.01)
        assert await initech_served()  # the good file's config still serves
    finally:
        stop.set()
        await asyncio.gather(*senders)

    text = read(log)
    assert (
        "config reload refused, the previous config keeps serving: routes.chat.weight: "
        "unknown key" in text
    ), text
    assert gateway.proc is not None and gateway.proc.returncode is None  # still running
    assert {status for _, status in answered} == {200}, answered
    assert {p for p, _ in answered} == {"before", "good", "bad"}
