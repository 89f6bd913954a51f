"""Breakers shared by every process through Redis (`REDIS_URL`, extra `[redis]`).

Redis holds the state of every (tenant, provider) breaker. Each change is one call
of `breakers.lua`: an atomic script timed by the server's clock (`TIME`), so the
processes' own clocks never disagree about a cooldown. The script returns the
transitions it made, and only the process that ran it emits their audit events:
each transition is audited once, whichever process caused it.

Each process keeps a local view of the breakers it uses (a `SharedBreaker`, in
`shared.py`: the ordinary state machine, fed from Redis through its public interface
only). This module talks to Redis: the connection, the scripts, the change channel,
the outage and the resync. The script publishes every transition on
a channel that all processes subscribe to, and a process that (re)connects loads
the index of breakers that are not closed. So:

- an allow-check on a closed breaker, or on an open one still cooling down, is
  answered locally with no round trip (a forced-open breaker asks Redis, so an
  admin's reset from any process is honoured by the very next request);
- a failure, a probe's verdict, a half-open admission and an admin action go to
  Redis (a failure is sent from a task, so the caller does not wait for it);
- successes are counted locally and sent in one pipelined batch every
  `sync_interval_s` (0.25 s), or with the breaker's next failure;
- staleness: another process learns of a transition when Redis delivers the
  message (well under a millisecond on loopback or a LAN). Calls it admitted
  before that are results of the old generation and count as late results.

If Redis cannot be reached the store logs once, marks itself local
(`status()`, shown in `/readyz` and the metrics) and every breaker goes on
from its last view as a process-local breaker. A task retries every
`reconnect_s`; on success, breakers a process opened on its own are pushed to
Redis unless the shared state moved on, the index is reloaded and every local
view is replaced by the shared one. Requests never wait for Redis to return.

Keys are `<prefix>:b:<provider>:<tenant>` (a hash) and `<prefix>:p:...` (its
probes), expiring `idle_ttl_s` after their last change (an open breaker's after
its cooldown, plus that). Tenants that stop calling cost nothing. Request-rate
(`rpm`) buckets are shared too (`tokens.lua`); while Redis is away each process
uses its own.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import time
import uuid
from collections.abc import Callable, Coroutine, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import resources
from typing import TYPE_CHECKING, Any, TypeVar

from sqlalchemy.engine import make_url

from resilience.breaker.events import BreakerState, BreakerTransition, TransitionReason
from resilience.breaker.machine import ASK_STORE, MAX_DURATION_S, CircuitBreaker, Permit
from resilience.breaker.policy import BreakerPolicy
from resilience.breaker.store.memory import Emit, MemoryStore
from resilience.breaker.store.redis.shared import Mirror, SharedBreaker, SharedView
from resilience.errors import CircuitOpenError, ErrorKind
from resilience.types import PROVIDER_WIDE, BreakerKey, Clock, ProviderName, TenantId

if TYPE_CHECKING:
    from redis.asyncio import Redis
    from redis.asyncio.client import PubSub

# SharedBreaker (shared.py) is named here too: it is the breaker this store makes
__all__ = ["RedisStore", "SharedBreaker", "StoreStatus", "redact"]

logger = logging.getLogger("resilience.breaker.store")
T = TypeVar("T")

SCRIPT = resources.files("resilience.breaker.store.redis").joinpath("breakers.lua").read_text()
TOKENS = resources.files("resilience.breaker.store.redis").joinpath("tokens.lua").read_text()
_CLOSED = BreakerState.CLOSED


@dataclass(slots=True)
class StoreStatus:
    """What `/readyz` and the metrics say about the shared store."""

    url: str
    shared: bool = False
    """True while Redis answers; False while breakers are process-local."""
    outages: int = 0
    resyncs: int = 0
    last_error: str | None = None
    local_verdicts: int = 0
    """Verdicts Redis could not take (it went away): the local breaker took them."""

    def as_dict(self) -> dict[str, Any]:
        """For `/readyz`, which anyone may read: no address (the logs have it, redacted)."""
        return {
            "kind": "redis",
            "shared": self.shared,
            "outages": self.outages,
            "resyncs": self.resyncs,
            "local_verdicts": self.local_verdicts,
            "last_error": self.last_error,
        }


def redact(url: str) -> str:
    """The URL without its password, for logs (as `DatabaseSink` shows its database)."""
    return make_url(url).render_as_string(hide_password=True)


class RedisStore(MemoryStore):
    """The `BreakerStore` for several processes; see the module docstring.

    Call `await start()` before serving (the client does it on its first call) and
    `await aclose()` at shutdown.

    `script_clock` is for tests only: the scripts take their time from it instead of the
    Redis server's `TIME`, so a test can move cooldowns and windows as it moves `clock`.
    Left None (always, in production) every process shares the server's clock.
    """

    def __init__(
        self,
        url: str,
        *,
        policy_for: Callable[[ProviderName], BreakerPolicy],
        emit: Emit,
        clock: Clock = time.monotonic,
        wall_clock: Clock = time.time,
        idle_ttl_s: float = 300.0,
        prefix: str = "resilience",
        sync_interval_s: float = 0.25,
        reconnect_s: float = 1.0,
        timeout_s: float = 1.0,
        max_connections: int = 32,
        script_clock: Clock | None = None,
    ) -> None:
        try:
            from redis.asyncio import BlockingConnectionPool, Redis
        except ImportError as exc:  # pragma: no cover - depends on the installed extras
            raise RuntimeError(
                "REDIS_URL is set but the redis package is missing: pip install "
                "'llm-tenant-resilience[redis]'"
            ) from exc
        super().__init__(
            policy_for=policy_for,
            emit=emit,
            clock=clock,
            wall_clock=wall_clock,
            idle_ttl_s=idle_ttl_s,
        )
        for name, value in (
            ("sync_interval_s", sync_interval_s),
            ("reconnect_s", reconnect_s),
            ("timeout_s", timeout_s),
        ):
            if not (value > 0 and math.isfinite(value)):
                raise ValueError(f"{name}: must be a finite number > 0, got {value!r}")
        if max_connections < 2:  # one is the subscription's
            raise ValueError(f"max_connections: must be >= 2, got {max_connections!r}")
        if not prefix or any(c in prefix for c in " \n"):
            raise ValueError(f"prefix: must be non-empty without spaces, got {prefix!r}")
        self.prefix = prefix
        self.online = False
        self.unsent: list[SharedBreaker] = []
        self.stats = StoreStatus(url=redact(url))
        # a burst of failures waits for a connection rather than failing (a plain pool raises
        # "Too many connections"); one connection is the subscription's
        pool = BlockingConnectionPool.from_url(
            url,
            max_connections=max_connections,
            timeout=timeout_s,
            socket_timeout=timeout_s,
            socket_connect_timeout=timeout_s,
        )
        self._pool = pool
        self._redis: Redis = Redis(connection_pool=pool)
        self._script = self._redis.register_script(SCRIPT)
        self._tokens = self._redis.register_script(TOKENS)
        self._token_waits: dict[BreakerKey, tuple[float, float]] = {}
        """Per bucket: the wait Redis last reported, and when (this process's clock)."""
        self.token_wait_s = self._shared_token_wait_s
        self._tpm_waits: dict[BreakerKey, tuple[float, float]] = {}
        self.tpm_wait_s = self._shared_tpm_wait_s
        self.charge_tpm = self._shared_charge_tpm
        self._channel = f"{prefix}:changes"
        self._ttl = repr(idle_ttl_s)
        self._sync_interval_s = sync_interval_s
        self._reconnect_s = reconnect_s
        self._mirror = Mirror()
        self._pubsub: PubSub | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._runner: asyncio.Task[None] | None = None
        self._policy_args: dict[ProviderName, list[str]] = {}
        self._closing = False
        self._script_clock = script_clock
        self._pings: list[asyncio.Future[None]] = []
        """`heard()` callers waiting for their PING to come back through the subscription."""

    # -- lifecycle ---------------------------------------------------------------------------

    async def start(self) -> None:
        """Connect, load the shared state and follow its changes.

        If Redis does not answer, breakers are process-local and a background task keeps
        trying; this returns either way.
        """
        if self._runner is None:
            try:
                await self._connect()
            except (OSError, _redis_errors()) as exc:
                self._lost(exc)
            self._runner = asyncio.create_task(self._run(), name="resilience-redis-store")
        await super().start()  # the sweep: local views go idle like memory breakers

    async def flush(self) -> None:
        """Wait for the verdicts in flight and send the successes not yet sent."""
        while self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        if self.online:
            try:
                await self._flush()
            except (OSError, _redis_errors()) as exc:
                self._lost(exc)

    async def heard(self) -> None:
        """Wait until this process's views hold every change Redis published before the call.

        A PING on the subscription's connection comes back after the messages queued before
        it, so its answer means they have all been read. Returns at once while offline.
        """
        pubsub = self._pubsub
        if not self.online or pubsub is None or self._runner is None:
            return
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._pings.append(waiter)
        try:
            await pubsub.ping()
        except (OSError, _redis_errors()) as exc:
            self._lost(exc)
        await waiter

    async def aclose(self) -> None:
        """`flush()`, then disconnect."""
        self._closing = True
        await super().aclose()
        await self.flush()
        if self._runner is not None:
            self._runner.cancel()
            await asyncio.gather(self._runner, return_exceptions=True)
        for waiter in self._pings:
            self._answer_ping(waiter)
        await self._drop_pubsub()
        await self._redis.aclose()
        await self._pool.disconnect()  # a pool passed in is not closed by aclose()

    def status(self) -> dict[str, Any]:
        return self.stats.as_dict()

    def spawn(self, work: Coroutine[Any, Any, T]) -> asyncio.Task[T]:
        """Run `work` without making the caller wait; kept until done, awaited by `aclose()`."""
        task = asyncio.get_running_loop().create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    # -- what SharedBreaker asks ---------------------------------------------------------------

    async def admit(self, breaker: SharedBreaker) -> Permit:
        """Admission decided by Redis for everyone: half-open probes, a cooldown that is
        over, or a closed breaker whose last failures may have tripped it (their verdicts
        go first)."""
        if breaker.pending:
            await breaker.answered()
            permit = breaker.acquire()  # its view is up to date now: it may decide alone
            if permit is not ASK_STORE:
                return permit
        if not self.online:
            return breaker.acquire()
        token = uuid.uuid4().hex[:16]
        call = asyncio.ensure_future(self._call("admit", breaker, token))
        try:
            reply = await asyncio.shield(call)
        except asyncio.CancelledError:
            call.add_done_callback(lambda done: self._give_back(breaker, done))
            raise
        if reply is None:
            return breaker.acquire()  # Redis went away: the local breaker decides
        return self._permit_from(breaker, reply)

    def settle(
        self,
        breaker: SharedBreaker,
        permit: Permit,
        kind: ErrorKind | None,
        retry_after_s: float | None,
    ) -> asyncio.Task[None]:
        """Send a verdict from a task; the caller goes on at once."""
        return self.spawn(self._settle(breaker, permit, kind, retry_after_s))

    async def release(self, breaker: SharedBreaker, token: str, gate_token: str) -> None:
        await self._call("release", breaker, token, gate_token)

    async def change(
        self,
        breaker: SharedBreaker,
        op: str,
        args: tuple[str, ...],
        *,
        actor: str | None,
        detail: dict[str, Any],
    ) -> bool | None:
        """An admin reset or open; None when Redis could not be reached."""
        if not self.online:
            return None
        reply = await self._call(op, breaker, *args, actor=actor, detail=detail)
        return None if reply is None else bool(reply.get("changed"))

    # -- BreakerStore ------------------------------------------------------------------------

    async def atake_token(self, key: BreakerKey, rpm: float) -> bool:
        """One token from the bucket all processes share; this process's own while Redis
        is away."""
        if rpm <= 0:
            return True
        if not self.online:
            return self.take_token(key, rpm)
        tenant, provider = key
        try:
            taken, wait = await self._tokens(
                keys=[f"{self.prefix}:rl:{provider}:{tenant}"],
                args=[repr(float(rpm)), self._script_now()],
            )
        except (OSError, _redis_errors()) as exc:
            self._lost(exc)
            return self.take_token(key, rpm)
        self._token_waits[key] = (float(wait), self._clock())
        if len(self._token_waits) > 10_000:  # a wait is only read right after its take
            self._token_waits = {key: self._token_waits[key]}
        return bool(taken)

    async def atake_tpm(self, key: BreakerKey, tpm: float, n: float) -> bool:
        """`n` tokens from the tpm bucket all processes share; this process's own while
        Redis is away."""
        if tpm <= 0:
            return True
        if not self.online:
            return self._tpm.take(key, tpm, n)
        try:
            taken, wait = await self._tpm_call(key, tpm, n, "take")
        except (OSError, _redis_errors()) as exc:
            self._lost(exc)
            return self._tpm.take(key, tpm, n)
        self._tpm_waits[key] = (float(wait), self._clock())
        if len(self._tpm_waits) > 10_000:  # a wait is only read right after its take
            self._tpm_waits = {key: self._tpm_waits[key]}
        return bool(taken)

    def _shared_charge_tpm(self, key: BreakerKey, tpm: float, n: float) -> None:
        if tpm <= 0 or not n:
            return
        if not self.online:
            self._tpm.charge(key, tpm, n)
            return
        self.spawn(self._charge_tpm(key, tpm, n))

    async def _charge_tpm(self, key: BreakerKey, tpm: float, n: float) -> None:
        try:
            await self._tpm_call(key, tpm, n, "charge")
        except (OSError, _redis_errors()) as exc:
            self._lost(exc)
            self._tpm.charge(key, tpm, n)

    def _tpm_call(self, key: BreakerKey, tpm: float, n: float, mode: str) -> Any:
        tenant, provider = key
        return self._tokens(
            keys=[f"{self.prefix}:tpm:{provider}:{tenant}"],
            args=[repr(float(tpm)), self._script_now(), repr(float(n)), mode],
        )

    def _shared_tpm_wait_s(self, key: BreakerKey, n: float) -> float:
        if not self.online:
            return self._tpm.wait_s(key, n)
        wait, at = self._tpm_waits.get(key, (0.0, 0.0))
        return max(0.0, wait - (self._clock() - at))

    def _shared_token_wait_s(self, key: BreakerKey) -> float:
        if not self.online:
            return self._limits.wait_s(key)
        wait, at = self._token_waits.get(key, (0.0, 0.0))
        return max(0.0, wait - (self._clock() - at))

    def breakers(self) -> Iterator[CircuitBreaker]:
        """Every breaker this process holds, and every breaker Redis has that is not closed."""
        for tenant, provider in self._mirror.pairs():
            if tenant == PROVIDER_WIDE:
                self.gate(provider)
            else:
                self.get(tenant, provider)
        yield from super().breakers()

    # -- internals ---------------------------------------------------------------------------

    def _new(
        self, tenant: TenantId, provider: ProviderName, gate: CircuitBreaker | None
    ) -> CircuitBreaker:
        breaker = SharedBreaker(
            tenant,
            provider,
            store=self,
            policy=self._policy_for(provider),
            clock=self._clock,
            wall_clock=self._wall_clock,
            gate=gate,
        )
        seen = self._mirror.get(tenant, provider)
        if seen is not None and self.online:
            breaker.apply(*seen)
        return breaker

    def _keys(self, tenant: TenantId, provider: ProviderName) -> list[str]:
        p = self.prefix
        own = f"{p}:b:{provider}:{tenant}"
        probes = f"{p}:p:{provider}:{tenant}"
        if tenant == PROVIDER_WIDE:
            gate, gate_probes = own, probes
        else:
            gate, gate_probes = f"{p}:b:{provider}:*", f"{p}:p:{provider}:*"
        return [
            own,
            probes,
            gate,
            gate_probes,
            f"{p}:trips:{provider}",
            f"{p}:streak:{provider}",
            f"{p}:open",
            f"{p}:gen",
        ]

    def _invocation(
        self,
        op: str,
        tenant: TenantId,
        provider: ProviderName,
        args: tuple[str, ...],
        *,
        policy: list[str] | None = None,
    ) -> tuple[list[str], list[str]]:
        """KEYS and ARGV of one op of `breakers.lua` (see its header for the layout)."""
        head = [op, tenant, provider, self._channel, self.prefix, self._script_now()]
        policy = self._policy(provider) if policy is None else policy
        return self._keys(tenant, provider), [*head, *policy, *args]

    def _script_now(self) -> str:
        """The scripts' time argument: '' (the server's `TIME`) unless a test clock drives them."""
        clock = self._script_clock
        return "" if clock is None else repr(clock())

    def _policy(self, provider: ProviderName) -> list[str]:
        args = self._policy_args.get(provider)
        if args is None:
            policy = self._policy_for(provider)
            args = self._policy_args[provider] = [
                repr(v)
                for v in (
                    policy.failure_threshold,
                    policy.failure_rate,
                    policy.window_s,
                    policy.cooldown_s,
                    policy.max_cooldown_s,
                    policy.half_open_max_calls,
                    policy.probe_timeout_s,
                    policy.provider_wide_min_tenants,
                    policy.provider_wide_streak,
                )
            ] + [self._ttl]
        return args

    async def _call(
        self,
        op: str,
        breaker: CircuitBreaker,
        *args: str,
        actor: str | None = None,
        detail: dict[str, Any] | None = None,
    ) -> dict[str, Any] | None:
        """Run one op of the script; apply what it reports. None if Redis went away."""
        try:
            keys, argv = self._invocation(op, breaker.tenant, breaker.provider, args)
            raw = await self._script(keys=keys, args=argv)
        except (OSError, _redis_errors()) as exc:
            self._lost(exc)
            return None
        reply: dict[str, Any] = json.loads(raw)
        self._absorb(reply, actor=actor, detail=detail)
        return reply

    def _absorb(
        self, reply: dict[str, Any], *, actor: str | None, detail: dict[str, Any] | None
    ) -> None:
        """Apply the views a script returned and emit the transitions it made (only here)."""
        now = self._clock()
        for raw in reply.get("v") or ():
            self._seen(SharedView.parse(raw), now)
        events = reply.get("e")
        for raw in events if isinstance(events, list) else ():
            self._emit(self._event(raw, actor=actor, detail=detail))

    def _event(
        self, raw: dict[str, Any], *, actor: str | None, detail: dict[str, Any] | None
    ) -> BreakerTransition:
        shown = raw.get("d")
        merged = dict(shown) if isinstance(shown, dict) else {}
        if detail and raw["reason"] in ("admin_reset", "admin_open"):
            merged.update(detail)
        return BreakerTransition(
            tenant_id=str(raw["t"]),
            provider=str(raw["p"]),
            from_state=BreakerState(raw["from"]),
            to_state=BreakerState(raw["to"]),
            reason=TransitionReason(raw["reason"]),
            occurred_at=datetime.fromtimestamp(float(raw["at"]), UTC),
            failures=int(raw["f"]),
            error_kind=ErrorKind(raw["kind"]) if raw["kind"] else None,
            cooldown_s=None if raw["cd"] < 0 else float(raw["cd"]),
            actor=actor if raw["reason"] in ("admin_reset", "admin_open") else None,
            detail=merged,
        )

    def _seen(self, view: SharedView, at: float) -> None:
        """A view of the shared state: keep it in the index and in the local breaker."""
        self._mirror.hear(view, at)
        breaker = self.peek(view.tenant, view.provider)  # a gate for tenant `*`
        if isinstance(breaker, SharedBreaker) and breaker.hear(view, at):
            self._pin(breaker)

    def _permit_from(self, breaker: SharedBreaker, reply: dict[str, Any]) -> Permit:
        refused = reply.get("refused")
        if refused:
            wait = float(reply["w"])
            raise CircuitOpenError(
                tenant=breaker.tenant,
                provider=breaker.provider,
                state=BreakerState(reply["s"]),
                # a key written before durations were bounded may hold any wait
                retry_after_s=math.inf if wait < 0 else min(wait, MAX_DURATION_S),
                provider_wide=refused == "gate" or breaker.tenant == PROVIDER_WIDE,
            )
        views = reply["v"]
        now = self._clock()
        token, gate_token = str(reply["probe"]), str(reply["gprobe"])
        generation = int(views[0]["g"])
        if token:
            permit = Permit(generation, probe=True, started_at=now, shared=True, token=token)
        elif gate_token:
            permit = Permit(generation, shared=True)
        else:
            current = breaker.fast_permit
            if current is None:  # a change heard meanwhile: the view is no longer closed
                return Permit(breaker.generation, shared=True)
            return current if current.shared else Permit(generation, shared=True)
        if gate_token:
            gate_generation = int(views[1]["g"])
            permit.gate = Permit(
                gate_generation, probe=True, started_at=now, shared=True, token=gate_token
            )
        return permit

    def _give_back(self, breaker: SharedBreaker, done: asyncio.Future[Any]) -> None:
        """The caller was cancelled while Redis admitted it: return its probes at once."""
        if done.cancelled() or done.exception() is not None or done.result() is None:
            return
        reply = done.result()
        token, gate_token = str(reply.get("probe") or ""), str(reply.get("gprobe") or "")
        if token or gate_token:
            self.spawn(self.release(breaker, token, gate_token))

    async def _settle(
        self,
        breaker: SharedBreaker,
        permit: Permit,
        kind: ErrorKind | None,
        retry_after_s: float | None,
    ) -> None:
        successes, breaker.unsent_successes = breaker.unsent_successes, 0
        gate_token = permit.gate.token if permit.gate is not None else ""
        reply = await self._call(
            "ok" if kind is None else "fail",
            breaker,
            str(breaker.shared_generation(permit)),
            permit.token,
            gate_token,
            "" if kind is None else str(kind),
            "" if kind is None else str(kind.policy.scope),
            "-1" if retry_after_s is None else repr(max(retry_after_s, 0.0)),
            str(successes),
        )
        if reply is not None:
            return
        # Redis went away with the verdict: the process-local breaker takes it
        self.stats.local_verdicts += 1
        if kind is None:
            CircuitBreaker.record_success(breaker, permit)
        else:
            CircuitBreaker.record_failure(breaker, permit, kind, retry_after_s=retry_after_s)

    async def _flush(self) -> None:
        """Send the successes counted since the last flush: one pipelined round trip."""
        pending, self.unsent = self.unsent, []
        batch = []
        for breaker in pending:  # a breaker may be listed twice (a verdict took its count)
            if breaker.unsent_successes:
                batch.append((breaker, breaker.unsent_successes))
                breaker.unsent_successes = 0
        if not batch:
            return
        async with self._redis.pipeline(transaction=False) as pipe:
            for breaker, count in batch:
                args = ("0", "", "", "", "", "-1", str(count))
                keys, argv = self._invocation("ok", breaker.tenant, breaker.provider, args)
                await self._script(keys=keys, args=argv, client=pipe)
            replies = await pipe.execute()
        now = self._clock()
        for raw in replies:
            reply = json.loads(raw)
            for view in reply.get("v") or ():
                self._seen(SharedView.parse(view), now)

    async def _connect(self) -> None:
        """Subscribe, share what this process decided alone, then load the shared state."""
        reconnect = self.stats.outages > 0
        if reconnect:  # pooled connections to the Redis that went away are dead: drop them
            await self._pool.disconnect()
        pubsub = self._redis.pubsub(ignore_subscribe_messages=True)
        try:
            await pubsub.subscribe(self._channel)
            if reconnect:
                await self._adopt()
            keys, argv = self._invocation("mirror", PROVIDER_WIDE, "-", (), policy=_NO_POLICY)
            raw = await self._script(keys=keys, args=argv)
        except BaseException:
            await pubsub.aclose()  # type: ignore[no-untyped-call]
            raise
        self._pubsub = pubsub
        now = self._clock()
        self._mirror.reload([SharedView.parse(view) for view in json.loads(raw)["v"] or ()], now)
        self.online = True
        self.stats.shared = True
        for breaker in list(MemoryStore.breakers(self)):
            if not isinstance(breaker, SharedBreaker):
                continue
            seen = self._mirror.get(breaker.tenant, breaker.provider)
            if seen is None:
                breaker.apply(SharedView.closed(breaker), now)
            else:
                breaker.apply(*seen)
            self._pin(breaker)
        if reconnect:
            self.stats.resyncs += 1
            logger.warning(
                "Redis at %s answers again: breakers are shared again (%d not closed)",
                self.stats.url,
                len(self._mirror),
            )

    async def _adopt(self) -> None:
        """Push the breakers this process opened while Redis was away."""
        for breaker in list(MemoryStore.breakers(self)):
            view = breaker.view()
            if view.state is _CLOSED:
                continue
            args = (
                str(view.state),
                "-1" if math.isinf(view.wait_s) else repr(view.wait_s),
                repr(view.cooldown_s),
            )
            keys, argv = self._invocation("adopt", breaker.tenant, breaker.provider, args)
            await self._script(keys=keys, args=argv)

    async def _run(self) -> None:
        """Follow the change channel, flush successes, and reconnect after an outage.

        Never ends before `aclose()`: whatever goes wrong makes the store local and retried.
        """
        loop = asyncio.get_running_loop()
        flushed = loop.time()
        while not self._closing:
            if not self.online:
                await asyncio.sleep(self._reconnect_s)
                try:
                    await self._connect()
                except Exception as exc:  # down, or half up: try again later
                    self.stats.last_error = _describe(exc)
                continue
            try:
                pubsub = self._pubsub
                if pubsub is None:
                    raise ConnectionError("the subscription was dropped")
                message = await pubsub.get_message(
                    ignore_subscribe_messages=True, timeout=self._sync_interval_s
                )
                if message is not None:
                    kind = message.get("type")
                    if kind == "message":
                        self._seen(SharedView.parse(json.loads(message["data"])), self._clock())
                    elif kind == "pong" and self._pings:
                        self._answer_ping(self._pings.pop(0))
                if self.unsent and loop.time() - flushed >= self._sync_interval_s:
                    flushed = loop.time()
                    await self._flush()
            except Exception as exc:
                if not isinstance(exc, OSError | _redis_errors()):
                    logger.exception("shared breaker store: unexpected error; reconnecting")
                self._lost(exc)

    def _lost(self, exc: BaseException) -> None:
        """Redis stopped answering: every breaker goes on process-local. Logged once."""
        self.stats.last_error = _describe(exc)
        if not self.online and self.stats.outages:
            return
        first = not self.online  # never connected: the start found it down
        self.online = False
        self.stats.shared = False
        self.stats.outages += 1
        for breaker in self.unsent:
            breaker.unsent_successes = 0
        self.unsent.clear()
        if self._pubsub is not None:
            self.spawn(self._drop_pubsub())
        pings, self._pings = self._pings, []
        for waiter in pings:  # their answers will not come: nothing more will be heard
            self._answer_ping(waiter)
        logger.warning(
            "Redis at %s %s (%s): breakers are process-local until it answers",
            self.stats.url,
            "cannot be reached" if first else "stopped answering",
            self.stats.last_error,
        )

    @staticmethod
    def _answer_ping(waiter: asyncio.Future[None]) -> None:
        if not waiter.done():
            waiter.set_result(None)

    async def _drop_pubsub(self) -> None:
        pubsub, self._pubsub = self._pubsub, None
        if pubsub is not None:
            try:
                await pubsub.aclose()  # type: ignore[no-untyped-call]
            except (OSError, _redis_errors()):
                pass


_NO_POLICY = ["1", "1", "1", "1", "1", "1", "1", "0", "0", "1"]


def _redis_errors() -> type[Exception]:
    from redis.exceptions import RedisError

    return RedisError


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"[:300]
