"""The gateway process freezes what its start built, so full collections skip it.

A full collection walks every tracked object; in a gateway that is mostly the SDKs', the
config's and the app's, and walking them stalled every request for ~100 ms each time
(`bench/bulkhead.py`'s quiet tenant). `Settings.from_env` (how `resilience serve` builds the
gateway) turns `freeze_gc_on_start` on; settings built in code leave it off, as the process
may own other things.
"""

from __future__ import annotations

import dataclasses
import gc
from pathlib import Path

from resilience.chaos import ChaosUpstream
from resilience.gateway.factory import create_app
from resilience.gateway.settings import Settings
from resilience.serving import serve_asgi
from tests.support.gateway import settings_for


def _tracked(marker: object) -> bool:
    """Whether the collector's generations (not the permanent one) hold `marker`."""
    return any(found is marker for found in gc.get_objects())


async def test_the_start_freezes_what_it_built(tmp_path: Path) -> None:
    chaos = ChaosUpstream()
    marker: dict[str, list[int]] = {"built before the start": [1]}
    async with chaos.serve() as upstream:
        settings = dataclasses.replace(settings_for(upstream, tmp_path), freeze_gc_on_start=True)
        assert _tracked(marker)
        try:
            async with serve_asgi(create_app(settings), lifespan="on"):
                assert gc.get_freeze_count() > 0
                assert not _tracked(marker)
                after = {"built after the start": [2]}
                assert _tracked(after)  # requests' objects are collected as usual
        finally:
            gc.unfreeze()


async def test_settings_built_in_code_leave_the_collector_alone(tmp_path: Path) -> None:
    chaos = ChaosUpstream()
    async with chaos.serve() as upstream:
        settings = settings_for(upstream, tmp_path)
        assert not settings.freeze_gc_on_start
        before = gc.get_freeze_count()
        async with serve_asgi(create_app(settings), lifespan="on"):
            assert gc.get_freeze_count() == before


def test_the_gateway_process_settings_freeze(tmp_path: Path) -> None:
    config = tmp_path / "gateway.toml"
    config.write_text('[providers.p]\nkind = "openai"\napi_key_env = "K"\n')
    environ = {
        "RESILIENCE_CONFIG": str(config),
        "DATABASE_URL": f"sqlite:///{tmp_path}/audit.db",
        "K": "k",
    }
    assert Settings.from_env(environ).freeze_gc_on_start
