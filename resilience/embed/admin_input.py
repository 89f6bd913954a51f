"""What the admin API accepts, checked in full before anything acts.

Bodies are read with a bound on their size (the declared length first, then the bytes
actually received, so a chunked upload cannot grow memory either) and on their nesting;
text fields are printable and short; times must be representable in UTC. Every refusal
is a `BadInput` that names the field, never an exception that becomes a 500.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from typing import Any, NoReturn

from starlette.requests import ClientDisconnect, Request

MAX_BODY_BYTES = 65_536
MAX_DEPTH = 32
MAX_TEXT = 500
MAX_TIME_CHARS = 64
"""Far longer than any ISO 8601 time; bounds the work of parsing one."""

_UNPRINTABLE = re.compile("[\x00-\x1f\x7f-\x9f\ud800-\udfff]")
"""Control characters (C0, DEL, C1) and lone surrogates: not text a log or a page may show."""


class BadInput(ValueError):
    """A refused admin input: the status (400, 413) and the error code to answer with."""

    def __init__(self, message: str, *, status: int = 400, code: str = "invalid_body") -> None:
        super().__init__(message)
        self.status = status
        self.code = code


async def read_object(request: Request) -> dict[str, Any]:
    """The request body as a JSON object (empty body: `{}`), at most `MAX_BODY_BYTES` and
    `MAX_DEPTH` deep. NaN, Infinity and 1e999 parse (as non-finite floats) so that the
    field they are in refuses them by name."""
    declared = request.headers.get("content-length")
    if declared is not None:
        if not (declared.isascii() and declared.isdigit()):
            raise BadInput("content-length: not a number")
        if len(declared) > 12 or int(declared) > MAX_BODY_BYTES:  # int() of 5000 digits fails
            _too_large()
    chunks: list[bytes] = []
    size = 0
    try:
        async for chunk in request.stream():
            size += len(chunk)
            if size > MAX_BODY_BYTES:
                _too_large()
            chunks.append(chunk)
    except ClientDisconnect:
        raise BadInput("body: the client went away before sending all of it") from None
    raw = b"".join(chunks)
    if not raw.strip():
        return {}
    try:
        body = json.loads(raw)
    except RecursionError:
        raise BadInput(f"body: nested deeper than {MAX_DEPTH} levels") from None
    except ValueError as exc:
        reason = "not valid UTF-8" if isinstance(exc, UnicodeDecodeError) else "not valid JSON"
        raise BadInput(f"body: {reason}") from None
    if not isinstance(body, dict):
        raise BadInput("body: expected a JSON object")
    if _deeper_than(body, MAX_DEPTH):
        raise BadInput(f"body: nested deeper than {MAX_DEPTH} levels")
    return body


def only_fields(body: dict[str, Any], allowed: tuple[str, ...]) -> None:
    """Refuse a field this endpoint does not know (a typo must not be a silent default)."""
    for name in body:
        if name not in allowed:
            raise BadInput(f"body: unknown field {shown(name)}; expected {', '.join(allowed)}")


def text_field(body: dict[str, Any], name: str) -> str | None:
    """An optional free-text field: a string of printable text, at most `MAX_TEXT` long."""
    value = body.get(name)
    if value is None:
        return None
    code = f"invalid_{name}"
    if not isinstance(value, str):
        raise BadInput(f"{name}: expected a string", code=code)
    if len(value) > MAX_TEXT:
        raise BadInput(f"{name}: longer than {MAX_TEXT} characters", code=code)
    bad = _UNPRINTABLE.search(value)
    if bad is not None:
        char = ord(bad.group())
        what = "lone surrogate" if 0xD800 <= char <= 0xDFFF else "control character"
        raise BadInput(f"{name}: {what} U+{char:04X} at {bad.start()}", code=code)
    return value


def parse_time(value: str | None, name: str) -> datetime | None:
    """An ISO 8601 query time with a zone, as UTC; a 400 for one no datetime can hold in UTC
    (`0001-01-01T00:00:00+01:00` is before year 1 there)."""
    if value is None:
        return None
    if len(value) > MAX_TIME_CHARS:
        raise BadInput(f"{name}: expected an ISO 8601 time", code="invalid_query")
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise BadInput(f"{name}: expected an ISO 8601 time", code="invalid_query") from None
    if parsed.tzinfo is None:
        raise BadInput(f"{name}: include a time zone (e.g. Z or +00:00)", code="invalid_query")
    try:
        return parsed.astimezone(UTC)
    except (OverflowError, ValueError):
        raise BadInput(
            f"{name}: out of range (years 1 to 9999 in UTC)", code="invalid_query"
        ) from None


def _too_large() -> NoReturn:
    raise BadInput(f"body: larger than {MAX_BODY_BYTES} bytes", status=413, code="body_too_large")


def _deeper_than(value: Any, limit: int) -> bool:
    """Whether containers nest more than `limit` levels; iterative, stops at the first."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        children = item.values() if isinstance(item, dict) else item
        if depth > limit:
            return True
        stack.extend((c, depth + 1) for c in children if isinstance(c, dict | list))
    return False


def shown(name: str) -> str:
    """A client-chosen name in a message: short and ASCII (repr escapes surrogates)."""
    return ascii(name[:40] + ("..." if len(name) > 40 else ""))
