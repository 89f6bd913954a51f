"""Tenants from the app's own table: `CachedTenants` in front of a `TenantLookup`, alone and
behind the real `TenantMiddleware` + `ApiKeyResolver`.

Time is a `FakeClock` the tests move: nothing sleeps to let a TTL pass.
"""

from __future__ import annotations

import asyncio
import itertools
import random
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager

import httpx2
import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from resilience.audit.database import create_engine
from resilience.routing.routes import Route as LlmRoute
from resilience.tenancy.context import current_tenant
from resilience.tenancy.directory import CachedTenants, ConfigTenants, TenantLookup
from resilience.tenancy.middleware import TenantMiddleware
from resilience.tenancy.policy import TenantPolicy
from resilience.tenancy.resolvers import ApiKeyResolver, hash_key
from resilience.types import TenantId
from tests.support.clock import FakeClock


class Table:
    """The app's tenants table, in memory: what a query finds, and every time it is asked."""

    def __init__(self, clock: FakeClock | None = None) -> None:
        self.clock = clock
        self.owners: dict[str, TenantId] = {}
        self.policies: dict[TenantId, TenantPolicy] = {}
        self.key_lookups: list[tuple[str, float]] = []
        self.policy_lookups: list[TenantId] = []
        self.down = False
        self.gate: asyncio.Event | None = None
        """When set, every lookup waits for it: many askers pile up behind one lookup."""

    def add(self, tenant: TenantId, key: str, policy: TenantPolicy | None = None) -> None:
        self.owners[hash_key(key)] = tenant
        if policy is not None:
            self.policies[tenant] = policy

    async def tenant_for_key(self, key_sha256: str) -> TenantId | None:
        self.key_lookups.append((key_sha256, self.clock() if self.clock else 0.0))
        await self._reached()
        return self.owners.get(key_sha256)

    async def policy_for(self, tenant: TenantId) -> TenantPolicy | None:
        self.policy_lookups.append(tenant)
        await self._reached()
        return self.policies.get(tenant)

    async def _reached(self) -> None:
        if self.gate is not None:
            await self.gate.wait()
        await asyncio.sleep(0)  # a real query always yields to the loop
        if self.down:
            raise ConnectionError("the tenants table is unreachable")


def test_the_lookups_are_tenant_lookups() -> None:
    assert isinstance(Table(), TenantLookup)
    assert not isinstance({"digest": "acme"}, TenantLookup)


# -- the cache alone ------------------------------------------------------------------------


async def test_an_answer_is_reused_within_the_ttl_and_looked_up_again_after_it() -> None:
    clock = FakeClock()
    table = Table(clock)
    table.add("acme", "key-acme", TenantPolicy(local_only=True))
    tenants = CachedTenants(table, ttl_s=30, clock=clock)

    assert await tenants.tenant_for_key(hash_key("key-acme")) == "acme"
    assert await tenants.policy_for("acme") == TenantPolicy(local_only=True)
    clock.advance(29.9)
    assert await tenants.tenant_for_key(hash_key("key-acme")) == "acme"
    assert await tenants.policy_for("acme") == TenantPolicy(local_only=True)
    assert len(table.key_lookups) == 1 and table.policy_lookups == ["acme"]

    clock.advance(0.1)  # 30 s after the lookup began: stale
    assert await tenants.tenant_for_key(hash_key("key-acme")) == "acme"
    assert await tenants.policy_for("acme") == TenantPolicy(local_only=True)
    assert len(table.key_lookups) == 2 and table.policy_lookups == ["acme", "acme"]
    assert tenants.key_stats.lookups == 2 and tenants.key_stats.hits == 1
    assert tenants.stats.lookups == 4 and tenants.stats.hits == 2 and tenants.stats.misses == 4
    assert tenants.stats.entries == 2


async def test_misses_are_cached_for_the_negative_ttl() -> None:
    clock = FakeClock()
    table = Table(clock)
    tenants = CachedTenants(table, ttl_s=30, negative_ttl_s=5, clock=clock)
    digest = hash_key("key-new")

    assert await tenants.tenant_for_key(digest) is None
    assert await tenants.policy_for("new") is None  # no policy: the defaults
    table.add("new", "key-new", TenantPolicy(rpm={"openai": 6}))
    clock.advance(4.9)
    assert await tenants.tenant_for_key(digest) is None  # the miss still holds
    assert await tenants.policy_for("new") is None
    assert len(table.key_lookups) == 1

    clock.advance(0.1)
    assert await tenants.tenant_for_key(digest) == "new"
    assert await tenants.policy_for("new") == TenantPolicy(rpm={"openai": 6})
    clock.advance(29.9)  # a hit lasts the full ttl_s
    assert await tenants.tenant_for_key(digest) == "new"
    assert len(table.key_lookups) == 2


async def test_the_negative_ttl_defaults_to_the_ttl_and_zero_caches_no_miss() -> None:
    clock = FakeClock()
    table = Table(clock)
    defaulted = CachedTenants(table, ttl_s=10, clock=clock)
    assert defaulted.negative_ttl_s == 10
    await defaulted.tenant_for_key(hash_key("nobody"))
    clock.advance(9.9)
    await defaulted.tenant_for_key(hash_key("nobody"))
    assert len(table.key_lookups) == 1

    uncached = CachedTenants(table, ttl_s=10, negative_ttl_s=0, clock=clock)
    for _ in range(3):
        await uncached.tenant_for_key(hash_key("nobody"))
    assert len(table.key_lookups) == 4
    assert uncached.stats.entries == 0


async def test_at_most_max_entries_are_kept_the_least_recently_used_going_first() -> None:
    clock = FakeClock()
    table = Table(clock)
    for name in "abcd":
        table.add(name, f"key-{name}")
    tenants = CachedTenants(table, max_entries=3, clock=clock)
    ask = tenants.tenant_for_key

    for name in "abc":
        await ask(hash_key(f"key-{name}"))
    await ask(hash_key("key-a"))  # a is now the most recently used
    await ask(hash_key("key-d"))  # b goes
    assert tenants.key_stats.entries == 3
    looked_up = len(table.key_lookups)
    for name in "acd":
        assert await ask(hash_key(f"key-{name}")) == name
    assert len(table.key_lookups) == looked_up
    assert await ask(hash_key("key-b")) == "b"
    assert len(table.key_lookups) == looked_up + 1
    assert tenants.key_stats.entries == 3


async def test_a_thousand_concurrent_asks_for_one_key_make_one_lookup() -> None:
    table = Table()
    table.add("acme", "key-acme", TenantPolicy(local_only=True))
    table.gate = asyncio.Event()
    tenants = CachedTenants(table)
    digest = hash_key("key-acme")

    keys = [asyncio.create_task(tenants.tenant_for_key(digest)) for _ in range(1000)]
    policies = [asyncio.create_task(tenants.policy_for("acme")) for _ in range(1000)]
    while tenants.stats.misses < 2000:  # noqa: ASYNC110 - until every asker waits on the lookup
        await asyncio.sleep(0)
    table.gate.set()

    assert set(await asyncio.gather(*keys)) == {"acme"}
    assert all(p == TenantPolicy(local_only=True) for p in await asyncio.gather(*policies))
    assert len(table.key_lookups) == 1 and table.policy_lookups == ["acme"]
    assert tenants.stats.lookups == 2


async def test_an_asker_that_goes_away_does_not_cancel_the_lookup_the_others_wait_for() -> None:
    table = Table()
    table.add("acme", "key-acme")
    table.gate = asyncio.Event()
    tenants = CachedTenants(table)
    digest = hash_key("key-acme")

    first = asyncio.create_task(tenants.tenant_for_key(digest))
    others = [asyncio.create_task(tenants.tenant_for_key(digest)) for _ in range(10)]
    while tenants.stats.misses < 11:  # noqa: ASYNC110 - until every asker waits on the lookup
        await asyncio.sleep(0)
    first.cancel()  # the client that started it disconnected
    with pytest.raises(asyncio.CancelledError):
        await first
    table.gate.set()

    assert set(await asyncio.gather(*others)) == {"acme"}
    assert len(table.key_lookups) == 1
    assert await tenants.tenant_for_key(digest) == "acme"  # cached by the lookup
    assert len(table.key_lookups) == 1


async def test_a_lookup_that_raises_reaches_every_asker_and_is_not_cached() -> None:
    table = Table()
    table.add("acme", "key-acme")
    table.down = True
    tenants = CachedTenants(table)
    digest = hash_key("key-acme")

    answers = await asyncio.gather(
        *(tenants.tenant_for_key(digest) for _ in range(50)), return_exceptions=True
    )
    assert all(isinstance(a, ConnectionError) for a in answers)
    assert len(table.key_lookups) == 1  # one shared lookup failed, once
    assert tenants.stats.entries == 0

    table.down = False
    assert await tenants.tenant_for_key(digest) == "acme"  # asked again, not a cached error
    assert len(table.key_lookups) == 2


async def test_the_mapping_face_shows_only_fresh_policies() -> None:
    clock = FakeClock()
    table = Table(clock)
    table.add("acme", "key-acme", TenantPolicy(local_only=True))
    tenants = CachedTenants(table, ttl_s=30, clock=clock)
    assert dict(tenants) == {} and len(tenants) == 0
    assert tenants  # an empty directory is still one: `tenants or {}` must keep it
    await tenants.policy_for("acme")
    await tenants.policy_for("globex")  # no policy: not shown
    assert dict(tenants) == {"acme": TenantPolicy(local_only=True)}
    clock.advance(30)
    assert dict(tenants) == {} and tenants.get("acme") is None
    assert tenants.stats.lookups == 2  # looking does not ask


@pytest.mark.parametrize(
    ("options", "problem"),
    [
        ({"ttl_s": -1}, "ttl_s"),
        ({"ttl_s": float("inf")}, "ttl_s"),
        ({"negative_ttl_s": float("nan")}, "negative_ttl_s"),
        ({"max_entries": 0}, "max_entries"),
        ({"max_entries": True}, "max_entries"),
    ],
)
def test_bad_settings_are_refused_naming_them(options: dict[str, float], problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        CachedTenants(Table(), **options)  # type: ignore[arg-type]


# -- behind the real middleware ---------------------------------------------------------------


async def whoami(request: Request) -> Response:
    return JSONResponse({"tenant": current_tenant()})


@asynccontextmanager
async def app_of(lookup: TenantLookup) -> AsyncIterator[httpx2.AsyncClient]:
    """A Starlette app behind `TenantMiddleware(resolver=ApiKeyResolver(lookup))`."""
    app = TenantMiddleware(
        Starlette(routes=[Route("/whoami", whoami)]), resolver=ApiKeyResolver(lookup)
    )
    transport = httpx2.ASGITransport(app=app)
    async with httpx2.AsyncClient(transport=transport, base_url="http://app") as http:
        yield http


def bearer(key: str) -> dict[str, str]:
    return {"authorization": f"Bearer {key}"}


def random_keys(rng: random.Random, n: int) -> Iterator[str]:
    for _ in range(n):
        yield f"sk-{rng.getrandbits(128):032x}"


async def test_ten_thousand_requests_with_random_unknown_keys_cost_one_lookup_per_key_per_ttl() -> (
    None
):
    clock = FakeClock()
    table = Table(clock)
    known = {f"tenant-{i}": f"key-{i}" for i in range(5)}
    for tenant, key in known.items():
        table.add(tenant, key)
    rng = random.Random(17)
    unknown = list(random_keys(rng, 500))
    tenants = CachedTenants(table, ttl_s=30, max_entries=4096, clock=clock)
    answered: dict[int, int] = {}

    async with app_of(tenants) as http:

        async def one() -> None:
            if rng.random() < 0.05:
                tenant, key = rng.choice(list(known.items()))
                response = await http.get("/whoami", headers=bearer(key))
                assert response.status_code == 200 and response.json() == {"tenant": tenant}
            else:
                response = await http.get("/whoami", headers=bearer(rng.choice(unknown)))
                assert response.status_code == 401
                assert response.json()["error"]["code"] == "invalid_api_key"
            answered[response.status_code] = answered.get(response.status_code, 0) + 1

        for _ in range(100):  # 100 rounds of 100 at once, 1.5 s apart: 5 TTLs in all
            await asyncio.gather(*(one() for _ in range(100)))
            assert tenants.key_stats.entries <= 4096
            clock.advance(1.5)

    assert sum(answered.values()) == 10_000 and answered[401] > 9000
    times: dict[str, list[float]] = {}
    for digest, at in table.key_lookups:
        times.setdefault(digest, []).append(at)
    for asked in times.values():  # one lookup per key per TTL, never one per request
        assert all(later - earlier >= 30 for earlier, later in itertools.pairwise(asked))
    distinct = len(times)
    assert distinct <= 505
    assert len(table.key_lookups) <= distinct * 6  # 150 s of traffic: at most 6 TTLs each
    assert tenants.key_stats.hits > 6000


async def test_a_flood_of_distinct_unknown_keys_keeps_the_cache_within_max_entries() -> None:
    clock = FakeClock()
    table = Table(clock)
    table.add("acme", "key-acme")
    tenants = CachedTenants(table, ttl_s=30, max_entries=500, clock=clock)
    keys = random_keys(random.Random(4), 10_000)

    async with app_of(tenants) as http:
        for _ in range(100):
            batch = [next(keys) for _ in range(100)]
            answers = await asyncio.gather(*(http.get("/whoami", headers=bearer(k)) for k in batch))
            assert {a.status_code for a in answers} == {401}
            assert tenants.key_stats.entries <= 500
        assert len(table.key_lookups) == 10_000  # each key once
        response = await http.get("/whoami", headers=bearer("key-acme"))
        assert response.status_code == 200  # the flood pushed out no one for good
    assert tenants.key_stats.entries == 500


async def test_a_failing_lookup_is_answered_503_never_401_and_not_cached() -> None:
    table = Table()
    table.add("acme", "key-acme")
    tenants = CachedTenants(table)
    table.down = True
    async with app_of(tenants) as http:
        for attempt in range(1, 4):
            response = await http.get("/whoami", headers=bearer("key-acme"))
            assert response.status_code == 503
            assert response.headers["retry-after"] == "1"
            error = response.json()["error"]
            assert error["code"] == "tenant_lookup_failed" and error["type"] == "api_error"
            assert "unreachable" not in error["message"]  # the database's words stay in the log
            assert len(table.key_lookups) == attempt  # asked again each time

        many = await asyncio.gather(
            *(http.get("/whoami", headers=bearer("key-acme")) for _ in range(100))
        )
        assert {r.status_code for r in many} == {503}

        table.down = False
        response = await http.get("/whoami", headers=bearer("key-acme"))
        assert response.status_code == 200 and response.json() == {"tenant": "acme"}
        missing = await http.get("/whoami")
        assert missing.status_code == 401  # no key: still the caller's fault


async def test_a_failing_lookup_logs_why(caplog: pytest.LogCaptureFixture) -> None:
    table = Table()
    table.down = True
    async with app_of(CachedTenants(table)) as http:
        await http.get("/whoami", headers=bearer("key-acme"))
    assert "tenant lookup failed (ConnectionError: the tenants table is unreachable)" in (
        caplog.text
    )


# -- a real table: PostgreSQL ---------------------------------------------------------------------


class PgTenants:
    """The lookup an app writes: two queries into its own `tenants` table."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        self.queries = 0

    async def tenant_for_key(self, key_sha256: str) -> TenantId | None:
        self.queries += 1
        async with self.engine.connect() as conn:
            query = sa.text("SELECT tenant_id FROM tenants WHERE key_sha256 = :digest")
            found: str | None = (await conn.execute(query, {"digest": key_sha256})).scalar()
        return found

    async def policy_for(self, tenant: TenantId) -> TenantPolicy | None:
        self.queries += 1
        async with self.engine.connect() as conn:
            query = sa.text("SELECT local_only FROM tenants WHERE tenant_id = :tenant LIMIT 1")
            local_only = (await conn.execute(query, {"tenant": tenant})).scalar()
        return None if local_only is None else TenantPolicy(local_only=bool(local_only))


@pytest.fixture
async def tenants_table(pg_url: str) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(pg_url)
    async with engine.begin() as conn:
        await conn.execute(
            sa.text(
                "CREATE TABLE tenants (tenant_id text NOT NULL, key_sha256 text PRIMARY KEY,"
                " local_only boolean NOT NULL DEFAULT false)"
            )
        )
    yield engine
    await engine.dispose()


async def _execute(engine: AsyncEngine, statement: str, **values: object) -> None:
    async with engine.begin() as conn:
        await conn.execute(sa.text(statement), values)


@pytest.mark.postgres
async def test_a_tenant_inserted_is_served_after_the_ttl_and_a_key_deleted_refused_after_it(
    tenants_table: AsyncEngine,
) -> None:
    clock = FakeClock()
    lookup = PgTenants(tenants_table)
    tenants = CachedTenants(lookup, ttl_s=30, negative_ttl_s=10, clock=clock)
    insert = "INSERT INTO tenants (tenant_id, key_sha256) VALUES (:tenant, :digest)"
    await _execute(tenants_table, insert, tenant="acme", digest=hash_key("key-acme"))

    async with app_of(tenants) as http:
        assert (await http.get("/whoami", headers=bearer("key-acme"))).json() == {"tenant": "acme"}
        assert (await http.get("/whoami", headers=bearer("key-new"))).status_code == 401

        await _execute(tenants_table, insert, tenant="initech", digest=hash_key("key-new"))
        clock.advance(9.9)
        assert (await http.get("/whoami", headers=bearer("key-new"))).status_code == 401
        clock.advance(0.1)  # the miss has expired: the signup is served
        response = await http.get("/whoami", headers=bearer("key-new"))
        assert response.status_code == 200 and response.json() == {"tenant": "initech"}

        await _execute(
            tenants_table, "DELETE FROM tenants WHERE key_sha256 = :d", d=hash_key("key-acme")
        )
        assert (await http.get("/whoami", headers=bearer("key-acme"))).status_code == 200
        clock.advance(20)  # 30 s after acme's lookup began
        response = await http.get("/whoami", headers=bearer("key-acme"))
        assert response.status_code == 401
        assert response.json()["error"]["code"] == "invalid_api_key"
    assert lookup.queries == 4


@pytest.mark.postgres
async def test_a_database_that_cannot_be_reached_is_503(pg_url: str) -> None:
    # the same server, a database that does not exist: a real driver error, not a missing key
    engine = create_engine(pg_url.rsplit("/", 1)[0] + "/no_such_database_here")
    try:
        async with app_of(CachedTenants(PgTenants(engine))) as http:
            response = await http.get("/whoami", headers=bearer("key-acme"))
        assert response.status_code == 503
        assert response.json()["error"]["code"] == "tenant_lookup_failed"
    finally:
        await engine.dispose()


# -- the TOML's tenants as a lookup ---------------------------------------------------------------


async def test_the_config_tenants_answer_as_a_lookup_and_as_a_mapping() -> None:
    from resilience.config.load import parse_config

    config = parse_config(
        {
            "providers": {"openai": {"kind": "openai", "api_key_env": "K"}},
            "routes": {"chat": ["openai:gpt-4.1"]},
            "tenants": {
                "acme": {
                    "api_key_sha256": [hash_key("key-acme")],
                    "local_only": False,
                    "providers": {"openai": {"api_key_env": "ACME_KEY", "rpm": 60}},
                    "routes": {"chat": ["openai:gpt-4.1-mini"]},
                },
                "globex": {"api_key_sha256": [hash_key("key-globex")]},
            },
        },
        environ={"K": "k", "ACME_KEY": "acme-own"},
    )
    tenants = ConfigTenants(config, environ={"K": "k", "ACME_KEY": "acme-own"})
    assert isinstance(tenants, TenantLookup)
    assert await tenants.tenant_for_key(hash_key("key-globex")) == "globex"
    assert await tenants.tenant_for_key(hash_key("nobody")) is None
    acme = await tenants.policy_for("acme")
    assert acme is not None and acme.api_keys == {"openai": "acme-own"}
    assert acme.rpm == {"openai": 60} and acme.routes == {
        "chat": LlmRoute.of("chat", "openai:gpt-4.1-mini")
    }
    assert await tenants.policy_for("nobody") is None
    assert sorted(tenants) == ["acme", "globex"] and tenants["acme"] == acme
    assert "acme-own" not in repr(tenants) and "acme-own" not in repr(acme)

    no_tenants = parse_config(
        {"providers": {"openai": {"kind": "openai", "api_key_env": "K"}}}, environ={"K": "k"}
    )
    tenants.replace(no_tenants)  # what the gateway's reload does
    assert await tenants.tenant_for_key(hash_key("key-globex")) is None
    assert len(tenants) == 0 and tenants
