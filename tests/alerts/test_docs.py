"""docs/alerts.md: its signature check accepts what the sink signs, and nothing else."""

from __future__ import annotations

import time
from typing import Any

from resilience.audit.alert_payloads import SIGNATURE_HEADER, TIMESTAMP_HEADER, signed_headers
from tests.alerts.doc import DOC, python_blocks


def test_the_documented_verify_accepts_a_signed_post_and_refuses_the_rest() -> None:
    (block,) = [b for b in python_blocks() if "def verify(" in b]
    namespace: dict[str, Any] = {}
    exec(compile(block, str(DOC), "exec"), namespace)
    verify = namespace["verify"]
    secret, body = b"s3cret", b'{"type":"breaker.opened","id":"x"}'
    headers = signed_headers(secret, body, now=time.time())
    stamp, signature = headers[TIMESTAMP_HEADER], headers[SIGNATURE_HEADER]
    assert verify(secret, body, stamp, signature)
    assert not verify(b"other", body, stamp, signature)
    assert not verify(secret, body + b" ", stamp, signature)
    assert not verify(secret, body, str(int(stamp) + 1), signature)  # the time is signed
    old = signed_headers(secret, body, now=time.time() - 3600)
    assert not verify(secret, body, old[TIMESTAMP_HEADER], old[SIGNATURE_HEADER])
    assert not verify(secret, body, "soon", signature)


def test_the_embedding_example_builds_a_sink(monkeypatch: Any) -> None:
    (block,) = [b for b in python_blocks() if "AlertSink(" in b]
    monkeypatch.setenv("RESILIENCE_ALERTS_SECRET", "s3cret")
    namespace: dict[str, Any] = {}
    exec(compile(block, str(DOC), "exec"), namespace)
    assert namespace["alerts"].webhook.secret == b"s3cret"
