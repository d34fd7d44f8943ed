"""The admin API's reads (role viewer and above): certificates, devices, tokens, manufacturer
roots, operator credentials, and who the caller is. The documents are those of
``fleetid cert|device|token ... --json`` (``fleetid.authority.operator_views``)."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated, Any, Final, Literal

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from fastapi import APIRouter, Depends, Query, Request, Response

from fleetid.api.admin.authentication import allowed
from fleetid.api.admin.pagination import Page, PageQuery, page, page_query
from fleetid.api.openapi import problem_responses
from fleetid.authority.fleet_ca import FleetCa
from fleetid.authority.operator_ca import Action, Operator
from fleetid.authority.operator_views import (
    as_json,
    certificate_document,
    certificate_list,
    certificate_pem_chain,
    device_document,
    device_list,
    operator_summary,
    token_list,
)
from fleetid.authority.provisioners.attestation import manufacturer_roots
from fleetid.store.engine import database_errors
from fleetid.store.inspection import Inspection
from fleetid.store.operator_credentials import list_credentials

__all__ = ["PEM_CHAIN", "describe_root", "router"]

PEM_CHAIN: Final = "application/pem-certificate-chain"  # RFC 8555 §9.1
_AUTH: Final = (401, 403)

router = APIRouter(prefix="/admin", tags=["admin"])
Reader = Annotated[Operator, Depends(allowed(Action.READ))]
Paging = Annotated[PageQuery, Depends(page_query)]


def _ca(request: Request) -> FleetCa:
    ca: FleetCa = request.app.state.ca
    return ca


def _read(request: Request, fn: Any) -> Any:
    """``fn(db)`` on a read-only connection of the CA's database, as JSON types."""
    with database_errors(), Inspection.open(_ca(request).store.engine) as db:
        return as_json(fn(db))


@router.get("/whoami", responses=problem_responses(*_AUTH))
def whoami(who: Reader) -> dict[str, str]:
    """The operator the TLS client certificate names, and its role."""
    return who.identity()


@router.get("/certificates", responses=problem_responses(*_AUTH))
def list_certificates(
    request: Request,
    response: Response,
    _who: Reader,
    paging: Paging,
    device: Annotated[str | None, Query(max_length=128)] = None,
    status: Literal["valid", "revoked", "expired"] | None = None,
    expiring_within_seconds: Annotated[int | None, Query(ge=1)] = None,
) -> Page:
    """Certificates, newest first (``fleetid cert list``)."""
    now = _ca(request).clock.now()
    within = None if expiring_within_seconds is None else timedelta(seconds=expiring_within_seconds)
    return page(
        request,
        response,
        paging,
        lambda limit, offset: _read(
            request,
            lambda db: certificate_list(
                db,
                now,
                device_id=device,
                status=status,
                expiring_within=within,
                limit=limit,
                offset=offset,
            ),
        ),
    )


@router.get("/certificates/{serial}", responses=problem_responses(*_AUTH, 404))
def show_certificate(request: Request, serial: str, _who: Reader) -> dict[str, Any]:
    """A certificate: status, chain, device, audit entries (``fleetid cert show``)."""
    now = _ca(request).clock.now()
    document: dict[str, Any] = _read(request, lambda db: certificate_document(db, serial, now))
    return document


@router.get(
    "/certificates/{serial}/pem",
    response_class=Response,
    responses={200: {"content": {PEM_CHAIN: {}}}, **problem_responses(*_AUTH, 404)},
)
def certificate_pem(request: Request, serial: str, _who: Reader) -> Response:
    """The certificate and its chain up to the root, PEM (``fleetid cert show --pem``)."""
    with database_errors(), Inspection.open(_ca(request).store.engine) as db:
        pem = certificate_pem_chain(db, serial)
    return Response(pem, media_type=PEM_CHAIN)


@router.get("/devices", responses=problem_responses(*_AUTH))
def list_devices(
    request: Request,
    response: Response,
    _who: Reader,
    paging: Paging,
    status: Literal["pending", "enrolled", "revoked", "transferred"] | None = None,
) -> Page:
    """Devices by id, with how many certificates each holds (``fleetid device list``)."""
    return page(
        request,
        response,
        paging,
        lambda limit, offset: _read(
            request, lambda db: device_list(db, status=status, limit=limit, offset=offset)
        ),
    )


@router.get("/devices/{device_id}", responses=problem_responses(*_AUTH, 404))
def show_device(request: Request, device_id: str, _who: Reader) -> dict[str, Any]:
    """A device's lifecycle timeline and audit entries (``fleetid device show``)."""
    now = _ca(request).clock.now()
    document: dict[str, Any] = _read(request, lambda db: device_document(db, device_id, now))
    return document


@router.get("/tokens", responses=problem_responses(*_AUTH))
def list_tokens(
    request: Request,
    response: Response,
    _who: Reader,
    paging: Paging,
    device: Annotated[str | None, Query(max_length=128)] = None,
    state: Literal["unused", "used", "expired"] | None = None,
) -> Page:
    """Enrolment tokens, newest first, never their secrets (``fleetid token list``)."""
    now = _ca(request).clock.now()
    return page(
        request,
        response,
        paging,
        lambda limit, offset: _read(
            request,
            lambda db: token_list(
                db, now, device_id=device, state=state, limit=limit, offset=offset
            ),
        ),
    )


def describe_root(root: x509.Certificate) -> dict[str, Any]:
    return {
        "subject": root.subject.rfc4514_string(),
        "serial": f"{root.serial_number:x}",
        "not_after": root.not_valid_after_utc,
        "sha256": root.fingerprint(hashes.SHA256()).hex(),
    }


@router.get("/manufacturers", responses=problem_responses(*_AUTH))
def list_manufacturers(request: Request, _who: Reader) -> list[dict[str, Any]]:
    """The manufacturer roots the attestation provisioner trusts."""
    roots = manufacturer_roots(_ca(request).settings.data_dir)
    return [as_json(describe_root(r)) for r in roots]


@router.get("/operators", responses=problem_responses(*_AUTH))
def list_operators(request: Request, _who: Reader) -> list[dict[str, Any]]:
    """The operator credentials, newest first (certificates only: keys are never kept)."""
    with database_errors():
        found = list_credentials(_ca(request).store.engine)
    return [as_json(operator_summary(c)) for c in found]
