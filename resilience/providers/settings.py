"""`ProviderSettings`: everything an adapter needs to talk to its upstream, in one object.

One frozen value, validated on creation, passed whole from the config loader through
`build_provider` to the adapter, so a new knob is a field here, a line of parsing in
`resilience.config.load` and the adapter that reads it (docs/architecture.md, "Parts").
Like `BreakerPolicy`, every error is `"<field>: <problem>"`, so the loader can prefix the
TOML path. Field names are the TOML keys of `[providers.NAME]`, but for `api_key`, which
a config never holds (it names a variable, `api_key_env`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Literal
from urllib.parse import urlsplit

from resilience.providers.limits import DEFAULT_MAX_RESPONSE_BYTES

ProviderKind = Literal["anthropic", "openai"]
Location = Literal["cloud", "local"]

KINDS: tuple[ProviderKind, ...] = ("anthropic", "openai")
LOCATIONS: tuple[Location, ...] = ("cloud", "local")
MIN_RESPONSE_BYTES = 1024
"""A smaller cap would fail ordinary error bodies, not just runaway answers."""


@dataclass(frozen=True, slots=True, kw_only=True)
class ProviderSettings:
    """How to reach one upstream. No SDK environment defaults, no SDK retries."""

    kind: ProviderKind
    """Which SDK speaks to it; "openai" covers any OpenAI-compatible server."""
    api_key: str | None = field(default=None, repr=False)
    """The provider's own key; None for servers that need none. Never shown in a repr."""
    base_url: str | None = None
    """anthropic: the host root; openai: the URL ending in `/v1`. None: the vendor's API."""
    timeout_s: float = 60.0
    """Per request; connecting takes at most 5 s of it."""
    location: Location = "cloud"
    """"local" providers stay eligible for `local_only` tenants."""
    embeddings: bool | None = None
    """Whether it serves embeddings; None: the kind's default (openai yes, anthropic never)."""
    max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES
    """A larger answer fails the attempt as `invalid_response` instead of filling memory."""

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"kind: expected anthropic or openai, got {self.kind!r}")
        if self.api_key is not None and (not isinstance(self.api_key, str) or not self.api_key):
            # not echoed: it is a secret
            raise ValueError("api_key: expected a non-empty string, or None for no key")
        if self.base_url is not None and not _is_http_url(self.base_url):
            # not echoed: a URL may carry user:password
            raise ValueError("base_url: expected an http:// or https:// URL")
        timeout = self.timeout_s
        if not _is_number(timeout) or not timeout > 0:
            raise ValueError(f"timeout_s: must be a number > 0, got {timeout!r}")
        if self.location not in LOCATIONS:
            raise ValueError(f"location: expected cloud or local, got {self.location!r}")
        if self.embeddings is not None and not isinstance(self.embeddings, bool):
            raise ValueError(f"embeddings: expected True, False or None, got {self.embeddings!r}")
        if self.embeddings and self.kind == "anthropic":
            raise ValueError(
                "embeddings: anthropic providers have no embeddings API; use kind = openai"
            )
        limit = self.max_response_bytes
        if not _is_number(limit) or not isinstance(limit, int) or limit < MIN_RESPONSE_BYTES:
            raise ValueError(
                f"max_response_bytes: must be an integer >= {MIN_RESPONSE_BYTES}, got {limit!r}"
            )
        # validated as written (so errors show `5`, not `5.0`), stored as the declared type
        object.__setattr__(self, "timeout_s", float(timeout))

    @property
    def can_embed(self) -> bool:
        """`embeddings` with the kind's default applied."""
        return self.kind == "openai" if self.embeddings is None else self.embeddings


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _is_http_url(value: object) -> bool:
    if not isinstance(value, str):
        return False
    try:
        parts = urlsplit(value)
    except ValueError:  # e.g. a bad IPv6 literal
        return False
    return parts.scheme in ("http", "https") and bool(parts.netloc)
