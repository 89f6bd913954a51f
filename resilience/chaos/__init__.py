"""The chaos upstream: fake Anthropic and OpenAI APIs with scripted faults.

Drive the real SDKs at it to test a configuration without any API key::

    chaos = ChaosUpstream()
    chaos.add_fault(Fault(status=503), upstream="openai", times=2)   # two 503s, then healthy
    chaos.add_fault(Fault(status=429, retry_after="5"), api_key="tenant-a-key")
    chaos.add_fault(Fault(drop_after_chunks=2), upstream="anthropic", api="messages")

    http = httpx2.AsyncClient(transport=chaos.transport())            # in-process
    client = openai.AsyncOpenAI(base_url="http://chaos/openai/v1", api_key="x", http_client=http)

    async with chaos.serve() as root:                                   # a real loopback server
        anthropic.AsyncAnthropic(base_url=f"{root}/anthropic", api_key="x")

Any path segment names an upstream, so one server plays many providers. As a
process: `resilience chaos --port 8900`, scripted over HTTP with
`POST /_chaos/faults {"fault": {"status": 503}, "upstream": "openai", "times": 2}`,
`GET /_chaos/hits`, `POST /_chaos/reset`.
"""

from resilience.chaos.app import ChaosDrop, ChaosUpstream
from resilience.chaos.script import Fault, Hit

__all__ = ["ChaosDrop", "ChaosUpstream", "Fault", "Hit"]
