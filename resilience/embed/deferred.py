"""A client or engine given now, or as a callable for one the application's lifespan builds.

An app and its mounts are made at import time; the `ResilientClient` and the audit engine
usually only in the lifespan. Taking `lambda: state.client` lets both be wired at once.
"""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy.ext.asyncio import AsyncEngine

from resilience.client.resilient import ResilientClient


def deferred_client(
    client: ResilientClient | Callable[[], ResilientClient],
) -> Callable[[], ResilientClient]:
    """The client, asked for at each request."""
    if isinstance(client, ResilientClient):
        return lambda: client
    return client


def deferred_engine(
    engine: AsyncEngine | Callable[[], AsyncEngine] | None,
) -> Callable[[], AsyncEngine] | None:
    """The audit engine, asked for at each request; None stays None (no audit database)."""
    if isinstance(engine, AsyncEngine):
        return lambda: engine
    return engine
