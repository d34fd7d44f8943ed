"""The admin API's writes, each for the least role its ``Action`` names: revoke a certificate or
a device, create and revoke enrolment tokens, publish CRLs (operator); trust and distrust
manufacturer roots, revoke an operator credential (security officer). Each runs through
``fleetid.authority.operator_actions``: one transaction whose audit-log entries name the
operator."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from typing import Annotated, Any, Final

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, Field, field_validator

from fleetid.api.admin.authentication import allowed
from fleetid.api.admin.reads import PEM_CHAIN, describe_root
from fleetid.api.openapi import problem_responses
from fleetid.authority import operator_actions
from fleetid.authority.fleet_ca import FleetCa
from fleetid.authority.operator_actions import numbered_device_ids
from fleetid.authority.operator_ca import Action, Operator
from fleetid.authority.operator_views import as_json, revocation_document
from fleetid.authority.provisioners.token import TOKEN_TTL_MAX
from fleetid.errors import ConfigError, OperatorRequestError, UnsupportedMediaTypeError
from fleetid.revocation.crl import CrlPublisher
from fleetid.store.engine import database_errors
from fleetid.store.repositories import REVOCATION_REASONS, Revocation

__all__ = ["TOKEN_COUNT_MAX", "router"]

TOKEN_COUNT_MAX: Final = 10_000
_AUTH: Final = (401, 403)
_MAX_PEM: Final = 16 * 1024

router = APIRouter(prefix="/admin", tags=["admin"])


@contextmanager
def _service() -> Iterator[None]:
    """A service's refusal of the request's values (``ConfigError``, which the command line
    reports as a usage error) is the client's 400 here, not a misconfigured authority's 500;
    database errors are one line (``database_errors``)."""
    try:
        with database_errors():
            yield
    except ConfigError as exc:
        raise OperatorRequestError(str(exc)) from None


def _ca(request: Request) -> FleetCa:
    ca: FleetCa = request.app.state.ca
    return ca


class RevocationRequest(BaseModel):
    reason: str = Field(description="RFC 5280 §5.3.1 reason name, e.g. keyCompromise")

    @field_validator("reason")
    @classmethod
    def _a_reason(cls, name: str) -> str:
        if name not in REVOCATION_REASONS:
            raise ValueError(f"not an RFC 5280 §5.3.1 reason: {', '.join(REVOCATION_REASONS)}")
        return name

    invalidity_date: datetime | None = Field(
        default=None, description="RFC 5280 §5.3.2: when the key was known compromised"
    )


class TokenRequest(BaseModel):
    """One token for ``device_id``, or ``count`` for ``device_prefix`` + 0001.. (bulk)."""

    device_id: str | None = Field(default=None, max_length=128)
    device_prefix: str | None = Field(default=None, max_length=100)
    count: int = Field(default=1, ge=1, le=TOKEN_COUNT_MAX)
    start: int = Field(default=1, ge=0)
    ttl_seconds: int | None = Field(default=None, ge=1)

    def device_ids(self) -> list[str]:
        if (self.device_id is None) == (self.device_prefix is None):
            raise OperatorRequestError("give device_id or device_prefix, not both")
        if self.device_id is not None:
            if self.count != 1:
                raise OperatorRequestError("count goes with device_prefix (one token per device)")
            return [self.device_id]
        return numbered_device_ids(self.device_prefix or "", self.count, self.start)


def _revocations(done: list[Revocation]) -> list[dict[str, Any]]:
    return [as_json(revocation_document(r)) for r in done]


@router.post("/certificates/{serial}/revocation", responses=problem_responses(*_AUTH, 404, 409))
def revoke_certificate(
    request: Request,
    serial: str,
    body: RevocationRequest,
    who: Annotated[Operator, Depends(allowed(Action.REVOKE))],
) -> list[dict[str, Any]]:
    """Revoke one certificate (``fleetid revoke SERIAL``); 403 for a revoked one already."""
    with _service():
        done = operator_actions.revoke_certificate(
            _ca(request), who, serial, body.reason, body.invalidity_date
        )
    return _revocations([done])


@router.post("/devices/{device_id}/revocation", responses=problem_responses(*_AUTH, 404, 409))
def revoke_device(
    request: Request,
    device_id: str,
    body: RevocationRequest,
    who: Annotated[Operator, Depends(allowed(Action.REVOKE))],
) -> list[dict[str, Any]]:
    """Revoke every valid certificate of a device and end its lifecycle (``--device``)."""
    if body.invalidity_date is not None:
        raise OperatorRequestError("invalidity_date goes with a certificate's revocation")
    with _service():
        done = operator_actions.revoke_device(_ca(request), who, device_id, body.reason)
    return _revocations(done)


@router.post("/tokens", status_code=201, responses=problem_responses(*_AUTH, 409))
def create_tokens(
    request: Request,
    body: TokenRequest,
    who: Annotated[Operator, Depends(allowed(Action.TOKENS))],
) -> list[dict[str, Any]]:
    """New one-time enrolment tokens: the only answer that carries their passwords."""
    ca = _ca(request)
    ttl = ca.settings.policy.token_ttl
    if body.ttl_seconds is not None:
        ttl = timedelta(seconds=min(body.ttl_seconds, int(TOKEN_TTL_MAX.total_seconds()) + 1))
    with _service():
        tokens = operator_actions.create_tokens(ca, who, body.device_ids(), ttl)
    return [
        as_json(
            {
                "device_id": t.device_id,
                "username": t.username,
                "password": t.password,
                "expires_at": t.expires_at,
            }
        )
        for t in tokens
    ]


@router.delete("/tokens/{username}", responses=problem_responses(*_AUTH, 404))
def revoke_token(
    request: Request,
    username: str,
    who: Annotated[Operator, Depends(allowed(Action.TOKENS))],
) -> Any:
    """End an unused token now (``fleetid token revoke``)."""
    with _service():
        token = operator_actions.revoke_tokens(_ca(request), who, username)
    return as_json(
        {"username": token.username, "device_id": token.device_id, "revoked_at": token.expires_at}
    )


@router.post("/crls", responses=problem_responses(*_AUTH, 503))
def publish_crls(
    request: Request, who: Annotated[Operator, Depends(allowed(Action.PUBLISH))]
) -> list[dict[str, Any]]:
    """A new full and delta CRL of every shard now (``fleetid crl publish``)."""
    with _service():
        publisher: CrlPublisher = request.app.state.crl_publisher
        done = operator_actions.publish_crls(_ca(request), who, publisher)
    return [
        as_json(
            {
                "issuer_id": p.issuer_id,
                "shard": p.shard,
                "kind": str(p.kind),
                "crl_number": p.crl_number,
                "base_number": p.base_number,
                "watermark": p.watermark,
                "this_update": p.this_update,
                "next_update": p.next_update,
                "size": len(p.der),
            }
        )
        for p in done
    ]


@router.post(
    "/manufacturers",
    status_code=201,
    openapi_extra={"requestBody": {"content": {PEM_CHAIN: {}}, "required": True}},
    responses=problem_responses(*_AUTH, 415),
)
async def trust_manufacturer(
    request: Request, who: Annotated[Operator, Depends(allowed(Action.MANUFACTURERS))]
) -> Any:
    """Trust a manufacturer root (one PEM certificate: a self-signed CA, not expired)."""
    media = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media not in (PEM_CHAIN, "application/x-pem-file"):
        raise UnsupportedMediaTypeError(f"a manufacturer root is sent as {PEM_CHAIN}")
    pem = await request.body()
    if len(pem) > _MAX_PEM:
        raise OperatorRequestError("a manufacturer root is one PEM certificate")
    with _service():
        root = operator_actions.trust_root(_ca(request), who, pem)
    return as_json(describe_root(root))


@router.delete("/manufacturers/{fingerprint}", responses=problem_responses(*_AUTH))
def distrust_manufacturer(
    request: Request,
    fingerprint: str,
    who: Annotated[Operator, Depends(allowed(Action.MANUFACTURERS))],
) -> list[dict[str, Any]]:
    """Distrust the roots whose SHA-256 starts with ``fingerprint`` (16 hex digits or more)."""
    with _service():
        removed = operator_actions.distrust_root(_ca(request), who, fingerprint)
    return [as_json(describe_root(r)) for r in removed]


@router.post("/operators/{serial}/revocation", responses=problem_responses(*_AUTH, 404))
def revoke_operator(
    request: Request,
    serial: str,
    who: Annotated[Operator, Depends(allowed(Action.OPERATORS))],
) -> Any:
    """Revoke an operator credential: refused from its next request on."""
    with _service():
        done = operator_actions.revoke_operator_credential(_ca(request), who, serial)
    return as_json({"serial": done.serial, "name": done.name, "revoked_at": done.revoked_at})
