"""The one CA-certificate profile (RFC 5280 §4.2): every CA certificate fleetid issues is built
here.

The fleet CA's root and issuing CAs (at init and at every rollover, with the RFC 4210 §4.4 link
certificates), the manufacturer's root and line CA, and the test card's manufacturer chain differ
only in the values a ``CaProfile`` takes; the extensions and their order are this module's:

* basicConstraints cA TRUE with the path length given (critical, §4.2.1.9);
* keyUsage as given, which must assert keyCertSign (critical, §4.2.1.3);
* subjectKeyIdentifier, the SHA-1 of the subject key (§4.2.1.2 method 1);
* authorityKeyIdentifier naming the issuer's key the same way (§4.2.1.1), when the profile names
  one (a fleet root omits it, as §4.2.1.1 allows a self-signed certificate to);
* cRLDistributionPoints when given (§4.2.1.13): where the issuer's CRL over this CA is;
* nameConstraints when given (critical, §4.2.1.10).

``CaProfile.builder`` is pyca's builder for it; ``CaProfile.issue`` signs it with a ``Signer``
(an HSM key, by reference) through ``fleetid.formats.x509_sign``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec

from fleetid.crypto.signer import Signer
from fleetid.errors import VerificationError
from fleetid.formats.x509_sign import sign_certificate

__all__ = ["CaProfile"]


@dataclass(frozen=True, kw_only=True)
class CaProfile:
    """One CA certificate: who, whose key, under whom, for how long, and how far it may certify.

    ``authority_key`` is the issuer's public key, named in the authorityKeyIdentifier (the
    subject's own key for a self-signed certificate that carries one); ``None`` leaves the
    extension out. ``path_length`` ``None`` sets no pathLenConstraint.
    """

    subject: x509.Name
    issuer: x509.Name
    public_key: ec.EllipticCurvePublicKey
    serial_number: int
    not_before: datetime
    not_after: datetime
    path_length: int | None
    key_usage: x509.KeyUsage
    authority_key: ec.EllipticCurvePublicKey | None
    crl_distribution_points: x509.CRLDistributionPoints | None = None
    name_constraints: x509.NameConstraints | None = None

    def __post_init__(self) -> None:
        if not self.key_usage.key_cert_sign:
            raise ValueError("a CA certificate's keyUsage asserts keyCertSign (RFC 5280 §4.2.1.3)")
        if self.path_length is not None and self.path_length < 0:
            raise ValueError("a CA certificate's path length is not negative (§4.2.1.9)")

    def builder(self) -> x509.CertificateBuilder:
        """The certificate as a pyca builder (module docstring for the extensions)."""
        builder = (
            x509.CertificateBuilder()
            .subject_name(self.subject)
            .issuer_name(self.issuer)
            .public_key(self.public_key)
            .serial_number(self.serial_number)
            .not_valid_before(self.not_before)
            .not_valid_after(self.not_after)
            .add_extension(
                x509.BasicConstraints(ca=True, path_length=self.path_length), critical=True
            )
            .add_extension(self.key_usage, critical=True)
            .add_extension(
                x509.SubjectKeyIdentifier.from_public_key(self.public_key), critical=False
            )
        )
        if self.authority_key is not None:
            builder = builder.add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(self.authority_key),
                critical=False,
            )
        if self.crl_distribution_points is not None:
            builder = builder.add_extension(self.crl_distribution_points, critical=False)
        if self.name_constraints is not None:
            builder = builder.add_extension(self.name_constraints, critical=True)
        return builder

    def issue(self, signer: Signer) -> x509.Certificate:
        """The certificate signed by ``signer``, which must hold the authority key it names."""
        if self.authority_key is not None and _spki(signer.public_key()) != _spki(
            self.authority_key
        ):
            raise VerificationError(
                "the signer's key is not the authority key the CA certificate names"
            )
        return sign_certificate(self.builder(), signer)


def _spki(key: ec.EllipticCurvePublicKey) -> tuple[int, int, str]:
    numbers = key.public_numbers()
    return numbers.x, numbers.y, key.curve.name
