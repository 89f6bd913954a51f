"""Scripted faults, how requests are matched to them, and the record of every hit."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, fields
from typing import Any, Literal

Api = Literal["messages", "chat", "embeddings"]


@dataclass(frozen=True, slots=True, kw_only=True)
class Fault:
    """What to do to a matching request; every field is optional and they combine."""

    status: int | None = None
    """Answer with this error status, in the provider's own error body shape."""
    error_type: str | None = None
    error_code: str | None = None
    message: str | None = None
    retry_after: str | None = None
    """Raw `Retry-After` header value: seconds ("5", "1.5") or an HTTP date."""
    retry_after_ms: str | None = None
    latency_s: float = 0.0
    hang: bool = False
    """Never answer; ends when the client gives up."""
    chunk_delay_s: float = 0.0
    drop_after_chunks: int | None = None
    """Stream: close the connection after N content chunks (needs a real socket: serve())."""
    error_event_after_chunks: int | None = None
    """Stream: a provider-format error event after N content chunks."""
    stall_after_chunks: int | None = None
    """Stream: stop sending after N content chunks, until the client gives up."""
    no_end_marker: bool = False
    """Stream: end cleanly without `message_stop` / `[DONE]` (and without a finish reason)."""
    malformed_body: bool = False
    truncated_body: bool = False
    wrong_content_type: bool = False

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Fault:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"fault: unknown field(s) {', '.join(unknown)}")
        return cls(**data)

    def as_dict(self) -> dict[str, Any]:
        default = Fault()
        return {k: v for k, v in asdict(self).items() if v != getattr(default, k)}


@dataclass(frozen=True, slots=True)
class Hit:
    """One request the chaos upstream received."""

    upstream: str
    api: Api
    model: str | None
    api_key: str | None
    stream: bool
    fault: Fault | None
    at: float

    def as_dict(self) -> dict[str, Any]:
        return {
            "upstream": self.upstream,
            "api": self.api,
            "model": self.model,
            "api_key": self.api_key,
            "stream": self.stream,
            "fault": self.fault.as_dict() if self.fault else None,
            "at": self.at,
        }


@dataclass(slots=True)
class Rule:
    id: int
    fault: Fault | None
    upstream: str | None
    model: str | None
    api_key: str | None
    api: Api | None
    remaining: int | None

    def matches(self, upstream: str, api: Api, model: str | None, api_key: str | None) -> bool:
        return (
            (self.remaining is None or self.remaining > 0)
            and self.upstream in (None, upstream)
            and self.api in (None, api)
            and self.model in (None, model)
            and self.api_key in (None, api_key)
        )


class Script:
    """Rules in insertion order; the first live match decides a request's fault."""

    def __init__(self, clock: Callable[[], float]) -> None:
        self._clock = clock
        self._ids = itertools.count(1)
        self.rules: list[Rule] = []
        self.hits: list[Hit] = []

    def add(
        self,
        fault: Fault | None,
        *,
        upstream: str | None = None,
        model: str | None = None,
        api_key: str | None = None,
        api: Api | None = None,
        times: int | None = None,
    ) -> int:
        if times is not None and times < 1:
            raise ValueError(f"times: must be >= 1 or None, got {times!r}")
        rule = Rule(next(self._ids), fault, upstream, model, api_key, api, times)
        self.rules.append(rule)
        return rule.id

    def remove(self, rule_id: int) -> None:
        self.rules = [r for r in self.rules if r.id != rule_id]

    def take(
        self, upstream: str, api: Api, model: str | None, api_key: str | None, stream: bool
    ) -> Fault | None:
        """The fault for this request (consuming one use of its rule), recorded as a hit."""
        fault = None
        for rule in self.rules:
            if rule.matches(upstream, api, model, api_key):
                if rule.remaining is not None:
                    rule.remaining -= 1
                fault = rule.fault
                break
        self.rules = [r for r in self.rules if r.remaining is None or r.remaining > 0]
        self.hits.append(Hit(upstream, api, model, api_key, stream, fault, self._clock()))
        return fault
