"""EST (RFC 7030) routes under ``/.well-known/est/``, with the RFC's exact body encodings.

Bodies are base64 of DER in both directions (§4, with the ``Content-Transfer-Encoding: base64``
semantics; RFC 8951 §3 says to decode base64 whatever that header says):

* ``cacerts`` (§4.1): ``application/pkcs7-mime`` certs-only CMS SignedData.
* ``simpleenroll`` / ``simplereenroll`` (§4.2): request ``application/pkcs10`` (PKCS#10 DER),
  response ``application/pkcs7-mime; smime-type=certs-only`` holding the issued certificate.
* ``csrattrs`` (§4.5): ``application/csrattrs``, the DER ``CsrAttrs`` SEQUENCE.

The route handlers only decode and encode; ``fleetid.authority.enrolment`` decides.
"""

from __future__ import annotations

import base64
import binascii
from typing import Annotated, Any, ClassVar, Final

from asn1crypto import core
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.serialization import pkcs7
from fastapi import APIRouter, Depends, Request, Response
from fastapi.security import HTTPBasic, HTTPBasicCredentials

from fleetid.api.openapi import problem_responses
from fleetid.api.peer_certificate import peer_certificate
from fleetid.api.writes import write, write_prepared
from fleetid.authority.enrolment import EnrolmentService
from fleetid.authority.lifecycle import LifecycleService
from fleetid.authority.provisioners import BasicCredentials
from fleetid.errors import EncodingError, NotConfiguredError, UnsupportedMediaTypeError
from fleetid.formats.proof import PROOF_HEADER

__all__ = [
    "EST_PREFIX",
    "csr_attributes_der",
    "decode_base64_body",
    "encode_base64_body",
    "enrolment_of",
    "lifecycle_of",
    "router",
]

EST_PREFIX: Final = "/.well-known/est"
PKCS7_CERTS_ONLY: Final = "application/pkcs7-mime; smime-type=certs-only"
PKCS10: Final = "application/pkcs10"
CSRATTRS: Final = "application/csrattrs"

_basic = HTTPBasic(auto_error=False, realm="fleetid EST")
router = APIRouter(prefix=EST_PREFIX, tags=["EST (RFC 7030)"])


def decode_base64_body(body: bytes) -> bytes:
    """The DER inside a base64 body; line breaks and other whitespace are ignored (RFC 2045).
    The body's size is bounded before it is read (``fleetid.api.body_limits``)."""
    text = b"".join(body.split())
    if not text:
        raise EncodingError("the body is empty; EST wants base64 DER (RFC 7030 §4.2.1)")
    try:
        return base64.b64decode(text, validate=True)
    except binascii.Error:
        raise EncodingError("the body is not base64 (RFC 7030 §4, RFC 8951)") from None


async def _pkcs10_body(request: Request) -> bytes:
    """The DER CSR of an enrolment request, which must be ``application/pkcs10`` (§4.2.1)."""
    media_type = request.headers.get("content-type", "").partition(";")[0].strip().lower()
    if media_type != PKCS10:
        raise UnsupportedMediaTypeError(f"an EST enrolment request is {PKCS10} (RFC 7030 §4.2.1)")
    return decode_base64_body(await request.body())


def encode_base64_body(der: bytes) -> bytes:
    """Base64 in 64-character lines, CRLF-terminated, as MIME bodies are written (RFC 2045)."""
    text = base64.b64encode(der)
    return b"".join(text[i : i + 64] + b"\r\n" for i in range(0, len(text), 64))


def _certs_only(certificates: list[x509.Certificate]) -> Response:
    der = pkcs7.serialize_certificates(certificates, serialization.Encoding.DER)
    return Response(
        encode_base64_body(der),
        media_type=PKCS7_CERTS_ONLY,
        headers={"Content-Transfer-Encoding": "base64"},
    )


class _Attribute(core.Sequence):  # type: ignore[misc]  # asn1crypto is untyped
    _fields: ClassVar = [
        ("type", core.ObjectIdentifier),
        ("values", core.SetOf, {"spec": core.Any}),
    ]


class _AttrOrOid(core.Choice):  # type: ignore[misc]
    _alternatives: ClassVar = [("oid", core.ObjectIdentifier), ("attribute", _Attribute)]


class _CsrAttrs(core.SequenceOf):  # type: ignore[misc]
    _child_spec = _AttrOrOid


_ECDSA_WITH_SHA256: Final = "1.2.840.10045.4.3.2"
_EC_PUBLIC_KEY: Final = "1.2.840.10045.2.1"
_SECP256R1: Final = "1.2.840.10045.3.1.7"


def csr_attributes_der() -> bytes:
    """``CsrAttrs`` (§4.5.2): sign with ecdsa-with-SHA256, over an EC key on P-256."""
    return bytes(
        _CsrAttrs(
            [
                _AttrOrOid(name="oid", value=core.ObjectIdentifier(_ECDSA_WITH_SHA256)),
                _AttrOrOid(
                    name="attribute",
                    value=_Attribute(
                        {
                            "type": _EC_PUBLIC_KEY,
                            "values": [core.ObjectIdentifier(_SECP256R1)],
                        }
                    ),
                ),
            ]
        ).dump()
    )


# The hot routes (enrolment, re-enrolment, the challenge) call these directly rather than
# through FastAPI's dependency injection, whose per-request resolution was about a third of
# the framework's cost of an answer (benchmarks/hot_routes.py); the OpenAPI document is the
# same (``_BASIC_SECURITY``, ``fleetid.api.openapi.SECURITY_SCHEMES``).
def enrolment_of(request: Request) -> EnrolmentService:
    """The app's EST service."""
    service: EnrolmentService = request.app.state.enrolment
    return service


def lifecycle_of(request: Request) -> LifecycleService:
    """The lifecycle service (re-enrolment, challenges, release); EST alone has none."""
    service = request.app.state.enrolment
    if not isinstance(service, LifecycleService):
        raise NotConfiguredError("this authority has no lifecycle service")
    return service


async def _service(request: Request) -> EnrolmentService:
    return enrolment_of(request)


Service = Annotated[EnrolmentService, Depends(_service)]
# HTTP Basic as a route documents it (RFC 7617), for routes that read it with ``_basic``.
_BASIC_SECURITY: Final[dict[str, Any]] = {"security": [{_basic.scheme_name: []}]}

_PKCS10_BODY: Final[dict[str, Any]] = {
    "requestBody": {
        "required": True,
        "content": {PKCS10: {"schema": {"type": "string", "contentEncoding": "base64"}}},
    }
}
# 401 no or a spent credential, 403 policy, 409 a concurrent write, 415 not application/pkcs10,
# 503 signing unavailable or (re-key) attestation not configured.
_ENROL_REFUSALS: Final = (401, 403, 409, 415, 503)
_CERTS_ONLY_RESPONSE: Final[dict[int | str, dict[str, Any]]] = {
    200: {
        "content": {PKCS7_CERTS_ONLY: {"schema": {"type": "string", "contentEncoding": "base64"}}},
        "description": "base64 DER CMS SignedData, certs-only",
    }
}


@router.get(
    "/cacerts", responses={**_CERTS_ONLY_RESPONSE, **problem_responses()}, response_class=Response
)
def cacerts(service: Service) -> Response:
    """The CA certificates (RFC 7030 §4.1): the issuing CA and the fleet root (a DER SET OF)."""
    return _certs_only(service.cacerts())


@router.post(
    "/simpleenroll",
    openapi_extra={**_PKCS10_BODY, **_BASIC_SECURITY},
    responses={**_CERTS_ONLY_RESPONSE, **problem_responses(*_ENROL_REFUSALS)},
    response_class=Response,
)
async def simpleenroll(request: Request) -> Response:
    """Enrol (RFC 7030 §4.2.1), authorised by a provisioner (HTTP Basic one-time token)."""
    service = enrolment_of(request)
    # FastAPI's own HTTP Basic parser, called directly: a malformed header is its 401.
    basic: HTTPBasicCredentials | None = await _basic(request)
    der = await _pkcs10_body(request)
    credentials = (
        None
        if basic is None
        else BasicCredentials(username=basic.username, password=basic.password)
    )
    # The evidence is examined before the batch's transaction, the records inside it.
    certificate = await write_prepared(
        request, lambda: service.examine(credentials, der), service.enrol
    )
    return _certs_only([certificate])


@router.post(
    "/simplereenroll",
    openapi_extra=_PKCS10_BODY,
    responses={**_CERTS_ONLY_RESPONSE, **problem_responses(*_ENROL_REFUSALS)},
    response_class=Response,
)
async def simplereenroll(request: Request) -> Response:
    """Re-enrol (RFC 7030 §4.2.2) under the current credential; the old one is superseded.

    Possession of the current credential is proven by TLS client authentication with it
    (§3.3.2) or by a ``Fleetid-Proof`` header; ``fleetid.authority.lifecycle`` refuses neither.
    """
    service = lifecycle_of(request)
    der = await _pkcs10_body(request)
    proof = request.headers.get(PROOF_HEADER)
    client = peer_certificate(request)
    certificate = await write(
        request, lambda: service.simple_reenroll(der, proof, client_certificate=client)
    )
    return _certs_only([certificate])


@router.get(
    "/csrattrs",
    response_class=Response,
    responses={
        200: {"content": {CSRATTRS: {"schema": {"type": "string"}}}, "description": ""},
        **problem_responses(),
    },
)
async def csrattrs() -> Response:
    """What the CSR should contain (RFC 7030 §4.5)."""
    return Response(
        encode_base64_body(csr_attributes_der()),
        media_type=CSRATTRS,
        headers={"Content-Transfer-Encoding": "base64"},
    )
