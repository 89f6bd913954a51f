"""One finished call's usage: who called, which target answered, what it cost in tokens.

The client makes one record per finished call (normalised, native, streamed: at the
stream's end or abandonment; failed calls too) and hands it to every sink that has
`emit_usage`. The id is made with the record, so a journal replay or a spool retry inserts
it at most once.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol, runtime_checkable

SUCCEEDED = "succeeded"
"""`outcome` of a call some target answered; a failed call's is its error's kind."""


@dataclass(frozen=True, slots=True, kw_only=True)
class UsageRecord:
    """Token counts are None when the provider reported none: unknown, never zero."""

    id: uuid.UUID
    occurred_at: datetime
    tenant_id: str
    route: str
    provider: str | None
    model: str | None
    input_tokens: int | None
    output_tokens: int | None
    cached_tokens: int | None
    latency_ms: float
    outcome: str
    request_id: str | None
    streamed: bool


@runtime_checkable
class UsageSink(Protocol):
    """Where usage records go. Called on the request path: never blocks, never raises."""

    def emit_usage(self, record: UsageRecord) -> None: ...
