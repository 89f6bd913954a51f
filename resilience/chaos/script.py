"""Scripted faults, how requests are matched to them, and the record of every hit."""

from __future__ import annotations

import itertools
import random
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, fields
from typing import Any, Literal, get_args

Api = Literal["messages", "chat", "embeddings", "count_tokens"]
APIS: tuple[Api, ...] = get_args(Api)

_COUNTS = (
    "drop_after_chunks",
    "reset_after_chunks",
    "error_event_after_chunks",
    "stall_after_chunks",
    "body_bytes",
)
_TEXTS = ("error_type", "error_code", "message", "retry_after", "retry_after_ms")
_FLAGS = ("hang", "no_end_marker", "malformed_body", "truncated_body", "wrong_content_type")


@dataclass(frozen=True, slots=True, kw_only=True)
class Fault:
    """What to do to a matching request; every field is optional and they combine.

    Order of effect: `latency_s`, then `hang`, then `status` (an error answer),
    then `wrong_content_type`, then a healthy-looking answer damaged by the rest.
    """

    status: int | None = None
    """Answer with this error status, in the provider's own error body shape."""
    error_type: str | None = None
    """The error `type` (default by status: `overloaded_error`, `rate_limit_exceeded`, ...)."""
    error_code: str | None = None
    """OpenAI's error `code`, e.g. `context_length_exceeded`; Anthropic's
    `error.details.error_code`."""
    message: str | None = None
    retry_after: str | None = None
    """Raw `Retry-After` header value: seconds ("5", "1.5") or an HTTP date."""
    retry_after_ms: str | None = None
    """Raw `retry-after-ms` header value."""
    latency_s: float = 0.0
    """Wait this long (through the injected sleep) before answering."""
    hang: bool = False
    """Never answer; ends when the client gives up and disconnects."""
    chunk_delay_s: float = 0.0
    """Stream: wait this long (injected sleep) before each content chunk after the first,
    and before the end of the stream."""
    drop_after_chunks: int | None = None
    """Stream: close the connection (FIN) after N content chunks, mid-body."""
    reset_after_chunks: int | None = None
    """Stream: abort the connection with a TCP RST after N content chunks."""
    error_event_after_chunks: int | None = None
    """Stream: a provider-format error event after N content chunks, then the body ends."""
    stall_after_chunks: int | None = None
    """Stream: stop sending after N content chunks, until the client gives up."""
    no_end_marker: bool = False
    """Stream: end cleanly without `message_stop` / `[DONE]` (and without a finish reason)."""
    malformed_body: bool = False
    """A 200 whose JSON does not parse (a stream: one event whose data does not parse)."""
    truncated_body: bool = False
    """A 200 whose JSON is cut in half (non-streaming answers only)."""
    wrong_content_type: bool = False
    """A 200 `text/html` page instead of the API's answer."""
    body_bytes: int | None = None
    """A healthy answer padded to about this many bytes: an extra JSON field (a stream:
    SSE comment lines before the first event), so only its size is wrong."""

    def __post_init__(self) -> None:
        # Faults also arrive as JSON over the control API: fail there, not mid-request.
        if self.status is not None and (
            type(self.status) is not int or not 100 <= self.status <= 599
        ):
            raise ValueError(f"status: must be an int in 100..599, got {self.status!r}")
        for name in _TEXTS:
            value = getattr(self, name)
            if value is not None and not isinstance(value, str):
                raise ValueError(f"{name}: must be a string, got {value!r}")
        for name in ("latency_s", "chunk_delay_s"):
            value = getattr(self, name)
            if type(value) not in (int, float) or value < 0:
                raise ValueError(f"{name}: must be a number >= 0, got {value!r}")
        for name in _COUNTS:
            value = getattr(self, name)
            if value is not None and (type(value) is not int or value < 0):
                raise ValueError(f"{name}: must be an int >= 0, got {value!r}")
        for name in _FLAGS:
            if type(getattr(self, name)) is not bool:
                raise ValueError(f"{name}: must be true or false, got {getattr(self, name)!r}")

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Fault:
        """A fault from its JSON form (the control API); unknown fields are an error."""
        if not isinstance(data, Mapping):
            raise ValueError(f"fault: must be an object, got {data!r}")
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"fault: unknown field(s) {', '.join(unknown)}")
        return cls(**data)

    def as_dict(self) -> dict[str, Any]:
        """The fields that differ from a healthy answer, for logs and the control API."""
        default = Fault()
        return {k: v for k, v in asdict(self).items() if v != getattr(default, k)}


@dataclass(frozen=True, slots=True)
class Hit:
    """One request the chaos upstream received, and the fault it was given (None: healthy)."""

    upstream: str
    api: Api
    model: str | None
    api_key: str | None
    stream: bool
    fault: Fault | None
    at: float
    body: dict[str, Any] | None = None
    """The JSON request body exactly as received (None when it was not a JSON object)."""

    def as_dict(self) -> dict[str, Any]:
        return {
            "upstream": self.upstream,
            "api": self.api,
            "model": self.model,
            "api_key": self.api_key,
            "stream": self.stream,
            "fault": self.fault.as_dict() if self.fault else None,
            "at": self.at,
            "body": self.body,
        }


@dataclass(slots=True)
class Rule:
    """A fault with its match; `remaining` None means forever."""

    id: int
    fault: Fault | None
    upstream: str | None
    model: str | None
    api_key: str | None
    api: Api | None
    remaining: int | None
    probability: float | None = None
    """Applies to this share of matching requests (drawn per request); None: every one."""

    def matches(self, upstream: str, api: Api, model: str | None, api_key: str | None) -> bool:
        return (
            (self.remaining is None or self.remaining > 0)
            and self.upstream in (None, upstream)
            and self.api in (None, api)
            and self.model in (None, model)
            and self.api_key in (None, api_key)
        )

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "fault": self.fault.as_dict() if self.fault else None,
            "upstream": self.upstream,
            "model": self.model,
            "api_key": self.api_key,
            "api": self.api,
            "remaining": self.remaining,
            "probability": self.probability,
        }


class Script:
    """Rules in insertion order; the first live match decides a request's fault."""

    def __init__(self, clock: Callable[[], float], *, seed: int | None = None) -> None:
        self.clock = clock
        self.rng = random.Random(seed)
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
        probability: float | None = None,
    ) -> int:
        if fault is not None and not isinstance(fault, Fault):
            raise ValueError(f"fault: must be a Fault or None, got {fault!r}")
        if times is not None and (type(times) is not int or times < 1):
            raise ValueError(f"times: must be an int >= 1 or None, got {times!r}")
        if api is not None and api not in APIS:
            raise ValueError(f"api: must be one of {', '.join(APIS)} or None, got {api!r}")
        for name, value in (("upstream", upstream), ("model", model), ("api_key", api_key)):
            if value is not None and not isinstance(value, str):
                raise ValueError(f"{name}: must be a string or None, got {value!r}")
        if probability is not None and (
            isinstance(probability, bool)
            or not isinstance(probability, int | float)
            or not 0.0 < probability <= 1.0
        ):
            raise ValueError(
                f"probability: must be a number in (0, 1] or None, got {probability!r}"
            )
        rule = Rule(next(self._ids), fault, upstream, model, api_key, api, times, probability)
        self.rules.append(rule)
        return rule.id

    def remove(self, rule_id: int) -> bool:
        """Drop a rule; False if it was unknown (or already used up)."""
        before = len(self.rules)
        self.rules = [r for r in self.rules if r.id != rule_id]
        return len(self.rules) < before

    def take(
        self,
        upstream: str,
        api: Api,
        model: str | None,
        api_key: str | None,
        stream: bool,
        body: dict[str, Any] | None = None,
    ) -> Fault | None:
        """The fault for this request (consuming one use of its rule), recorded as a hit."""
        fault = None
        for rule in self.rules:
            if rule.matches(upstream, api, model, api_key):
                if rule.probability is not None and self.rng.random() >= rule.probability:
                    continue  # not this time: later rules may still apply
                if rule.remaining is not None:
                    rule.remaining -= 1
                fault = rule.fault
                break
        self.rules = [r for r in self.rules if r.remaining is None or r.remaining > 0]
        self.record(Hit(upstream, api, model, api_key, stream, fault, self.clock(), body))
        return fault

    def record(self, hit: Hit) -> None:
        self.hits.append(hit)

    def count(
        self,
        upstream: str | None = None,
        model: str | None = None,
        api: Api | None = None,
        api_key: str | None = None,
    ) -> int:
        return sum(
            1
            for h in self.hits
            if upstream in (None, h.upstream)
            and model in (None, h.model)
            and api in (None, h.api)
            and api_key in (None, h.api_key)
        )
