"""The chaos upstream: fake Anthropic and OpenAI APIs with scripted faults.

Point the real `anthropic` / `openai` SDKs (or your gateway's provider config) at it to see
what your configuration does when a provider fails, with no API key and no network.

Routes, for any upstream name U (one server plays many providers)::

    POST /U/v1/messages               Anthropic Messages (JSON and SSE)   base_url=f"{root}/U"
    POST /U/v1/messages/count_tokens  Anthropic token count               base_url=f"{root}/U"
    POST /U/v1/chat/completions       OpenAI chat (JSON and SSE)          base_url=f"{root}/U/v1"
    POST /U/v1/embeddings             OpenAI embeddings (float / base64)  base_url=f"{root}/U/v1"
    GET  /U/v1/models                 a fixed list, OpenAI's shape (Anthropic's with an
                                      `anthropic-version` header); never faulted nor recorded

Healthy answers are deterministic: the text is ``ok: <first 40 chars of the last user
message> (answered by chaos)``, streamed one word per chunk, with usage counted in words;
embeddings are 8 numbers (or `dimensions`) derived from a hash of each input (a string or a
token array); `count_tokens` counts the words of the system prompt and every message.
They honour the fields clients parse the answer with, so those clients work unchanged:

- OpenAI `response_format` json_schema: the content is JSON valid against the schema
  (`resilience.chaos.schema_instance`); json_object: an instance of a schema written in
  the prompt (instructor's JSON mode), else ``{"answer": <the text>}``.
- OpenAI `tool_choice` forcing a function (by name, or "required"): a tool call whose
  arguments are valid against its `parameters`, streamed in argument pieces; Anthropic
  `tool_choice` "tool" / "any": a `tool_use` block, streamed as `input_json_delta`s.
- OpenAI `logprobs` / `top_logprobs`, `service_tier` (echoed); usage always carries
  OpenAI's token details, and every answer a `system_fingerprint`.
- Anthropic `thinking`: a signed thinking block first (`thinking_delta`s and a
  `signature_delta` in a stream); `output_config.format`: JSON text valid against it;
  `cache_control` anywhere: the marked prefix is a cache write the first time this
  upstream and model see it and a read after (`cache_creation_input_tokens`,
  `cache_read_input_tokens`; both 0 without `cache_control`).

Script faults from Python::

    chaos = ChaosUpstream()
    chaos.add_fault(Fault(status=503), upstream="openai", times=2)     # two 503s, then healthy
    chaos.add_fault(Fault(status=429, retry_after="5"), api_key="tenant-a-key")
    chaos.add_fault(Fault(drop_after_chunks=2), upstream="claude", api="messages")
    chaos.sequence([Fault(status=500), None, Fault(hang=True)], upstream="openai")

    # in-process: streams, honours the SDK's read timeout, cuts streams like a socket does
    http = httpx2.AsyncClient(transport=chaos.transport())
    sdk = openai.AsyncOpenAI(base_url="http://chaos/openai/v1", api_key="x", http_client=http)

    async with chaos.serve() as root:                                 # real loopback socket
        sdk = anthropic.AsyncAnthropic(base_url=f"{root}/claude", api_key="x")

    chaos.hits, chaos.hit_count(upstream="openai")                    # what was asked
    chaos.hits[-1].body                                               # the JSON body as received

The first live rule that matches (upstream, model, api_key, api: "messages", "chat",
"embeddings" or "count_tokens"; None matches anything) decides a request's fault;
`times=N` rules expire after N matches. Fields of `Fault`
combine: `latency_s`, `hang`, `status` (+ `error_type`, `error_code`, `message`,
`retry_after`, `retry_after_ms`), `wrong_content_type`, `malformed_body`, `truncated_body`,
`body_bytes` (padding), and for streams `chunk_delay_s`, `error_event_after_chunks`,
`drop_after_chunks`, `reset_after_chunks`, `stall_after_chunks`, `no_end_marker` (N counts
content chunks: words of text or thinking, pieces of tool arguments; an N past the end
applies just before the end of the stream).

From another process (`resilience chaos --port 8900`), script it over HTTP::

    POST   /_chaos/faults     {"fault": {"status": 503}, "upstream": "openai", "times": 2}
                              -> {"id": 1}
    POST   /_chaos/sequence   {"faults": [{"status": 500}, null], "upstream": "openai"}
    GET    /_chaos/faults     DELETE /_chaos/faults     DELETE /_chaos/faults/{id}
    GET    /_chaos/hits       DELETE /_chaos/hits       POST   /_chaos/reset

Limits: a TCP reset needs uvicorn (`serve()` or `resilience chaos`); under another ASGI
server it degrades to a drop. Over `transport()` there is no socket, so a drop and a reset
are the httpx2 errors a socket would raise (`RemoteProtocolError`, `ReadError`).
"""

from resilience.chaos.app import ChaosUpstream
from resilience.chaos.script import Fault, Hit
from resilience.chaos.stream import ChaosDrop, ChaosReset

__all__ = ["ChaosDrop", "ChaosReset", "ChaosUpstream", "Fault", "Hit"]
