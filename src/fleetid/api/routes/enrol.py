"""Lifecycle routes beside EST: the attestation challenge and the release of a device.

* ``POST /enrol/challenge``: body ``{"device_id": SERIAL}``; answers
  ``{"nonce": base64url, "expires_at": RFC 3339}``. A nonce is single use; it binds an
  attestation (enrolment, re-key) or a ``Fleetid-Proof`` (refresh, release) to this moment.
  A malformed body and a device the authority does not know (``not-on-manifest``) are 400,
  both before anything is written; a device holding ``policy.outstanding_challenges`` unused
  ones gets 429. Expired challenges are pruned whenever one is issued.
* ``POST /enrol/release``: the device leaves this authority for another; body is free text naming
  the destination (it is signed), the ``Fleetid-Proof`` header authenticates the current
  credential. Answers the revoked serials.

Handlers parse and format; ``fleetid.authority.lifecycle.LifecycleService`` decides.
``install(app, service)`` mounts them and makes ``service`` the app's EST service too.
"""

from __future__ import annotations

import base64
from typing import Final

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field, ValidationError

from fleetid.api.est import lifecycle_of
from fleetid.api.openapi import problem_responses
from fleetid.api.writes import write
from fleetid.authority.lifecycle import LifecycleService
from fleetid.errors import AuthenticationError, EncodingError
from fleetid.formats.proof import CHALLENGE_PATH, PROOF_HEADER, RELEASE_PATH

__all__ = ["install", "router"]

router = APIRouter(tags=["enrolment lifecycle (fleetid)"])
_CHALLENGE_BODY: Final = 'a challenge request is JSON {"device_id": "<1 to 128 characters>"}'


class ChallengeRequest(BaseModel):
    device_id: str = Field(min_length=1, max_length=128)


class ChallengeResponse(BaseModel):
    nonce: str = Field(description="base64url, no padding")
    expires_at: str


class ReleaseResponse(BaseModel):
    revoked: list[str]


def install(app: FastAPI, service: LifecycleService) -> None:
    """Mount the routes and serve EST through ``service``."""
    app.state.enrolment = service
    app.include_router(router)


@router.post(
    CHALLENGE_PATH, response_model=ChallengeResponse, responses=problem_responses(409, 429, 503)
)
async def challenge(request: Request) -> JSONResponse:
    """A single-use nonce for attestation or a credential proof."""
    service = lifecycle_of(request)
    body = await request.body()
    try:
        parsed = ChallengeRequest.model_validate_json(body)
    except ValidationError as exc:
        raise EncodingError(_CHALLENGE_BODY) from exc
    device_id = parsed.device_id
    issued = await write(request, service.issue_challenge, device_id)
    # The document's shape (``ChallengeResponse``), rendered without a second validation.
    return JSONResponse(
        {
            "nonce": base64.urlsafe_b64encode(issued.nonce).rstrip(b"=").decode(),
            "expires_at": issued.expires_at.isoformat(),
        }
    )


@router.post(
    RELEASE_PATH, response_model=ReleaseResponse, responses=problem_responses(401, 403, 409, 503)
)
async def release(request: Request) -> ReleaseResponse:
    """End the device's credentials here (``cessationOfOperation``) before it moves."""
    service = lifecycle_of(request)
    body = await request.body()
    proof = request.headers.get(PROOF_HEADER)
    if proof is None:
        raise AuthenticationError(f"release needs a {PROOF_HEADER} header")
    done = await write(request, service.release, body, proof)
    return ReleaseResponse(revoked=[r.serial for r in done])
