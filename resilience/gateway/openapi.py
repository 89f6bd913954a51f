"""The gateway's OpenAPI document, served at `/openapi.json`.

Written out rather than generated: the endpoints speak other vendors' formats
whose schemas we only sketch (what we validate), and the admin API is ours.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from resilience.breaker.machine import MAX_DURATION_S

_ERROR = {
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {
            "type": "object",
            "required": ["message", "type", "param", "code"],
            "properties": {
                "message": {"type": "string"},
                "type": {"type": "string"},
                "code": {"type": ["string", "null"]},
                "param": {"type": ["string", "null"], "description": "the field at fault"},
            },
        }
    },
}
_ANTHROPIC_ERROR = {
    "type": "object",
    "required": ["type", "error"],
    "properties": {
        "type": {"const": "error"},
        "error": {
            "type": "object",
            "required": ["type", "message"],
            "properties": {
                "type": {
                    "enum": [
                        "invalid_request_error",
                        "authentication_error",
                        "permission_error",
                        "not_found_error",
                        "rate_limit_error",
                        "api_error",
                        "overloaded_error",
                    ]
                },
                "message": {"type": "string"},
            },
        },
        "request_id": {"type": ["string", "null"]},
    },
}
_EITHER_ERROR = {
    "oneOf": [_ERROR, _ANTHROPIC_ERROR],
    "description": "Anthropic's shape when the request carries anthropic-version, else OpenAI's",
}
_OPENAI_MODEL = {
    "type": "object",
    "required": ["id", "object", "created", "owned_by"],
    "properties": {
        "id": {"type": "string"},
        "object": {"const": "model"},
        "created": {"type": "integer"},
        "owned_by": {"type": "string"},
    },
}
_ANTHROPIC_MODEL = {
    "type": "object",
    "required": ["type", "id", "display_name", "created_at"],
    "properties": {
        "type": {"const": "model"},
        "id": {"type": "string"},
        "display_name": {"type": "string"},
        "created_at": {"type": "string", "format": "date-time"},
        "lifecycle": {"enum": ["active", "deprecated", "retired"]},
    },
}
_OPENAI_MODELS = {
    "type": "object",
    "required": ["object", "data"],
    "properties": {"object": {"const": "list"}, "data": {"type": "array", "items": _OPENAI_MODEL}},
}
_ANTHROPIC_MODELS = {
    "type": "object",
    "required": ["data", "has_more", "first_id", "last_id"],
    "properties": {
        "data": {"type": "array", "items": _ANTHROPIC_MODEL},
        "has_more": {"type": "boolean"},
        "first_id": {"type": ["string", "null"]},
        "last_id": {"type": ["string", "null"]},
    },
}
_ANTHROPIC_VERSION = {
    "name": "anthropic-version",
    "in": "header",
    "required": False,
    "schema": {"type": "string"},
    "description": "present (Anthropic's SDKs send it): answers and errors in Anthropic's shape",
}
_MESSAGE = {
    "type": "object",
    "required": ["role", "content"],
    "properties": {
        "role": {"type": "string"},
        "content": {"oneOf": [{"type": "string"}, {"type": "array", "items": {"type": "object"}}]},
    },
}
_CIRCUIT = {
    "type": "object",
    "required": ["tenant", "provider", "state", "failures", "opened_at", "retry_at"],
    "properties": {
        "tenant": {"type": "string"},
        "provider": {"type": "string"},
        "state": {"enum": ["closed", "open", "half_open", "forced_open"]},
        "failures": {"type": "integer"},
        "opened_at": {"type": ["string", "null"], "format": "date-time"},
        "retry_at": {"type": ["string", "null"], "format": "date-time"},
    },
}

_NUMBER_OR_NULL = {"type": ["number", "null"]}
_HEALTH = {
    "type": "object",
    "required": [
        "provider",
        "model",
        "in_flight",
        "calls",
        "errors",
        "error_rate",
        "ewma_ms",
        "p50_ms",
        "p99_ms",
        "calls_total",
        "errors_total",
        "rpm",
        "rate_limit_skips",
    ],
    "properties": {
        "provider": {"type": "string"},
        "model": {"type": "string"},
        "in_flight": {"type": "integer"},
        "calls": {"type": "integer"},
        "errors": {"type": "integer"},
        "error_rate": {"type": "number"},
        "ewma_ms": _NUMBER_OR_NULL,
        "p50_ms": _NUMBER_OR_NULL,
        "p99_ms": _NUMBER_OR_NULL,
        "calls_total": {"type": "integer"},
        "errors_total": {"type": "integer"},
        "rpm": {"type": "number"},
        "rate_limit_skips": {"type": "integer"},
    },
}


def _errors(*codes: int, schema: dict[str, Any] = _ERROR) -> dict[str, Any]:
    return {
        str(code): {"description": "error", "content": {"application/json": {"schema": schema}}}
        for code in codes
    }


def _json(schema: dict[str, Any], description: str = "ok") -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _dashboard_file(summary: str, media_type: str) -> dict[str, Any]:
    """A static file of the dashboard: public (it holds no data), like the page itself."""
    ok = {"description": summary, "content": {media_type: {"schema": {"type": "string"}}}}
    return {"get": {"summary": summary, "security": [], "responses": {"200": ok}}}


_MODEL_SECURITY: list[dict[str, list[str]]] = [{"gatewayKey": []}, {"tenantHeader": []}]


def _model_endpoint(
    summary: str, body: dict[str, Any], streams: bool, errors: dict[str, Any] = _ERROR
) -> dict[str, Any]:
    ok: dict[str, Any] = {
        "description": "the answer",
        "content": {"application/json": {"schema": {"type": "object"}}},
    }
    if streams:
        ok["content"]["text/event-stream"] = {"schema": {"type": "string"}}
    return {
        "post": {
            "summary": summary,
            "description": "429: the tenant's own rpm limit held every target back "
            "(Retry-After). 503: every target down (Retry-After). Answers given after the "
            "gateway's own retries carry x-should-retry: false unless [server] "
            "sdk_should_retry is true.",
            "security": _MODEL_SECURITY,
            "requestBody": {"required": True, "content": {"application/json": {"schema": body}}},
            "responses": {
                "200": ok,
                **_errors(400, 401, 404, 413, 429, 502, 503, schema=errors),
            },
        }
    }


def _model_list() -> dict[str, Any]:
    page = [
        _query("limit", {"type": "integer", "minimum": 1, "maximum": 1000}),
        _query("after_id", {"type": "string"}),
        _query("before_id", {"type": "string"}),
    ]
    return {
        "get": {
            "summary": "the routes and provider:model targets this tenant may use; "
            "limit, after_id and before_id page Anthropic's list",
            "security": _MODEL_SECURITY,
            "parameters": [_ANTHROPIC_VERSION, *page],
            "responses": {
                "200": _json({"oneOf": [_OPENAI_MODELS, _ANTHROPIC_MODELS]}),
                **_errors(400, 401, schema=_EITHER_ERROR),
            },
        }
    }


def _model_entry() -> dict[str, Any]:
    name = {
        "name": "model",
        "in": "path",
        "required": True,
        "schema": {"type": "string", "minLength": 1},
    }
    return {
        "get": {
            "summary": "one route or target this tenant may use",
            "security": _MODEL_SECURITY,
            "parameters": [name, _ANTHROPIC_VERSION],
            "responses": {
                "200": _json({"oneOf": [_OPENAI_MODEL, _ANTHROPIC_MODEL]}),
                **_errors(401, 404, schema=_EITHER_ERROR),
            },
        }
    }


_TENANT = {"type": "string", "pattern": "^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"}
_PROVIDER = {"type": "string", "pattern": "^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"}
_TENANT_OR_ALL = {"type": "string", "pattern": "^([*]|[A-Za-z0-9][A-Za-z0-9._-]{0,63})$"}
"""A tenant id, or `*` for the provider-wide breaker."""
_PAIR = [
    {"name": "tenant", "in": "path", "required": True, "schema": _TENANT_OR_ALL},
    {"name": "provider", "in": "path", "required": True, "schema": _PROVIDER},
]


def _query(name: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {"name": name, "in": "query", "required": False, "schema": schema}


_STATES = {"enum": ["closed", "open", "half_open", "forced_open"]}
_TIME = {"type": "string", "format": "date-time"}
_ADMIN: list[dict[str, list[str]]] = [{"adminToken": []}]


def document() -> dict[str, Any]:
    chat = {
        "type": "object",
        "required": ["model", "messages"],
        "properties": {
            "model": {
                "type": "string",
                "minLength": 1,
                "description": "a route name or provider:model",
            },
            "messages": {"type": "array", "items": _MESSAGE, "minItems": 1},
            "stream": {"type": "boolean"},
            "max_tokens": {"type": "integer", "minimum": 1},
            "temperature": {"type": "number"},
        },
    }
    messages = {
        **chat,
        "required": ["model", "messages", "max_tokens"],
    }
    embeddings = {
        "type": "object",
        "required": ["model", "input"],
        "properties": {
            "model": {"type": "string", "minLength": 1},
            "input": {
                "oneOf": [
                    {"type": "string"},
                    {"type": "array", "items": {"type": "string"}},
                    {"type": "array", "items": {"type": "integer"}},
                    {"type": "array", "items": {"type": "array", "items": {"type": "integer"}}},
                ]
            },
            "encoding_format": {"enum": ["float", "base64"]},
            "dimensions": {"type": "integer", "minimum": 1},
        },
    }
    count_tokens = {
        **chat,
        "required": ["model", "messages"],
    }
    reason = {
        "type": "string",
        "maxLength": 500,
        "pattern": "^[^\\u0000-\\u001f\\u007f-\\u009f]*$",
        "description": "a note for the audit trail: printable text (no control characters, "
        "no lone surrogates)",
    }
    reset = {
        "type": "object",
        "additionalProperties": False,
        "properties": {"reason": reason},
        "description": "at most 64 KiB and 32 levels deep; unknown fields are refused",
    }
    isolate = {
        **reset,
        "properties": {
            "reason": reason,
            "duration_s": {
                "type": ["number", "null"],
                "exclusiveMinimum": 0,
                "maximum": MAX_DURATION_S,
                "description": "seconds until the breaker lets a probe through, at most "
                "30 days; omit it or send null for no end: open until reset",
            },
        },
    }
    return {
        "openapi": "3.1.0",
        "info": {"title": "resilience gateway", "version": "0.1.0"},
        "components": {
            "securitySchemes": {
                "gatewayKey": {"type": "http", "scheme": "bearer"},
                "tenantHeader": {"type": "apiKey", "in": "header", "name": "x-tenant-id"},
                "adminToken": {"type": "http", "scheme": "bearer"},
            }
        },
        "paths": {
            "/v1/chat/completions": _model_endpoint(
                "OpenAI-compatible chat completions", chat, True
            ),
            "/v1/messages": _model_endpoint(
                "Anthropic-compatible messages", messages, True, _ANTHROPIC_ERROR
            ),
            "/v1/messages/count_tokens": _model_endpoint(
                "Anthropic-compatible token count (the route's Anthropic targets only)",
                count_tokens,
                False,
                _ANTHROPIC_ERROR,
            ),
            "/v1/embeddings": _model_endpoint("OpenAI-compatible embeddings", embeddings, False),
            "/v1/models": _model_list(),
            "/v1/models/{model}": _model_entry(),
            "/admin/circuits": {
                "get": {
                    "summary": "list breakers",
                    "security": _ADMIN,
                    "parameters": [
                        _query("tenant", _TENANT_OR_ALL),
                        _query("provider", _PROVIDER),
                        _query("state", _STATES),
                    ],
                    "responses": {
                        "200": _json(
                            {
                                "type": "object",
                                "properties": {"circuits": {"type": "array", "items": _CIRCUIT}},
                            }
                        ),
                        **_errors(400, 401, 403),
                    },
                }
            },
            "/admin/circuits/{tenant}/{provider}": {
                "get": {
                    "summary": "one breaker",
                    "security": _ADMIN,
                    "parameters": _PAIR,
                    "responses": {"200": _json(_CIRCUIT), **_errors(400, 401, 403, 404)},
                }
            },
            "/admin/circuits/{tenant}/{provider}/reset": {
                "post": {
                    "summary": "close a breaker",
                    "security": _ADMIN,
                    "parameters": _PAIR,
                    "requestBody": {"content": {"application/json": {"schema": reset}}},
                    "responses": {"200": _json(_CIRCUIT), **_errors(400, 401, 403, 404, 413)},
                }
            },
            "/admin/circuits/{tenant}/{provider}/open": {
                "post": {
                    "summary": "force a breaker open",
                    "security": _ADMIN,
                    "parameters": _PAIR,
                    "requestBody": {"content": {"application/json": {"schema": isolate}}},
                    "responses": {"200": _json(_CIRCUIT), **_errors(400, 401, 403, 404, 413)},
                }
            },
            "/admin/events": {
                "get": {
                    "summary": "audit events, newest first, cursor paging",
                    "security": _ADMIN,
                    "parameters": [
                        _query("tenant", _TENANT_OR_ALL),
                        _query("provider", _PROVIDER),
                        _query("since", _TIME),
                        _query("until", _TIME),
                        _query("cursor", {"type": "string", "description": "opaque, from a page"}),
                        _query("limit", {"type": "integer", "minimum": 1, "maximum": 1000}),
                    ],
                    "responses": {"200": _json({"type": "object"}), **_errors(400, 401, 403)},
                }
            },
            "/admin/dashboard.js": _dashboard_file("the dashboard's script", "text/javascript"),
            "/admin/dashboard.css": _dashboard_file("the dashboard's style", "text/css"),
            "/admin/providers": {
                "get": {
                    "summary": "health per (provider, model): latency, errors, in flight, rpm",
                    "security": _ADMIN,
                    "responses": {
                        "200": _json(
                            {
                                "type": "object",
                                "properties": {
                                    "providers": {"type": "array", "items": _HEALTH},
                                    "bulkheads": {
                                        "type": "object",
                                        "additionalProperties": {"type": "object"},
                                    },
                                },
                                "required": ["providers"],
                            }
                        ),
                        **_errors(401, 403),
                    },
                }
            },
            "/healthz": {
                "get": {"summary": "liveness", "responses": {"200": _json({"type": "object"})}}
            },
            "/readyz": {
                "get": {
                    "summary": "readiness",
                    "responses": {
                        "200": _json({"type": "object"}),
                        "503": _json({"type": "object"}, "not ready"),
                    },
                }
            },
            "/metrics": {
                "get": {
                    "summary": "Prometheus metrics",
                    "responses": {
                        "200": {"description": "text exposition format"},
                        "401": {
                            "description": "[server] metrics_token_sha256 is set and the "
                            "request's bearer token is not that token"
                        },
                    },
                }
            },
        },
    }


async def openapi(request: Request) -> Response:
    return JSONResponse(document())
