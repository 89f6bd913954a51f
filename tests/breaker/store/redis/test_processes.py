"""Gateway processes sharing breakers through Redis: separate processes, not just objects.

Cooldowns here are timed by the Redis server's clock, so the one test that needs
a cooldown to pass waits for it (one second).
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from pathlib import Path

import pytest

from tests.support.cluster import Cluster
from tests.support.servers import redis_server

pytestmark = pytest.mark.redis

THRESHOLD = 5  # failure_threshold in cluster_config


async def total_events(cluster: Cluster) -> list[str]:
    """Every process's audit trail, as reasons."""
    trails = await asyncio.gather(*(cluster.events(i) for i in range(len(cluster.roots))))
    return sorted(e["reason"] for trail in trails for e in trail)


@pytest.mark.parametrize("processes", [2, 4])
async def test_a_dead_provider_is_tripped_once_for_every_process(
    tmp_path: Path, redis_url: str, prefix: str, processes: int
) -> None:
    async with Cluster(tmp_path, redis_url=redis_url, prefix=prefix, n=processes) as cluster:
        await cluster.fault({"status": 503})
        statuses = [await cluster.chat(i % processes) for i in range(40)]
        assert set(statuses) == {503}
        # the breaker opened after THRESHOLD failures counted over all processes; a process
        # may admit a call before the trip's message reaches it (the staleness bound)
        called = await cluster.hits()
        assert THRESHOLD <= called <= THRESHOLD + processes - 1
        for i in range(processes):
            assert await cluster.state(i) == "open"
        await cluster.clear_hits()
        burst = await asyncio.gather(*(cluster.chat(i % processes) for i in range(100)))
        assert set(burst) == {503}
        assert await cluster.hits() == 0  # all of them stopped calling it

        async def one_event() -> bool:
            return await total_events(cluster) == ["threshold"]

        await cluster.until(one_event)  # the audit rows are written in batches
        await asyncio.sleep(0.5)
        assert await total_events(cluster) == ["threshold"]  # and no second one arrives


async def test_uvicorn_with_four_workers_on_a_fresh_database_shares_one_breaker(
    tmp_path: Path, redis_url: str, prefix: str
) -> None:
    """The README's deployment: `uvicorn resilience.gateway:create_app --factory --workers 4` with
    REDIS_URL."""
    async with Cluster(
        tmp_path, redis_url=redis_url, prefix=prefix, n=1, uvicorn_workers=4
    ) as cluster:
        log = cluster.gateways[0].log
        for _ in range(200):  # /healthz answers as soon as one worker is up
            if log.read_text().count("Application startup complete") == 4:
                break
            await asyncio.sleep(0.05)
        assert log.read_text().count("Application startup complete") == 4, log.read_text()
        await cluster.fault({"status": 503})
        statuses = await asyncio.gather(*(cluster.chat(0) for _ in range(4)))
        statuses += [await cluster.chat(0) for _ in range(36)]
        assert set(statuses) == {503}
        assert THRESHOLD <= await cluster.hits() <= THRESHOLD + 3 + 3  # in flight, staleness
        await cluster.clear_hits()
        assert set(await asyncio.gather(*(cluster.chat(0) for _ in range(100)))) == {503}
        assert await cluster.hits() == 0

        async def one_event() -> bool:
            return [e["reason"] for e in await cluster.events(0)] == ["threshold"]

        await cluster.until(one_event)  # one audit database, whichever worker wrote it
        assert "Traceback" not in log.read_text()


async def test_half_open_admits_exactly_n_probes_from_100_callers_on_four_processes(
    tmp_path: Path, redis_url: str, prefix: str
) -> None:
    async with Cluster(
        tmp_path, redis_url=redis_url, prefix=prefix, n=4, cooldown_s=1.0, half_open_max_calls=3
    ) as cluster:
        await cluster.fault({"status": 503})
        for _ in range(THRESHOLD):
            await cluster.chat(0)
        await cluster.clear_faults()
        # healthy, and slow: the probes stay out until all 100 calls have arrived, with time to
        # spare for a busy machine (the suite runs on every core)
        await cluster.fault({"latency_s": 3.0})
        await cluster.clear_hits()

        async def cooled_down() -> bool:
            states = await asyncio.gather(*(cluster.state(i) for i in range(4)))
            return set(states) == {"half_open"}

        await cluster.until(cooled_down)
        statuses = await asyncio.gather(*(cluster.chat(i % 4) for i in range(100)))
        assert Counter(statuses) == {200: 3, 503: 97}
        assert await cluster.hits() == 3

        async def closed_everywhere() -> bool:
            states = await asyncio.gather(*(cluster.state(i) for i in range(4)))
            return set(states) == {"closed"}

        await cluster.until(closed_everywhere)
        expected = ["cooldown_elapsed", "probe_succeeded", "threshold"]

        async def audited() -> bool:
            return await total_events(cluster) == expected

        await cluster.until(audited)


async def test_an_admin_reset_through_one_process_is_honoured_by_another_on_its_next_request(
    tmp_path: Path, redis_url: str, prefix: str
) -> None:
    async with Cluster(tmp_path, redis_url=redis_url, prefix=prefix, n=2) as cluster:
        opened = await cluster.admin(0, "open")
        assert opened["state"] == "forced_open"

        async def seen() -> bool:
            return await cluster.state(1) == "forced_open"

        await cluster.until(seen)
        assert await cluster.chat(1) == 503
        reset = await cluster.admin(0, "reset")
        assert reset["state"] == "closed"
        assert await cluster.chat(1) == 200  # at once: no waiting for the reset's message

        async def audited() -> bool:
            trails = [await cluster.events(i) for i in (0, 1)]
            return [len(t) for t in trails] == [2, 0]

        await cluster.until(audited)  # both events are in process 0's trail only
        trail = await cluster.events(0)
        assert sorted((e["reason"], e["actor"]) for e in trail) == [
            ("admin_open", "ops"),
            ("admin_reset", "ops"),
        ]


async def test_redis_stopped_mid_run_fails_no_request_and_state_resyncs(
    tmp_path: Path, prefix: str
) -> None:
    with redis_server() as server:
        async with Cluster(tmp_path, redis_url=server.url, prefix=prefix, n=2) as cluster:
            await cluster.fault({"latency_s": 0.01})
            await cluster.fault({"status": 503}, model="gpt-4.1-mini", probability=0.3)
            statuses: Counter[tuple[str, int]] = Counter()
            running = True

            async def client(n: int) -> None:
                route = "flaky" if n % 4 == 0 else "chat"
                while running:
                    statuses[(route, await cluster.chat(n % 2, f"t{n}", route))] += 1

            clients = [asyncio.create_task(client(n)) for n in range(16)]
            await asyncio.sleep(1.0)
            server.stop()

            async def local_everywhere() -> bool:
                ready = [await cluster.readyz(i) for i in (0, 1)]
                return all(r["ready"] and not r["breakers"]["shared"] for r in ready)

            await cluster.until(local_everywhere)
            during = sum(statuses.values())
            # an admin isolates a tenant while Redis is down: only process 0 knows
            await cluster.admin(0, "open", tenant="isolated")
            await asyncio.sleep(1.0)
            assert sum(statuses.values()) > during  # traffic went on
            server.start()

            async def shared_everywhere() -> bool:
                ready = [await cluster.readyz(i) for i in (0, 1)]
                return all(r["breakers"]["shared"] for r in ready)

            await cluster.until(shared_everywhere)
            await asyncio.sleep(0.5)
            running = False
            await asyncio.gather(*clients)
            for i in (0, 1):
                status = (await cluster.readyz(i))["breakers"]
                assert (status["outages"], status["resyncs"]) == (1, 1)
            # resynced: what process 0 decided alone is now shared with process 1
            assert await cluster.state(1, "isolated") == "forced_open"
            assert await cluster.chat(1, "isolated") == 503
            assert {s for (route, s) in statuses if route == "chat"} == {200}
            assert {s for (route, s) in statuses if route == "flaky"} <= {200, 503}
            assert statuses[("chat", 200)] > 200
            logs = cluster.logs()
            assert "Traceback" not in logs
            assert logs.count("breakers are process-local until it answers") == 2


async def test_a_gateway_started_while_redis_is_down_serves_and_joins_later(
    tmp_path: Path, prefix: str
) -> None:
    with redis_server() as server:
        server.stop()
        async with Cluster(tmp_path, redis_url=server.url, prefix=prefix, n=1) as cluster:
            assert await cluster.chat(0) == 200
            ready = await cluster.readyz(0)
            assert ready["ready"] and ready["breakers"]["shared"] is False
            started = time.monotonic()
            server.start()

            async def joined() -> bool:
                return bool((await cluster.readyz(0))["breakers"]["shared"])

            await cluster.until(joined)
            assert time.monotonic() - started < 5
            assert await cluster.chat(0) == 200
