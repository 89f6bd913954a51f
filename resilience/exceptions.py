"""The exceptions this package raises. Vendor exceptions never escape un-translated.

    ResilienceError               tenant, provider, attempt (None where they do not apply)
    ├── NoTenantError             current_tenant() outside a request or tenant_scope()
    ├── CircuitOpenError          the breaker refused the call; .retry_after_s says when
    ├── ProviderError             a classified provider failure: .kind, .status_code,
    │                             .retry_after_s, .sent (False: the request never left,
    │                             the caller's bad_request); __cause__ is the SDK's exception
    ├── StreamTruncatedError      a stream ended cleanly but without its end marker
    │                             (`message_stop` / `[DONE]`): raised by adapters, classified
    │                             invalid_response (stream_interrupted once output began)
    ├── UnknownRouteError         the route name is neither a route nor `provider:model`
    ├── InvalidRequestError       the caller's request cannot be sent as it is (a model
    │                             name no provider could have, a value JSON cannot carry);
    │                             .field names the place; nothing was called or created
    └── AllTargetsFailed          every target of the route failed or was skipped; .outcomes
                                  per target, .retry_after_s = the soonest breaker reopening

They are defined in `resilience.errors`, beside the taxonomy their `kind` comes from,
so that module imports nothing else of the package; this module names them for callers.
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
