"""`resilience chaos`: the chaos upstream as a standalone server, scripted over HTTP."""

from __future__ import annotations

import uvicorn

from resilience.chaos.app import ChaosUpstream


def run(host: str = "127.0.0.1", port: int = 8900, seed: int | None = None) -> None:
    """Serve until interrupted; script it over `/_chaos/*` (see `resilience.chaos`)."""
    root = f"http://{host}:{port}"
    print(f"chaos upstream on {root}  (anthropic: {root}/NAME, openai: {root}/NAME/v1)")
    uvicorn.run(ChaosUpstream(seed=seed).app, host=host, port=port, log_level="warning")
