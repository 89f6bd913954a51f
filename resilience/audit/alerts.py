"""`AlertSink`: breaker transitions posted to one webhook, never in a request's way.

`emit()` runs on the event loop inside a breaker's verdict, so it only decides and
queues: which transitions alert (`alert_kind`: opened, closed after open, forced open by
an admin) and whether this one repeats a recent alert. A background task posts, one
alert at a time and in order, with httpx2.

- **Dedupe.** Per breaker (tenant, provider) and alert kind: an alert of a kind already
  queued for that breaker within `dedupe_s` is suppressed and counted. The newest
  suppressed transition is held; when its window ends, it is sent (with the number
  suppressed) if it leaves the breaker in another state than the last alert said, so a
  flapping breaker that ends open never looks closed to whoever reads the channel.
- **Retries.** A post that fails (no connection, a timeout, 408, 425, 429 or 5xx) is
  retried after `retry_base_s * 2**n` (at most `retry_max_s`), half of it jittered,
  until it goes through; the alerts behind it wait in order. Other answers (a 4xx: the
  receiver refuses this alert) drop it, logged. A json post is signed again on every
  try, so a receiver's timestamp window accepts alerts that waited out an outage.
- **Bounds.** At most `queue_size` alerts wait; past that the oldest is dropped, counted
  in `stats.dropped` and logged (once per run of drops). `aclose()` gives the queue
  `timeout_s` to go out and drops (counts, logs) the rest: alerts are not spooled.

Delivery is at least once: a post the receiver took but whose answer was lost is sent
again; the payload's `id` (the transition's) tells a receiver it has seen it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import NamedTuple

import httpx2

from resilience.audit.alert_payloads import (
    AlertKind,
    Webhook,
    alert_kind,
    json_payload,
    signed_headers,
    slack_payload,
)
from resilience.breaker.events import BreakerTransition
from resilience.types import BreakerKey, Clock, Sleep

logger = logging.getLogger("resilience.alerts")

RETRY_STATUSES = frozenset({408, 425, 429})
"""Besides 5xx: answers that mean "later", so the post is retried."""


@dataclass(slots=True)
class AlertStats:
    received: int = 0
    """Every transition handed to `emit`."""
    alerts: int = 0
    """Transitions that raise an alert this webhook wants (sent, suppressed or dropped)."""
    deduplicated: int = 0
    sent: int = 0
    failed_posts: int = 0
    """Tries that failed and were retried (one alert may count several)."""
    refused: int = 0
    """Alerts the receiver refused (a 4xx other than 408, 425, 429), not retried."""
    dropped: int = 0
    """Alerts lost: the queue was full (the oldest), refused, unencodable, or left at close."""
    receiver_up: bool = True
    """Whether the last post went through."""


class _Alert(NamedTuple):
    event: BreakerTransition
    kind: AlertKind
    suppressed: int


@dataclass(slots=True)
class _Recent:
    """What one breaker's alerts looked like lately: the dedupe state."""

    queued_at: dict[AlertKind, float] = field(default_factory=dict)
    last: AlertKind | None = None
    held: _Alert | None = None
    held_until: float = 0.0
    suppressed: int = 0


class AlertSink:
    """An `AuditSink` posting breaker alerts to `webhook`; see the module docstring.

    Args:
        webhook: where, in which format, which alerts.
        dedupe_s: the window within which a breaker's repeated alert of one kind is
            suppressed; 0 turns dedupe off.
        queue_size: alerts that may wait; past it the oldest is dropped.
        retry_base_s, retry_max_s: the backoff between failed posts.
        timeout_s: one post's timeout.
        tick_s: how often, at most, held alerts are looked at while none arrive.
        clock: monotonic seconds for the dedupe windows; wall_clock: epoch seconds for
            the signed timestamp; sleep: waits out a backoff; jitter: a number in [0, 1).
        http: a client to post with (closed by its owner); by default one of the sink's.
    """

    def __init__(
        self,
        webhook: Webhook,
        *,
        dedupe_s: float = 60.0,
        queue_size: int = 1000,
        retry_base_s: float = 1.0,
        retry_max_s: float = 60.0,
        timeout_s: float = 10.0,
        tick_s: float = 1.0,
        clock: Clock = time.monotonic,
        wall_clock: Clock = time.time,
        sleep: Sleep = asyncio.sleep,
        jitter: Callable[[], float] = random.random,
        http: httpx2.AsyncClient | None = None,
    ) -> None:
        if dedupe_s < 0 or queue_size < 1 or tick_s <= 0:
            raise ValueError(
                "expected dedupe_s >= 0, queue_size >= 1, tick_s > 0; got "
                f"{dedupe_s!r}, {queue_size!r}, {tick_s!r}"
            )
        if not 0 < retry_base_s <= retry_max_s:
            raise ValueError(
                f"expected 0 < retry_base_s <= retry_max_s, got {retry_base_s!r}, {retry_max_s!r}"
            )
        self.webhook = webhook
        self.stats = AlertStats()
        self._dedupe_s = dedupe_s
        self._queue: deque[_Alert] = deque()
        self._queue_size = queue_size
        self._retry_base_s = retry_base_s
        self._retry_max_s = retry_max_s
        self._timeout_s = timeout_s
        self._tick_s = tick_s
        self._clock = clock
        self._wall_clock = wall_clock
        self._sleep = sleep
        self._jitter = jitter
        self._http = http
        self._own_http = http is None
        self._recent: dict[BreakerKey, _Recent] = {}
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._closing = False
        self._closed = False
        self._dropping = False

    # -- the AuditSink protocol ------------------------------------------------------------

    def emit(self, event: BreakerTransition) -> None:
        """Decide and queue; never awaits, never raises."""
        self.stats.received += 1
        try:
            kind = alert_kind(event)
            if kind is None or kind not in self.webhook.events:
                return
            self.stats.alerts += 1
            if self._closed:
                self._drop(1, "the sink is closed")
                return
            self._admit(event, kind, self._clock())
        except Exception:  # an alert must never break a request
            logger.exception("alerts: could not queue %s", getattr(event, "id", "?"))

    # -- lifecycle -----------------------------------------------------------------------------

    async def start(self) -> None:
        """Start posting (alerts emitted before wait in the queue)."""
        if self._task is None and not self._closed:
            if self._http is None:
                self._http = httpx2.AsyncClient(timeout=self._timeout_s)
            self._task = asyncio.create_task(self._run(), name=f"resilience-alerts-{self.name}")

    async def aclose(self, timeout_s: float = 5.0) -> None:
        """Post what is queued within `timeout_s`; count and log what is left as dropped."""
        self._closed = self._closing = True
        task, self._task = self._task, None
        if task is not None:
            self._wake.set()
            try:
                await asyncio.wait_for(asyncio.shield(task), timeout_s)
            except TimeoutError:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        recent = self._recent.values()
        unsent = sum(1 for r in recent if r.held is not None and r.held.kind is not r.last)
        left = len(self._queue) + unsent
        self._queue.clear()
        self._recent.clear()
        if left:
            self._drop(left, "the sink closed before they went out")
        if self._own_http and self._http is not None:
            await self._http.aclose()
            self._http = None

    async def __aenter__(self) -> AlertSink:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    @property
    def name(self) -> str:
        return self.webhook.name

    @property
    def pending(self) -> int:
        """Alerts queued, not yet posted."""
        return len(self._queue)

    def __repr__(self) -> str:
        return f"AlertSink({self.webhook.name!r}, {self.webhook.format}, {self.stats})"

    # -- dedupe --------------------------------------------------------------------------------

    def _admit(self, event: BreakerTransition, kind: AlertKind, now: float) -> None:
        key = (event.tenant_id, event.provider)
        recent = self._recent.get(key)
        if recent is None:
            recent = self._recent[key] = _Recent()
        queued_at = recent.queued_at.get(kind)
        if queued_at is not None and now - queued_at < self._dedupe_s:
            self.stats.deduplicated += 1
            recent.suppressed += 1
            recent.held = _Alert(event, kind, 0)
            recent.held_until = queued_at + self._dedupe_s
            self._wake.set()
            return
        self._queue_alert(recent, _Alert(event, kind, recent.suppressed), now)

    def _queue_alert(self, recent: _Recent, alert: _Alert, now: float) -> None:
        recent.queued_at[alert.kind] = now
        recent.last = alert.kind
        recent.held = None
        recent.suppressed = 0
        if len(self._queue) >= self._queue_size:
            self._queue.popleft()
            self._drop(1, f"the queue is full ({self._queue_size})")
        self._queue.append(alert)
        self._wake.set()

    def _release_held(self, now: float) -> None:
        """Held alerts whose window ended: sent when the breaker's state moved on from the
        last alert; forgotten otherwise. Breakers past every window are forgotten."""
        for key, recent in list(self._recent.items()):
            held = recent.held
            if held is not None and now >= recent.held_until:
                if held.kind is recent.last:
                    recent.held = None
                else:
                    self._queue_alert(recent, held._replace(suppressed=recent.suppressed), now)
            if recent.held is None and all(
                now - at >= self._dedupe_s for at in recent.queued_at.values()
            ):
                del self._recent[key]

    # -- the poster ----------------------------------------------------------------------------

    async def _run(self) -> None:
        while True:
            try:
                self._release_held(self._clock())
                if self._queue:
                    await self._deliver(self._queue.popleft())
                    continue
                if self._closing:
                    return
                self._wake.clear()
                holding = any(r.held is not None for r in self._recent.values())
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), self._tick_s if holding else None)
            except Exception:  # never let the poster die: later alerts still need it
                logger.exception("alerts: %s: poster step failed", self.name)
                await self._sleep(self._retry_max_s)

    async def _deliver(self, alert: _Alert) -> None:
        """Post one alert until it goes through or is refused."""
        try:
            body = self._body(alert)
        except Exception:
            logger.exception("alerts: %s: cannot encode %s", self.name, alert.event.id)
            self._drop(1, "it cannot be encoded")
            return
        failures = 0
        while True:
            problem = await self._post(body)
            if problem is None:
                self._up()
                return
            if problem.startswith("refused"):
                self.stats.refused += 1
                logger.error("alerts: %s: %s; alert %s dropped", self.name, problem, alert.event.id)
                self._drop(1, None)
                return
            self.stats.failed_posts += 1
            if self.stats.receiver_up:
                logger.warning("alerts: %s: %s; retrying with backoff", self.name, problem)
            self.stats.receiver_up = False
            failures += 1
            await self._sleep(self._backoff(failures))

    async def _post(self, body: bytes) -> str | None:
        """None when the receiver took it; else why not (`refused ...` when it never will)."""
        if self._http is None:  # pragma: no cover - set by start()
            raise RuntimeError("alerts: not started")
        secret = self.webhook.secret
        if self.webhook.format == "json" and secret:
            headers = signed_headers(secret, body, now=self._wall_clock())
        else:
            headers = {"content-type": "application/json"}
        try:
            response = await self._http.post(self.webhook.url, content=body, headers=headers)
        except (httpx2.HTTPError, OSError) as exc:
            return f"post failed ({type(exc).__name__})"
        status = response.status_code
        if 200 <= status < 300:
            return None
        if status >= 500 or status in RETRY_STATUSES:
            return f"answered {status}"
        return f"refused with {status}"

    def _body(self, alert: _Alert) -> bytes:
        render = slack_payload if self.webhook.format == "slack" else json_payload
        return render(alert.event, alert.kind, suppressed=alert.suppressed)

    def _backoff(self, failures: int) -> float:
        """`retry_base_s * 2**(failures-1)`, capped, with its upper half jittered."""
        doubled = self._retry_base_s * float(2 ** min(failures - 1, 30))
        ceiling = min(self._retry_max_s, doubled)
        return ceiling / 2 + self._jitter() * ceiling / 2

    def _up(self) -> None:
        self.stats.sent += 1
        if not self.stats.receiver_up:
            logger.warning("alerts: %s: the receiver answers again", self.name)
        if self._dropping:
            logger.warning("alerts: %s: %d alerts dropped so far", self.name, self.stats.dropped)
        self.stats.receiver_up = True
        self._dropping = False

    def _drop(self, count: int, why: str | None) -> None:
        """Count lost alerts; log the first of a run of drops (the total is logged when a
        post goes through again)."""
        self.stats.dropped += count
        if why is not None and not self._dropping:
            logger.warning("alerts: %s: dropping alerts: %s", self.name, why)
            self._dropping = True
