"""What a breaker alert says, and how its receiver knows we sent it.

Three transitions alert (`alert_kind`): a breaker **opened** (closed -> open, whatever
the reason: threshold, Retry-After, or a provider-wide opening under tenant `*`), was
**closed** again after being open (its probe succeeded, or an admin reset it), or was
**forced open** by an admin. The rest is noise for a person: open -> half-open is the
cooldown ending, a failed probe re-opening a breaker is the same outage going on, and a
`process_restart` close is bookkeeping for a period a dead process left open.

Two payloads: Slack's incoming-webhook shape (`{"text", "blocks"}`), and a generic JSON
one signed with HMAC-SHA256 over `"<timestamp>.<raw body>"`, sent as
`x-resilience-signature: sha256=<hex>` beside `x-resilience-timestamp: <unix seconds>`
(the timestamp is signed, so a receiver refusing old timestamps refuses replays).
`verify_signature` is the receiver's check; docs/alerts.md shows it standalone.
"""

from __future__ import annotations

import enum
import hashlib
import hmac
import json
import time
from collections.abc import Collection
from dataclasses import dataclass, field
from typing import Any, Literal

from resilience.audit.schema import to_row
from resilience.breaker.events import BreakerState, BreakerTransition, TransitionReason
from resilience.types import PROVIDER_WIDE

SIGNATURE_HEADER = "x-resilience-signature"
TIMESTAMP_HEADER = "x-resilience-timestamp"
DEFAULT_TOLERANCE_S = 300.0
"""How old a signed timestamp `verify_signature` accepts by default (and how far ahead)."""

WebhookFormat = Literal["slack", "json"]
FORMATS: tuple[WebhookFormat, ...] = ("slack", "json")


class AlertKind(enum.StrEnum):
    OPENED = "opened"
    CLOSED = "closed"
    FORCED_OPEN = "forced_open"


ALL_KINDS: frozenset[AlertKind] = frozenset(AlertKind)


def alert_kind(event: BreakerTransition) -> AlertKind | None:
    """The alert a transition raises, or None for one that raises none (module docstring)."""
    if event.to_state is BreakerState.FORCED_OPEN:
        return AlertKind.FORCED_OPEN
    if event.to_state is BreakerState.OPEN:
        return AlertKind.OPENED if event.from_state is BreakerState.CLOSED else None
    if event.to_state is BreakerState.CLOSED:
        return None if event.reason is TransitionReason.PROCESS_RESTART else AlertKind.CLOSED
    return None


@dataclass(frozen=True, slots=True, kw_only=True)
class Webhook:
    """One receiver: where to post, in which format, and which alerts it wants.

    `url` and `secret` are secrets (a Slack URL is its own credential) and stay out of the
    repr. A `json` webhook needs a `secret`; a `slack` one is not signed (Slack ignores it).
    """

    name: str
    url: str = field(repr=False)
    format: WebhookFormat = "json"
    secret: bytes | None = field(default=None, repr=False)
    events: frozenset[AlertKind] = ALL_KINDS

    def __post_init__(self) -> None:
        if not self.url.startswith(("http://", "https://")):
            raise ValueError("url: expected an http:// or https:// URL")
        if self.format not in FORMATS:
            raise ValueError(f"format: expected one of {', '.join(FORMATS)}, got {self.format!r}")
        if self.format == "json" and not self.secret:
            raise ValueError("secret: a json webhook is signed; it needs a secret")
        if not self.events or not set(self.events) <= ALL_KINDS:
            raise ValueError(f"events: expected some of {', '.join(sorted(ALL_KINDS))}")


def json_payload(event: BreakerTransition, kind: AlertKind, *, suppressed: int = 0) -> bytes:
    """The generic payload: the alert, its scope, and the audit row of the transition
    (`id` is the transition's: a receiver dedupes redelivered alerts by it)."""
    row = to_row(event)
    body: dict[str, Any] = {
        "type": f"breaker.{kind}",
        "id": row["id"],
        "alert": str(kind),
        "scope": "provider" if event.tenant_id == PROVIDER_WIDE else "tenant",
        "summary": summary(event, kind),
        "suppressed": suppressed,
        "transition": row,
    }
    return _dumps(body)


def slack_payload(event: BreakerTransition, kind: AlertKind, *, suppressed: int = 0) -> bytes:
    """Slack's incoming-webhook shape: `text` (notifications, other chat tools) and the
    same as one mrkdwn section, with the details as context."""
    text = _slack_escape(summary(event, kind))
    details = [f"reason `{event.reason}`", f"at {event.occurred_at.isoformat()}"]
    if event.actor:
        details.append(f"by {_slack_escape(event.actor)}")
    if suppressed:
        details.append(f"{suppressed} similar transitions suppressed")
    details.append(f"id `{event.id}`")
    body = {
        "text": text,
        "blocks": [
            {"type": "section", "text": {"type": "mrkdwn", "text": text}},
            {"type": "context", "elements": [{"type": "mrkdwn", "text": " · ".join(details)}]},
        ],
    }
    return _dumps(body)


def summary(event: BreakerTransition, kind: AlertKind) -> str:
    """One line a person reads first: what, where, why."""
    if event.tenant_id == PROVIDER_WIDE:
        where = f"provider {event.provider} (all tenants)"
    else:
        where = f"tenant {event.tenant_id} on {event.provider}"
    if kind is AlertKind.OPENED:
        why = f"{event.reason}, {event.failures} failures"
        if event.error_kind is not None:
            why += f", {event.error_kind}"
        if event.cooldown_s is not None:
            why += f"; cooldown {event.cooldown_s:g} s"
        return f"Breaker opened: {where} ({why})"
    if kind is AlertKind.FORCED_OPEN:
        return f"Breaker forced open: {where} (by {event.actor or 'an admin'})"
    if event.reason is TransitionReason.ADMIN_RESET:
        how = f"reset by {event.actor or 'an admin'}"
    else:
        how = str(event.reason)
    return f"Breaker closed: {where} ({how})"


def sign(secret: bytes, timestamp: int, body: bytes) -> str:
    """The signature header's value: `sha256=` and the HMAC of `"<timestamp>.<body>"`."""
    digest = hmac.new(secret, str(timestamp).encode() + b"." + body, hashlib.sha256)
    return "sha256=" + digest.hexdigest()


def signed_headers(secret: bytes, body: bytes, *, now: float) -> dict[str, str]:
    """The headers a json webhook post carries, signed at `now` (epoch seconds)."""
    timestamp = int(now)
    return {
        "content-type": "application/json",
        TIMESTAMP_HEADER: str(timestamp),
        SIGNATURE_HEADER: sign(secret, timestamp, body),
    }


def verify_signature(
    secret: bytes,
    body: bytes,
    timestamp: str,
    signature: str,
    *,
    now: float | None = None,
    tolerance_s: float = DEFAULT_TOLERANCE_S,
) -> bool:
    """A receiver's check: the signature matches the raw body and timestamp (compared in
    constant time), and the timestamp is within `tolerance_s` of `now`."""
    try:
        stamp = int(timestamp)
    except ValueError:
        return False
    current = time.time() if now is None else now
    if abs(current - stamp) > tolerance_s:
        return False
    return hmac.compare_digest(sign(secret, stamp, body), signature)


def events_named(names: Collection[str]) -> frozenset[AlertKind]:
    """`AlertKind`s from their names; a `ValueError` names an unknown one."""
    kinds = set()
    for name in names:
        try:
            kinds.add(AlertKind(name))
        except ValueError:
            known = ", ".join(sorted(ALL_KINDS))
            raise ValueError(f"unknown alert {name!r} (expected some of {known})") from None
    return frozenset(kinds)


def _dumps(body: dict[str, Any]) -> bytes:
    return json.dumps(body, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode()


def _slack_escape(text: str) -> str:
    """Slack's three control characters, so a note cannot ping `<!channel>`."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
