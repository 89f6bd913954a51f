"""Optional OpenTelemetry spans: one for the whole call, one per attempt.

Installed with `pip install 'llm-tenant-resilience[otel]'` (opentelemetry-api). Without it,
or while no SDK tracer provider is configured, every helper here returns a shared no-op context and
costs one check per call.

Spans follow the GenAI semantic conventions where they apply:

- whole call: `resilience {operation} {route}` (kind INTERNAL), with `resilience.tenant`,
  `resilience.route`, `gen_ai.operation.name`, then `resilience.target`,
  `resilience.attempts`, `resilience.fallbacks`, or `error.type` when nothing answered;
- each attempt: `{operation} {model}` (kind CLIENT), with `gen_ai.operation.name`,
  `gen_ai.provider.name` (the SDK flavour: `openai` or `anthropic`),
  `gen_ai.request.model`, `resilience.provider` (the configured name), `resilience.tenant`,
  `resilience.attempt`, `resilience.breaker.state` (at admission), and on success
  `gen_ai.response.model` and `gen_ai.usage.*_tokens`, on failure `error.type` (the
  error kind, or `circuit_open` for a refused admission) and an ERROR status.

For a stream both spans end when the first chunk has arrived.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from opentelemetry.trace import Span, Tracer, TracerProvider

try:
    from opentelemetry import trace as _otel
except ImportError:  # the [otel] extra is not installed
    _otel = None  # type: ignore[assignment]

AttributeValue = str | int | float | bool
INSTRUMENTATION = "resilience"
RECHECK_S = 1.0
"""How often to look again for a global tracer provider while none is set: reading it
costs microseconds per call, so a provider set later is picked up within this time."""


class Tracing:
    """Where spans go: a given tracer provider, else the global one once an SDK sets it."""

    def __init__(self, provider: TracerProvider | None = None) -> None:
        self._tracer: Tracer | None = None
        self._recheck_at = 0.0
        if provider is not None:
            self._tracer = provider.get_tracer(INSTRUMENTATION)

    def tracer(self) -> Tracer | None:
        """The tracer to use now, or None when spans would go nowhere."""
        if self._tracer is not None:
            return self._tracer
        if _otel is None:
            return None
        now = time.monotonic()
        if now < self._recheck_at:
            return None
        self._recheck_at = now + RECHECK_S
        provider = _otel.get_tracer_provider()
        if isinstance(provider, _otel.ProxyTracerProvider | _otel.NoOpTracerProvider):
            return None  # no SDK configured yet; checked again on the next call
        self._tracer = provider.get_tracer(INSTRUMENTATION)
        return self._tracer

    def span(
        self, name: str, *, client: bool, attributes: Mapping[str, AttributeValue]
    ) -> contextlib.AbstractContextManager[Span | None]:
        """`with tracing.span(...) as span:`; `span` is None when tracing is off."""
        tracer = self.tracer()
        if tracer is None or _otel is None:
            return _OFF
        kind = _otel.SpanKind.CLIENT if client else _otel.SpanKind.INTERNAL
        return tracer.start_as_current_span(
            name, kind=kind, attributes=dict(attributes), record_exception=False
        )


_OFF: contextlib.nullcontext[None] = contextlib.nullcontext()


def set_error(span: Span | None, error_type: str, message: str = "") -> None:
    """Mark a span failed with `error.type` (a no-op without a span)."""
    if span is None or _otel is None:
        return
    span.set_attribute("error.type", error_type)
    span.set_status(_otel.Status(_otel.StatusCode.ERROR, message or error_type))


def set_attributes(span: Span | None, attributes: Mapping[str, Any]) -> None:
    """Set the attributes whose value is not None (a no-op without a span)."""
    if span is None:
        return
    for key, value in attributes.items():
        if value is not None:
            span.set_attribute(key, value)
