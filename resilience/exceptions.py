"""The exceptions this package raises, under the name callers have always imported them by.

They are defined in `resilience.errors` (the tree is in its docstring), beside the
taxonomy their `kind` comes from, so that module imports nothing else of the package.
"""

from resilience.errors import (
    AllTargetsFailed,
    CircuitOpenError,
    InvalidRequestError,
    NoTenantError,
    ProviderError,
    ResilienceError,
    StreamTruncatedError,
    UnknownRouteError,
)

__all__ = [
    "AllTargetsFailed",
    "CircuitOpenError",
    "InvalidRequestError",
    "NoTenantError",
    "ProviderError",
    "ResilienceError",
    "StreamTruncatedError",
    "UnknownRouteError",
]
