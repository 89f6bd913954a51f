"""Prometheus metrics of the gateway, in a registry of its own (one per app).

Counters and the latency histogram are updated by the endpoints; breaker
state gauges and audit sink counters are read at scrape time, so they are
never stale. The tenant label can be switched off (`tenant_label=False`) when
tenants are too many for a time series each.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector
from starlette.requests import Request
from starlette.responses import Response

from resilience.audit.sink import DatabaseSink
from resilience.client import ResilientClient
from resilience.events import BreakerState, BreakerTransition

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


class GatewayMetrics:
    def __init__(
        self,
        client: Callable[[], ResilientClient | None],
        sink: Callable[[], DatabaseSink | None],
        *,
        tenant_label: bool = True,
    ) -> None:
        self.registry = CollectorRegistry()
        self.tenant_label = tenant_label
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
        self.registry.register(_Live(client, sink))

    def tenant(self, tenant: str | None) -> str:
        return (tenant or "") if self.tenant_label else ""

    def emit(self, event: BreakerTransition) -> None:
        """An `AuditSink`: counts transitions."""
        self.transitions.labels(event.provider, str(event.to_state), str(event.reason)).inc()

    async def endpoint(self, request: Request) -> Response:
        return Response(generate_latest(self.registry), media_type=CONTENT_TYPE)


class _Live(Collector):
    """Breaker states and audit sink counters, read when Prometheus scrapes."""

    def __init__(
        self, client: Callable[[], ResilientClient | None], sink: Callable[[], DatabaseSink | None]
    ) -> None:
        self._client = client
        self._sink = sink

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
            yield from _store(client.registry.store.status())
        sink = self._sink()
        if sink is not None:
            for name in ("received", "queued", "written", "spooled", "replayed", "failed_batches"):
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
    for provider in client.providers:
        skips.add_metric([provider], client.rate_limit_skips.get(provider, 0))
    yield from (in_flight, error_rate, latency, skips)
