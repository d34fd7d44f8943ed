"""ETSI TS 102 941 over HTTP: the EA, the AA and the Root CA's distribution point.

TS 102 941 §6.1 (and the ETSI PKI interop practice) carries each secured message as the raw COER
body of an HTTP POST, ``Content-Type: application/x-its-request``, answered with
``application/x-its-response``. A request the authority can open is always answered 200 with a
signed, encrypted response whose responseCode says whether it was granted; a body it cannot open
(not encrypted to it, not decodable) has no key to answer under and gets a 400 problem document.

Routes (mounted under ``/v2x``)::

    POST /v2x/ea/enrolment                  EnrolmentRequestMessage -> EnrolmentResponseMessage
    POST /v2x/ea/authorization-validation   AA -> EA validation (AuthorizationValidation...)
    POST /v2x/aa/authorization              AuthorizationRequestMessage -> ...ResponseMessage
    GET  /v2x/ctl                           the Root CA's CTL (application/x-its-ctl)
    GET  /v2x/crl                           the Root CA's CA CRL (application/x-its-crl)
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Final

from fastapi import APIRouter, Depends, FastAPI, Request, Response
from fastapi.concurrency import run_in_threadpool

from fleetid.api.openapi import problem_responses
from fleetid.authority.v2x.aa import AuthorizationAuthority
from fleetid.authority.v2x.ea import EnrolmentAuthority
from fleetid.authority.v2x.on_disk import has_v2x, open_v2x
from fleetid.clock import Clock
from fleetid.config import V2X_PASSPHRASE_ENV, Settings
from fleetid.errors import (
    EncodingError,
    HsmNotActivatedError,
    NotFoundError,
    UnsupportedMediaTypeError,
)

__all__ = [
    "ITS_REQUEST",
    "ITS_RESPONSE",
    "V2X_PREFIX",
    "V2xServices",
    "install",
    "its_body",
    "router",
    "services_for",
    "v2x_unavailable_reason",
]

V2X_PREFIX: Final = "/v2x"
ITS_REQUEST: Final = "application/x-its-request"
ITS_RESPONSE: Final = "application/x-its-response"
ITS_CTL: Final = "application/x-its-ctl"
ITS_CRL: Final = "application/x-its-crl"

router = APIRouter(prefix=V2X_PREFIX, tags=["V2X PKI (ETSI TS 102 941)"])


@dataclass(kw_only=True)
class V2xServices:
    """What the routes serve; any part may be absent (an EA-only deployment ...)."""

    ea: EnrolmentAuthority | None = None
    aa: AuthorizationAuthority | None = None
    ctl: Callable[[], bytes] | None = None
    crl: Callable[[], bytes] | None = None
    # Why the hierarchy this data dir holds is not served (its key store is locked): every
    # V2X route answers 503 with this, and the rest of the authority serves on.
    unavailable: str | None = None


def v2x_unavailable_reason(settings: Settings) -> str | None:
    """Why ``settings.data_dir``'s V2X hierarchy cannot be served, or None (served, or none)."""
    if has_v2x(Path(settings.data_dir)) and settings.v2x_passphrase is None:
        return (
            f"{settings.data_dir} holds a V2X hierarchy but {V2X_PASSPHRASE_ENV} is not set: "
            "its key store stays locked"
        )
    return None


def services_for(settings: Settings, clock: Clock) -> V2xServices | None:
    """The EA, AA and publications of the hierarchy in ``settings.data_dir`` (``fleetid v2x
    init``), or None when there is none. The CTL and CRL are read from the Root CA's database
    on each GET, so ``fleetid v2x publish`` takes effect without a restart."""
    if not has_v2x(Path(settings.data_dir)):
        return None
    if settings.v2x_passphrase is None:
        return V2xServices(unavailable=v2x_unavailable_reason(settings))
    store = open_v2x(Path(settings.data_dir), passphrase=settings.v2x_passphrase, clock=clock)
    return V2xServices(
        ea=store.hierarchy.ea,
        aa=store.hierarchy.aa,
        ctl=lambda: store.latest("ctl"),
        crl=lambda: store.latest("crl"),
    )


def install(app: FastAPI, services: V2xServices) -> None:
    """Mount the routes on ``app`` and give them ``services``."""
    app.state.v2x = services
    app.include_router(router)


async def _services(request: Request) -> V2xServices:
    services: V2xServices = request.app.state.v2x
    if services.unavailable is not None:
        # 503: the keys are there but locked, as an HSM awaiting activation.
        raise HsmNotActivatedError(services.unavailable)
    return services


Services = Annotated[V2xServices, Depends(_services)]

_ITS_BODY: Final[dict[str, Any]] = {
    "requestBody": {
        "required": True,
        "content": {ITS_REQUEST: {"schema": {"type": "string", "format": "binary"}}},
    }
}
_ITS_ANSWER: Final[dict[int | str, dict[str, Any]]] = {
    200: {
        "content": {ITS_RESPONSE: {"schema": {"type": "string", "format": "binary"}}},
        "description": "the COER EtsiTs103097Data response, encrypted to the request's key",
    },
    # 404: no such authority in this deployment; 415: not application/x-its-request; 503: the
    # hierarchy's key store is locked (no V2X passphrase).
    **problem_responses(404, 415, 503),
}


async def _its_body(request: Request) -> bytes:
    media_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media_type != ITS_REQUEST:
        raise UnsupportedMediaTypeError(f"the body must be {ITS_REQUEST} (TS 102 941 §6.1)")
    body = await request.body()  # bounded by fleetid.api.body_limits
    if not body:
        raise EncodingError("an ITS request is not empty")
    return body


#: The request body check, shared with the butterfly routes (``fleetid.api.routes.butterfly``).
its_body = _its_body


def _missing(what: str) -> NotFoundError:
    return NotFoundError(f"this deployment has no {what}")


async def _its_exchange(
    request: Request, handler: Callable[[bytes], bytes] | None, authority: str
) -> Response:
    """Read the ITS request body, let ``handler`` (off the event loop) answer it; 404 when this
    deployment has no such ``authority`` (the body is checked before that)."""
    body = await _its_body(request)
    if handler is None:
        raise _missing(authority)
    answer = await run_in_threadpool(handler, body)
    return Response(answer, media_type=ITS_RESPONSE)


@router.post(
    "/ea/enrolment", openapi_extra=_ITS_BODY, responses=_ITS_ANSWER, response_class=Response
)
async def enrolment(request: Request, services: Services) -> Response:
    """EnrolmentRequestMessage (TS 102 941 §6.2.3.2)."""
    handler = None if services.ea is None else services.ea.handle_enrolment
    return await _its_exchange(request, handler, "EA")


@router.post(
    "/ea/authorization-validation",
    openapi_extra=_ITS_BODY,
    responses=_ITS_ANSWER,
    response_class=Response,
)
async def authorization_validation(request: Request, services: Services) -> Response:
    """AuthorizationValidationRequestMessage from an AA (TS 102 941 §6.2.3.4)."""
    handler = None if services.ea is None else services.ea.handle_authorization_validation
    return await _its_exchange(request, handler, "EA")


@router.post(
    "/aa/authorization", openapi_extra=_ITS_BODY, responses=_ITS_ANSWER, response_class=Response
)
async def authorization(request: Request, services: Services) -> Response:
    """AuthorizationRequestMessage, with or without POP (TS 102 941 §6.2.3.3)."""
    handler = None if services.aa is None else services.aa.handle_authorization
    return await _its_exchange(request, handler, "AA")


@router.get("/ctl", response_class=Response, responses=problem_responses(404, 503))
def ctl(services: Services) -> Response:
    """The current RcaCertificateTrustListMessage."""
    if services.ctl is None:
        raise _missing("CTL")
    return Response(services.ctl(), media_type=ITS_CTL)


@router.get("/crl", response_class=Response, responses=problem_responses(404, 503))
def crl(services: Services) -> Response:
    """The current CertificateRevocationListMessage."""
    if services.crl is None:
        raise _missing("CRL")
    return Response(services.crl(), media_type=ITS_CRL)
