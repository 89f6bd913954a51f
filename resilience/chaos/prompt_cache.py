"""Anthropic prompt caching: the prefix a request marks with `cache_control`, and whether the
upstream has seen it, so usage reports a cache write the first time and a read after."""

from __future__ import annotations

import hashlib
import json
from collections import OrderedDict
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from resilience.chaos.answers import texts_in, token_count

_SIZE = 4096
"""Prefixes remembered; the oldest go first (real caches expire too)."""


@dataclass(frozen=True, slots=True)
class CacheUse:
    """The usage fields one request reports: tokens written to the cache, tokens read."""

    creation: int = 0
    read: int = 0

    def usage(self) -> dict[str, int]:
        return {"cache_creation_input_tokens": self.creation, "cache_read_input_tokens": self.read}


class PromptCache:
    """The prefixes each upstream has cached, keyed by (upstream, model, prefix)."""

    def __init__(self, size: int = _SIZE) -> None:
        self._size = size
        self._seen: OrderedDict[str, None] = OrderedDict()

    def use(self, upstream: str, model: str, body: Mapping[str, Any]) -> CacheUse:
        """What `body` writes to or reads from the cache (nothing when it marks no prefix)."""
        prefix = marked_prefix(body)
        if prefix is None:
            return CacheUse()
        tokens = sum(_tokens(item) for item in prefix)
        text = json.dumps([upstream, model, prefix], sort_keys=True, default=str)
        key = hashlib.sha256(text.encode()).hexdigest()
        if key in self._seen:
            self._seen.move_to_end(key)
            return CacheUse(read=tokens)
        self._seen[key] = None
        if len(self._seen) > self._size:
            self._seen.popitem(last=False)
        return CacheUse(creation=tokens)

    def clear(self) -> None:
        self._seen.clear()


def marked_prefix(body: Mapping[str, Any]) -> list[Any] | None:
    """Tools, system blocks and message blocks, in the order the API caches them, up to the
    last one carrying `cache_control` (all of them with a top-level `cache_control`)."""
    items = list(_items(body))
    marked = [i for i, item in enumerate(items) if _marked(item)]
    if "cache_control" in body:
        marked.append(len(items) - 1)
    if not marked or not items:
        return None
    return items[: max(marked) + 1]


def _items(body: Mapping[str, Any]) -> Iterator[Any]:
    tools = body.get("tools")
    if isinstance(tools, list):
        yield from ({"tool": tool} for tool in tools)
    system = body.get("system")
    if isinstance(system, list):
        yield from ({"system": block} for block in system)
    elif system is not None:
        yield {"system": system}
    messages = body.get("messages")
    for message in messages if isinstance(messages, list) else []:
        role = message.get("role") if isinstance(message, Mapping) else None
        content = message.get("content") if isinstance(message, Mapping) else message
        if isinstance(content, list):
            yield from ({"role": role, "block": block} for block in content)
        else:
            yield {"role": role, "block": content}


def _marked(item: Mapping[str, Any]) -> bool:
    return any(isinstance(v, Mapping) and "cache_control" in v for v in item.values())


def _tokens(item: Mapping[str, Any]) -> int:
    if "tool" in item:
        return token_count(json.dumps(item["tool"]))
    return sum(token_count(text) for text in texts_in(item))
