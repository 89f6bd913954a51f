"""The answer each API gives once no fault has stopped the request, and the body faults that
damage a healthy-looking JSON answer (padding, malformed, truncated)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from starlette.responses import Response

from resilience.chaos import anthropic_api, openai_api
from resilience.chaos.prompt_cache import PromptCache
from resilience.chaos.script import Api, Fault
from resilience.chaos.stream import EventStream
from resilience.types import Sleep

MODELS = ("chaos-model", "chaos-embedding")
"""What `GET /U/v1/models` lists (the upstream answers any model name all the same)."""
_CREATED = 1_700_000_000
"""A fixed creation time (2023-11-14), so the list is the same on every call."""


def healthy(
    api: Api,
    *,
    upstream: str,
    model: str,
    body: Mapping[str, Any],
    fault: Fault,
    sleep: Sleep,
    cache: PromptCache,
) -> Response:
    """The answer `body` gets from `api`, with `fault`'s damage to the body applied."""
    if api == "embeddings":
        return json_answer(openai_api.embeddings(model, body), fault)
    if api == "count_tokens":
        return json_answer(anthropic_api.count_tokens(body), fault)
    stream = body.get("stream") is True
    if api == "messages":
        reply = anthropic_api.reply(body, cache.use(upstream, model, body))
        if stream:
            return EventStream(anthropic_api.stream(model, reply, fault), fault, sleep)
        return json_answer(anthropic_api.message(model, reply), fault)
    answer = openai_api.reply(body)
    if stream:
        options = body.get("stream_options")
        usage = isinstance(options, Mapping) and options.get("include_usage") is True
        frames = openai_api.stream(model, answer, fault, include_usage=usage)
        return EventStream(frames, fault, sleep)
    return json_answer(openai_api.completion(model, answer), fault)


def json_answer(payload: dict[str, Any], fault: Fault) -> Response:
    """`payload` as JSON, padded, garbled or cut in half as `fault` says."""
    if fault.body_bytes:
        payload = {**payload, "chaos_padding": "x" * fault.body_bytes}
    text = json.dumps(payload)
    if fault.malformed_body:
        text = "{chaos: this is not json"
    elif fault.truncated_body:
        text = text[: len(text) // 2]
    return Response(text, media_type="application/json")


def models(*, anthropic: bool) -> dict[str, Any]:
    """`GET /v1/models`: OpenAI's list shape, or Anthropic's when the request is Anthropic's."""
    data: list[dict[str, Any]]
    if anthropic:
        data = [
            {"type": "model", "id": m, "display_name": m, "created_at": "2023-11-14T22:13:20Z"}
            for m in MODELS
        ]
        return {"data": data, "has_more": False, "first_id": MODELS[0], "last_id": MODELS[-1]}
    data = [{"id": m, "object": "model", "created": _CREATED, "owned_by": "chaos"} for m in MODELS]
    return {"object": "list", "data": data}
