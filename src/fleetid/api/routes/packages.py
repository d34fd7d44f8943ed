"""Package download (ES9+) and discovery (ES11) over HTTP, JSON bodies.

Binary fields are base64 (RFC 4648 §4), transaction IDs hex. Errors are problem documents: a
refused download step is 403 with a ``reason`` (``matching-id-refused``, ``already-downloaded``,
``already-installed``, ``order-expired``, ``confirmation-code-refused``,
``confirmation-code-attempts-exceeded``), an unknown or spent
transaction and every failed discovery poll 401, malformed evidence or a bad signature 400.

Routes::

    POST /preparation/initiate-authentication   ES9+ InitiateAuthentication
    POST /preparation/authenticate-client       ES9+ AuthenticateClient
    POST /preparation/get-bound-package         ES9+ GetBoundProfilePackage
    POST /preparation/handle-notification       ES9+ HandleNotification
    POST /discovery/initiate-authentication     ES11 InitiateAuthentication
    POST /discovery/authenticate-client         ES11 AuthenticateClient (the event records,
                                                signed by the discovery service)
"""

from __future__ import annotations

import base64
import binascii

from cryptography.hazmat.primitives.serialization import Encoding
from fastapi import APIRouter, FastAPI, Request
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, Field

from fleetid.api.openapi import problem_responses
from fleetid.authority.preparation.for_ca import PackageServices
from fleetid.errors import EncodingError

__all__ = ["install", "router"]

_DER = Encoding.DER
router = APIRouter(tags=["credential packages (SGP.22 / SGP.32 patterns)"])


def _b64(text: str, what: str) -> bytes:
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise EncodingError(f"{what} is not base64") from None


def _hex(text: str, what: str) -> bytes:
    try:
        return bytes.fromhex(text)
    except ValueError:
        raise EncodingError(f"{what} is not hex") from None


def _text(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _services(request: Request) -> PackageServices:
    services: PackageServices = request.app.state.packages
    return services


class InitiateAuthentication(BaseModel):
    euiccChallenge: str = Field(max_length=64)


class Evidence(BaseModel):
    transactionId: str = Field(max_length=64)
    attestation: str = Field(max_length=8192)
    chain: list[str] = Field(max_length=8)

    def parts(self) -> tuple[bytes, bytes, list[bytes]]:
        return (
            _hex(self.transactionId, "transactionId"),
            _b64(self.attestation, "attestation"),
            [_b64(c, "chain") for c in self.chain],
        )


class AuthenticateClient(Evidence):
    eventId: str = Field(max_length=64)


class GetBoundPackage(Evidence):
    hashCc: str | None = Field(default=None, max_length=64)


class HandleNotification(BaseModel):
    notification: str = Field(max_length=4096)


@router.post("/preparation/initiate-authentication", responses=problem_responses(403, 409, 503))
async def initiate_authentication(
    body: InitiateAuthentication, request: Request
) -> dict[str, object]:
    """The service's transaction ID, challenge and signature over both challenges."""
    service = _services(request).preparation
    answer = await run_in_threadpool(
        service.initiate_authentication, _b64(body.euiccChallenge, "euiccChallenge")
    )
    return {
        "transactionId": answer.transaction_id.hex(),
        "serverChallenge": _text(answer.server_challenge),
        "serverAddress": answer.address,
        "serverSignature1": _text(answer.signature),
        "serverCertificates": [_text(c.public_bytes(_DER)) for c in answer.chain],
    }


@router.post("/preparation/authenticate-client", responses=problem_responses(401, 403, 409, 503))
async def authenticate_client(body: AuthenticateClient, request: Request) -> dict[str, object]:
    """The device's SE identity proven for the session; the signed event and code flag."""
    transaction_id, attestation, chain = body.parts()
    service = _services(request).preparation
    answer = await run_in_threadpool(
        service.authenticate_client, transaction_id, body.eventId, attestation, chain
    )
    return {
        "transactionId": answer.transaction_id.hex(),
        "eventId": answer.event_id,
        "ccRequired": answer.cc_required,
        "smdpSignature2": _text(answer.signature),
    }


@router.post("/preparation/get-bound-package", responses=problem_responses(401, 403, 409, 503))
async def get_bound_package(body: GetBoundPackage, request: Request) -> dict[str, str]:
    """The package bound to the attested one-time key, signed by the service."""
    transaction_id, attestation, chain = body.parts()
    hash_cc = None if body.hashCc is None else _b64(body.hashCc, "hashCc")
    service = _services(request).preparation
    bound = await run_in_threadpool(
        service.get_bound_package, transaction_id, attestation, chain, hash_cc
    )
    return {"boundPackage": _text(bound)}


@router.post("/preparation/handle-notification", responses=problem_responses(401, 403, 409))
async def handle_notification(body: HandleNotification, request: Request) -> dict[str, str]:
    """The device's notification, signed in its SE; the package's new state."""
    service = _services(request).preparation
    state = await run_in_threadpool(
        service.handle_notification, _b64(body.notification, "notification")
    )
    return {"state": str(state)}


@router.post("/discovery/initiate-authentication", responses=problem_responses(409))
async def discovery_initiate(request: Request) -> dict[str, str]:
    """A poll session: transaction ID and challenge."""
    transaction_id, challenge = await run_in_threadpool(
        _services(request).discovery.initiate_authentication
    )
    return {"transactionId": transaction_id.hex(), "serverChallenge": _text(challenge)}


@router.post("/discovery/authenticate-client", responses=problem_responses(401, 409))
async def discovery_authenticate(body: Evidence, request: Request) -> dict[str, object]:
    """The polling device's event records (event ID, service address), nothing else, signed by
    the discovery service over the poll's transaction ID and challenge (its chain follows)."""
    transaction_id, attestation, chain = body.parts()
    answer = await run_in_threadpool(
        _services(request).discovery.authenticate_client, transaction_id, attestation, chain
    )
    return {
        "eventEntries": [
            {"eventId": e.event_id, "rspServerAddress": e.service_address} for e in answer.events
        ],
        "discoverySignature": _text(answer.signature),
        "discoveryCertificates": [_text(c.public_bytes(_DER)) for c in answer.chain],
    }


def install(app: FastAPI, services: PackageServices) -> None:
    app.state.packages = services
    app.include_router(router)
