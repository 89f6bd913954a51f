"""`resilience chaos`: the chaos upstream as a standalone server, scripted over HTTP."""

from __future__ import annotations

from resilience.chaos.app import ChaosUpstream
from resilience.extras import missing


def run(host: str = "127.0.0.1", port: int = 8900, seed: int | None = None) -> None:
    """Serve until interrupted; script it over `/_chaos/*` (see `resilience.chaos`)."""
    try:
        import uvicorn
    except ImportError as exc:
        raise missing("uvicorn", "gateway", "the chaos upstream server") from exc
    root = f"http://{host}:{port}"
    print(f"chaos upstream on {root}  (anthropic: {root}/NAME, openai: {root}/NAME/v1)")
    uvicorn.run(ChaosUpstream(seed=seed).app, host=host, port=port, log_level="warning")
