"""The OCSP responder for always-connected devices (RFC 6960), with pre-signed responses.

* **Transport.** ``POST /ocsp`` (body ``application/ocsp-request``) and
  ``GET /ocsp/{base64(DER request)}`` (RFC 6960 App. A.1); answers ``application/ocsp-response``.
* **Signer.** Each issuing-CA generation delegates to an OCSP responder certificate
  (RFC 6960 §4.2.2.2): issued by that CA, extendedKeyUsage id-kp-OCSPSigning, and
  id-pkix-ocsp-nocheck (§4.2.2.2.1) so that relying parties need not check the responder's own
  status; it is short-lived (``OcspPolicy.responder_lifetime``) and renewed from the HSM-held CA
  key when two thirds of its life are gone. Its private key is a *software* key held by the service
  (``DATA_DIR/ca/ocsp/issuing-<generation>.key``, mode 0600): that is the usual practice for a
  delegated responder (the CA key never signs responses, and a leaked responder key is
  bounded by the certificate's short life): ``fleetid.revocation.ocsp.delegation`` issues and
  keeps it. Responses are signed by that key through ``fleetid.crypto.ocsp_signing`` (ECDSA with
  the curve's hash) and name the responder by key hash.
* **Pre-signed responses** (RFC 6960 §2.5, RFC 9919 / RFC 5019 lightweight profile). A response
  per (certificate, CertID hash) is signed once and served until it is ``refresh_after`` old;
  ``presign`` signs the whole unexpired population ahead of requests, ``refresh`` re-signs what
  is due. ``sync`` polls the registry watermark (every ``poll_interval``, from a background loop
  in ``fleetid serve`` and on the request path) and re-signs *at once* the response of every
  certificate revoked since: a ``fleetid revoke`` in another process shows within a second.
* **Statuses.** good / revoked (time and reason) / unknown (a serial this issuer never issued,
  RFC 6960 §2.2). A request for an issuer this responder does not serve gets the
  ``unauthorized`` response status (§2.3), a request that does not parse (or holds more than one
  CertID, RFC 5019 §2.1.1) ``malformedRequest``.
* **Nonces** (RFC 8954). A request with a nonce gets a freshly signed response echoing it (never
  a cached one), and ``Cache-Control: no-store``; a nonce outside 1..32 octets gets
  ``malformedRequest`` (RFC 8954 §2.1).
* **HTTP caching** (RFC 5019 §6.2): pre-signed GET answers carry ETag, Last-Modified (thisUpdate),
  Expires (nextUpdate) and ``max-age`` at most ``http_max_age``, never past nextUpdate.

Every answer counts in ``fleetid_ocsp_responses_total`` as a cache ``hit`` or ``miss``, ``nonce``
(signed fresh) or ``error`` (an unsuccessful response status); ``sync`` observes each revocation's
publication lag on the ``ocsp`` channel (``fleetid.metrics``).

The relying party's side (a device checking the staple it fetched, or a peer's) is
``fleetid.revocation.check.ocsp``.
"""

from __future__ import annotations

import base64
import binascii
import functools
import hashlib
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from email.utils import format_datetime
from typing import Final

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509 import ocsp

from fleetid import metrics
from fleetid.clock import Clock
from fleetid.crypto.ocsp_signing import sign_ocsp_response
from fleetid.errors import EncodingError
from fleetid.formats.ocsp_certid import issuer_hashes
from fleetid.revocation.registry import (
    REASON_FLAGS,
    CertificateState,
    RevocationRegistry,
    StatusRecord,
)

__all__ = [
    "OCSP_REQUEST_TYPE",
    "OCSP_RESPONSE_TYPE",
    "DelegatedResponder",
    "OcspAnswer",
    "OcspPolicy",
    "OcspResponder",
    "decode_get_path",
]

OCSP_REQUEST_TYPE: Final = "application/ocsp-request"  # RFC 6960 App. C.1
OCSP_RESPONSE_TYPE: Final = "application/ocsp-response"  # RFC 6960 App. C.2
_NONCE_MAX: Final = 32  # RFC 8954 §2.1
_HASHES: Final[tuple[hashes.HashAlgorithm, ...]] = (hashes.SHA1(), hashes.SHA256())  # noqa: S303 - RFC 5019 §2.1.1 CertID hash


@dataclass(frozen=True, kw_only=True)
class OcspPolicy:
    """Validity and refresh of pre-signed responses and of the responder certificate."""

    validity: timedelta = timedelta(hours=24)  # nextUpdate - thisUpdate
    refresh_after: timedelta = timedelta(hours=8)  # re-sign a response this old
    poll_interval: float = 0.5  # seconds between registry watermark checks
    http_max_age: timedelta = timedelta(seconds=60)
    responder_lifetime: timedelta = timedelta(days=30)

    def __post_init__(self) -> None:
        if not timedelta(0) < self.refresh_after < self.validity:
            raise ValueError("responses must be refreshed before they expire")


@dataclass(frozen=True, kw_only=True)
class DelegatedResponder:
    """An issuing CA and the delegated responder that signs for it."""

    issuer_id: int
    issuer: x509.Certificate
    certificate: x509.Certificate
    private_key: ec.EllipticCurvePrivateKey = field(repr=False)

    def matches(self, cert_id: ocsp.OCSPRequest) -> bool:
        algorithm = cert_id.hash_algorithm
        return cert_id.issuer_name_hash == _name_hash(
            self.issuer, algorithm
        ) and cert_id.issuer_key_hash == _key_hash(self.issuer, algorithm)


@dataclass(frozen=True, kw_only=True)
class OcspAnswer:
    """A DER OCSPResponse and how HTTP may cache it."""

    der: bytes
    cacheable: bool
    this_update: datetime | None = None
    next_update: datetime | None = None

    def http_headers(self, now: datetime, policy: OcspPolicy) -> dict[str, str]:
        if not self.cacheable or self.this_update is None or self.next_update is None:
            return {"Cache-Control": "no-store"}
        remaining = int((self.next_update - now).total_seconds())
        max_age = max(0, min(remaining, int(policy.http_max_age.total_seconds())))
        return {
            "ETag": '"' + hashlib.sha256(self.der).hexdigest()[:32] + '"',
            "Last-Modified": format_datetime(self.this_update, usegmt=True),
            "Expires": format_datetime(self.next_update, usegmt=True),
            "Cache-Control": f"max-age={max_age}, public, no-transform, must-revalidate",
        }


@dataclass(frozen=True)
class _Signed:
    der: bytes
    this_update: datetime
    next_update: datetime


def _name_hash(issuer: x509.Certificate, algorithm: hashes.HashAlgorithm) -> bytes:
    return _cert_id_hashes(issuer, algorithm.name)[0]


def _key_hash(issuer: x509.Certificate, algorithm: hashes.HashAlgorithm) -> bytes:
    return _cert_id_hashes(issuer, algorithm.name)[1]


@functools.lru_cache(maxsize=64)
def _cert_id_hashes(issuer: x509.Certificate, algorithm_name: str) -> tuple[bytes, bytes]:
    algorithm = next((a for a in _HASHES if a.name == algorithm_name), None)
    if algorithm is None:
        raise UnsupportedAlgorithm(f"CertID hash {algorithm_name} is not served")
    return issuer_hashes(issuer, algorithm)


def _unsuccessful(status: ocsp.OCSPResponseStatus) -> OcspAnswer:
    metrics.OCSP_RESPONSES.labels("error").inc()
    der = ocsp.OCSPResponseBuilder.build_unsuccessful(status).public_bytes(
        serialization.Encoding.DER
    )
    return OcspAnswer(der=der, cacheable=False)


def decode_get_path(encoded: str) -> bytes:
    """The DER request of a GET path segment: base64 (RFC 6960 App. A.1), URL-decoded already
    or not, standard or URL-safe alphabet. Raises ``EncodingError``.
    """
    from urllib.parse import unquote

    text = unquote(encoded).strip().replace("-", "+").replace("_", "/")
    text += "=" * (-len(text) % 4)
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise EncodingError(f"the OCSP GET path is not base64: {exc}") from exc


class OcspResponder:
    """Answers OCSP requests for the issuing CAs in ``responders`` from pre-signed responses."""

    def __init__(
        self,
        *,
        registry: RevocationRegistry,
        responders: Mapping[int, DelegatedResponder],
        clock: Clock,
        policy: OcspPolicy | None = None,
    ) -> None:
        self._registry = registry
        self._responders = dict(responders)
        self._clock = clock
        self.policy = policy or OcspPolicy()
        self._cache: dict[tuple[int, int, str], _Signed] = {}
        self._lock = threading.Lock()
        self._watermark = registry.watermark()
        self._last_sync = time.monotonic()
        self.signatures = 0  # responses signed so far (the benchmark reads it)

    @property
    def watermark(self) -> int:
        """The registry watermark the cached responses reflect."""
        return self._watermark

    # -- answering -----------------------------------------------------------------------------

    def respond(self, request_der: bytes) -> OcspAnswer:
        """The answer to one DER OCSPRequest; never raises for a bad request (it answers one)."""
        if time.monotonic() - self._last_sync >= self.policy.poll_interval:
            self.sync()
        try:
            request = ocsp.load_der_ocsp_request(request_der)
            algorithm = request.hash_algorithm
            serial = request.serial_number
            nonce = _request_nonce(request)
        except (ValueError, UnsupportedAlgorithm, NotImplementedError):
            # Unparseable, a CertID hash pyca cannot name, or several CertIDs (pyca raises
            # NotImplementedError; RFC 5019 §2.1.1 allows one per request).
            return _unsuccessful(ocsp.OCSPResponseStatus.MALFORMED_REQUEST)
        if nonce is not None and not 1 <= len(nonce) <= _NONCE_MAX:
            return _unsuccessful(ocsp.OCSPResponseStatus.MALFORMED_REQUEST)
        if serial < 0:
            # RFC 5280 §4.1.2.2: serials are positive; no answer can name a negative one (and
            # pyca cannot sign one: found by fuzzing).
            return _unsuccessful(ocsp.OCSPResponseStatus.MALFORMED_REQUEST)
        responder = next((r for r in self._responders.values() if r.matches(request)), None)
        if responder is None:
            return _unsuccessful(ocsp.OCSPResponseStatus.UNAUTHORIZED)
        if nonce is not None:
            metrics.OCSP_RESPONSES.labels("nonce").inc()
            status = self._registry.status(responder.issuer_id, serial)
            signed = self._sign(responder, status, algorithm, nonce)
            return OcspAnswer(der=signed.der, cacheable=False)
        signed = self._cached(responder, serial, algorithm)
        return OcspAnswer(
            der=signed.der,
            cacheable=True,
            this_update=signed.this_update,
            next_update=signed.next_update,
        )

    def _cached(
        self, responder: DelegatedResponder, serial: int, algorithm: hashes.HashAlgorithm
    ) -> _Signed:
        key = (responder.issuer_id, serial, algorithm.name)
        now = self._clock.now()
        with self._lock:
            found = self._cache.get(key)
        if found is not None and now < found.this_update + self.policy.refresh_after:
            metrics.OCSP_RESPONSES.labels("hit").inc()
            return found
        metrics.OCSP_RESPONSES.labels("miss").inc()
        status = self._registry.status(responder.issuer_id, serial)
        signed = self._sign(responder, status, algorithm, None)
        if status.state is not CertificateState.UNKNOWN:  # never let strangers fill the cache
            with self._lock:
                self._cache[key] = signed
        return signed

    def _sign(
        self,
        responder: DelegatedResponder,
        status: StatusRecord,
        algorithm: hashes.HashAlgorithm,
        nonce: bytes | None,
    ) -> _Signed:
        now = self._clock.now().replace(microsecond=0)
        next_update = now + self.policy.validity
        cert_status = {
            CertificateState.GOOD: ocsp.OCSPCertStatus.GOOD,
            CertificateState.REVOKED: ocsp.OCSPCertStatus.REVOKED,
            CertificateState.UNKNOWN: ocsp.OCSPCertStatus.UNKNOWN,
        }[status.state]
        revoked = status.state is CertificateState.REVOKED
        builder = (
            ocsp.OCSPResponseBuilder()
            .add_response_by_hash(
                issuer_name_hash=_name_hash(responder.issuer, algorithm),
                issuer_key_hash=_key_hash(responder.issuer, algorithm),
                serial_number=status.serial_number,
                algorithm=algorithm,
                cert_status=cert_status,
                this_update=now,
                next_update=next_update,
                revocation_time=status.revoked_at if revoked else None,
                revocation_reason=REASON_FLAGS.get(status.reason or "") if revoked else None,
            )
            .responder_id(ocsp.OCSPResponderEncoding.HASH, responder.certificate)
            .certificates([responder.certificate])
        )
        if nonce is not None:
            builder = builder.add_extension(x509.OCSPNonce(nonce), critical=False)
        der = sign_ocsp_response(builder, responder.private_key)
        self.signatures += 1
        return _Signed(
            der=der,
            this_update=now,
            next_update=next_update,
        )

    # -- keeping responses current --------------------------------------------------------------

    def sync(self) -> int:
        """Re-sign at once the responses of certificates revoked since the last sync."""
        self._last_sync = time.monotonic()
        watermark = self._registry.watermark()
        if watermark <= self._watermark:
            return self._watermark
        now = self._clock.now()
        for entry in self._registry.changes(self._watermark, watermark):
            metrics.observe_publication_lag("ocsp", now, (entry.revoked_at,))
            responder = self._responders.get(entry.issuer_id)
            if responder is None:
                continue
            status = self._registry.status(entry.issuer_id, entry.serial_number)
            for algorithm in _HASHES:
                signed = self._sign(responder, status, algorithm, None)
                with self._lock:
                    self._cache[(entry.issuer_id, entry.serial_number, algorithm.name)] = signed
        self._watermark = watermark
        return watermark

    def refresh(self) -> int:
        """Re-sign every cached response that is ``refresh_after`` old; returns how many."""
        now = self._clock.now()
        with self._lock:
            due = [
                k
                for k, v in self._cache.items()
                if now >= v.this_update + self.policy.refresh_after
            ]
        for issuer_id, serial, algorithm_name in due:
            responder = self._responders[issuer_id]
            algorithm = next(a for a in _HASHES if a.name == algorithm_name)
            status = self._registry.status(issuer_id, serial)
            signed = self._sign(responder, status, algorithm, None)
            with self._lock:
                self._cache[(issuer_id, serial, algorithm_name)] = signed
        return len(due)

    def presign(self, *, limit: int | None = None) -> int:
        """Sign ahead a response (SHA-1 and SHA-256 CertIDs) for every unexpired certificate
        of the issuers served, up to ``limit`` certificates; returns how many certificates.
        One pass over the population and one over the revoked set: no query per certificate.
        """
        now = self._clock.now()
        done = 0
        watermark = self._registry.watermark()
        for issuer_id, responder in self._responders.items():
            revoked = {
                e.serial_number: e
                for e in self._registry.revoked(watermark, issuer_id=issuer_id, unexpired_at=now)
            }
            for serial in self._registry.unexpired(issuer_id, unexpired_at=now):
                if limit is not None and done >= limit:
                    return done
                entry = revoked.get(serial)
                status = StatusRecord(
                    state=CertificateState.GOOD if entry is None else CertificateState.REVOKED,
                    watermark=watermark,
                    issuer_id=issuer_id,
                    serial_number=serial,
                    revoked_at=None if entry is None else entry.revoked_at,
                    reason=None if entry is None else entry.reason,
                    sequence=None if entry is None else entry.sequence,
                )
                for algorithm in _HASHES:
                    signed = self._sign(responder, status, algorithm, None)
                    with self._lock:
                        self._cache[(issuer_id, serial, algorithm.name)] = signed
                done += 1
        return done


def _request_nonce(request: ocsp.OCSPRequest) -> bytes | None:
    try:
        return request.extensions.get_extension_for_class(x509.OCSPNonce).value.nonce
    except x509.ExtensionNotFound:
        return None
