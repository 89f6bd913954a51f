"""`classify()` is the one place that maps vendor exceptions to a kind:

* CancelledError, KeyboardInterrupt, SystemExit ... cancelled (even once a stream began)
* resilience ProviderError .......................... its own .kind
* resilience StreamTruncatedError ................... invalid_response
* anthropic / openai APIError
  x APIStatusError, by .status_code
    + 400 ..... context_length: openai code context_length_exceeded, anthropic
                invalid_request_error "prompt is too long..." (text: no code exists);
                content_filter: code content_policy_violation / content_filter;
                otherwise bad_request
    + 401, 402 auth; 403 auth (content_filter by code, as for 400)
    + 404, 413, 422, other 4xx bad_request; 408 timeout; 409 server_error
    + 429 ..... rate_limited with Retry-After (auth when the code says billing:
                insufficient_quota, billing_error)
    + 503, 529 overloaded with Retry-After; 500, 502, 504, other 5xx server_error
    + 200 ..... an anthropic `event: error` mid-stream: by .error_code then .type
  x APIError without a status (openai mid-stream `data: {"error": ...}`): by
    .code then .type; a numeric code (vLLM style) is read as a status
  x APITimeoutError timeout; APIConnectionError network (timeout if caused by one)
  x APIResponseValidationError invalid_response
* openai ContentFilterFinishReasonError content_filter; LengthFinishReasonError
  bad_request; anthropic CredentialsError, openai SubjectTokenProviderError auth;
  any other AnthropicError / OpenAIError server_error
* httpx2 / httpx (raw: anthropic lets mid-stream transport errors through)
  x TimeoutException timeout; other TransportError network
  x DecodingError invalid_response; HTTPStatusError by status; other HTTPError server_error
* anyio EndOfStream, BrokenResourceError (raw from httpx2 on TLS) network
* TimeoutError timeout; other OSError (ConnectionError, ssl.SSLError, ...) network
* json.JSONDecodeError, pydantic ValidationError invalid_response
* anything else: its __cause__ / __context__ chain is searched for one of the
  above; failing that, invalid_response (see `classify()` for why)

With `sent=False` (the request never reached the transport: the SDK could not encode
it, our own code refused it) an unknown exception, or one that could only be about an
answer (invalid_response), is the caller's bad_request with code `not_sent`: nothing
reached the provider, so nothing may count against it.

With `stream_started=True` every kind but cancelled becomes stream_interrupted,
and `Classification.underlying` keeps what it would have been.
"""

from __future__ import annotations

import email.utils
import json
import math
import re
import sys
import time
from collections.abc import Iterator, Mapping
from dataclasses import replace
from datetime import UTC
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import anthropic
    import httpx2
    import openai

    from resilience.types import Clock


from resilience.errors import (
    NOT_SENT,
    Classification,
    ErrorKind,
    ProviderError,
    ResponseTooLarge,
    StreamTruncatedError,
)


def classify(
    exc: BaseException,
    *,
    stream_started: bool = False,
    sent: bool = True,
    now: Clock = time.time,
) -> Classification:
    """Map an exception raised by a provider call to an `ErrorKind`, from typed fields.

    Args:
        exc: what the SDK, the transport or our adapter raised.
        stream_started: output already reached the caller, so the call can be
            neither retried nor moved to another target.
        sent: False when the request is known never to have reached the transport
            (`resilience.providers.sending`); True when it did or nobody knows.
        now: the wall clock, to turn an HTTP-date `Retry-After` into seconds.

    Exceptions this module does not know (a `ValueError`, `KeyError`... from an
    adapter) are first traced through `__cause__` / `__context__` to a known
    one. Failing that they are classified `invalid_response`, never raised and
    never request-scoped: classify() only sees exceptions from calling a
    provider and reading its answer, where an unknown one most often means an
    answer of a shape we did not expect (OpenAI-compatible servers vary). So the
    call is retried and may fall back, and the breaker bounds the cost when the
    fault persists; a request-scoped kind would blame the caller with a 4xx, and
    raising here would leave the breaker's permit without a verdict. The message
    starts with "unclassified" so these stay easy to find in logs and audits.
    That reasoning holds only for a request that was sent: one that never left is
    the caller's (see the module docstring), and says so with code `not_sent`.
    """
    found = _classify(exc, now)
    if not sent and not stream_started:
        return _not_sent(exc, found)
    if stream_started and found.kind not in (ErrorKind.CANCELLED, ErrorKind.STREAM_INTERRUPTED):
        return replace(found, kind=ErrorKind.STREAM_INTERRUPTED, underlying=found.kind)
    return found


def parse_retry_after(
    headers: Mapping[str, str] | httpx2.Headers, *, now: Clock = time.time
) -> float | None:
    """Seconds to wait from response headers, as both SDKs read them; None if absent or garbage.

    Order: `retry-after-ms` (milliseconds), then `retry-after` as seconds (a
    float is accepted), then as an HTTP date relative to `now()` (a wall clock).
    Header names are case-insensitive; a negative wait or a past date is 0.0.
    """
    values = {name.lower(): value for name, value in headers.items()}
    millis = _number(values.get("retry-after-ms"))
    if millis is not None:
        return millis / 1000
    raw = values.get("retry-after")
    if raw is None:
        return None
    seconds = _number(raw)
    if seconds is not None:
        return seconds
    try:
        when = email.utils.parsedate_to_datetime(raw.strip())
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)  # "-0000" means UTC with no zone information
        return max(0.0, when.timestamp() - now())
    except (TypeError, ValueError, IndexError, OverflowError):
        return None


_NUMBER = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)")


def _number(raw: str | None) -> float | None:
    """A plain decimal clamped at 0; not `1e3`, `inf`, `nan` or `1_000`, which float() takes."""
    if raw is None or not _NUMBER.fullmatch(raw.strip()):
        return None
    value = float(raw)
    return max(0.0, value) if math.isfinite(value) else None


_LABEL_KINDS: Mapping[str, ErrorKind] = MappingProxyType(
    {
        # anthropic error.type (also the type of a mid-stream `event: error`)
        "invalid_request_error": ErrorKind.BAD_REQUEST,
        "authentication_error": ErrorKind.AUTH,
        "billing_error": ErrorKind.AUTH,
        "permission_error": ErrorKind.AUTH,
        "not_found_error": ErrorKind.BAD_REQUEST,
        "request_too_large": ErrorKind.BAD_REQUEST,
        "rate_limit_error": ErrorKind.RATE_LIMITED,
        "timeout_error": ErrorKind.TIMEOUT,
        "api_error": ErrorKind.SERVER_ERROR,
        "overloaded_error": ErrorKind.OVERLOADED,
        "conflict_error": ErrorKind.SERVER_ERROR,
        # openai error.type / error.code
        "server_error": ErrorKind.SERVER_ERROR,
        "rate_limit_exceeded": ErrorKind.RATE_LIMITED,
        "insufficient_quota": ErrorKind.AUTH,
        "invalid_api_key": ErrorKind.AUTH,
        "model_not_found": ErrorKind.BAD_REQUEST,
        "context_length_exceeded": ErrorKind.CONTEXT_LENGTH,
        "content_policy_violation": ErrorKind.CONTENT_FILTER,
        "content_filter": ErrorKind.CONTENT_FILTER,
    }
)
"""Provider error codes and types this module knows. Where there is an HTTP error status it
decides, and a label only refines it (`_status_kind`); an unknown label mid-stream is a
server_error."""

_PROMPT_TOO_LONG = "prompt is too long"
_RETRY_AFTER_KINDS = (ErrorKind.RATE_LIMITED, ErrorKind.OVERLOADED)
_SECRET_HEADERS = ("authorization", "proxy-authorization", "x-api-key", "api-key", "cookie")
_BEARER = re.compile(r"(?i)\b(bearer\s+)[^\s,;'\"]+")
_UNPRINTABLE = re.compile("[\x00-\x08\x0e-\x1f\x7f-\x9f\ud800-\udfff]")
_KEY_LIKE = re.compile(r"\bsk-[A-Za-z0-9_*\-]{6,}")
_MESSAGE_LIMIT = 240


def _classify(exc: BaseException, now: Clock) -> Classification:
    chain = list(_chain(exc))
    for link in chain:  # before the SDK's wrapper (a connection error) is read
        if isinstance(link, ResponseTooLarge):
            return Classification(ErrorKind.INVALID_RESPONSE, message=str(link))
    secrets = _secrets(chain)
    for link in chain:
        found = _known(link, now, secrets)
        if found is not None:
            return found
    return Classification(
        ErrorKind.INVALID_RESPONSE, message=_safe(f"unclassified {_describe(exc)}", secrets)
    )


def _not_sent(exc: BaseException, found: Classification) -> Classification:
    """A failure before the request left: unknown or answer-shaped kinds become the caller's."""
    if found.kind is not ErrorKind.INVALID_RESPONSE or isinstance(exc, ProviderError):
        return replace(found, sent=False)
    said = found.message.removeprefix("unclassified ")
    return Classification(
        ErrorKind.BAD_REQUEST,
        code=NOT_SENT,
        message=_safe(f"request not sent: {said}", []),
        sent=False,
    )


def _chain(exc: BaseException) -> Iterator[BaseException]:
    """`exc`, then what caused it: `__cause__`, else an unsuppressed `__context__`."""
    seen: set[int] = set()
    link: BaseException | None = exc
    while link is not None and id(link) not in seen and len(seen) < 16:
        seen.add(id(link))
        yield link
        link = link.__cause__ or (None if link.__suppress_context__ else link.__context__)


def _known(exc: BaseException, now: Clock, secrets: list[str]) -> Classification | None:
    """Classify one exception by its class and typed fields; None when it is not ours to know."""
    if not isinstance(exc, Exception):  # CancelledError, KeyboardInterrupt, SystemExit
        return Classification(ErrorKind.CANCELLED, message=_safe(_describe(exc), secrets))
    if isinstance(exc, ProviderError):
        underlying = None
        if exc.kind is ErrorKind.STREAM_INTERRUPTED and exc.__cause__ is not None:
            inner = _classify(exc.__cause__, now)
            underlying = inner.underlying or inner.kind
        return Classification(
            exc.kind,
            status_code=exc.status_code,
            retry_after_s=exc.retry_after_s,
            code=exc.code,
            message=_safe(exc.message, secrets),
            underlying=underlying,
        )
    if isinstance(exc, StreamTruncatedError):
        return Classification(ErrorKind.INVALID_RESPONSE, message=_safe(exc.message, secrets))
    vendor = _vendor(exc, now, secrets)
    if vendor is not None:
        return vendor
    transport = _transport(exc, now, secrets)
    if transport is not None:
        return transport
    anyio: Any = sys.modules.get("anyio")
    if anyio is not None and isinstance(exc, (anyio.EndOfStream, anyio.BrokenResourceError)):
        # httpx2 may let these through raw (its issue #854): openai maps them to connection errors
        return Classification(ErrorKind.NETWORK, message=_safe(_describe(exc), secrets))
    if isinstance(exc, TimeoutError):  # asyncio.TimeoutError is TimeoutError since 3.11
        return Classification(ErrorKind.TIMEOUT, message=_safe(_describe(exc), secrets))
    if isinstance(exc, OSError):  # ConnectionError, refused, reset, DNS, TLS
        return Classification(ErrorKind.NETWORK, message=_safe(_describe(exc), secrets))
    pydantic_core = sys.modules.get("pydantic_core")
    if isinstance(exc, json.JSONDecodeError) or (
        pydantic_core is not None and isinstance(exc, pydantic_core.ValidationError)
    ):
        return Classification(ErrorKind.INVALID_RESPONSE, message=_safe(_describe(exc), secrets))
    return None


def _vendor(exc: Exception, now: Clock, secrets: list[str]) -> Classification | None:
    """anthropic and openai exceptions.

    The SDKs are looked up, not imported: an exception of theirs can only exist
    once they are loaded, and `import resilience` stays free of their import time.
    """
    ant: Any = sys.modules.get("anthropic")
    oai: Any = sys.modules.get("openai")
    facts: tuple[int | None, str | None, str | None, str | None] | None = None
    headers: httpx2.Headers | None = None
    if ant is not None:
        ant_status: type[anthropic.APIStatusError] = ant.APIStatusError
        if isinstance(exc, ant_status):
            facts = (
                exc.status_code,
                _text(exc.type),
                _text(exc.error_code),
                _text(exc.api_message),
            )
            headers = exc.response.headers
        elif _is(exc, ant, "CredentialsError"):
            return Classification(ErrorKind.AUTH, message=_safe(_describe(exc), secrets))
    if oai is not None:
        oai_error: type[openai.APIError] = oai.APIError
        oai_status: type[openai.APIStatusError] = oai.APIStatusError
        if isinstance(exc, oai_error) and not isinstance(exc, _connection_or_validation(oai)):
            status = exc.status_code if isinstance(exc, oai_status) else None
            body = exc.body if isinstance(exc.body, Mapping) else {}
            facts = (status, _text(exc.type), _text(exc.code), _text(body.get("message")))
            headers = exc.response.headers if isinstance(exc, oai_status) else None
        elif _is(exc, oai, "ContentFilterFinishReasonError"):
            message = "openai finish_reason content_filter: the completion was refused"
            return Classification(ErrorKind.CONTENT_FILTER, code="content_filter", message=message)
        elif _is(exc, oai, "LengthFinishReasonError"):
            message = "openai finish_reason length: max_tokens cut the completion short"
            return Classification(ErrorKind.BAD_REQUEST, code="length", message=message)
        elif _is(exc, oai, "SubjectTokenProviderError"):
            return Classification(ErrorKind.AUTH, message=_safe(_describe(exc), secrets))
    if facts is not None:
        return _api_fault(exc, *facts, headers=headers, now=now, secrets=secrets)
    for sdk, base_name in ((ant, "AnthropicError"), (oai, "OpenAIError")):
        if sdk is None:
            continue
        if isinstance(exc, sdk.APIResponseValidationError):
            status = exc.status_code if exc.status_code >= 400 else None
            return Classification(
                ErrorKind.INVALID_RESPONSE,
                status_code=status,
                message=_safe(_describe(exc), secrets),
            )
        if isinstance(exc, sdk.APITimeoutError):
            return Classification(ErrorKind.TIMEOUT, message=_safe(_describe(exc), secrets))
        if isinstance(exc, sdk.APIConnectionError):
            # The SDKs wrap whatever the transport raised; a timeout may hide beneath.
            timed_out = any(_is_timeout(link) for link in _chain(exc))
            kind = ErrorKind.TIMEOUT if timed_out else ErrorKind.NETWORK
            cause = exc.__cause__
            detail = _describe(cause) if cause is not None else _describe(exc)
            return Classification(kind, message=_safe(f"{_describe(exc)} ({detail})", secrets))
        if isinstance(exc, getattr(sdk, base_name)):  # credentials, websockets, ...
            return Classification(ErrorKind.SERVER_ERROR, message=_safe(_describe(exc), secrets))
    return None


def _connection_or_validation(oai: Any) -> tuple[type[Exception], ...]:
    return (oai.APIConnectionError, oai.APIResponseValidationError)


def _is(exc: Exception, sdk: Any, name: str) -> bool:
    """isinstance() against an SDK class that a later SDK version may drop."""
    cls = getattr(sdk, name, None)
    return isinstance(cls, type) and isinstance(exc, cls)


def _api_fault(
    exc: Exception,
    status: int | None,
    type_: str | None,
    code: str | None,
    api_message: str | None,
    *,
    headers: httpx2.Headers | None,
    now: Clock,
    secrets: list[str],
) -> Classification:
    """An error the provider answered with: an error status, or an error event mid-stream."""
    if status is not None and status >= 400:
        kind = _status_kind(status, type_, code, api_message)
        where = f"HTTP {status}"
    else:
        status = None
        if code is not None and code.isdigit() and 400 <= int(code) <= 599:
            kind = _status_kind(int(code), type_, None, api_message)
        else:
            kind = _label_kind(type_, code, api_message) or ErrorKind.SERVER_ERROR
        where = "stream error"
    label = next((x for x in (code, type_) if x is not None and not x.isdigit()), None)
    retry_after = None
    if kind in _RETRY_AFTER_KINDS and headers is not None:
        retry_after = parse_retry_after(headers, now=now)
    vendor = type(exc).__module__.partition(".")[0]
    said = api_message if api_message is not None else str(exc)
    text = f"{vendor} {where}" + (f" {label}" if label else "") + f": {said}"
    return Classification(
        kind,
        status_code=status,
        retry_after_s=retry_after,
        code=label,
        message=_safe(text, secrets),
    )


def _status_kind(
    status: int, type_: str | None, code: str | None, api_message: str | None
) -> ErrorKind:
    """The HTTP status decides; the provider's label only refines it where the status cannot."""
    named = _label_kind(type_, code, api_message)
    if status in (400, 403) and named is ErrorKind.CONTENT_FILTER:
        return named
    if status == 400:
        context = named is ErrorKind.CONTEXT_LENGTH
        return ErrorKind.CONTEXT_LENGTH if context else ErrorKind.BAD_REQUEST
    if status in (401, 402, 403):
        return ErrorKind.AUTH
    if status == 408:
        return ErrorKind.TIMEOUT
    if status == 409:
        return ErrorKind.SERVER_ERROR  # both SDKs retry a conflict: it passes
    if status == 429:
        # out of credit is not a rate: waiting out Retry-After will not help
        return ErrorKind.AUTH if named is ErrorKind.AUTH else ErrorKind.RATE_LIMITED
    if status in (503, 529):
        return ErrorKind.OVERLOADED
    if status >= 500:
        return ErrorKind.SERVER_ERROR
    return ErrorKind.BAD_REQUEST


def _label_kind(type_: str | None, code: str | None, api_message: str | None) -> ErrorKind | None:
    """The kind the provider's code (first) or type names, if this module knows it."""
    labels = [x for x in (code, type_) if x is not None and x in _LABEL_KINDS]
    kind = _LABEL_KINDS[labels[0]] if labels else None
    if (
        kind is ErrorKind.BAD_REQUEST
        and type_ == "invalid_request_error"
        and api_message is not None
        and api_message.lstrip().lower().startswith(_PROMPT_TOO_LONG)
    ):
        return ErrorKind.CONTEXT_LENGTH  # anthropic has no code for it: its text is the signal
    return kind


def _transport(exc: Exception, now: Clock, secrets: list[str]) -> Classification | None:
    """Raw httpx2 and httpx exceptions (httpx only as a dev dependency: looked up, not imported)."""
    for lib in (sys.modules.get("httpx2"), sys.modules.get("httpx")):
        if lib is None:
            continue
        message = _safe(_describe(exc), secrets)
        if isinstance(exc, lib.TimeoutException):
            return Classification(ErrorKind.TIMEOUT, message=message)
        if isinstance(exc, lib.TransportError):
            return Classification(ErrorKind.NETWORK, message=message)
        if isinstance(exc, lib.DecodingError):
            return Classification(ErrorKind.INVALID_RESPONSE, message=message)
        if isinstance(exc, lib.HTTPStatusError):
            status: int = exc.response.status_code
            kind = _status_kind(status, None, None, None)
            retry_after = None
            if kind in _RETRY_AFTER_KINDS:
                retry_after = parse_retry_after(exc.response.headers, now=now)
            return Classification(
                kind, status_code=status, retry_after_s=retry_after, message=message
            )
        if isinstance(exc, lib.HTTPError):  # TooManyRedirects and the like
            return Classification(ErrorKind.SERVER_ERROR, message=message)
    return None


def _is_timeout(exc: BaseException) -> bool:
    if isinstance(exc, TimeoutError):
        return True
    libs = (sys.modules.get("httpx2"), sys.modules.get("httpx"))
    return any(lib is not None and isinstance(exc, lib.TimeoutException) for lib in libs)


def _text(value: object) -> str | None:
    if value is None:
        return None
    return value if isinstance(value, str) else str(value)


def _describe(exc: BaseException) -> str:
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _secrets(chain: list[BaseException]) -> list[str]:
    """Credential values on the requests behind `chain`, to be kept out of messages."""
    found: list[str] = []
    for link in chain:
        try:
            request = getattr(link, "request", None)
        except RuntimeError:  # httpx: `.request` was never set
            continue
        headers = getattr(request, "headers", None)
        if headers is None:
            continue
        for name in _SECRET_HEADERS:
            value = headers.get(name)
            if isinstance(value, str):
                found.extend([value, *value.split()[-1:]])  # the token without "Bearer"
    return [s for s in found if len(s) >= 4]


def _safe(text: str, secrets: list[str]) -> str:
    """One short line with credentials redacted: echoed keys, bearer tokens, `sk-` keys."""
    for secret in sorted(secrets, key=len, reverse=True):
        text = text.replace(secret, "[redacted]")
    text = _BEARER.sub(r"\1[redacted]", text)
    text = _KEY_LIKE.sub("[redacted]", text)
    # a caller's lone surrogate or NUL in an exception's text must not break the JSON,
    # the log line or the audit row that carries the message
    text = _UNPRINTABLE.sub(lambda m: f"\\u{ord(m.group()):04x}", text)
    text = " ".join(text.split())
    return text if len(text) <= _MESSAGE_LIMIT else text[: _MESSAGE_LIMIT - 1] + "…"
