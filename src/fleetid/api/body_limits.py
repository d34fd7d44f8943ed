"""Request body limits, one per route, enforced while the body streams in.

``LIMITS`` is the one table: the largest body each POST route takes, in octets; any other path
takes ``DEFAULT_LIMIT``. ``BodyLimit`` (an ASGI middleware) answers 413 problem details:

* at once, without reading a byte of the body, when ``Content-Length`` declares more
  (RFC 9110 §15.5.14); a ``Content-Length`` that is not a decimal number is 400 (§8.6);
* as soon as the octets read exceed the limit, for a body without ``Content-Length`` (chunked,
  RFC 9112 §7.1): the route's read raises ``BodyTooLargeError``, the rest is never buffered.

A client that disconnects mid-body ends its request quietly (``install_error_handlers`` maps
Starlette's ``ClientDisconnect``), never with a traceback in the server's log.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Final

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from fleetid.api.errors import problem_response
from fleetid.errors import BodyTooLargeError
from fleetid.formats.proof import CHALLENGE_PATH, REENROLL_PATH, RELEASE_PATH

__all__ = ["DEFAULT_LIMIT", "LIMITS", "BodyLimit", "limit_for"]

_EST_ENROL: Final = "/.well-known/est/simpleenroll"
_ITS: Final = 16 * 1024  # a secured ETSI TS 102 941 request with its certificates

LIMITS: Final[Mapping[str, int]] = {
    _EST_ENROL: 64 * 1024,  # base64 PKCS#10 with an attestation bundle: about 6 KiB
    REENROLL_PATH: 64 * 1024,
    CHALLENGE_PATH: 1024,  # {"device_id": ...}
    RELEASE_PATH: 4096,  # free text naming the destination
    "/ocsp": 4096,  # one CertID plus a nonce is about 100 octets
    "/v2x/ea/enrolment": _ITS,
    "/v2x/ea/authorization-validation": _ITS,
    "/v2x/aa/authorization": _ITS,
    "/operators/fido/challenge": 1024,  # {"operator": ...}
    "/operators/fido/register": 64 * 1024,  # a tpm or android-key registration: about 12 KiB
    # a key attestation and its IDevID chain, base64 in JSON (about 3 KiB)
    # ES9+/ES11 InitiateAuthentication: a challenge, euiccInfo1 and an address (under 1 KiB)
    "/preparation/initiate-authentication": 4096,
    "/discovery/initiate-authentication": 4096,
    "/preparation/authenticate-client": 16 * 1024,
    "/preparation/get-bound-package": 16 * 1024,
    "/preparation/handle-notification": 4096,
    "/discovery/authenticate-client": 16 * 1024,
    # Butterfly hops: the RA's shuffled batch (about 500 octets a certificate, at most
    # fleetid.authority.v2x.hop_services.FORWARD_CHUNK of them), the LA requests.
    "/v2x/ra/batch": _ITS,  # a vehicle's EeRaCertRequest, signed and encrypted
    "/v2x/aca/batch": 2 * 1024 * 1024,
    "/v2x/la/1/request": _ITS,
    "/v2x/la/2/request": _ITS,
    "/v2x/la/1/ca-key": _ITS,
    "/v2x/la/2/ca-key": _ITS,
    "/v2x/ra/download": _ITS,  # an EC-signed EeRaDownloadRequest
    "/v2x/ma/report": _ITS,  # a signed report naming one pseudonym certificate
    # The admin API: small JSON bodies, a PEM root for a manufacturer.
    "/admin/tokens": 4096,
    "/admin/crls": 1024,
    "/admin/manufacturers": 16 * 1024,
    "/admin/certificates/{serial}/revocation": 4096,
    "/admin/devices/{device_id}/revocation": 4096,
    "/admin/operators/{serial}/revocation": 4096,
}
DEFAULT_LIMIT: Final = 1024  # GET routes take no body


# Routes with a path parameter, as patterns (a parameter is one path segment).
_TEMPLATES: Final = tuple(
    (re.compile(re.sub(r"\{[^/}]+\}", "[^/]+", path)), limit)
    for path, limit in LIMITS.items()
    if "{" in path
)


def limit_for(path: str) -> int:
    """The largest request body ``path`` takes."""
    found = LIMITS.get(path)
    if found is not None:
        return found
    return next((limit for pattern, limit in _TEMPLATES if pattern.fullmatch(path)), DEFAULT_LIMIT)


def _too_large(limit: int) -> str:
    return f"the request body is over this route's limit of {limit} octets"


class BodyLimit:
    """ASGI middleware enforcing ``limit_for(path)`` on every HTTP request body."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = limit_for(scope["path"])
        declared = next((v for k, v in scope["headers"] if k == b"content-length"), None)
        if declared is not None:
            if not declared.isdigit():
                response = problem_response(
                    400, "bad-request", "Request not valid", "Content-Length is not a number"
                )
                await response(scope, receive, send)
                return
            if int(declared) > limit:
                response = problem_response(
                    413, "body-too-large", "Request body too large", _too_large(limit)
                )
                await response(scope, receive, send)
                return
        received = 0

        async def limited() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise BodyTooLargeError(_too_large(limit))
            return message

        await self.app(scope, limited, send)
