"""A small software PKI for the device-verifier tests: root, issuing CA, leaves, and the three
kinds of revocation material built with pyca's own builders (OCSP, CRL) and the filter builder.

Independent of the authority's publishers on purpose: the verifier is checked against artefacts
that pyca writes, not only against ours.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509 import ocsp
from cryptography.x509.oid import AuthorityInformationAccessOID, ExtendedKeyUsageOID, NameOID

from fleetid.crypto.signer import SoftwareSigner
from fleetid.revocation.check.filter import filter_certificate_id
from fleetid.revocation.filter.builder import build_filter

__all__ = ["NOW", "TEST_CRL_URL", "TEST_OCSP_URL", "Pki"]

NOW = datetime(2027, 6, 1, 12, 0, tzinfo=UTC)
TEST_OCSP_URL = "http://fleet.test/ocsp"
TEST_CRL_URL = "http://fleet.test/crl/issuing-1.crl"


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _ku(*, ca: bool) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=True,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=ca,
        crl_sign=ca,
        encipher_only=False,
        decipher_only=False,
    )


def _ca(
    cn: str,
    key: ec.EllipticCurvePrivateKey,
    issuer: x509.Certificate | None,
    signer_key: ec.EllipticCurvePrivateKey,
    path_length: int,
) -> x509.Certificate:
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(cn))
        .issuer_name(issuer.subject if issuer else _name(cn))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(NOW - timedelta(days=365))
        .not_valid_after(NOW + timedelta(days=3650))
        .add_extension(x509.BasicConstraints(ca=True, path_length=path_length), critical=True)
        .add_extension(_ku(ca=True), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False)
    )
    if issuer is not None:
        builder = builder.add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(signer_key.public_key()), False
        )
    return builder.sign(signer_key, hashes.SHA384() if issuer is None else hashes.SHA256())


@dataclass
class Pki:
    """A fleet root with one issuing CA (and a second, unrelated fleet for negatives)."""

    root_key: ec.EllipticCurvePrivateKey = field(
        default_factory=lambda: ec.generate_private_key(ec.SECP384R1())
    )
    issuing_key: ec.EllipticCurvePrivateKey = field(
        default_factory=lambda: ec.generate_private_key(ec.SECP256R1())
    )

    def __post_init__(self) -> None:
        self.root = _ca("Test Fleet Root", self.root_key, None, self.root_key, 1)
        self.issuing = _ca("Test Issuing CA", self.issuing_key, self.root, self.root_key, 0)
        self.signer = SoftwareSigner(self.issuing_key)

    def sibling_issuer(self) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
        """Another issuing CA under the same root (a rollover generation)."""
        key = ec.generate_private_key(ec.SECP256R1())
        return _ca("Test Issuing CA G2", key, self.root, self.root_key, 0), key

    def leaf(
        self,
        *,
        not_before: datetime | None = None,
        lifetime: timedelta = timedelta(days=30),
        issuer: tuple[x509.Certificate, ec.EllipticCurvePrivateKey] | None = None,
    ) -> x509.Certificate:
        issuing, key = issuer or (self.issuing, self.issuing_key)
        start = not_before or NOW - timedelta(days=3)
        public = ec.generate_private_key(ec.SECP256R1()).public_key()
        return (
            x509.CertificateBuilder()
            .subject_name(_name("device"))
            .issuer_name(issuing.subject)
            .public_key(public)
            .serial_number(x509.random_serial_number())
            .not_valid_before(start)
            .not_valid_after(start + lifetime)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(_ku(ca=False), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(key.public_key()), False
            )
            .add_extension(
                x509.AuthorityInformationAccess(
                    [
                        x509.AccessDescription(
                            AuthorityInformationAccessOID.OCSP,
                            x509.UniformResourceIdentifier(TEST_OCSP_URL),
                        )
                    ]
                ),
                False,
            )
            .add_extension(
                x509.CRLDistributionPoints(
                    [
                        x509.DistributionPoint(
                            full_name=[x509.UniformResourceIdentifier(TEST_CRL_URL)],
                            relative_name=None,
                            reasons=None,
                            crl_issuer=None,
                        )
                    ]
                ),
                False,
            )
            .sign(key, hashes.SHA256())
        )

    # -- OCSP (RFC 6960) with pyca's builder -------------------------------------------------

    def ocsp(
        self,
        leaf: x509.Certificate,
        *,
        revoked_at: datetime | None = None,
        this_update: datetime = NOW - timedelta(hours=1),
        next_update: datetime | None = NOW + timedelta(days=3),
        certid_issuer: x509.Certificate | None = None,
        signer: tuple[x509.Certificate, ec.EllipticCurvePrivateKey] | None = None,
        delegate: bool = False,
    ) -> bytes:
        responder, key = signer or (self.issuing, self.issuing_key)
        extra: list[x509.Certificate] = []
        if delegate:
            key = ec.generate_private_key(ec.SECP256R1())
            responder = (
                x509.CertificateBuilder()
                .subject_name(_name("Test OCSP responder"))
                .issuer_name(self.issuing.subject)
                .public_key(key.public_key())
                .serial_number(x509.random_serial_number())
                .not_valid_before(NOW - timedelta(days=1))
                .not_valid_after(NOW + timedelta(days=30))
                .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.OCSP_SIGNING]), False)
                .sign(self.issuing_key, hashes.SHA256())
            )
            extra = [responder]
        status = ocsp.OCSPCertStatus.REVOKED if revoked_at else ocsp.OCSPCertStatus.GOOD
        builder = (
            ocsp.OCSPResponseBuilder()
            .add_response(
                cert=leaf,
                issuer=certid_issuer or self.issuing,
                algorithm=hashes.SHA256(),
                cert_status=status,
                this_update=this_update,
                next_update=next_update,
                revocation_time=revoked_at,
                revocation_reason=x509.ReasonFlags.key_compromise if revoked_at else None,
            )
            .responder_id(ocsp.OCSPResponderEncoding.HASH, responder)
        )
        if extra:
            builder = builder.certificates(extra)
        response = builder.sign(key, hashes.SHA256())
        return response.public_bytes(serialization.Encoding.DER)

    # -- CRL (RFC 5280 §5) with pyca's builder -----------------------------------------------

    def crl(
        self,
        revoked: Sequence[x509.Certificate],
        *,
        number: int,
        last_update: datetime = NOW - timedelta(hours=1),
        next_update: datetime = NOW + timedelta(days=1),
        delta_of: int | None = None,
        key: ec.EllipticCurvePrivateKey | None = None,
        issuer: x509.Certificate | None = None,
        scope: str | None = TEST_CRL_URL,
    ) -> x509.CertificateRevocationList:
        """A CRL as fleetid's publisher shapes it: numbered, and scoped by a critical
        issuingDistributionPoint naming the leaves' distribution point (``scope=None``: none)."""
        builder = (
            x509.CertificateRevocationListBuilder()
            .issuer_name((issuer or self.issuing).subject)
            .last_update(last_update)
            .next_update(next_update)
            .add_extension(x509.CRLNumber(number), False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(
                    (key or self.issuing_key).public_key()
                ),
                False,
            )
        )
        if scope is not None:
            builder = builder.add_extension(
                x509.IssuingDistributionPoint(
                    full_name=[x509.UniformResourceIdentifier(scope)],
                    relative_name=None,
                    only_contains_user_certs=True,
                    only_contains_ca_certs=False,
                    only_some_reasons=None,
                    indirect_crl=False,
                    only_contains_attribute_certs=False,
                ),
                critical=True,
            )
        if delta_of is not None:
            builder = builder.add_extension(x509.DeltaCRLIndicator(delta_of), critical=True)
        for certificate in revoked:
            builder = builder.add_revoked_certificate(
                x509.RevokedCertificateBuilder()
                .serial_number(certificate.serial_number)
                .revocation_date(last_update)
                .add_extension(x509.CRLReason(x509.ReasonFlags.key_compromise), False)
                .build()
            )
        return builder.sign(key or self.issuing_key, hashes.SHA256())

    # -- the offline filter ------------------------------------------------------------------

    def filter(
        self,
        revoked: Sequence[x509.Certificate],
        valid: Sequence[x509.Certificate],
        *,
        watermark: int,
        coverage_until: datetime = NOW - timedelta(hours=1),
        signer: SoftwareSigner | None = None,
    ) -> bytes:
        return build_filter(
            [filter_certificate_id(c) for c in revoked],
            [filter_certificate_id(c) for c in valid],
            watermark=watermark,
            coverage_until=coverage_until,
            signer=signer or self.signer,
        )
