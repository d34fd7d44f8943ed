"""The one place where errors become HTTP responses: RFC 9457 problem details.

Each ``fleetid.errors`` family maps to one status and one problem type URI
(``urn:fleetid:problem:<kind>``); ``detail`` is the error's own message, which names the precise
reason. Messages are fixed sentences that name no library object; ``problem_response`` also
bounds every ``detail`` (``MAX_DETAIL`` characters, printable, one line), so no echoed input
(a path, a header) comes back whole. A request that fails FastAPI's validation is described by
where and what (``path.generation: Input should be a valid integer``), never by pydantic's repr.
401 answers carry ``WWW-Authenticate: Basic`` (RFC 7030 §3.2.3, RFC 7617), or the error's own
``challenge`` (the admin API's TLS client certificates); 503 answers (the HSM or the database
unavailable) ``Retry-After`` (RFC 9110 §10.2.3). A database driver's error becomes a
``StoreError`` first (``fleetid.store.engine.as_store_error``): a lost server connection is
``DatabaseUnavailableError``, 503, and SQLAlchemy's pool reconnects on the next request.

An error that carries a machine-readable ``reason`` code (the attestation refusals of
``fleetid.errors``) adds it as the extension member ``reason``
(RFC 9457 §3.2), so a client tells one refusal from another without parsing ``detail``.

Every refusal counts in ``fleetid_refusals_total`` under its reason code (the ``reason`` member,
else the problem kind) and is logged as an event of the request (``fleetid.api.refusals``).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Final

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect

from fleetid import errors, metrics
from fleetid.store.engine import DRIVER_ERRORS, as_store_error

__all__ = ["MAX_DETAIL", "PROBLEM_JSON", "install_error_handlers", "problem_response"]

PROBLEM_JSON: Final = "application/problem+json"
MAX_DETAIL: Final = 200
REALM: Final = 'Basic realm="fleetid EST", charset="UTF-8"'
RETRY_AFTER_S: Final = 1  # a database restart or failover: the pool reconnects on the next try

_log = logging.getLogger("fleetid.api.refusals")

# Most specific first: the first family an error belongs to decides.
_FAMILIES: Final[tuple[tuple[type[errors.FleetIdError], int, str, str], ...]] = (
    (errors.AuthenticationError, 401, "unauthenticated", "Credential not accepted"),
    (errors.NotFoundError, 404, "not-found", "No such record"),
    (errors.UnsupportedMediaTypeError, 415, "unsupported-media-type", "Media type not accepted"),
    (errors.BodyTooLargeError, 413, "body-too-large", "Request body too large"),
    (errors.ProfileError, 400, "bad-profile", "Request breaks its profile"),
    (errors.OperatorRequestError, 400, "bad-request", "Request not valid"),
    (errors.EncodingError, 400, "bad-encoding", "Request body does not parse"),
    (errors.VerificationError, 400, "verification-failed", "Signature does not verify"),
    (errors.LimitExceededError, 429, "too-many", "Too many outstanding requests"),
    (errors.PolicyError, 403, "policy-refused", "Refused by policy"),
    (errors.DatabaseUnavailableError, 503, "database-unavailable", "Database unavailable"),
    (errors.StoreError, 409, "store-conflict", "Conflicting state"),
    (errors.HsmError, 503, "hsm-unavailable", "Signing unavailable"),
    (errors.NotConfiguredError, 503, "not-configured", "Not configured here"),
    (errors.ConfigError, 500, "misconfigured", "Authority misconfigured"),
    (errors.FleetIdError, 500, "internal", "Internal error"),
)


def problem_response(
    status: int,
    kind: str,
    title: str,
    detail: str,
    *,
    headers: Mapping[str, str] | None = None,
    extensions: Mapping[str, str] | None = None,
) -> JSONResponse:
    body: dict[str, object] = {
        "type": f"urn:fleetid:problem:{kind}",
        "title": title,
        "status": status,
        "detail": _bounded(detail),
    }
    # RFC 9457 §3.2: extension members sit beside the standard ones; never overwrite those.
    body.update({k: v for k, v in (extensions or {}).items() if k not in body})
    return JSONResponse(
        body,
        status_code=status,
        media_type=PROBLEM_JSON,
        headers=dict(headers) if headers else None,
    )


def _bounded(text: str) -> str:
    """``text`` on one printable line of at most ``MAX_DETAIL`` characters."""
    printable = text if text.isprintable() else "".join(c if c.isprintable() else " " for c in text)
    line = " ".join(printable.split())
    return line if len(line) <= MAX_DETAIL else line[: MAX_DETAIL - 1] + "…"


def _invalid(exc: RequestValidationError) -> str:
    """Where and what, from the first validation error: no input echoed, no repr."""
    first = next(iter(exc.errors()), None)
    if not isinstance(first, dict):
        return "the request is not valid"
    where = ".".join(str(part) for part in first.get("loc", ()))
    return f"{where}: {first.get('msg', 'not valid')}"


def _for_error(exc: errors.FleetIdError) -> JSONResponse:
    for family, status, kind, title in _FAMILIES:
        if isinstance(exc, family):
            # An operator's 401 names TLS client certificates, not Basic.
            headers = _headers(status, getattr(exc, "challenge", REALM))
            reason = getattr(exc, "reason", None)
            extensions = {"reason": reason} if isinstance(reason, str) else None
            _refused(status, reason if isinstance(reason, str) else kind, str(exc))
            return problem_response(
                status, kind, title, str(exc), headers=headers, extensions=extensions
            )
    raise AssertionError("FleetIdError is the last family")  # pragma: no cover


def _headers(status: int, challenge: str = REALM) -> dict[str, str] | None:
    if status == 401:
        return {"WWW-Authenticate": challenge}
    if status == 503:
        return {"Retry-After": str(RETRY_AFTER_S)}  # RFC 9110 §10.2.3
    return None


def _refused(status: int, reason: str, detail: str) -> None:
    metrics.REFUSALS.labels(reason).inc()
    fields = {"status": status, "reason": reason, "detail": _bounded(detail)}
    _log.info("refused", extra={"fields": fields})


def install_error_handlers(app: FastAPI) -> None:
    async def fleetid_error(_request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, errors.FleetIdError)  # noqa: S101 - registered for this type
        return _for_error(exc)

    async def http_error(_request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, StarletteHTTPException)  # noqa: S101 - registered for this type
        return problem_response(
            exc.status_code, "http", str(exc.detail), str(exc.detail), headers=exc.headers
        )

    async def validation_error(_request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)  # noqa: S101 - registered for this type
        _refused(400, "bad-request", _invalid(exc))
        return problem_response(400, "bad-request", "Request not valid", _invalid(exc))

    async def driver_error(_request: Request, exc: Exception) -> JSONResponse:
        # A database error outside the group commit (a read): lost connection 503, else 409/500.
        return _for_error(as_store_error(exc))

    async def client_gone(_request: Request, _exc: Exception) -> Response:
        # The client closed the connection mid-body: nobody reads an answer, nothing to log.
        return Response(status_code=400)

    app.add_exception_handler(errors.FleetIdError, fleetid_error)
    app.add_exception_handler(ClientDisconnect, client_gone)
    for driver in DRIVER_ERRORS:
        app.add_exception_handler(driver, driver_error)
    app.add_exception_handler(StarletteHTTPException, http_error)
    app.add_exception_handler(RequestValidationError, validation_error)
