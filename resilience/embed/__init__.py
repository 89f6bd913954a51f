"""Embedding the library in a Starlette or FastAPI app: the gateway's answers, admin API and auth.

- `exception_handlers(client)`: the library's errors answered as the gateway answers them
  (503 with Retry-After during an outage, 429 for a tenant's own rate limit, 401 without
  a tenant), for `exception_handlers=`;
- `admin_app(client, tokens=..., engine=...)`: the admin API and dashboard as one app,
  for `Mount("/admin", app=...)`; the gateway mounts this same app;
- `resilience.embed.fastapi`: `CurrentTenant` and the bearer scheme `/docs` shows (needs
  the `fastapi` extra; not imported here).

Importing this package needs only the plain install (Starlette, SQLAlchemy), never
uvicorn, prometheus or FastAPI.
"""

from resilience.embed.admin import admin_app
from resilience.embed.handlers import exception_handlers

__all__ = ["admin_app", "exception_handlers"]
