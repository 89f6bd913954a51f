"""The tenant contextvar outside requests, tenant id validation, and the resolvers themselves."""

from __future__ import annotations

import asyncio
import hashlib
import hmac

import pytest
from starlette.datastructures import Headers

from resilience.errors import NoTenantError
from resilience.tenancy.context import (
    current_request_id,
    current_tenant,
    current_tenant_or_none,
    tenant_scope,
)
from resilience.tenancy.resolvers import (
    ApiKeyResolver,
    DigestMatcher,
    HeaderResolver,
    InvalidTenantId,
    TenantRejected,
    hash_key,
    validate_tenant_id,
)


def test_current_tenant_outside_a_request_raises_no_tenant_error_naming_the_fix() -> None:
    with pytest.raises(NoTenantError, match=r"TenantMiddleware.*tenant_scope\(tenant_id\)"):
        current_tenant()
    assert current_tenant_or_none() is None
    assert current_request_id() is None


def test_tenant_scope_nests_and_restores_the_outer_tenant_and_request_id() -> None:
    with tenant_scope("outer") as outer:
        assert outer == "outer" and current_tenant() == "outer"
        with tenant_scope("inner", request_id="job-7"):
            assert current_tenant() == "inner" and current_request_id() == "job-7"
            with tenant_scope("innermost"):
                assert current_tenant() == "innermost"
                assert current_request_id() == "job-7", "a scope without an id keeps the outer id"
            assert current_tenant() == "inner"
        assert current_tenant() == "outer" and current_request_id() is None
    assert current_tenant_or_none() is None


def test_tenant_scope_restores_the_outer_tenant_when_the_body_raises() -> None:
    with tenant_scope("outer"):
        with pytest.raises(KeyError), tenant_scope("inner"):
            raise KeyError("job failed")
        assert current_tenant() == "outer"
    assert current_tenant_or_none() is None


def test_tenant_scope_refuses_an_invalid_id_and_sets_nothing() -> None:
    with pytest.raises(InvalidTenantId, match="invalid tenant id"), tenant_scope("../x"):
        raise AssertionError("the body must not run")
    assert current_tenant_or_none() is None


async def test_tenant_scope_in_async_code_is_inherited_by_tasks_and_isolated_between_them() -> None:
    started = asyncio.Barrier(2)

    async def job(tenant: str) -> list[str]:
        seen = []
        with tenant_scope(tenant):
            await started.wait()
            for _ in range(3):
                await asyncio.sleep(0)
                seen.append(current_tenant())
            child = await asyncio.create_task(asyncio.to_thread(current_tenant))
            seen.append(child)
        return seen

    async with asyncio.timeout(5):
        a, b = await asyncio.gather(job("alpha"), job("beta"))
    assert a == ["alpha"] * 4 and b == ["beta"] * 4
    assert current_tenant_or_none() is None


@pytest.mark.parametrize("good", ["a", "A", "7", "acme", "Acme-Corp_2.eu", "a" * 64, "0.-_"])
def test_valid_tenant_ids_are_returned_unchanged(good: str) -> None:
    assert validate_tenant_id(good) == good


BAD_IDS = {
    "empty": ("", "empty"),
    "65-chars": ("a" * 65, "too long"),
    "crlf": ("acme\r\nx-admin: 1", "U+000D at position 4"),
    "trailing-lf": ("acme\n", "U+000A at position 4"),
    "nul": ("ac\x00me", "U+0000 at position 2"),
    "cyrillic-a": ("\u0430cme", "U+0430 at position 0"),
    "greek-omicron": ("acm\u03bf", "U+03BF at position 3"),
    "traversal": ("../etc", "starts with '.'"),
    "slash": ("a/b", "U+002F at position 1"),
    "space": ("a b", "U+0020 at position 1"),
    "leading-dash": ("-a", "starts with '-'"),
    "10kb": ("x" * 10_240, "too long"),
}


@pytest.mark.parametrize(("bad", "problem"), BAD_IDS.values(), ids=BAD_IDS)
def test_invalid_tenant_ids_are_refused_naming_the_problem(bad: str, problem: str) -> None:
    with pytest.raises(InvalidTenantId) as raised:
        validate_tenant_id(bad)
    message = str(raised.value)
    assert problem in message
    assert message.isascii() and "\r" not in message and "\n" not in message
    assert len(message) < 200
    assert isinstance(raised.value, ValueError)


def test_a_huge_invalid_id_is_truncated_in_the_message_with_its_length() -> None:
    with pytest.raises(InvalidTenantId) as raised:
        validate_tenant_id("q" * 10_240)
    assert "'" + "q" * 32 + "'... (10240 characters)" in str(raised.value)
    assert "q" * 33 not in str(raised.value)


@pytest.mark.parametrize("value", [None, 42, b"acme", ["acme"]])
def test_non_strings_are_not_tenant_ids(value: object) -> None:
    with pytest.raises(InvalidTenantId, match="not a string"):
        validate_tenant_id(value)


def headers(*pairs: tuple[str, str]) -> Headers:
    return Headers(raw=[(k.encode("latin-1"), v.encode("latin-1")) for k, v in pairs])


def test_header_resolver_returns_the_header_value_raw_for_the_middleware_to_validate() -> None:
    resolver = HeaderResolver("X-Tenant")
    assert resolver(headers(("x-tenant", "acme"))) == "acme"
    assert resolver(headers(("x-tenant", "not valid!"))) == "not valid!"
    assert repr(resolver) == "HeaderResolver('x-tenant')"


def test_header_resolver_refuses_a_missing_or_repeated_header() -> None:
    resolver = HeaderResolver()
    with pytest.raises(TenantRejected) as missing:
        resolver(headers())
    with pytest.raises(TenantRejected) as repeated:
        resolver(headers(("x-tenant-id", "a"), ("x-tenant-id", "b")))
    assert (missing.value.status, missing.value.code) == (401, "missing_tenant")
    assert (repeated.value.status, repeated.value.code) == (400, "invalid_tenant")


def test_api_key_resolver_reads_bearer_then_x_api_key() -> None:
    resolver = ApiKeyResolver({hash_key("sk-a"): "acme", hash_key("sk-b"): "globex"})
    assert resolver(headers(("authorization", "Bearer sk-a"))) == "acme"
    assert resolver(headers(("authorization", "BEARER  sk-b "))) == "globex"
    assert resolver(headers(("x-api-key", "sk-b"))) == "globex"
    assert resolver(headers(("authorization", "Basic xyz"), ("x-api-key", "sk-a"))) == "acme"
    assert repr(resolver) == "ApiKeyResolver(2 keys)"


@pytest.mark.parametrize(
    ("presented", "code"),
    [
        ((), "missing_api_key"),
        ((("authorization", "Bearer "),), "missing_api_key"),
        ((("authorization", "Basic c2stYQ=="),), "missing_api_key"),
        ((("authorization", "Bearer sk-"),), "invalid_api_key"),
        ((("authorization", "Bearer sk-aa"),), "invalid_api_key"),
        ((("authorization", f"Bearer {hash_key('sk-a')}"),), "invalid_api_key"),
    ],
    ids=["none", "empty-bearer", "basic", "prefix", "extended", "the-digest-itself"],
)
def test_api_key_resolver_refuses_absent_and_unknown_keys_with_401(
    presented: tuple[tuple[str, str], ...], code: str
) -> None:
    resolver = ApiKeyResolver({hash_key("sk-a"): "acme"})
    with pytest.raises(TenantRejected) as refused:
        resolver(headers(*presented))
    assert (refused.value.status, refused.value.code) == (401, code)


def test_a_non_ascii_key_matches_the_digest_of_its_utf8_bytes() -> None:
    resolver = ApiKeyResolver({hash_key("sk-\u00e9t\u00e9"): "acme"})
    sent_on_the_wire = Headers(raw=[(b"authorization", "Bearer sk-\u00e9t\u00e9".encode())])
    assert resolver(sent_on_the_wire) == "acme"


def test_api_key_resolver_refuses_bad_config_without_echoing_the_secret() -> None:
    with pytest.raises(ValueError, match="64 hex characters") as raw_key:
        ApiKeyResolver({"sk-live-pasted-by-mistake": "acme"})
    assert "sk-live" not in str(raw_key.value)
    with pytest.raises(ValueError, match="64 hex"):
        ApiKeyResolver({hashlib.sha1(b"k").hexdigest(): "acme"})
    with pytest.raises(InvalidTenantId):
        ApiKeyResolver({hash_key("k"): "bad tenant"})
    assert ApiKeyResolver({hash_key("k").upper(): "acme"})(headers(("x-api-key", "k"))) == "acme"


@pytest.mark.parametrize("presented", ["k0", "k4", "k9", "unknown"])
def test_the_digest_matcher_compares_against_every_entry_with_compare_digest(
    presented: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Whether the key is first, last or absent, the work done is the same."""
    calls: list[tuple[bytes, bytes]] = []
    real = hmac.compare_digest

    def counting(a: bytes, b: bytes) -> bool:
        calls.append((a, b))
        return real(a, b)

    matcher = DigestMatcher((hash_key(f"k{i}"), f"owner-{i}") for i in range(10))
    monkeypatch.setattr(hmac, "compare_digest", counting)
    found = matcher.match(presented)
    assert found == (None if presented == "unknown" else f"owner-{presented[1:]}")
    assert len(calls) == len(matcher) == 10
    assert {b for _, b in calls} == {hashlib.sha256(presented.encode()).digest()}


def test_the_digest_matcher_hashes_bytes_as_they_are() -> None:
    matcher = DigestMatcher([(hash_key("tok"), "ops")])
    assert matcher.match(b"tok") == "ops" and matcher.match("tok") == "ops"
    assert matcher.match(b"tok ") is None


def test_a_rejection_needs_an_error_status() -> None:
    with pytest.raises(ValueError, match="4xx or 5xx"):
        TenantRejected(200, "ok", "fine")
    rejected = TenantRejected(403, "forbidden_tenant", "not here")
    assert (rejected.status, rejected.code, rejected.message, str(rejected)) == (
        403,
        "forbidden_tenant",
        "not here",
        "not here",
    )
