"""`uvicorn app.main:app` from a checkout: the gateway built from the environment.

The gateway itself is `resilience.gateway`; this module is not installed with the package
(a top-level `app` would clash with every application's own), so installed users run
`resilience serve --config ...` instead.
"""

from __future__ import annotations

from starlette.applications import Starlette

from resilience.gateway import create_app

__all__ = ["create_app"]


def __getattr__(name: str) -> Starlette:
    """`app` is built from the environment (RESILIENCE_CONFIG, DATABASE_URL) on first access,
    not at import, so importing this module reads no config."""
    if name == "app":
        app = create_app()
        globals()["app"] = app
        return app
    raise AttributeError(name)
