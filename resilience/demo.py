"""`resilience demo`: multi-tenant traffic through an outage script, on the chaos upstream.

No API key and no database server: the chaos upstream runs in-process and the
real `anthropic` and `openai` SDKs talk to it. The script, with short cooldowns
so it fits in well under two minutes:

1. healthy traffic from every tenant;
2. one tenant's own OpenAI key is revoked (401): only that tenant's breaker opens;
3. OpenAI goes down (503): tenants' breakers open, then the provider-wide one,
   and traffic moves to Anthropic;
4. OpenAI comes back: half-open probes close the breakers;
5. a rate-limit burst (429, Retry-After 2 s) for one tenant: it is answered by
   the fallback at once, everyone else stays on OpenAI.

It ends with the breaker table and the transitions the audit sink received.
"""

from __future__ import annotations

import asyncio
import random
import sys
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass

import httpx2

from resilience.chaos import ChaosUpstream, Fault
from resilience.client import ResilientClient, TenantPolicy
from resilience.events import BreakerTransition, MemorySink
from resilience.exceptions import AllTargetsFailed, ResilienceError
from resilience.models import ChatRequest, Message
from resilience.policies import BreakerPolicy, RetryPolicy
from resilience.providers.anthropic import AnthropicProvider
from resilience.providers.base import Provider
from resilience.providers.openai import OpenAIProvider
from resilience.registry import BreakerRegistry
from resilience.routes import Route, Target

TENANTS = [f"tenant-{i:02d}" for i in range(1, 13)] + ["globex", "initech"]
ROUTE = Route(
    name="chat",
    targets=(
        Target.parse("openai:gpt-4.1"),
        Target.parse("anthropic:claude-sonnet-4-6"),
        Target.parse("local:llama3.1"),
    ),
)
DEMO_BREAKER = BreakerPolicy(
    failure_threshold=3, window_s=10, cooldown_s=3, max_cooldown_s=12, provider_wide_min_tenants=3
)
DEMO_RETRY = RetryPolicy(max_attempts=2, base_delay_s=0.05, max_delay_s=0.2, deadline_s=10)


def revoke_globex_key(chaos: ChaosUpstream) -> None:
    chaos.add_fault(Fault(status=401), upstream="openai", api_key="globex-key")


def restore(chaos: ChaosUpstream) -> None:
    chaos.clear_faults()
    revoke_globex_key(chaos)


@dataclass
class Phase:
    title: str
    seconds: float
    setup: Callable[[ChaosUpstream], object]


PHASES = [
    Phase("healthy traffic", 3.0, lambda chaos: None),
    Phase(
        "globex's own OpenAI key is revoked (401)",
        4.0,
        revoke_globex_key,
    ),
    Phase(
        "OpenAI is down (503)",
        6.0,
        lambda chaos: chaos.add_fault(Fault(status=503), upstream="openai", api_key="shared-key"),
    ),
    Phase("OpenAI is back (globex's key stays revoked)", 8.0, lambda chaos: restore(chaos)),
    Phase(
        "initech sends a burst and is rate limited (429, Retry-After 2s)",
        3.0,
        lambda chaos: chaos.add_fault(
            Fault(status=429, retry_after="2"), upstream="openai", api_key="initech-key", times=20
        ),
    ),
]


def build_client(chaos: ChaosUpstream, sink: MemorySink) -> ResilientClient:
    http = httpx2.AsyncClient(transport=chaos.transport())
    root = "http://chaos"
    providers: dict[str, Provider] = {
        "openai": OpenAIProvider(
            "openai", api_key="shared-key", base_url=f"{root}/openai/v1", http_client=http
        ),
        "anthropic": AnthropicProvider(
            "anthropic", api_key="shared-key", base_url=f"{root}/anthropic", http_client=http
        ),
        "local": OpenAIProvider(
            "local", api_key=None, base_url=f"{root}/local/v1", location="local", http_client=http
        ),
    }
    tenants = {
        "globex": TenantPolicy(api_keys={"openai": "globex-key"}),
        "initech": TenantPolicy(api_keys={"openai": "initech-key"}),
    }
    registry = BreakerRegistry(policy=DEMO_BREAKER, sinks=[sink])
    return ResilientClient(
        providers=providers,
        routes={"chat": ROUTE},
        tenants=tenants,
        registry=registry,
        retry=DEMO_RETRY,
    )


def progress(done: float, width: int = 30) -> str:
    filled = int(done * width)
    return "[" + "#" * filled + "." * (width - filled) + "]"


async def drive(client: ResilientClient, phase: Phase, tally: Counter[str], fast: bool) -> None:
    """Each tenant sends a request every ~0.25 s for the phase's duration."""
    seconds = phase.seconds / (3 if fast else 1)
    started = time.monotonic()
    rng = random.Random(1)
    request = ChatRequest(messages=(Message(role="user", content="status report"),), max_tokens=32)

    async def tenant_loop(tenant: str) -> None:
        await asyncio.sleep(rng.random() * 0.25)
        while time.monotonic() - started < seconds:
            burst = 4 if tenant == "initech" and "burst" in phase.title else 1
            for _ in range(burst):
                try:
                    result = await client.complete(request, route="chat", tenant=tenant)
                    tally[f"{tenant}->{result.target.provider}"] += 1
                    tally[f"by:{result.target.provider}"] += 1
                except AllTargetsFailed:
                    tally["failed"] += 1
                except ResilienceError as exc:
                    tally[f"error:{type(exc).__name__}"] += 1
            await asyncio.sleep(0.25)

    async def bar() -> None:
        while (elapsed := time.monotonic() - started) < seconds:
            sys.stdout.write(f"\r  {progress(elapsed / seconds)} {elapsed:4.1f}s")
            sys.stdout.flush()
            await asyncio.sleep(0.2)
        sys.stdout.write(f"\r  {progress(1.0)} {seconds:4.1f}s\n")

    await asyncio.gather(bar(), *(tenant_loop(t) for t in TENANTS))


def print_table(client: ResilientClient) -> None:
    print(f"\n{'tenant':<12} {'provider':<10} {'state':<12} {'failures':>8}  retry_at")
    for snap in client.registry.circuits():
        retry = snap.retry_at.strftime("%H:%M:%S") if snap.retry_at else "-"
        print(
            f"{snap.tenant:<12} {snap.provider:<10} {snap.state!s:<12} {snap.failures:>8}  {retry}"
        )


def print_events(events: list[BreakerTransition]) -> None:
    print(f"\n{len(events)} breaker transitions recorded:")
    for event in events:
        kind = f" ({event.error_kind})" if event.error_kind else ""
        stamp = event.occurred_at.strftime("%H:%M:%S.%f")[:-3]
        print(
            f"  {stamp} {event.tenant_id:<10} {event.provider:<9} "
            f"{event.from_state} -> {event.to_state}: {event.reason}{kind}"
        )


async def run_demo(*, fast: bool = False) -> int:
    chaos = ChaosUpstream()
    sink = MemorySink()
    client = build_client(chaos, sink)
    try:
        for number, phase in enumerate(PHASES, start=1):
            phase.setup(chaos)
            tally: Counter[str] = Counter()
            print(f"\n{number}. {phase.title}")
            await drive(client, phase, tally, fast)
            served = {p: tally[f"by:{p}"] for p in ("openai", "anthropic", "local")}
            print(f"  answered by {served}, failed {tally['failed']}")
        print_table(client)
        print_events(sink.events)
    finally:
        await client.aclose()
    return 0


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    return asyncio.run(run_demo(fast="--fast" in args))


if __name__ == "__main__":
    sys.exit(main())
