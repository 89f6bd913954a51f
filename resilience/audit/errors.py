"""Whether a failed audit insert means "these rows are bad" or "the database is away".

The writer quarantines rows the database rejects and spools rows it could not
reach; mixing the two up either loses rows or lets one bad row hold every later
row back. A rejection is what PostgreSQL reports in SQLSTATE classes 22 (data
exception: a NUL or a lone surrogate in text, an invalid JSON escape, a value
too long) and 23 (integrity constraint), what SQLAlchemy calls DataError or
IntegrityError, and a value the driver could not even encode (UnicodeError,
TypeError, ValueError, OverflowError, as SQLite's driver raises them
unwrapped). Anything else (refused or dropped connections, timeouts, a server
shutting down, a lock, a missing table) is treated as unreachable: the rows
stay spooled and are retried, never dropped.
"""

from __future__ import annotations

from collections.abc import Iterator

from sqlalchemy import exc as sa

_REJECTING_CLASSES = ("22", "23")
_REJECTING_TYPES: tuple[type[BaseException], ...] = (
    sa.DataError,
    sa.IntegrityError,
    UnicodeError,
    TypeError,
    ValueError,
    OverflowError,
)
_UNREACHABLE_TYPES: tuple[type[BaseException], ...] = (
    OSError,  # refused, reset, timeouts (TimeoutError is one)
    sa.OperationalError,
    sa.InterfaceError,
    sa.DisconnectionError,
    sa.TimeoutError,
)


def rejects_rows(error: BaseException) -> bool:
    """True if the database (or its driver) refused these rows for what they hold."""
    for cause in _causes(error):
        state = _sqlstate(cause)
        if state is not None:
            return state[:2] in _REJECTING_CLASSES
        if isinstance(cause, _UNREACHABLE_TYPES):
            continue  # a wrapper class; a cause further down may say more
        if isinstance(cause, _REJECTING_TYPES):
            return True
    return False


def describe(error: BaseException) -> str:
    """`Type[SQLSTATE]: first line of the message`, for the log and the dead-letter file."""
    state = next((s for s in map(_sqlstate, _causes(error)) if s is not None), None)
    innermost = list(_causes(error))[-1]
    lines = str(innermost).strip().splitlines()
    first = repr(lines[0])[1:-1] if lines else ""  # a lone surrogate or NUL must not reach a log
    code = f"[{state}]" if state else ""
    return f"{type(innermost).__name__}{code}: {first}"


def _causes(error: BaseException) -> Iterator[BaseException]:
    """The error, then what it wraps (SQLAlchemy's `.orig`, then `__cause__`), outermost first."""
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        orig = getattr(current, "orig", None)
        current = orig if isinstance(orig, BaseException) else current.__cause__


def _sqlstate(error: BaseException) -> str | None:
    for name in ("sqlstate", "pgcode"):
        state = getattr(error, name, None)
        if isinstance(state, str) and len(state) == 5:
            return state
    return None
