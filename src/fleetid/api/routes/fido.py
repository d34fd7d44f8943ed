"""Routes of FIDO registration for device operators (``fleetid.authority.operator_keys``).

* ``POST /operators/fido/challenge``: body ``{"operator": NAME}``; answers
  ``{"challenge": base64url, "rp_id": ..., "expires_at": RFC 3339}``, the
  ``PublicKeyCredentialCreationOptions`` members the authority decides (WebAuthn §5.4).
* ``POST /operators/fido/register``: body ``{"attestation_object": base64url,
  "client_data_json": base64url}`` (the ``AuthenticatorAttestationResponse``, §5.2.1); answers
  the recorded credential. A refusal is RFC 9457 problem details whose ``reason`` names the rule
  (``authenticator-unknown``, ``authenticator-status``, ``challenge-replayed``, ...).

Mounted when the data directory holds a relying-party configuration (``fleetid fido init``).
Handlers parse and format; ``OperatorRegistration`` decides.
"""

from __future__ import annotations

from pathlib import Path
from typing import Final

from fastapi import APIRouter, FastAPI, Request
from pydantic import BaseModel, Field, ValidationError
from starlette.concurrency import run_in_threadpool

from fleetid.api.openapi import problem_responses
from fleetid.authority.operator_keys import (
    OperatorRegistration,
    has_fido,
    load_relying_party,
)
from fleetid.clock import Clock
from fleetid.config import Settings
from fleetid.errors import EncodingError
from fleetid.formats.webauthn import b64url_decode, b64url_encode
from fleetid.store.fido_repository import FidoRepository
from fleetid.store.repositories import Store

__all__ = ["CHALLENGE_ROUTE", "REGISTER_ROUTE", "install", "registration_for", "router"]

CHALLENGE_ROUTE: Final = "/operators/fido/challenge"
REGISTER_ROUTE: Final = "/operators/fido/register"

router = APIRouter(tags=["FIDO operator registration (WebAuthn)"])


class ChallengeRequest(BaseModel):
    operator: str = Field(min_length=1, max_length=128)


class ChallengeResponse(BaseModel):
    challenge: str = Field(description="base64url, no padding")
    rp_id: str
    expires_at: str


class RegisterRequest(BaseModel):
    attestation_object: str = Field(min_length=1, description="base64url")
    client_data_json: str = Field(min_length=1, description="base64url")


class RegisterResponse(BaseModel):
    operator: str
    credential_id: str
    aaguid: str
    fmt: str


def registration_for(settings: Settings, store: Store, clock: Clock) -> OperatorRegistration | None:
    """The registration service of ``settings.data_dir``, or None when FIDO is not set up."""
    if not has_fido(Path(settings.data_dir)):
        return None
    relying_party = load_relying_party(Path(settings.data_dir))
    return OperatorRegistration(FidoRepository(store.engine), relying_party, clock)


def install(app: FastAPI, service: OperatorRegistration) -> None:
    app.state.fido = service
    app.include_router(router)


def _b64url(text: str, what: str) -> bytes:
    try:
        return b64url_decode(text)
    except EncodingError as exc:
        raise EncodingError(f"{what} is not base64url") from exc


@router.post(CHALLENGE_ROUTE, response_model=ChallengeResponse, responses=problem_responses(403))
async def challenge(request: Request) -> ChallengeResponse:
    """A single-use registration challenge for a named operator."""
    try:
        parsed = ChallengeRequest.model_validate_json(await request.body())
    except ValidationError as exc:
        raise EncodingError(
            'a challenge request is JSON {"operator": "<1 to 128 characters>"}'
        ) from exc
    service: OperatorRegistration = request.app.state.fido
    issued = await run_in_threadpool(service.begin, parsed.operator)
    return ChallengeResponse(
        challenge=b64url_encode(issued.challenge),
        rp_id=issued.rp_id,
        expires_at=issued.expires_at.isoformat(),
    )


@router.post(REGISTER_ROUTE, response_model=RegisterResponse, responses=problem_responses(409))
async def register(request: Request) -> RegisterResponse:
    """Verify an authenticator's registration and record the operator's credential."""
    try:
        parsed = RegisterRequest.model_validate_json(await request.body())
    except ValidationError as exc:
        raise EncodingError(
            "a registration is JSON with base64url attestation_object and client_data_json"
        ) from exc
    attestation_object = _b64url(parsed.attestation_object, "attestation_object")
    client_data_json = _b64url(parsed.client_data_json, "client_data_json")
    service: OperatorRegistration = request.app.state.fido
    recorded = await run_in_threadpool(service.finish, attestation_object, client_data_json)
    return RegisterResponse(
        operator=recorded.operator,
        credential_id=b64url_encode(recorded.credential_id),
        aaguid=recorded.aaguid,
        fmt=recorded.fmt,
    )
