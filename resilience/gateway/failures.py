"""The gateway's error answers are the library's: `resilience.embed.failures`, one copy.

An application embedding the library answers with the same code
(`resilience.embed.exception_handlers`), so the two cannot drift apart. The names stay
importable here for code written against the gateway's module.
"""

from __future__ import annotations

from resilience.embed.failures import (
    BodyTooLarge,
    Failure,
    failure_of,
    own_concurrency_limit,
    own_rate_limit,
    render,
    retry_after_header,
)

__all__ = [
    "BodyTooLarge",
    "Failure",
    "failure_of",
    "own_concurrency_limit",
    "own_rate_limit",
    "render",
    "retry_after_header",
]
