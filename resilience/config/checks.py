"""Value checks for the config loader, route lists included; each failure is a
`ConfigError` at `path`.

Values are echoed in messages only where they cannot be a secret, and shortened: a key
pasted into `api_key_env` or a URL with a password must not end up in a log.
"""

from __future__ import annotations

import difflib
import math
import re
from collections.abc import Collection, Mapping
from typing import Any

from resilience.config.schema import ConfigError, ProviderConfig
from resilience.routing.routes import Group, Route, Step, Strategy, Target

NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
"""Provider and admin token names; the same alphabet as tenant ids."""
ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
HTTP_TOKEN = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
_SHA256 = re.compile(r"[0-9a-f]{64}")


def describe(value: Any) -> str:
    """A TOML-flavoured, short rendering of a bad value for an error message."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        shown = repr(value)
        return shown if len(shown) <= 42 else shown[:38] + "...'"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, list):
        return "a list" if value else "an empty list"
    if isinstance(value, dict):
        return "a table"
    if value is None:
        return "nothing"
    return f"a {type(value).__name__}"


def only(data: Mapping[str, Any], path: str, allowed: Collection[str]) -> None:
    """Refuse unknown keys, so a typo (`cooldwn_s`) cannot pass as a silent default."""
    for key in data:
        if key in allowed:
            continue
        where = f"{path}.{key}" if path else key
        close = difflib.get_close_matches(key, list(allowed), n=1, cutoff=0.6)
        hint = (
            f"did you mean {close[0]!r}?"
            if close
            else f"expected one of: {', '.join(sorted(allowed))}"
        )
        raise ConfigError(where, f"unknown key ({hint})")


def as_table(value: Any, path: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ConfigError(path, f"expected a table, got {describe(value)}")
    return value


def table(data: Mapping[str, Any], key: str, path: str) -> dict[str, Any]:
    """The sub-table `data[key]` (at `path`), empty when absent."""
    return as_table(data.get(key, {}), path)


def number(value: Any, path: str, *, integer: bool) -> int | float:
    """An int, or (unless `integer`) an int or a float, as written; never a bool, inf or nan."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        need = "a number (integer)" if integer else "a number"
        raise ConfigError(path, f"expected {need}, got {describe(value)}")
    if integer and not isinstance(value, int):
        raise ConfigError(path, f"expected an integer, got {describe(value)}")
    if not math.isfinite(value):
        raise ConfigError(path, f"expected a finite number, got {describe(value)}")
    return value


def flag(value: Any, path: str) -> bool:
    if not isinstance(value, bool):
        raise ConfigError(path, f"expected true or false, got {describe(value)}")
    return value


def string(value: Any, path: str) -> str:
    if not isinstance(value, str) or not value:
        raise ConfigError(path, f"expected a non-empty string, got {describe(value)}")
    return value


def choice(
    data: Mapping[str, Any], key: str, path: str, options: tuple[str, ...], default: str | None
) -> str:
    """`data[key]`, one of `options`; `default=None` makes the key required."""
    value = data.get(key, default)
    if value not in options:
        got = "nothing (the key is required)" if value is None else describe(value)
        raise ConfigError(f"{path}.{key}", f"expected one of {', '.join(options)}, got {got}")
    return str(value)


def http_url(value: Any, path: str) -> str:
    # Not echoed: a URL may carry user:password.
    if not isinstance(value, str) or not value.startswith(("http://", "https://")):
        raise ConfigError(path, "expected an http:// or https:// URL")
    return value


def sha256_hex(value: Any, path: str) -> str:
    """A SHA-256 hex digest, stored lowercase. Not echoed: it may be the raw key pasted in."""
    if not isinstance(value, str) or not _SHA256.fullmatch(value.lower()):
        raise ConfigError(path, "expected 64 hex characters (a SHA-256 digest)")
    return value.lower()


def env_reference(value: Any, path: str, environ: Mapping[str, str]) -> str | None:
    """The NAME of a set, non-empty environment variable; None when the key is absent."""
    if value is None:
        return None
    if not isinstance(value, str) or not ENV_NAME.fullmatch(value):
        # Never echo it: the usual mistake is pasting the key itself here.
        raise ConfigError(
            path, "expected the name of an environment variable (A-Z, 0-9, _), not a key"
        )
    if value not in environ:
        raise ConfigError(path, f"environment variable {value} is not set")
    if not environ[value]:
        raise ConfigError(path, f"environment variable {value} is empty")
    return value


def rpm(value: Any, path: str) -> float:
    """A requests-per-minute limit: a number >= 0, where 0 means unlimited."""
    limit = number(value, path, integer=False)
    if limit < 0:
        raise ConfigError(path, f"must be a number >= 0 (0: unlimited), got {describe(value)}")
    return float(limit)


def tpm(value: Any, path: str) -> float:
    """A tokens-per-minute limit: a number >= 0, where 0 means unlimited."""
    return rpm(value, path)


def parse_route(name: str, value: Any, path: str, providers: Mapping[str, ProviderConfig]) -> Route:
    """`{targets = [...]}` or the bare list. Each step is `"provider:model"` of a known
    provider, or a group table `{ group = [...], strategy = "...", weights = [...] }`.
    A target appears at most once in a route, groups included."""
    if not name or name.strip() != name:
        raise ConfigError(path, "route names must be non-empty, without surrounding spaces")
    if isinstance(value, dict):
        only(value, path, {"targets"})
        value, path = value.get("targets"), f"{path}.targets"
    if not isinstance(value, list) or not value:
        raise ConfigError(
            path, f'expected a non-empty list of "provider:model" strings, got {describe(value)}'
        )
    seen: Seen = {}
    steps: list[Step] = []
    for i, item in enumerate(value):
        where = f"{path}[{i}]"
        if isinstance(item, dict):
            steps.append(_group(item, where, path, providers, seen))
        else:
            steps.append(_target(item, where, path, providers, seen))
    return Route(name, tuple(steps))


_STRATEGIES = tuple(s.value for s in Strategy)


Seen = dict[Target, str]
"""Targets already in the route -> where, relative to the route's path (`[0].group[1]`)."""


def _target(
    text: Any, where: str, root: str, providers: Mapping[str, ProviderConfig], seen: Seen
) -> Target:
    expected = 'expected "provider:model" or a group table { group = [...] }'
    if not isinstance(text, str):
        raise ConfigError(where, f"{expected}, got {describe(text)}")
    try:
        target = Target.parse(text)
    except ValueError:
        raise ConfigError(where, f"{expected}, got {describe(text)}") from None
    if target.provider not in providers:
        raise ConfigError(where, f"unknown provider {target.provider!r}")
    if target in seen:
        raise ConfigError(where, f"{text!r} is already at {seen[target]}")
    seen[target] = where[len(root) :]
    return target


def _group(
    data: dict[str, Any], where: str, root: str, providers: Mapping[str, ProviderConfig], seen: Seen
) -> Group:
    only(data, where, {"group", "strategy", "weights"})
    members = data.get("group")
    if not isinstance(members, list) or not members:
        got = describe(members)
        raise ConfigError(
            f"{where}.group", f'expected a non-empty list of "provider:model", got {got}'
        )
    targets = tuple(
        _target(m, f"{where}.group[{j}]", root, providers, seen) for j, m in enumerate(members)
    )
    strategy = choice(data, "strategy", where, _STRATEGIES, Strategy.PRIORITY.value)
    weights = data.get("weights")
    if strategy == Strategy.WEIGHTED and weights is None:
        raise ConfigError(f"{where}.weights", "strategy weighted needs one weight per member")
    if weights is not None:
        if strategy != Strategy.WEIGHTED:
            raise ConfigError(f"{where}.weights", f"only for strategy weighted, not {strategy}")
        if not isinstance(weights, list) or len(weights) != len(targets):
            got = describe(weights)
            raise ConfigError(
                f"{where}.weights", f"expected {len(targets)} numbers (one per member), got {got}"
            )
        for j, w in enumerate(weights):
            at = f"{where}.weights[{j}]"
            if number(w, at, integer=False) <= 0:
                raise ConfigError(at, f"must be a number > 0, got {describe(w)}")
    return Group(targets, Strategy(strategy), tuple(weights) if weights is not None else None)
