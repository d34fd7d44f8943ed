"""A device's answer to "is this peer certificate acceptable now?", by connectivity profile.

``PeerVerifier.assess`` runs RFC 5280 path validation with pyca's verifier (through
``TrustStore.verify``; no path logic here), then one revocation step chosen by the device's
``fleetid.policy.connectivity`` profile:

* **always-on**, OCSP (RFC 6960): the peer's stapled response (or one fetched by the caller),
  checked by ``fleetid.revocation.check.ocsp`` against the issuer of the *validated* chain: its
  signer (the issuer or a responder it delegated), its CertID, and freshness (``nextUpdate`` not
  past, not older than the policy's maximum age); never older than one already seen for the same
  certificate (a replayed old "good" is refused, ``ReplayError``).
* **intermittent**, X.509 CRLs (RFC 5280 §5, §6.3): through the device's
  ``fleetid.device.crl_client.CrlClient`` (``use_crl_client``: it fetches on contact), or CRLs
  handed to ``load_crl``; either way ``fleetid.revocation.check.crl`` decides what is kept and
  what it says (a full CRL and a delta over it, for the certificate's distribution point); past
  ``nextUpdate`` + tolerance the CRL is *stale*, never "not revoked".
* **offline**, the signed filter (``fleetid.revocation.check.filter``), loaded in advance from a
  broadcast channel. The check does no I/O. The filter's signer must be an issuing-CA
  certificate the device validated to its anchors (``fleetid.revocation.publish`` signs with the
  issuing CA's key).

The verdict is a ``PeerVerdict`` with its reason. ``assess`` raises ``CertificateRevokedError``
for a revoked peer and ``VerificationError`` for a failed path or a forged/mismatched artefact;
it returns STALE or NOT_COVERED verdicts (``acceptable`` False unless the policy's not-covered
grace applies). ``verify`` is the strict form: it raises ``StaleError`` or ``NotCoveredError``
unless the verdict is acceptable.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime

import httpx
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509 import ocsp
from cryptography.x509.oid import AuthorityInformationAccessOID

from fleetid.clock import Clock, SystemClock
from fleetid.crypto.pkix import crl_signed_by
from fleetid.device.crl_client import CrlClient
from fleetid.device.truststore import TrustStore
from fleetid.errors import (
    CertificateRevokedError,
    EncodingError,
    NotCoveredError,
    StaleError,
    VerificationError,
)
from fleetid.policy.connectivity import (
    ConnectivityProfile,
    NotCoveredAction,
    RevocationPolicy,
    policy_for,
)
from fleetid.revocation.check.crl import HeldCrls
from fleetid.revocation.check.filter import (
    FilterVerifier,
    Verdict,
    check_not_older,
    filter_certificate_id,
)
from fleetid.revocation.check.ocsp import ocsp_request, verify_ocsp_response
from fleetid.revocation.filter.format import FilterHeader, FilterKind, key_id, parse_filter

__all__ = [
    "PeerStatus",
    "PeerVerdict",
    "PeerVerifier",
    "RevocationSource",
    "fetch_staple",
    "filter_certificate_id",
    "ocsp_request",
]

OcspFetcher = Callable[[x509.Certificate, x509.Certificate], bytes]
"""``(leaf, issuer) -> DER OCSPResponse``: how an always-on verifier asks if nothing is stapled."""


class PeerStatus(enum.StrEnum):
    """A peer verifier's verdict on a certificate's revocation status."""

    VALID = "valid"
    REVOKED = "revoked"
    STALE = "stale material"
    NOT_COVERED = "not covered"


class RevocationSource(enum.StrEnum):
    OCSP = "ocsp"
    CRL = "crl"
    FILTER = "filter"


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


# --- the verifier ---------------------------------------------------------------------------------


class PeerVerifier:
    """Checks peer certificates for one device under one connectivity policy.

    ``issuers`` are the issuing-CA certificates the device knows (from its enrolment's
    ``cacerts``); each is validated against ``trust`` when added. Only they may sign filters
    and CRLs.
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
        self._crls: dict[bytes, HeldCrls] = {}
        self._crl_clients: dict[bytes, CrlClient] = {}
        self._ocsp_seen: dict[tuple[bytes, int], datetime] = {}
        for issuer in issuers:
            self.add_issuer(issuer)

    @classmethod
    def for_profile(
        cls,
        profile: ConnectivityProfile | str,
        *,
        anchors: Sequence[x509.Certificate],
        clock: Clock | None = None,
        issuers: Sequence[x509.Certificate] = (),
        ocsp_fetcher: OcspFetcher | None = None,
    ) -> PeerVerifier:
        """A verifier with the default revocation policy of ``profile`` (``"always-on"``,
        ``"intermittent"`` or ``"offline"``), trusting the fleet roots ``anchors``; ``issuers``
        are the issuing CAs it learns up front (each validated to ``anchors``)."""
        return cls(
            trust=TrustStore(anchors),
            policy=policy_for(profile),
            clock=clock or SystemClock(),
            issuers=issuers,
            ocsp_fetcher=ocsp_fetcher,
        )

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
        if self._filter is not None and self._filter.key_id == header.signer_key_id:
            return self._filter.load(data)
        fresh = FilterVerifier(_ec_key(issuer))
        if header.kind is FilterKind.FULL and self._filter is not None:
            check_not_older(self._filter.chain[-1], header)
        loaded = fresh.load(data)  # a delta without its full filter raises DeltaGapError here
        self._filter = fresh
        return loaded

    def use_crl_client(self, issuer: x509.Certificate, client: CrlClient) -> None:
        """Answer the intermittent profile for ``issuer``'s certificates from ``client``
        (``fleetid.device.crl_client``: it fetches what is missing on each contact)."""
        self.add_issuer(issuer)
        self._crl_clients[key_id(_ec_key(issuer))] = client

    def load_crl(self, crl: x509.CertificateRevocationList | bytes) -> None:
        """Verify a full or delta CRL from a known issuer and keep it
        (``fleetid.revocation.check.crl.HeldCrls``: the newest per scope)."""
        if isinstance(crl, bytes):
            try:
                crl = x509.load_der_x509_crl(crl)
            except ValueError as exc:
                raise EncodingError(f"not a DER CRL: {exc}") from exc
        for key, issuer in self._issuers.items():
            if issuer.subject == crl.issuer and crl_signed_by(crl, issuer):
                self._crls.setdefault(key, HeldCrls(issuer)).load(crl)
                return
        raise VerificationError("the CRL is not signed by a validated issuing CA")

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
        """``assess``, raising ``StaleError`` or ``NotCoveredError`` unless acceptable."""
        verdict = self.assess(leaf, intermediates, ocsp_response=ocsp_response)
        if verdict.acceptable:
            return verdict
        if verdict.status is PeerStatus.NOT_COVERED:
            raise NotCoveredError(verdict.reason)
        raise StaleError(verdict.reason)

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
        seen_key = (key_id(_ec_key(issuer)), leaf.serial_number)
        try:
            answer = verify_ocsp_response(
                der,
                serial_number=leaf.serial_number,
                issuer=issuer,
                now=now,
                not_before=self._ocsp_seen.get(seen_key),
            )
        except StaleError as exc:  # no status (unsuccessful), or a lapsed delegated responder
            return self._verdict(PeerStatus.STALE, source, leaf, now, str(exc))
        self._ocsp_seen[seen_key] = answer.this_update  # not older than what was seen: not_before
        try:
            answer.require_current(now, max_age=self._policy.max_ocsp_age)
        except CertificateRevokedError as exc:
            return self._verdict(PeerStatus.REVOKED, source, leaf, now, str(exc))
        except StaleError as exc:
            return self._verdict(PeerStatus.STALE, source, leaf, now, str(exc))
        if answer.status is ocsp.OCSPCertStatus.UNKNOWN:
            return self._verdict(PeerStatus.NOT_COVERED, source, leaf, now, "OCSP: unknown")
        return self._verdict(PeerStatus.VALID, source, leaf, now, "OCSP: good")

    def _by_crl(
        self, leaf: x509.Certificate, issuer: x509.Certificate, now: datetime
    ) -> PeerVerdict:
        source = RevocationSource.CRL
        issuer_key = key_id(_ec_key(issuer))
        client = self._crl_clients.get(issuer_key)
        held = self._crls.get(issuer_key)
        if client is None and held is None:
            return self._verdict(PeerStatus.STALE, source, leaf, now, "no CRL for this issuer")
        try:
            if client is not None:
                answer = client.check(leaf, now)
            else:
                assert held is not None  # noqa: S101 - one of the two is there
                answer = held.status(
                    leaf,
                    now,
                    max_age=self._policy.max_crl_age,
                    tolerance=self._policy.crl_tolerance,
                )
        except StaleError as exc:
            return self._verdict(PeerStatus.STALE, source, leaf, now, str(exc))
        except CertificateRevokedError as exc:
            return self._verdict(PeerStatus.REVOKED, source, leaf, now, str(exc))
        number = f"{answer.crl_number}" + (f"+{answer.delta_number}" if answer.delta_number else "")
        return self._verdict(PeerStatus.VALID, source, leaf, now, f"not on CRL {number}")

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
