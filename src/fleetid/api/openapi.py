"""The OpenAPI document states every status a route answers, and how a problem reads.

Each route declares its non-2xx statuses with ``problem_responses(...)`` (``COMMON`` holds those
every route can give: a malformed ``Content-Length`` 400 and a body over its limit 413,
``fleetid.api.body_limits``; a request over its client's or provisioner's rate 429,
``fleetid.api.rate_limits``; an answer not started within the request timeout 503,
``fleetid.api.request_timeout``; and 500). Each is an RFC 9457 problem document,
``application/problem+json`` with the ``Problem`` schema (§3.1 members, plus fleetid's ``reason``
extension, §3.2). ``install`` puts that schema into the document and drops the 422 FastAPI
documents by itself: a request that fails validation is answered 400 (``fleetid.api.errors``).
"""

from __future__ import annotations

from http import HTTPStatus
from typing import Any, Final

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from fleetid.api.errors import PROBLEM_JSON

__all__ = ["COMMON", "PROBLEM_SCHEMA", "SECURITY_SCHEMES", "install", "problem_responses"]

COMMON: Final = (400, 413, 429, 500, 503)

PROBLEM_SCHEMA: Final[dict[str, Any]] = {
    "title": "Problem",
    "description": "RFC 9457 problem details",
    "type": "object",
    "required": ["type", "title", "status", "detail"],
    "properties": {
        "type": {"type": "string", "format": "uri", "examples": ["urn:fleetid:problem:not-found"]},
        "title": {"type": "string"},
        "status": {"type": "integer", "minimum": 400, "maximum": 599},
        "detail": {"type": "string", "maxLength": 200},
        "reason": {"type": "string", "description": "machine-readable refusal (attestation)"},
    },
}
_REF: Final = {"$ref": "#/components/schemas/Problem"}
# The schemes routes name in their ``security`` without a FastAPI security dependency
# (``fleetid.api.est`` reads HTTP Basic itself, RFC 7617).
SECURITY_SCHEMES: Final[dict[str, Any]] = {"HTTPBasic": {"type": "http", "scheme": "basic"}}


def problem_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses`` for ``statuses`` and ``COMMON``, each a problem document."""
    return {
        status: {
            "description": HTTPStatus(status).phrase,
            "content": {PROBLEM_JSON: {"schema": _REF}},
        }
        for status in sorted({*statuses, *COMMON})
    }


def install(app: FastAPI) -> None:
    """Serve the document with the ``Problem`` schema and without FastAPI's own 422."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            document = get_openapi(
                title=app.title,
                version=app.version,
                summary=app.summary,
                routes=app.routes,
            )
            for operations in document.get("paths", {}).values():
                for operation in operations.values():
                    operation.get("responses", {}).pop("422", None)
            schemas = document.setdefault("components", {}).setdefault("schemas", {})
            for unused in ("HTTPValidationError", "ValidationError"):
                schemas.pop(unused, None)
            schemas["Problem"] = PROBLEM_SCHEMA
            security = document["components"].setdefault("securitySchemes", {})
            for name, scheme in SECURITY_SCHEMES.items():
                security.setdefault(name, scheme)
            app.openapi_schema = document
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
