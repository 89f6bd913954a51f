"""How a request names its tenant: a trusted header, or a gateway API key.

A resolver takes the request `Headers` (http or websocket alike) and returns
the tenant id, returns None when the request names none, or raises
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

from resilience.tenancy.directory import TenantLookup
from resilience.types import TenantId

T = TypeVar("T")

TENANT_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
"""Use with `fullmatch`: `^...$` would accept a trailing newline."""

_ALLOWED = re.compile(r"[A-Za-z0-9._-]")
_SHOWN = 32
_RULE = "1-64 characters of A-Z a-z 0-9 . _ -, the first a letter or digit"

Resolver = Callable[[Headers], TenantId | Awaitable[TenantId | None] | None]
"""Headers in; the tenant id out (None: the request names none), or `TenantRejected`."""


class InvalidTenantId(ValueError):
    """A tenant id that does not match `^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$`."""


class TenantRejected(Exception):
    """A resolver refuses the request: answered with `status` and an OpenAI-style error."""

    def __init__(self, status: int, code: str, message: str) -> None:
        if not 400 <= status <= 599:
            raise ValueError(f"a rejection needs a 4xx or 5xx status, got {status}")
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message

    def __repr__(self) -> str:
        return f"TenantRejected({self.status}, {self.code!r}, {self.message!r})"


def validate_tenant_id(value: object) -> TenantId:
    """Return `value` if it is a valid tenant id, else raise `InvalidTenantId` naming the problem.

    The message shows at most 32 characters of the value, ASCII-escaped, so a
    hostile header can neither flood a log nor smuggle CR/LF or look-alikes.
    """
    if isinstance(value, str) and TENANT_ID.fullmatch(value):
        return value
    raise InvalidTenantId(f"invalid tenant id {_shown(value)}: {_problem(value)}; expected {_RULE}")


def _shown(value: object) -> str:
    if not isinstance(value, str):
        return f"of type {type(value).__name__}"
    if len(value) <= _SHOWN:
        return ascii(value)
    return f"{value[:_SHOWN]!a}... ({len(value)} characters)"


def _problem(value: object) -> str:
    if not isinstance(value, str):
        return "not a string"
    if not value:
        return "empty"
    if len(value) > 64:
        return "too long"
    for position, char in enumerate(value):
        if not _ALLOWED.fullmatch(char):
            return f"character U+{ord(char):04X} at position {position} is not allowed"
        if position == 0 and not char.isalnum():
            return f"starts with {char!r}"
    return "does not match"  # unreachable while _ALLOWED and TENANT_ID agree


class HeaderResolver:
    """The tenant from a trusted header, set by an auth gateway in front of this app.

    Only safe when every request passes that gateway: a client that reaches the
    app directly can name any tenant.
    """

    def __init__(self, header: str = "x-tenant-id") -> None:
        self.header = header.lower()

    def __call__(self, headers: Headers) -> TenantId:
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
        self._entries = [(_digest_bytes(digest), owner) for digest, owner in entries]

    def match(self, secret: str | bytes) -> T | None:
        """The owner of `secret` (str is hashed as UTF-8, bytes as they are), or None."""
        raw = secret.encode() if isinstance(secret, str) else secret
        digest = hashlib.sha256(raw).digest()
        found: T | None = None
        for stored, owner in self._entries:
            if hmac.compare_digest(stored, digest):
                found = owner
        return found

    def __len__(self) -> int:
        return len(self._entries)


def _digest_bytes(digest: str) -> bytes:
    # Not echoed: a raw key pasted where its digest belongs must not reach a log.
    try:
        raw = bytes.fromhex(digest)
    except ValueError:
        raw = b""
    if len(raw) != 32:
        raise ValueError("expected a SHA-256 hex digest (64 hex characters)")
    return raw


class ApiKeyResolver:
    """The tenant owning the `Authorization: Bearer <key>` (or `x-api-key`) gateway key.

    Args:
        key_hashes: SHA-256 hex digest of each gateway key (see `hash_key`) to the
            tenant that owns it (a tenant may own several keys); or a `TenantLookup`
            (`resilience.tenancy.directory`: the app's own table behind `CachedTenants`,
            the TOML's `ConfigTenants`), asked for the presented key's digest.

    With a mapping, the presented key's digest is compared with every stored one in
    constant time. With a lookup, the digest is the index (the digest of a high-entropy
    key tells nothing of the others). No key: 401 `missing_api_key`; an unknown key: 401
    `invalid_api_key`. A lookup that raises is not a wrong key: `TenantMiddleware`
    answers 503 `tenant_lookup_failed`.
    """

    def __init__(self, key_hashes: Mapping[str, TenantId] | TenantLookup) -> None:
        self._lookup: TenantLookup | None = None
        if isinstance(key_hashes, TenantLookup):
            self._lookup = key_hashes
            self._keys: DigestMatcher[TenantId] = DigestMatcher(())
        else:
            self._keys = DigestMatcher((d, validate_tenant_id(t)) for d, t in key_hashes.items())

    def __call__(self, headers: Headers) -> TenantId | Awaitable[TenantId]:
        scheme, _, key = headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not key.strip():
            key = headers.get("x-api-key", "")  # Anthropic-style clients send the key here
        key = key.strip()
        if not key:
            raise TenantRejected(401, "missing_api_key", "missing Authorization: Bearer <key>")
        # Headers decode as latin-1; encoding back gives the bytes the client sent, so a
        # non-ASCII key hashes the same here as in `hash_key` (UTF-8).
        raw = key.encode("latin-1")
        if self._lookup is not None:
            return self._looked_up(self._lookup, hashlib.sha256(raw).hexdigest())
        found = self._keys.match(raw)
        if found is None:
            raise TenantRejected(401, "invalid_api_key", "unknown API key")
        return found

    @staticmethod
    async def _looked_up(lookup: TenantLookup, digest: str) -> TenantId:
        found = await lookup.tenant_for_key(digest)
        if found is None:
            raise TenantRejected(401, "invalid_api_key", "unknown API key")
        return found

    def __repr__(self) -> str:
        if self._lookup is not None:
            return f"ApiKeyResolver({self._lookup!r})"
        return f"ApiKeyResolver({len(self._keys)} keys)"


def hash_key(key: str) -> str:
    """The SHA-256 hex digest to store in config for a gateway key."""
    return hashlib.sha256(key.encode()).hexdigest()
