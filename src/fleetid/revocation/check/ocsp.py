"""The relying party's check of an OCSP response (RFC 6960 §3.2), the one fleetid has.

A device checking the staple its peer sent (``fleetid.device.verifier``), a device checking its
own, and the tests all call :func:`check_ocsp_response` (or its two halves). In the order applied:

1. **Status.** A response whose responseStatus is not ``successful`` carries no certificate status
   and no signature (§2.3): ``StaleError`` (there is no current answer, never "good").
2. **Signer** (§3.2 (2), (3), (4); §4.2.2.2). The ResponderID names the signer, by key hash or by
   name (§4.2.1); it is the certificate's issuer itself, or a certificate in the response's
   ``certs`` that the issuer delegated to: issued *directly* by that issuer (its issuer name and
   its signature), with extendedKeyUsage id-kp-OCSPSigning, keyUsage (when present) allowing
   digitalSignature, and valid now (``StaleError`` when not). The response's signature must verify
   under the signer's key. A responder that names another issuer's delegate is refused.
3. **CertID** (§3.2 (1), §4.1.1). The response's one SingleResponse (a request carries one CertID,
   RFC 5019 §2.1.1, and so does its answer) must name this serial number and this issuer
   (issuerNameHash, issuerKeyHash under its own hash algorithm, ``fleetid.formats.ocsp_certid``).
4. **Critical extensions** (§4.4): an extension the checker does not understand, marked critical,
   in the response or the SingleResponse, refuses the response.
5. **Nonce and replay.** With the request's nonce, the response must echo it (RFC 8954 §2.1);
   ``not_before`` is a time the relying party knows the status changed at or after (a revocation
   it learnt from another channel, the thisUpdate of the newest response it already holds): an
   older thisUpdate is a replay. Both raise ``ReplayError``.
6. **Status, then freshness** (:meth:`OcspStatus.require_current`). A revoked answer raises
   ``CertificateRevokedError`` whatever its age (what was revoked stays revoked). Then the skew
   rule (§4.2.2.1, RFC 5019 §4): a thisUpdate up to ``skew`` ahead of the relying party's clock is
   accepted (the responder's clock may run ahead); a nextUpdate gets no skew, since a response
   past it is unreliable and stretching its life is a window for a replayed one; with ``max_age``,
   a thisUpdate older than that is stale too. All raise ``StaleError``.

The module imports only pyca/cryptography, ``fleetid.formats``, ``fleetid.crypto`` and
``fleetid.errors``: checking a response loads neither the responder, the CA, the store nor the
HSM.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509 import ocsp
from cryptography.x509.oid import ExtendedKeyUsageOID

from fleetid.crypto.pkix import issued_by
from fleetid.crypto.signer import verify_signature
from fleetid.errors import (
    CertificateRevokedError,
    EncodingError,
    ReplayError,
    StaleError,
    VerificationError,
)
from fleetid.formats.ocsp_certid import issuer_hashes
from fleetid.revocation.check._extensions import key_usage, refuse_unknown_critical

__all__ = [
    "OcspStatus",
    "check_ocsp_response",
    "ocsp_request",
    "verify_ocsp_response",
]

_NO_SKEW = timedelta(0)


def ocsp_request(
    leaf: x509.Certificate,
    issuer: x509.Certificate,
    *,
    algorithm: hashes.HashAlgorithm | None = None,
    nonce: bytes | None = None,
) -> bytes:
    """A DER OCSPRequest for ``leaf`` (a SHA-256 CertID unless told, as RFC 9919 allows)."""
    builder = ocsp.OCSPRequestBuilder().add_certificate(leaf, issuer, algorithm or hashes.SHA256())
    if nonce is not None:
        builder = builder.add_extension(x509.OCSPNonce(nonce), critical=False)
    return builder.build().public_bytes(serialization.Encoding.DER)


@dataclass(frozen=True, kw_only=True)
class OcspStatus:
    """An authenticated answer about one certificate, not (yet) judged for freshness."""

    status: ocsp.OCSPCertStatus
    this_update: datetime
    next_update: datetime | None
    produced_at: datetime
    revocation_time: datetime | None
    revocation_reason: x509.ReasonFlags | None
    responder: x509.Certificate  # the issuer, or the responder it delegated to

    def require_current(
        self,
        now: datetime,
        *,
        max_age: timedelta | None = None,
        skew: timedelta = _NO_SKEW,
    ) -> None:
        """Raise unless this is a current answer that is not "revoked" (see the module doc, 6).

        ``CertificateRevokedError`` for a revoked answer, whatever its age; ``StaleError`` for a
        thisUpdate more than ``skew`` ahead of ``now``, a nextUpdate before ``now``, or a
        thisUpdate older than ``max_age``.
        """
        if self.status is ocsp.OCSPCertStatus.REVOKED:
            reason = self.revocation_reason.value if self.revocation_reason else "unspecified"
            raise CertificateRevokedError(f"OCSP: revoked at {self.revocation_time} ({reason})")
        if self.this_update > now + skew:
            raise StaleError(
                f"the OCSP response's thisUpdate ({self.this_update.isoformat()}) is in the future"
            )
        if self.next_update is not None and now > self.next_update:
            raise StaleError(
                f"the OCSP response expired at {self.next_update.isoformat()} (its nextUpdate)"
            )
        if max_age is not None and now - self.this_update > max_age:
            raise StaleError(
                f"the OCSP response of {self.this_update.isoformat()} is older than the policy "
                "allows"
            )


def _key_hash(certificate: x509.Certificate) -> bytes:
    """SHA-1 of the certificate's subjectPublicKey value: ResponderID byKey (RFC 6960 §4.2.1)."""
    return issuer_hashes(certificate, hashes.SHA1())[1]  # noqa: S303 - RFC 6960 §4.2.1 KeyHash


def _names_signer(response: ocsp.OCSPResponse, certificate: x509.Certificate) -> bool:
    if response.responder_key_hash is not None:
        try:
            return response.responder_key_hash == _key_hash(certificate)
        except VerificationError:  # not an EC key: not a fleet responder
            return False
    return response.responder_name == certificate.subject


def _authorised_responder(
    response: ocsp.OCSPResponse, issuer: x509.Certificate, now: datetime
) -> x509.Certificate:
    """The certificate whose key must have signed ``response``: the issuer, or its delegate."""
    if _names_signer(response, issuer):
        return issuer
    for candidate in response.certificates:
        if not _names_signer(response, candidate):
            continue
        if candidate.issuer != issuer.subject or not issued_by(candidate, issuer):
            raise VerificationError(
                "the OCSP responder was not delegated by this issuer (RFC 6960 §4.2.2.2: "
                "issued directly by the CA that issued the certificate)"
            )
        try:
            usage = list(candidate.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value)
        except x509.ExtensionNotFound:
            usage = []
        if ExtendedKeyUsageOID.OCSP_SIGNING not in usage:
            raise VerificationError("the responder certificate lacks id-kp-OCSPSigning")
        usage_bits = key_usage(candidate)
        if usage_bits is not None and not usage_bits.digital_signature:
            raise VerificationError("the responder certificate's keyUsage forbids signing")
        if not candidate.not_valid_before_utc <= now <= candidate.not_valid_after_utc:
            raise StaleError("the delegated OCSP responder certificate is not valid now")
        return candidate
    raise VerificationError("the OCSP response is not signed by the issuer or its delegate")


def _check_signature(response: ocsp.OCSPResponse, signer: x509.Certificate) -> None:
    key = signer.public_key()
    algorithm = response.signature_hash_algorithm
    if not isinstance(key, ec.EllipticCurvePublicKey) or algorithm is None:
        raise VerificationError("the OCSP response is not signed with ECDSA")
    try:
        verify_signature(key, response.signature, response.tbs_response_bytes, algorithm)
    except VerificationError:
        raise VerificationError("the OCSP response signature does not verify") from None


def _single_response(
    response: ocsp.OCSPResponse, serial_number: int, issuer: x509.Certificate
) -> ocsp.OCSPSingleResponse:
    singles = list(response.responses)
    if len(singles) != 1:
        raise VerificationError(
            f"an OCSP response with {len(singles)} SingleResponses: a request carries one CertID "
            "(RFC 5019 §2.1.1), and so does its answer"
        )
    for single in singles:
        try:
            name_hash, key_hash = issuer_hashes(issuer, single.hash_algorithm)
        except UnsupportedAlgorithm:
            continue
        if (
            single.serial_number == serial_number
            and single.issuer_name_hash == name_hash
            and single.issuer_key_hash == key_hash
        ):
            return single
    raise VerificationError(
        "the OCSP response is about another certificate or issuer (RFC 6960 §4.1.1 CertID)"
    )


def verify_ocsp_response(
    response_der: bytes,
    *,
    serial_number: int,
    issuer: x509.Certificate,
    now: datetime,
    nonce: bytes | None = None,
    not_before: datetime | None = None,
) -> OcspStatus:
    """Steps 1 to 5 of the module doc: an authenticated, non-replayed answer about the
    certificate ``serial_number`` of ``issuer``, whatever its status and age; raises otherwise.
    """
    try:
        response = ocsp.load_der_ocsp_response(response_der)
    except ValueError as exc:
        raise EncodingError(f"not a DER OCSPResponse: {exc}") from exc
    if response.response_status is not ocsp.OCSPResponseStatus.SUCCESSFUL:
        raise StaleError(f"the OCSP responder answered {response.response_status.name}")
    signer = _authorised_responder(response, issuer, now)
    _check_signature(response, signer)
    single = _single_response(response, serial_number, issuer)
    refuse_unknown_critical(response.extensions, "the OCSP response")
    refuse_unknown_critical(response.single_extensions, "the OCSP SingleResponse")
    if nonce is not None:
        try:
            echoed = response.extensions.get_extension_for_class(x509.OCSPNonce).value.nonce
        except x509.ExtensionNotFound:
            echoed = None
        if echoed != nonce:
            raise ReplayError("the OCSP response does not echo the request's nonce")
    this_update = single.this_update_utc
    if not_before is not None and this_update < not_before:
        raise ReplayError(
            f"the OCSP response (thisUpdate {this_update:%Y-%m-%dT%H:%M:%SZ}) predates what is"
            f" known ({not_before:%Y-%m-%dT%H:%M:%SZ}): a replay"
        )
    revoked = single.certificate_status is ocsp.OCSPCertStatus.REVOKED
    return OcspStatus(
        status=single.certificate_status,
        this_update=this_update,
        next_update=single.next_update_utc,
        produced_at=response.produced_at_utc,
        revocation_time=single.revocation_time_utc if revoked else None,
        revocation_reason=single.revocation_reason if revoked else None,
        responder=signer,
    )


def check_ocsp_response(
    response_der: bytes,
    *,
    serial_number: int,
    issuer: x509.Certificate,
    now: datetime,
    nonce: bytes | None = None,
    not_before: datetime | None = None,
    max_age: timedelta | None = None,
    skew: timedelta = _NO_SKEW,
) -> OcspStatus:
    """Verify an OCSP response for one certificate; raise unless it is a current answer.

    Returns a good or unknown answer (the caller decides what "unknown" means to it); raises
    ``CertificateRevokedError`` for a revoked one, ``StaleError``, ``ReplayError``,
    ``EncodingError`` or ``VerificationError`` as the module doc says.
    """
    answer = verify_ocsp_response(
        response_der,
        serial_number=serial_number,
        issuer=issuer,
        now=now,
        nonce=nonce,
        not_before=not_before,
    )
    answer.require_current(now, max_age=max_age, skew=skew)
    return answer
