"""Which transitions alert, and a webhook that cannot work refused when it is built."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from resilience.audit.alert_payloads import AlertKind, Webhook, alert_kind, slack_payload
from resilience.audit.alerts import AlertSink
from resilience.breaker.events import BreakerState, BreakerTransition, TransitionReason

S, R = BreakerState, TransitionReason


def transition(
    from_state: BreakerState, to_state: BreakerState, reason: TransitionReason, **extra: str
) -> BreakerTransition:
    return BreakerTransition(
        tenant_id="acme",
        provider="p",
        from_state=from_state,
        to_state=to_state,
        reason=reason,
        occurred_at=datetime(2026, 1, 1, tzinfo=UTC),
        failures=3,
        **extra,  # type: ignore[arg-type]
    )


@pytest.mark.parametrize(
    ("from_state", "to_state", "reason", "kind"),
    [
        (S.CLOSED, S.OPEN, R.THRESHOLD, AlertKind.OPENED),
        (S.CLOSED, S.OPEN, R.RETRY_AFTER, AlertKind.OPENED),
        (S.CLOSED, S.OPEN, R.PROVIDER_WIDE, AlertKind.OPENED),
        (S.OPEN, S.HALF_OPEN, R.COOLDOWN_ELAPSED, None),
        (S.HALF_OPEN, S.OPEN, R.PROBE_FAILED, None),
        (S.HALF_OPEN, S.CLOSED, R.PROBE_SUCCEEDED, AlertKind.CLOSED),
        (S.OPEN, S.CLOSED, R.ADMIN_RESET, AlertKind.CLOSED),
        (S.FORCED_OPEN, S.CLOSED, R.ADMIN_RESET, AlertKind.CLOSED),
        (S.OPEN, S.CLOSED, R.PROCESS_RESTART, None),
        (S.CLOSED, S.FORCED_OPEN, R.ADMIN_OPEN, AlertKind.FORCED_OPEN),
        (S.OPEN, S.FORCED_OPEN, R.ADMIN_OPEN, AlertKind.FORCED_OPEN),
    ],
)
def test_which_transitions_alert(
    from_state: BreakerState, to_state: BreakerState, reason: TransitionReason, kind: AlertKind
) -> None:
    assert alert_kind(transition(from_state, to_state, reason)) is kind


def test_slack_text_cannot_ping_a_channel() -> None:
    event = transition(S.CLOSED, S.FORCED_OPEN, R.ADMIN_OPEN, actor="<!channel> & co")
    body = slack_payload(event, AlertKind.FORCED_OPEN).decode()
    assert "<!channel>" not in body and "&lt;!channel&gt; &amp; co" in body


@pytest.mark.parametrize(
    ("settings", "problem"),
    [
        ({"url": "ftp://x", "secret": b"s"}, "url:"),
        ({"url": "https://x"}, "secret:"),
        ({"url": "https://x", "format": "teams"}, "format:"),
        ({"url": "https://x", "format": "slack", "events": frozenset()}, "events:"),
    ],
)
def test_a_webhook_that_cannot_work_is_refused(settings: dict[str, object], problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        Webhook(name="w", **settings)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "settings",
    [{"dedupe_s": -1}, {"queue_size": 0}, {"tick_s": 0}, {"retry_base_s": 2, "retry_max_s": 1}],
)
def test_sink_settings_are_checked(settings: dict[str, float]) -> None:
    with pytest.raises(ValueError, match="expected"):
        AlertSink(Webhook(name="w", url="https://x", format="slack"), **settings)  # type: ignore[arg-type]
