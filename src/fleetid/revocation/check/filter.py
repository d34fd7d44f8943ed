"""The relying party's check of the offline filter: verify, chain and answer, with no I/O.

A device holds one full filter and the deltas that follow it (``docs/revocation-filter.md``).
Every artefact must be signed by the key the device trusts for filters (an issuing-CA key it
validated to its anchors); a full filter replaces what is held only if it is not older (a lower
watermark or coverage is a rollback, ``FilterRollbackError``); a delta must extend the full filter
held (``DeltaBaseError``) and follow an artefact already in the chain (``DeltaGapError``).

The answer for a certificate is exact for every certificate in the population the builder saw,
and NOT_COVERED for one issued after the newest artefact's coverage (``NotCoveredError`` from
``check``). The maths is ``fleetid.revocation.filter.exact``, in plain integers: importing this
module does not load the builder's numpy.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec

from fleetid.crypto.signer import verify_signature
from fleetid.errors import (
    CertificateRevokedError,
    DeltaBaseError,
    DeltaGapError,
    FilterRollbackError,
    NotCoveredError,
    VerificationError,
)
from fleetid.revocation.filter.exact import CompiledFilter, key_words
from fleetid.revocation.filter.format import (
    FilterHeader,
    FilterKind,
    certificate_id,
    key_id,
    parse_filter,
)

__all__ = [
    "FilterVerifier",
    "Verdict",
    "check_not_older",
    "filter_certificate_id",
]


class Verdict(enum.Enum):
    """What a filter chain says about one certificate."""

    VALID = "valid"
    REVOKED = "revoked"
    NOT_COVERED = "not covered"


def filter_certificate_id(
    certificate: x509.Certificate, issuer: x509.Certificate | None = None
) -> bytes:
    """The filter key of a certificate: its issuer's key identifier and its serial.

    The key identifier is the issuer's subjectKeyIdentifier (what the authority's ``ca_keys``
    table records); without ``issuer``, the certificate's authorityKeyIdentifier, which names the
    same value in certificates this authority issues (RFC 5280 §4.2.1.1).
    """
    if issuer is not None:
        try:
            ski = issuer.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
            identifier = ski.digest
        except x509.ExtensionNotFound:
            key = issuer.public_key()
            if not isinstance(key, ec.EllipticCurvePublicKey):
                raise VerificationError("fleet CA keys are EC keys") from None
            identifier = x509.SubjectKeyIdentifier.from_public_key(key).digest
    else:
        try:
            aki = certificate.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier)
        except x509.ExtensionNotFound:
            raise VerificationError("the certificate has no authorityKeyIdentifier") from None
        if aki.value.key_identifier is None:
            raise VerificationError("the authorityKeyIdentifier has no keyIdentifier")
        identifier = aki.value.key_identifier
    return certificate_id(identifier, certificate.serial_number)


def check_not_older(held: FilterHeader | None, header: FilterHeader) -> None:
    """Raise ``FilterRollbackError`` if ``header`` goes back before ``held`` (its watermark or
    its coverage): a replayed or older artefact, whichever key signed it."""
    if held is None:
        return
    if header.watermark < held.watermark or header.coverage_until < held.coverage_until:
        raise FilterRollbackError(
            f"filter at watermark {header.watermark} is older than the loaded "
            f"watermark {held.watermark}"
        )


@dataclass(frozen=True, kw_only=True)
class _Artefact:
    header: FilterHeader
    digest: bytes
    compiled: CompiledFilter


class FilterVerifier:
    """Holds one full filter and the deltas that follow it; answers offline, without I/O.

    Every artefact must be signed by ``trusted_public_key``. ``load`` raises on anything that
    does not verify or does not chain; it never leaves the verifier with a partial update.
    """

    def __init__(self, trusted_public_key: ec.EllipticCurvePublicKey) -> None:
        self._public_key = trusted_public_key
        self._key_id = key_id(trusted_public_key)
        self._chain: list[_Artefact] = []

    @property
    def key_id(self) -> bytes:
        """The key id (SHA-256 of the SPKI) every loaded artefact is signed under."""
        return self._key_id

    @property
    def watermark(self) -> int | None:
        """The registry sequence number the newest loaded artefact covers."""
        return self._chain[-1].header.watermark if self._chain else None

    @property
    def coverage_until(self) -> datetime | None:
        """Certificates issued after this time are not covered."""
        return self._chain[-1].header.coverage_until if self._chain else None

    @property
    def chain(self) -> tuple[FilterHeader, ...]:
        """The headers of the loaded full filter and deltas, oldest first."""
        return tuple(artefact.header for artefact in self._chain)

    def load(self, data: bytes) -> FilterHeader:
        """Verify and apply a full or delta filter.

        A full filter replaces everything loaded; a delta must extend the loaded full filter and
        follow an artefact already in the chain (a delta built on an earlier link supersedes the
        links after it). Raises ``EncodingError`` (malformed), ``VerificationError`` (wrong signer,
        bad signature), ``DeltaBaseError``, ``DeltaGapError`` or ``FilterRollbackError``.
        """
        parsed = parse_filter(data)
        header = parsed.header
        if header.signer_key_id != self._key_id:
            raise VerificationError(
                f"filter signed by key {header.signer_key_id.hex()[:16]}…, not the trusted key"
            )
        verify_signature(self._public_key, parsed.signature, parsed.signed_bytes)
        if any(artefact.digest == parsed.digest for artefact in self._chain):
            return header
        artefact = _Artefact(
            header=header, digest=parsed.digest, compiled=CompiledFilter.of(parsed)
        )
        head = self._chain[-1].header if self._chain else None
        if header.kind is FilterKind.FULL:
            check_not_older(head, header)
            self._chain = [artefact]
            return header
        if not self._chain:
            raise DeltaGapError("a delta needs its full filter loaded first")
        if header.full_digest != self._chain[0].digest:
            raise DeltaBaseError("delta extends another full filter than the one loaded")
        for index, link in enumerate(self._chain):
            if link.digest == header.base_digest:
                if link.header.watermark != header.base_watermark:
                    raise VerificationError("delta names its base with a wrong watermark")
                check_not_older(head, header)
                self._chain = [*self._chain[: index + 1], artefact]
                return header
        raise DeltaGapError(
            f"delta follows watermark {header.base_watermark}, "
            f"but the loaded chain ends at watermark {self._chain[-1].header.watermark}"
        )

    def status(self, cert_id: bytes, issued_at: datetime) -> Verdict:
        """The verdict for a certificate with this id, issued (notBefore) at ``issued_at``.

        Exact for every certificate in the population the builder saw; NOT_COVERED when the
        certificate is newer than every loaded artefact's coverage.
        """
        if issued_at.tzinfo is None:
            raise ValueError("issued_at must be timezone-aware")
        k0, k1 = key_words(cert_id)
        if not self._chain or issued_at > self._chain[-1].header.coverage_until:
            return Verdict.NOT_COVERED
        # The first artefact whose coverage includes the certificate knows it; each later one
        # knows it for as long as the earlier ones said valid (docs/revocation-filter.md).
        for artefact in self._chain:
            if issued_at > artefact.header.coverage_until:
                continue
            if artefact.compiled.says_revoked(k0, k1):
                return Verdict.REVOKED
        return Verdict.VALID

    def check(self, cert_id: bytes, issued_at: datetime) -> None:
        """Return only if the certificate is covered and not revoked; raise otherwise."""
        verdict = self.status(cert_id, issued_at)
        if verdict is Verdict.REVOKED:
            raise CertificateRevokedError(f"certificate {cert_id.hex()} is revoked")
        if verdict is Verdict.NOT_COVERED:
            raise NotCoveredError(
                f"certificate issued {issued_at.isoformat()} is newer than the filter coverage "
                f"{self.coverage_until.isoformat() if self.coverage_until else '(none loaded)'}"
            )
