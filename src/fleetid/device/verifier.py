"""A device's answer to "is this peer certificate acceptable now?", by connectivity profile.

``PeerVerifier.assess`` runs RFC 5280 path validation with pyca's verifier (through
``TrustStore.verify``; no path logic here), then one revocation step chosen by the device's
``fleetid.policy.connectivity`` profile:

* **always-on**, OCSP (RFC 6960): the peer's stapled response (or one fetched by the caller).
  The CertID must name this certificate and the issuer of the *validated* chain (§4.1.1); the
  response is signed by that issuer or by a responder it delegated with id-kp-OCSPSigning
  (§4.2.2.2); it must be current (``thisUpdate`` not in the future, ``nextUpdate`` not past, and
  not older than the policy's maximum age), and never older than one already seen for the same
  certificate (a replayed old "good" is refused).
* **intermittent**, X.509 CRLs (RFC 5280 §5, §6.3): through the device's
  ``fleetid.device.crl_client.CrlClient`` (``use_crl_client``: it fetches on contact), or CRLs
  handed to ``load_crl``: a full CRL and optionally a delta whose
  base CRL number the full CRL reaches, signed by the issuer, for the certificate's distribution
  point (IDP ``fullName`` against the certificate's CRL DP); past ``nextUpdate`` + tolerance the
  CRL is *stale*, never "not revoked".
* **offline**, the signed filter (``fleetid.revocation.filter``), loaded in advance from a
  broadcast channel. The check does no I/O. The filter's signer must be an issuing-CA
  certificate the device validated to its anchors (``fleetid.revocation.publish`` signs with the
  issuing CA's key).

The verdict is a ``PeerVerdict`` with its reason. ``assess`` raises ``CertificateRevokedError``
for a revoked peer and ``VerificationError`` for a failed path or a forged/mismatched artefact;
it returns STALE or NOT_COVERED verdicts (``acceptable`` False unless the policy's not-covered
grace applies). ``verify`` is the strict form: it raises unless the verdict is acceptable.
"""

from __future__ import annotations

import enum
import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime

import httpx
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509 import ocsp
from cryptography.x509.oid import AuthorityInformationAccessOID, ExtendedKeyUsageOID

from fleetid.clock import Clock
from fleetid.device.crl_client import CrlClient, StaleCrlError, delta_crl_base
from fleetid.device.truststore import TrustStore
from fleetid.errors import EncodingError, VerificationError
from fleetid.formats.ocsp_certid import issuer_hashes
from fleetid.policy.connectivity import ConnectivityProfile, NotCoveredAction, RevocationPolicy
from fleetid.revocation.filter import (
    CertificateRevokedError,
    FilterRollbackError,
    FilterVerifier,
    NotCoveredError,
    Verdict,
    certificate_id,
)
from fleetid.revocation.filter_format import FilterHeader, FilterKind, key_id, parse_filter

__all__ = [
    "OcspReplayError",
    "PeerStatus",
    "PeerVerdict",
    "PeerVerifier",
    "RevocationSource",
    "StaleRevocationError",
    "fetch_staple",
    "filter_certificate_id",
    "ocsp_request",
]

OcspFetcher = Callable[[x509.Certificate, x509.Certificate], bytes]
"""``(leaf, issuer) -> DER OCSPResponse``: how an always-on verifier asks if nothing is stapled."""


class PeerStatus(enum.StrEnum):
    VALID = "valid"
    REVOKED = "revoked"
    STALE = "stale material"
    NOT_COVERED = "not covered"


class RevocationSource(enum.StrEnum):
    OCSP = "ocsp"
    CRL = "crl"
    FILTER = "filter"


class StaleRevocationError(VerificationError):
    """The revocation material is missing or older than the policy allows (never "not revoked")."""


class OcspReplayError(VerificationError):
    """An OCSP response older than one already seen for the same certificate."""


@dataclass(frozen=True, kw_only=True)
class PeerVerdict:
    """Why a peer certificate is, or is not, acceptable now."""

    status: PeerStatus
    source: RevocationSource
    acceptable: bool
    reason: str
    serial: int
    checked_at: datetime
    watermark: int | None = None  # the filter's registry watermark (offline profile)


def filter_certificate_id(
    certificate: x509.Certificate, issuer: x509.Certificate | None = None
) -> bytes:
    """The filter key of a certificate: the issuer's key identifier and the serial.

    The key identifier is the issuer's subjectKeyIdentifier (what the authority's ``ca_keys``
    table records); without ``issuer``, the certificate's authorityKeyIdentifier, which names the
    same value in certificates this authority issues (RFC 5280 §4.2.1.1).
    """
    if issuer is not None:
        try:
            ski = issuer.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
            identifier = ski.digest
        except x509.ExtensionNotFound:
            identifier = x509.SubjectKeyIdentifier.from_public_key(_ec_key(issuer)).digest
    else:
        try:
            aki = certificate.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier)
        except x509.ExtensionNotFound:
            raise VerificationError("the certificate has no authorityKeyIdentifier") from None
        if aki.value.key_identifier is None:
            raise VerificationError("the authorityKeyIdentifier has no keyIdentifier")
        identifier = aki.value.key_identifier
    return certificate_id(identifier, certificate.serial_number)


def _ec_key(certificate: x509.Certificate) -> ec.EllipticCurvePublicKey:
    key = certificate.public_key()
    if not isinstance(key, ec.EllipticCurvePublicKey):
        raise VerificationError("fleet CA keys are EC keys")
    return key


def _is_revocation_signer(certificate: x509.Certificate) -> bool:
    """A CA certificate whose key may sign revocation material (RFC 5280 §4.2.1.3 cRLSign)."""
    try:
        constraints = certificate.extensions.get_extension_for_class(x509.BasicConstraints).value
        usage = certificate.extensions.get_extension_for_class(x509.KeyUsage).value
    except x509.ExtensionNotFound:
        return False
    return constraints.ca and usage.crl_sign


# --- OCSP -----------------------------------------------------------------------------------------


def ocsp_request(leaf: x509.Certificate, issuer: x509.Certificate) -> bytes:
    """A DER OCSPRequest for ``leaf`` (SHA-256 CertID, as RFC 9919 allows)."""
    builder = ocsp.OCSPRequestBuilder().add_certificate(leaf, issuer, hashes.SHA256())
    return builder.build().public_bytes(serialization.Encoding.DER)


def _ocsp_url(leaf: x509.Certificate) -> str:
    try:
        aia = leaf.extensions.get_extension_for_class(x509.AuthorityInformationAccess).value
    except x509.ExtensionNotFound:
        raise VerificationError("the certificate names no OCSP responder") from None
    for description in aia:
        if description.access_method == AuthorityInformationAccessOID.OCSP:
            return str(description.access_location.value)
    raise VerificationError("the certificate names no OCSP responder")


def fetch_staple(client: httpx.Client, leaf: x509.Certificate, issuer: x509.Certificate) -> bytes:
    """The device's own OCSP status, to staple: POST to the responder its certificate names."""
    response = client.post(
        _ocsp_url(leaf),
        content=ocsp_request(leaf, issuer),
        headers={"Content-Type": "application/ocsp-request"},
    )
    if response.status_code != 200:
        raise VerificationError(f"the OCSP responder answered HTTP {response.status_code}")
    return response.content


def _ocsp_signer(
    response: ocsp.OCSPResponse, issuer: x509.Certificate, now: datetime
) -> x509.Certificate:
    """The issuer itself, or a responder certificate it delegated to (RFC 6960 §4.2.2.2)."""
    if _responder_is(response, issuer):
        return issuer
    for candidate in response.certificates:
        if not _responder_is(response, candidate) or candidate.issuer != issuer.subject:
            continue
        try:
            candidate.verify_directly_issued_by(issuer)
            eku = candidate.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
        except (ValueError, TypeError, InvalidSignature, x509.ExtensionNotFound):
            continue
        if ExtendedKeyUsageOID.OCSP_SIGNING not in eku:
            continue
        if not candidate.not_valid_before_utc <= now <= candidate.not_valid_after_utc:
            raise StaleRevocationError("the delegated OCSP responder certificate is not valid now")
        return candidate
    raise VerificationError("the OCSP response is not signed by the issuer or its delegate")


def _responder_is(response: ocsp.OCSPResponse, certificate: x509.Certificate) -> bool:
    if response.responder_key_hash is not None:
        spki = certificate.public_key().public_bytes(
            serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
        )
        return response.responder_key_hash == hashlib.sha1(spki).digest()  # noqa: S324 - RFC 6960 §4.2.1 KeyHash
    return response.responder_name == certificate.subject


# --- CRL ------------------------------------------------------------------------------------------


def _crl_number(crl: x509.CertificateRevocationList) -> int:
    try:
        return crl.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number
    except x509.ExtensionNotFound:
        raise EncodingError("a CRL without a CRL number (RFC 5280 §5.2.3)") from None


def _idp_names(crl: x509.CertificateRevocationList) -> frozenset[str] | None:
    try:
        idp = crl.extensions.get_extension_for_class(x509.IssuingDistributionPoint).value
    except x509.ExtensionNotFound:
        return None
    return frozenset(str(name.value) for name in idp.full_name or ())


def _cdp_names(certificate: x509.Certificate) -> frozenset[str]:
    try:
        cdp = certificate.extensions.get_extension_for_class(x509.CRLDistributionPoints).value
    except x509.ExtensionNotFound:
        return frozenset()
    return frozenset(str(n.value) for point in cdp for n in point.full_name or ())


@dataclass(frozen=True, kw_only=True)
class _CrlSet:
    full: x509.CertificateRevocationList
    delta: x509.CertificateRevocationList | None


# --- the verifier ---------------------------------------------------------------------------------


class PeerVerifier:
    """Checks peer certificates for one device under one connectivity policy.

    ``issuers`` are the issuing-CA certificates the device knows (from its enrolment's
    ``cacerts``); each is validated against ``trust`` when added. Only they may sign filters.
    """

    def __init__(
        self,
        *,
        trust: TrustStore,
        policy: RevocationPolicy,
        clock: Clock,
        issuers: Sequence[x509.Certificate] = (),
        ocsp_fetcher: OcspFetcher | None = None,
    ) -> None:
        self._trust = trust
        self._policy = policy
        self._clock = clock
        self._ocsp_fetcher = ocsp_fetcher
        self._issuers: dict[bytes, x509.Certificate] = {}
        self._filter: FilterVerifier | None = None
        self._crls: dict[tuple[bytes, frozenset[str] | None], _CrlSet] = {}
        self._crl_clients: dict[bytes, CrlClient] = {}
        self._ocsp_seen: dict[tuple[bytes, int], datetime] = {}
        for issuer in issuers:
            self.add_issuer(issuer)

    @property
    def policy(self) -> RevocationPolicy:
        return self._policy

    @property
    def filter_watermark(self) -> int | None:
        """The registry watermark of the loaded filter chain (offline profile)."""
        return self._filter.watermark if self._filter else None

    def add_issuer(self, issuer: x509.Certificate) -> None:
        """Learn an issuing CA after validating it to the anchors (pyca path validation)."""
        if not _is_revocation_signer(issuer):
            raise VerificationError(f"{issuer.subject.rfc4514_string()} may not sign revocations")
        self._trust.verify(issuer, [], self._clock.now())
        self._issuers[key_id(_ec_key(issuer))] = issuer

    # -- offline material ---------------------------------------------------------------------

    def load_filter(self, data: bytes) -> FilterHeader:
        """Verify and apply a full or delta filter (signed by a known issuing CA).

        Raises as ``FilterVerifier.load`` does; a full filter under another issuing key than the
        loaded one replaces it only if it is not older (``FilterRollbackError``).
        """
        header = parse_filter(data).header
        issuer = self._issuers.get(header.signer_key_id)
        if issuer is None:
            raise VerificationError(
                "the filter is signed by a key that is not a validated issuing CA of this fleet"
            )
        if self._filter is not None and self._filter.chain[0].signer_key_id == header.signer_key_id:
            return self._filter.load(data)
        fresh = FilterVerifier(_ec_key(issuer))
        if header.kind is FilterKind.FULL and self._filter is not None:
            head = self._filter.chain[-1]
            if header.watermark < head.watermark or header.coverage_until < head.coverage_until:
                raise FilterRollbackError(
                    f"filter at watermark {header.watermark} is older than the loaded "
                    f"watermark {head.watermark}"
                )
        loaded = fresh.load(data)  # a delta without its full filter raises DeltaGapError here
        self._filter = fresh
        return loaded

    def use_crl_client(self, issuer: x509.Certificate, client: CrlClient) -> None:
        """Answer the intermittent profile for ``issuer``'s certificates from ``client``
        (``fleetid.device.crl_client``: it fetches what is missing on each contact)."""
        self.add_issuer(issuer)
        self._crl_clients[key_id(_ec_key(issuer))] = client

    def load_crl(self, crl: x509.CertificateRevocationList | bytes) -> None:
        """Verify a full or delta CRL from a known issuer and keep the newest per scope."""
        if isinstance(crl, bytes):
            try:
                crl = x509.load_der_x509_crl(crl)
            except ValueError as exc:
                raise EncodingError(f"not a DER CRL: {exc}") from exc
        issuer = next(
            (i for i in self._issuers.values() if i.subject == crl.issuer and self._signed(crl, i)),
            None,
        )
        if issuer is None:
            raise VerificationError("the CRL is not signed by a validated issuing CA")
        number = _crl_number(crl)
        scope = (key_id(_ec_key(issuer)), _idp_names(crl))
        current = self._crls.get(scope)
        base = delta_crl_base(crl)
        if base is None:
            if current is not None and number < _crl_number(current.full):
                raise FilterRollbackError(f"CRL {number} is older than the held CRL")
            keep = current.delta if current and current.delta else None
            if keep is not None and _crl_number(keep) <= number:
                keep = None  # the new full CRL already includes that delta
            self._crls[scope] = _CrlSet(full=crl, delta=keep)
            return
        if current is None:
            raise StaleRevocationError("a delta CRL needs its base CRL first")
        if current.delta is not None and number < _crl_number(current.delta):
            raise FilterRollbackError(f"delta CRL {number} is older than the held delta")
        self._crls[scope] = _CrlSet(full=current.full, delta=crl)

    @staticmethod
    def _signed(crl: x509.CertificateRevocationList, issuer: x509.Certificate) -> bool:
        return crl.is_signature_valid(_ec_key(issuer))

    # -- the question -------------------------------------------------------------------------

    def assess(
        self,
        leaf: x509.Certificate,
        intermediates: Sequence[x509.Certificate] = (),
        *,
        ocsp_response: bytes | None = None,
    ) -> PeerVerdict:
        """Validate the path, then the revocation status under this device's profile.

        Raises ``VerificationError`` if the path fails, ``CertificateRevokedError`` if revoked;
        returns the verdict otherwise (check ``acceptable``, or call ``verify``).
        """
        now = self._clock.now()
        # The issuing CAs the device already holds are candidate intermediates too.
        chain = self._trust.verify(leaf, [*intermediates, *self._issuers.values()], now)
        issuer = chain[1]
        profile = self._policy.profile
        if profile is ConnectivityProfile.ALWAYS_ON:
            return self._by_ocsp(leaf, issuer, now, ocsp_response)
        if profile is ConnectivityProfile.INTERMITTENT:
            return self._by_crl(leaf, issuer, now)
        return self._by_filter(leaf, issuer, now)

    def verify(
        self,
        leaf: x509.Certificate,
        intermediates: Sequence[x509.Certificate] = (),
        *,
        ocsp_response: bytes | None = None,
    ) -> PeerVerdict:
        """``assess``, raising ``StaleRevocationError`` or ``NotCoveredError`` unless acceptable."""
        verdict = self.assess(leaf, intermediates, ocsp_response=ocsp_response)
        if verdict.acceptable:
            return verdict
        if verdict.status is PeerStatus.NOT_COVERED:
            raise NotCoveredError(verdict.reason)
        raise StaleRevocationError(verdict.reason)

    def _verdict(
        self,
        status: PeerStatus,
        source: RevocationSource,
        leaf: x509.Certificate,
        now: datetime,
        reason: str,
        *,
        acceptable: bool | None = None,
        watermark: int | None = None,
    ) -> PeerVerdict:
        if status is PeerStatus.REVOKED:
            raise CertificateRevokedError(f"serial {leaf.serial_number:x}: {reason}")
        return PeerVerdict(
            status=status,
            source=source,
            acceptable=status is PeerStatus.VALID if acceptable is None else acceptable,
            reason=reason,
            serial=leaf.serial_number,
            checked_at=now,
            watermark=watermark,
        )

    def _by_ocsp(
        self,
        leaf: x509.Certificate,
        issuer: x509.Certificate,
        now: datetime,
        der: bytes | None,
    ) -> PeerVerdict:
        source = RevocationSource.OCSP
        if der is None and self._ocsp_fetcher is not None:
            der = self._ocsp_fetcher(leaf, issuer)
        if der is None:
            return self._verdict(PeerStatus.STALE, source, leaf, now, "no OCSP response")
        try:
            response = ocsp.load_der_ocsp_response(der)
        except ValueError as exc:
            raise EncodingError(f"not a DER OCSPResponse: {exc}") from exc
        if response.response_status is not ocsp.OCSPResponseStatus.SUCCESSFUL:
            reason = f"OCSP responder said {response.response_status.name}"
            return self._verdict(PeerStatus.STALE, source, leaf, now, reason)
        single = self._single_response(response, leaf, issuer)
        signer = _ocsp_signer(response, issuer, now)
        algorithm = response.signature_hash_algorithm
        if algorithm is None:
            raise VerificationError("the OCSP response signature names no hash")
        try:
            _ec_key(signer).verify(
                response.signature, response.tbs_response_bytes, ec.ECDSA(algorithm)
            )
        except InvalidSignature:
            raise VerificationError("the OCSP response signature does not verify") from None
        this_update = single.this_update_utc
        seen_key = (key_id(_ec_key(issuer)), leaf.serial_number)
        seen = self._ocsp_seen.get(seen_key)
        if seen is not None and this_update < seen:
            raise OcspReplayError(
                f"OCSP response of {this_update.isoformat()} is older than one already seen "
                f"({seen.isoformat()})"
            )
        self._ocsp_seen[seen_key] = this_update
        status = single.certificate_status
        if status is ocsp.OCSPCertStatus.REVOKED:
            when = single.revocation_time_utc
            return self._verdict(PeerStatus.REVOKED, source, leaf, now, f"OCSP: revoked at {when}")
        if this_update > now:
            return self._verdict(PeerStatus.STALE, source, leaf, now, "OCSP thisUpdate in future")
        next_update = single.next_update_utc
        if next_update is not None and next_update < now:
            reason = f"OCSP response expired at {next_update.isoformat()}"
            return self._verdict(PeerStatus.STALE, source, leaf, now, reason)
        if now - this_update > self._policy.max_ocsp_age:
            reason = f"OCSP response of {this_update.isoformat()} is older than the policy allows"
            return self._verdict(PeerStatus.STALE, source, leaf, now, reason)
        if status is ocsp.OCSPCertStatus.UNKNOWN:
            return self._verdict(PeerStatus.NOT_COVERED, source, leaf, now, "OCSP: unknown")
        return self._verdict(PeerStatus.VALID, source, leaf, now, "OCSP: good")

    @staticmethod
    def _single_response(
        response: ocsp.OCSPResponse, leaf: x509.Certificate, issuer: x509.Certificate
    ) -> ocsp.OCSPSingleResponse:
        for single in response.responses:
            name_hash, key_hash = issuer_hashes(issuer, single.hash_algorithm)
            if (
                single.serial_number == leaf.serial_number
                and single.issuer_name_hash == name_hash
                and single.issuer_key_hash == key_hash
            ):
                return single
        raise VerificationError(
            "the OCSP response is about another certificate or issuer (RFC 6960 §4.1.1 CertID)"
        )

    def _by_crl(
        self, leaf: x509.Certificate, issuer: x509.Certificate, now: datetime
    ) -> PeerVerdict:
        source = RevocationSource.CRL
        issuer_key = key_id(_ec_key(issuer))
        client = self._crl_clients.get(issuer_key)
        if client is not None:
            try:
                answer = client.check(leaf, now)
            except StaleCrlError as exc:
                return self._verdict(PeerStatus.STALE, source, leaf, now, str(exc))
            except CertificateRevokedError as exc:
                return self._verdict(PeerStatus.REVOKED, source, leaf, now, str(exc))
            number = f"{answer.crl_number}" + (
                f"+{answer.delta_number}" if answer.delta_number else ""
            )
            return self._verdict(PeerStatus.VALID, source, leaf, now, f"not on CRL {number}")
        points = _cdp_names(leaf)
        held = next(
            (
                crls
                for (signer, scope), crls in self._crls.items()
                if signer == issuer_key and (scope is None or scope & points)
            ),
            None,
        )
        if held is None:
            return self._verdict(PeerStatus.STALE, source, leaf, now, "no CRL for this issuer/DP")
        full_number = _crl_number(held.full)
        delta = held.delta
        if delta is not None and (delta_crl_base(delta) or 0) > full_number:
            delta = None  # RFC 5280 §5.2.4: the delta needs a base at least as new as its base
        for crl in (delta, held.full):
            if crl is None:
                continue
            entry = crl.get_revoked_certificate_by_serial_number(leaf.serial_number)
            if entry is None:
                continue
            try:
                flag = entry.extensions.get_extension_for_class(x509.CRLReason).value.reason
            except x509.ExtensionNotFound:
                flag = x509.ReasonFlags.unspecified
            if flag is x509.ReasonFlags.remove_from_crl:
                break  # a delta's removeFromCRL: released from hold, not revoked
            return self._verdict(
                PeerStatus.REVOKED, source, leaf, now, f"CRL {_crl_number(crl)}: {flag.value}"
            )
        newest = delta or held.full
        next_update = newest.next_update_utc
        if next_update is None or now > next_update + self._policy.crl_tolerance:
            reason = f"CRL {_crl_number(newest)} is past its nextUpdate"
            return self._verdict(PeerStatus.STALE, source, leaf, now, reason)
        if now - newest.last_update_utc > self._policy.max_crl_age:
            reason = f"CRL {_crl_number(newest)} is older than the policy allows"
            return self._verdict(PeerStatus.STALE, source, leaf, now, reason)
        return self._verdict(
            PeerStatus.VALID, source, leaf, now, f"not on CRL {_crl_number(newest)}"
        )

    def _by_filter(
        self, leaf: x509.Certificate, issuer: x509.Certificate, now: datetime
    ) -> PeerVerdict:
        source = RevocationSource.FILTER
        if self._filter is None or self._filter.coverage_until is None:
            return self._verdict(PeerStatus.STALE, source, leaf, now, "no filter loaded")
        watermark = self._filter.watermark
        coverage = self._filter.coverage_until
        issued = leaf.not_valid_before_utc
        verdict = self._filter.status(filter_certificate_id(leaf, issuer), issued)
        if verdict is Verdict.REVOKED:
            return self._verdict(
                PeerStatus.REVOKED, source, leaf, now, f"filter at watermark {watermark}"
            )
        if now - coverage > self._policy.max_filter_age:
            reason = f"filter covers up to {coverage.isoformat()}, older than the policy allows"
            return self._verdict(PeerStatus.STALE, source, leaf, now, reason, watermark=watermark)
        if verdict is Verdict.NOT_COVERED:
            grace = self._policy.not_covered is NotCoveredAction.ACCEPT_WITHIN_GRACE
            within = grace and issued <= coverage + self._policy.not_covered_grace
            reason = (
                f"issued {issued.isoformat()}, after the filter coverage {coverage.isoformat()}"
                + ("; accepted within the policy's grace" if within else "")
            )
            return self._verdict(
                PeerStatus.NOT_COVERED,
                source,
                leaf,
                now,
                reason,
                acceptable=within,
                watermark=watermark,
            )
        return self._verdict(
            PeerStatus.VALID,
            source,
            leaf,
            now,
            f"not revoked at watermark {watermark}",
            watermark=watermark,
        )
