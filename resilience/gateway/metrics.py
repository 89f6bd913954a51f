"""Prometheus metrics of the gateway, in a registry of its own (one per app).

Counters and the latency histogram are updated by the endpoints; breaker
state gauges and audit sink counters are read at scrape time, so they are
never stale. The tenant label can be switched off (`tenant_label=False`) when
tenants are too many for a time series each.

Label values come from callers (header-mode tenant ids, `provider:model` names), so
nothing here may grow with them or break on them:

- tenants listed in the config keep their label; up to `max_tenants` others get one
  each, first come first served, and the rest share `_other` (not a valid tenant id, so
  it names no real tenant). Counters are folded rather than evicted: an evicted series
  would come back from zero.
- per-model health comes from the client's `HealthBoard`, which is bounded itself.
- a label value no encoder takes (a lone surrogate) is escaped when the page is
  rendered instead of failing the scrape.
- with `token_sha256`, the page (which names tenants) needs `Authorization: Bearer`
  with the token whose SHA-256 that is; else 401.

With `PROMETHEUS_MULTIPROC_DIR` set (`resilience serve --workers N`), the page sums every
worker's counts, whichever worker answers: see `resilience/gateway/metrics_workers.py`.
The tenant labels above are given per worker, so up to `max_tenants` others in each.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable, Iterable, Iterator, Sequence
from contextlib import AbstractAsyncContextManager
from typing import Any, NamedTuple

from resilience.extras import missing

try:
    from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
    from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
    from prometheus_client.metrics_core import Metric
    from prometheus_client.registry import Collector
except ImportError as exc:
    raise missing("prometheus-client", "gateway", "the gateway's /metrics") from exc
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from resilience.audit.alerts import AlertSink
from resilience.audit.sink import DatabaseSink
from resilience.breaker.events import BreakerState, BreakerTransition
from resilience.client.resilient import ResilientClient
from resilience.gateway.metrics_workers import WorkerMetrics, shared_directory
from resilience.routing.health import utf8_safe
from resilience.tenancy.resolvers import DigestMatcher
from resilience.usage.record import UsageRecord

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
OTHER_TENANTS = "_other"
"""The tenant label shared by tenants past `max_tenants`."""

Lifespan = Callable[[Starlette], AbstractAsyncContextManager[None]]


class GatewayMetrics:
    def __init__(
        self,
        client: Callable[[], ResilientClient | None],
        sink: Callable[[], DatabaseSink | None],
        *,
        tenant_label: bool = True,
        max_tenants: int = 1000,
        known_tenants: Iterable[str] = (),
        token_sha256: str | None = None,
        alerts: Callable[[], Sequence[AlertSink]] = tuple,
    ) -> None:
        if max_tenants < 0:
            raise ValueError(f"max_tenants: must be >= 0, got {max_tenants!r}")
        self.registry = CollectorRegistry()
        self.tenant_label = tenant_label
        self._labelled: set[str] = set(known_tenants)
        self._room = max_tenants
        """Tenants not in the config that may still get a label of their own."""
        self._token = DigestMatcher([(token_sha256, True)]) if token_sha256 else None
        self.requests = Counter(
            "resilience_requests",
            "Gateway requests by tenant, answering provider and outcome.",
            ["tenant", "provider", "outcome"],
            registry=self.registry,
        )
        self.attempts = Counter(
            "resilience_attempts",
            "Upstream attempts made for answered requests.",
            ["provider"],
            registry=self.registry,
        )
        self.fallbacks = Counter(
            "resilience_fallbacks",
            "Requests answered by a target other than the route's first.",
            ["provider"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "resilience_upstream_latency_seconds",
            "Time to answer (to the first chunk for streams), by answering provider.",
            ["provider"],
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
            registry=self.registry,
        )
        self.transitions = Counter(
            "resilience_breaker_transitions",
            "Breaker transitions by provider, new state and reason.",
            ["provider", "to_state", "reason"],
            registry=self.registry,
        )
        self.tokens = Counter(
            "resilience_tokens",
            "Tokens the providers reported, by tenant, provider and kind (input, output, "
            "cached: the part of input read from the prompt cache).",
            ["tenant", "provider", "kind"],
            registry=self.registry,
        )
        # label children, by (tenant label, provider) and by (tenant label, provider, kind):
        # `labels()` costs microseconds on every request, a dict lookup much less; bounded
        # as the tenant labels are
        self._answered: dict[tuple[str, str], _Answered] = {}
        self._counted: dict[tuple[str, str, str], Counter] = {}
        live = _Live(client, sink, alerts)
        self.registry.register(live)
        directory = shared_directory()
        self.workers = WorkerMetrics(directory, live) if directory is not None else None
        """Set when several workers serve: the page is then every worker's."""

    def tenant(self, tenant: str | None) -> str:
        """The label value for `tenant`: itself, or `_other` once `max_tenants` are taken."""
        if not tenant or not self.tenant_label:
            return ""
        if tenant in self._labelled:
            return tenant
        if self._room <= 0:
            return OTHER_TENANTS
        self._room -= 1
        self._labelled.add(tenant)
        return tenant

    def around(self, lifespan: Lifespan) -> Lifespan:
        """`lifespan` itself; across workers, with this worker's snapshots published inside it."""
        workers = self.workers
        if workers is None:
            return lifespan

        @contextlib.asynccontextmanager
        async def publishing(app: Starlette) -> AsyncIterator[None]:
            try:
                async with lifespan(app):
                    workers.start()
                    yield
            finally:
                await workers.aclose()

        return publishing

    def emit(self, event: BreakerTransition) -> None:
        """An `AuditSink`: counts transitions."""
        self.transitions.labels(event.provider, str(event.to_state), str(event.reason)).inc()

    def emit_usage(self, record: UsageRecord) -> None:
        """A `UsageSink`: counts the tokens a call reported (unknown counts add nothing)."""
        tenant, provider = self.tenant(record.tenant_id), record.provider or ""
        for kind, count in (
            ("input", record.input_tokens),
            ("output", record.output_tokens),
            ("cached", record.cached_tokens),
        ):
            if count:  # a series appears with its first token, never at 0
                key = (tenant, provider, kind)
                child = self._counted.get(key)
                if child is None:
                    child = self._counted[key] = self.tokens.labels(tenant, provider, kind)
                child.inc(count)

    def answered(
        self, tenant: str | None, provider: str, attempts: int, fell_back: bool, seconds: float
    ) -> None:
        """One request answered by `provider` after `attempts` upstream attempts."""
        key = (self.tenant(tenant), provider)
        found = self._answered.get(key)
        if found is None:
            found = self._answered[key] = _Answered(
                self.requests.labels(key[0], provider, "ok"),
                self.attempts.labels(provider),
                self.fallbacks.labels(provider),
                self.latency.labels(provider),
            )
        found.requests.inc()
        found.attempts.inc(attempts)
        if fell_back:
            found.fallbacks.inc()
        found.latency.observe(seconds)

    async def endpoint(self, request: Request) -> Response:
        if self._token is not None and not self._authorized(request):
            return JSONResponse(
                {
                    "error": {
                        "message": "a valid metrics bearer token is required",
                        "type": "authentication_error",
                        "code": "invalid_metrics_token",
                    }
                },
                status_code=401,
                headers={"www-authenticate": "Bearer"},
            )
        if self.workers is not None:
            return Response(await self.workers.page(render), media_type=CONTENT_TYPE)
        return Response(render(self.registry), media_type=CONTENT_TYPE)

    def _authorized(self, request: Request) -> bool:
        scheme, _, presented = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not presented.strip() or self._token is None:
            return False
        return self._token.match(presented.strip()) is not None


def render(registry: Collector) -> bytes:
    """The exposition page; a label value UTF-8 cannot carry (a lone surrogate from a
    caller) is escaped (`\\udc80`) rather than failing the whole scrape."""
    try:
        return generate_latest(registry)
    except UnicodeEncodeError:
        return generate_latest(_Escaped(registry))


class _Answered(NamedTuple):
    requests: Counter
    attempts: Counter
    fallbacks: Counter
    latency: Histogram


class _Escaped(Collector):
    """`registry` with every label value made encodable; used only when one is not."""

    def __init__(self, registry: Collector) -> None:
        self._registry = registry

    def collect(self) -> Iterator[Metric]:
        for metric in self._registry.collect():
            copy = Metric(metric.name, utf8_safe(metric.documentation), metric.type, metric.unit)
            copy.samples = [
                s._replace(labels={k: utf8_safe(v) for k, v in s.labels.items()})
                for s in metric.samples
            ]
            yield copy


class _Live(Collector):
    """Breaker states, audit sink and alert counters, read when Prometheus scrapes."""

    def __init__(
        self,
        client: Callable[[], ResilientClient | None],
        sink: Callable[[], DatabaseSink | None],
        alerts: Callable[[], Sequence[AlertSink]],
    ) -> None:
        self._client = client
        self._sink = sink
        self._alerts = alerts

    def collect(self) -> Iterator[GaugeMetricFamily | CounterMetricFamily]:
        states = GaugeMetricFamily(
            "resilience_breakers",
            "Live breakers by provider and state.",
            labels=["provider", "state"],
        )
        client = self._client()
        if client is not None:
            counts: dict[tuple[str, str], int] = {}
            for snap in client.registry.circuits():
                key = (snap.provider, str(snap.state))
                counts[key] = counts.get(key, 0) + 1
            for provider in client.providers:
                for state in BreakerState:
                    states.add_metric([provider, str(state)], counts.get((provider, str(state)), 0))
        yield states
        tasks = GaugeMetricFamily(
            "resilience_event_loop_tasks", "asyncio tasks alive in the gateway's event loop."
        )
        tasks.add_metric([], len(asyncio.all_tasks()))
        yield tasks
        if client is not None:
            yield from _health(client)
            yield from _bulkheads(client)
            yield from _store(client.registry.store.status())
        sink = self._sink()
        if sink is not None:
            counted = ("received", "queued", "written", "spooled", "replayed", "failed_batches")
            for name in (*counted, "quarantined", "spool_errors"):
                family = CounterMetricFamily(
                    f"resilience_audit_{name}", f"Audit sink events {name.replace('_', ' ')}."
                )
                family.add_metric([], getattr(sink.stats, name))
                yield family
            up = GaugeMetricFamily(
                "resilience_audit_database_up", "Whether the last audit write succeeded."
            )
            up.add_metric([], 1 if sink.stats.database_up else 0)
            yield up
            backlog = GaugeMetricFamily(
                "resilience_audit_backlog",
                "Audit events not yet in the database: queued in memory, or spooled to disk.",
                labels=["where"],
            )
            for where, count in sink.backlog().items():
                backlog.add_metric([where], count)
            yield backlog
        yield from _alerts(self._alerts())


def _store(status: dict[str, Any]) -> Iterator[GaugeMetricFamily | CounterMetricFamily]:
    """Whether breakers are shared (Redis answers) or process-local right now."""
    shared = GaugeMetricFamily(
        "resilience_breaker_store_shared",
        "1 while breakers are shared through Redis, 0 while they are process-local.",
        labels=["kind"],
    )
    shared.add_metric([str(status["kind"])], 1 if status["shared"] else 0)
    yield shared
    if "outages" in status:
        outages = CounterMetricFamily(
            "resilience_breaker_store_outages",
            "Times Redis stopped answering and breakers fell back to process-local.",
        )
        outages.add_metric([], status["outages"])
        yield outages
        resyncs = CounterMetricFamily(
            "resilience_breaker_store_resyncs",
            "Times breakers were resynchronised with Redis after an outage.",
        )
        resyncs.add_metric([], status["resyncs"])
        yield resyncs


def _bulkheads(client: ResilientClient) -> Iterator[GaugeMetricFamily | CounterMetricFamily]:
    """Each provider's concurrency gate: its learned limit, calls in flight and waiting,
    and the calls it refused, by reason (no tenant labels: the gate is per provider)."""
    if client.bulkheads is None:
        return
    labels = ["provider"]
    limit = GaugeMetricFamily(
        "resilience_bulkhead_limit", "The provider's learned concurrency limit.", labels=labels
    )
    in_flight = GaugeMetricFamily(
        "resilience_bulkhead_in_flight", "Calls holding a slot.", labels=labels
    )
    waiting = GaugeMetricFamily(
        "resilience_bulkhead_waiting", "Calls waiting for a slot.", labels=labels
    )
    refused = CounterMetricFamily(
        "resilience_bulkhead_refused",
        "Targets skipped without a call: the tenant's own cap, or the gate full for the wait.",
        labels=[*labels, "reason"],
    )
    for provider in client.providers:
        gate = client.bulkheads.gate(provider)
        limit.add_metric([provider], gate.limit)
        in_flight.add_metric([provider], gate.in_flight)
        waiting.add_metric([provider], gate.waiting)
        for reason, count in gate.refused.items():
            refused.add_metric([provider, str(reason)], count)
    yield from (limit, in_flight, waiting, refused)


def _health(client: ResilientClient) -> Iterator[GaugeMetricFamily | CounterMetricFamily]:
    """Per (provider, model) health from the client's board, and rpm skips per provider."""
    labels = ["provider", "model"]
    in_flight = GaugeMetricFamily(
        "resilience_upstream_in_flight", "Attempts under way.", labels=labels
    )
    error_rate = GaugeMetricFamily(
        "resilience_upstream_error_rate",
        "Failed share of the last 256 finished attempts.",
        labels=labels,
    )
    latency = GaugeMetricFamily(
        "resilience_upstream_latency_recent_seconds",
        "Latency of the last 256 successful attempts, by quantile (ewma: the weighted mean).",
        labels=[*labels, "quantile"],
    )
    for snap in client.health.snapshot():
        key = [snap.provider, snap.model]
        in_flight.add_metric(key, snap.in_flight)
        error_rate.add_metric(key, snap.error_rate)
        for quantile, ms in (("0.5", snap.p50_ms), ("0.99", snap.p99_ms), ("ewma", snap.ewma_ms)):
            if ms is not None:
                latency.add_metric([*key, quantile], ms / 1000.0)
    skips = CounterMetricFamily(
        "resilience_rate_limit_skips",
        "Targets skipped without a call because a requests-per-minute bucket was empty.",
        labels=["provider"],
    )
    token_skips = CounterMetricFamily(
        "resilience_token_limit_skips",
        "Targets skipped without a call because a tokens-per-minute bucket was empty.",
        labels=["provider"],
    )
    for provider in client.providers:
        skips.add_metric([provider], client.rate_limit_skips.get(provider, 0))
        token_skips.add_metric([provider], client.token_limit_skips.get(provider, 0))
    yield from (in_flight, error_rate, latency, skips, token_skips)


ALERT_COUNTS = ("sent", "failed_posts", "refused", "dropped", "deduplicated")
"""`AlertStats` counters in `/metrics`, per webhook (`resilience_alerts_<name>`)."""


def _alerts(sinks: Sequence[AlertSink]) -> Iterator[GaugeMetricFamily | CounterMetricFamily]:
    """Each `[alerts]` webhook's delivery: what went out, what failed, and whether its
    receiver took the last post."""
    if not sinks:
        return
    for name in ALERT_COUNTS:
        family = CounterMetricFamily(
            f"resilience_alerts_{name}",
            f"Breaker alerts {name.replace('_', ' ')}, per webhook.",
            labels=["webhook"],
        )
        for alert_sink in sinks:
            family.add_metric([alert_sink.webhook.name], getattr(alert_sink.stats, name))
        yield family
    up = GaugeMetricFamily(
        "resilience_alerts_receiver_up",
        "Whether the webhook's receiver took the last post.",
        labels=["webhook"],
    )
    for alert_sink in sinks:
        up.add_metric([alert_sink.webhook.name], 1 if alert_sink.stats.receiver_up else 0)
    yield up
