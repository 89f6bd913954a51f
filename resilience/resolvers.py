"""How a request names its tenant: a trusted header, or a gateway API key.

A resolver takes the request `Headers` and returns the tenant id, or raises
`TenantRejected` with the status and code to answer. A plain callable works
too, sync or async.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Generic, TypeVar

from starlette.datastructures import Headers

from resilience.types import TenantId

T = TypeVar("T")

TENANT_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")

Resolver = Callable[[Headers], str | Awaitable[str | None] | None]


class InvalidTenantId(ValueError):
    """A tenant id that does not match `^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$`."""


class TenantRejected(Exception):
    """A resolver refuses the request: answered with `status` and an OpenAI-style error."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


def validate_tenant_id(value: object) -> TenantId:
    """Return `value` if it is a valid tenant id; the error never echoes more than 40 chars."""
    if not isinstance(value, str) or not TENANT_ID.fullmatch(value):
        shown = repr(value)[:40] + ("..." if len(repr(value)) > 40 else "")
        raise InvalidTenantId(
            f"invalid tenant id {shown}: expected 1-64 characters of A-Z a-z 0-9 . _ -, "
            "starting with a letter or digit"
        )
    return value


class HeaderResolver:
    """The tenant from a trusted header, set by an auth gateway in front of this app."""

    def __init__(self, header: str = "x-tenant-id") -> None:
        self.header = header.lower()

    def __call__(self, headers: Headers) -> str:
        values = headers.getlist(self.header)
        if not values:
            raise TenantRejected(401, "missing_tenant", f"missing {self.header} header")
        if len(values) > 1:
            raise TenantRejected(400, "invalid_tenant", f"more than one {self.header} header")
        return values[0]

    def __repr__(self) -> str:
        return f"HeaderResolver({self.header!r})"


class DigestMatcher(Generic[T]):
    """Finds the owner of a presented secret among stored SHA-256 digests, in constant time.

    The presented secret's digest is compared with every stored one using
    `hmac.compare_digest`, with no early exit, so timing tells neither whether
    nor where a match was found.
    """

    def __init__(self, entries: Iterable[tuple[str, T]]) -> None:
        self._entries = [(bytes.fromhex(digest), owner) for digest, owner in entries]

    def match(self, secret: str) -> T | None:
        digest = hashlib.sha256(secret.encode()).digest()
        found: T | None = None
        for stored, owner in self._entries:
            if hmac.compare_digest(stored, digest):
                found = owner
        return found

    def __len__(self) -> int:
        return len(self._entries)


class ApiKeyResolver:
    """The tenant owning the `Authorization: Bearer <key>` (or `x-api-key`) gateway key.

    Keys are stored as SHA-256 hex digests. The presented key's digest is
    compared with every stored one in constant time, so neither timing nor an
    early exit tells which entry, if any, came close.
    """

    def __init__(self, key_hashes: Mapping[str, TenantId]) -> None:
        self._keys = DigestMatcher((d, validate_tenant_id(t)) for d, t in key_hashes.items())

    def __call__(self, headers: Headers) -> str:
        scheme, _, key = headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not key.strip():
            key = headers.get("x-api-key", "")  # older Anthropic clients send the key here
        if not key.strip():
            raise TenantRejected(401, "missing_api_key", "missing Authorization: Bearer <key>")
        found = self._keys.match(key.strip())
        if found is None:
            raise TenantRejected(401, "invalid_api_key", "unknown API key")
        return found

    def __repr__(self) -> str:
        return f"ApiKeyResolver({len(self._keys)} keys)"


def hash_key(key: str) -> str:
    """The SHA-256 hex digest to store in config for a gateway key."""
    return hashlib.sha256(key.encode()).hexdigest()
