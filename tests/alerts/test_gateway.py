"""The gateway posts `[alerts]` webhooks: a breaker opened by real traffic arrives signed."""

from __future__ import annotations

import re
from pathlib import Path

import httpx2

from resilience.chaos import ChaosUpstream, Fault
from resilience.config.load import parse_config
from resilience.gateway.factory import create_app
from resilience.gateway.settings import Settings
from resilience.tenancy.resolvers import hash_key
from tests.alerts.doc import metric_names
from tests.alerts.receiver import SECRET, Receiver
from tests.support.gateway import chaos_providers
from tests.support.servers import until

KEY = "gw-key-acme"


def settings(root: str, hook: str, tmp_path: Path) -> Settings:
    environ = {"UPSTREAM_KEY": "upstream-secret", "ALERTS_SECRET": SECRET.decode()}
    config = parse_config(
        {
            "breaker": {"failure_threshold": 2},
            "retry": {"max_attempts": 2, "base_delay_s": 0.001, "max_delay_s": 0.002},
            "providers": chaos_providers(root),
            "routes": {"chat": {"targets": ["primary:gpt-4.1", "claude:claude-sonnet-4-6"]}},
            "tenants": {"acme": {"api_key_sha256": [hash_key(KEY)]}},
            "alerts": {
                "webhooks": {
                    "pager": {"url": hook, "secret_env": "ALERTS_SECRET", "events": ["opened"]}
                }
            },
        },
        environ=environ,
    )
    return Settings(
        config=config,
        database_url=f"sqlite+aiosqlite:///{tmp_path / 'audit.db'}",
        spool_path=tmp_path / "spool.jsonl",
        environ=environ,
    )


async def test_a_breaker_opened_through_the_gateway_is_posted_signed(tmp_path: Path) -> None:
    chaos = ChaosUpstream()
    receiver = Receiver()
    async with chaos.serve() as root, receiver.serve() as hook_root:
        app = create_app(settings(root, f"{hook_root}/hook", tmp_path))
        gateway = app.state.gateway
        async with app.router.lifespan_context(app):
            (sink,) = gateway.alerts
            chaos.add_fault(Fault(status=500), upstream="primary")
            transport = httpx2.ASGITransport(app=app)
            async with httpx2.AsyncClient(transport=transport, base_url="http://gw") as http:
                answer = await http.post(
                    "/v1/chat/completions",
                    headers={"authorization": f"Bearer {KEY}"},
                    json={"model": "chat", "messages": [{"role": "user", "content": "hi"}]},
                )
            assert answer.status_code == 200  # claude answered; the alert is on the side
            await gateway.client.registry.aforce_open("acme", "claude")  # not wanted here
            await until(lambda: len(receiver.posts) == 1 and sink.stats.sent == 1)
            async with httpx2.AsyncClient(transport=transport, base_url="http://gw") as http:
                page = (await http.get("/metrics")).text
        # every metric the documented Prometheus rules use is on the page
        assert len(metric_names()) >= 7
        assert metric_names() <= set(re.findall(r"^(resilience_[a-z_]+)[{ ]", page, re.M))
        assert sink.pending == 0 and sink.stats.sent == 1
        name = sink.webhook.name
        assert f'resilience_alerts_sent_total{{webhook="{name}"}} 1.0' in page
        assert f'resilience_alerts_receiver_up{{webhook="{name}"}} 1.0' in page
    (post,) = receiver.posts
    assert post.verifies()
    body = post.json
    assert (body["alert"], body["scope"]) == ("opened", "tenant")
    assert (body["transition"]["tenant_id"], body["transition"]["provider"]) == ("acme", "primary")
    assert body["summary"].startswith("Breaker opened: tenant acme on primary (threshold")
