"""The ASGI gateway: OpenAI- and Anthropic-compatible endpoints and an admin API over `resilience`.

Needs the `gateway` extra (uvicorn, prometheus-client):
`pip install 'llm-tenant-resilience[gateway]'`.
"""

from resilience.gateway.factory import Gateway, create_app
from resilience.gateway.settings import Settings

__all__ = ["Gateway", "Settings", "create_app"]
