"""`resilience chaos`: the chaos upstream as a standalone server."""

from __future__ import annotations

import uvicorn

from resilience.chaos.app import ChaosUpstream


def run(host: str = "127.0.0.1", port: int = 8900) -> None:
    """Serve until interrupted; script it over `/_chaos/*`."""
    print(f"chaos upstream on http://{host}:{port}  (anthropic: /NAME, openai: /NAME/v1)")
    uvicorn.run(ChaosUpstream().app, host=host, port=port, log_level="warning")
