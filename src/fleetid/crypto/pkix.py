"""Signature checks on X.509 objects: the one place outside the boundaries that verifies them.

It also hands out pyca's path-validation vocabulary (``ExtensionPolicy``, ``Criticality``, the
verifier and ``PathValidationError``), so that services name policies without importing the
validator themselves.

Services parse certificates, CRLs and CSRs with pyca/cryptography but never call a verification
primitive themselves; they ask here. Path validation (RFC 5280 §6) is pyca's ``x509.verification``
with the extension policy the caller names; the single-link checks below are its §6.1.3 (a)(1)
step on one pair.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.verification import (
    ClientVerifier,
    Criticality,
    ExtensionPolicy,
    PolicyBuilder,
    Store,
)
from cryptography.x509.verification import VerificationError as PathValidationError

__all__ = [
    "ClientVerifier",
    "Criticality",
    "ExtensionPolicy",
    "PathValidationError",
    "crl_signed_by",
    "csr_self_signed",
    "issued_by",
    "path_verifier",
    "plain_ca_policy",
]


def issued_by(child: x509.Certificate, parent: x509.Certificate) -> bool:
    """Whether ``parent``'s key signed ``child`` and ``child`` names ``parent`` as its issuer."""
    try:
        child.verify_directly_issued_by(parent)
    except (ValueError, TypeError, InvalidSignature):
        return False
    return True


def crl_signed_by(crl: x509.CertificateRevocationList, issuer: x509.Certificate) -> bool:
    """Whether ``issuer``'s EC key signed ``crl`` (RFC 5280 §6.3.3 (g)); other key types: no."""
    key = issuer.public_key()
    if not isinstance(key, ec.EllipticCurvePublicKey):
        return False
    return crl.is_signature_valid(key)


def crl_signed_by_ca(crl: x509.CertificateRevocationList, issuer: x509.Certificate) -> bool:
    """Whether ``issuer``'s EC or RSA key signed ``crl``: for CAs outside the fleet (the FIDO
    metadata service's chain), whose keys may be RSA (PKCS#1 v1.5 or PSS as the CRL says)."""
    key = issuer.public_key()
    if not isinstance(key, ec.EllipticCurvePublicKey | rsa.RSAPublicKey):
        return False
    return crl.is_signature_valid(key)


def csr_self_signed(csr: x509.CertificateSigningRequest) -> bool:
    """Whether a CSR verifies under the key it carries (RFC 2986 §3: proof of possession)."""
    try:
        return csr.is_signature_valid
    except (ValueError, TypeError):
        return False


def _is_ca(
    _policy: object, _certificate: x509.Certificate, ext: x509.BasicConstraints | None
) -> None:
    if ext is None or not ext.ca:
        raise ValueError("a CA certificate has basicConstraints cA TRUE (RFC 5280 §4.2.1.9)")


def plain_ca_policy() -> ExtensionPolicy:
    """RFC 5280 §4.2.1.9 alone for CA certificates: basicConstraints with cA TRUE, critical or
    not, and other extensions as they come. FIDO attestation CAs and the FIDO metadata examples
    predate the Web PKI profile (a non-critical basicConstraints, no keyUsage)."""
    return ExtensionPolicy.permit_all().require_present(
        x509.BasicConstraints, Criticality.AGNOSTIC, _is_ca
    )


def path_verifier(
    anchors: Sequence[x509.Certificate],
    now: datetime,
    *,
    ee_policy: ExtensionPolicy | None = None,
    ca_policy: ExtensionPolicy | None = None,
) -> ClientVerifier:
    """An RFC 5280 path validator to ``anchors`` at ``now``.

    CA certificates are held to ``ca_policy`` (default: pyca's Web PKI CA profile); end-entity
    extensions are checked by ``ee_policy`` (default: any, since fleet profiles differ from the
    Web PKI's).
    """
    return (
        PolicyBuilder()
        .store(Store(list(anchors)))
        .time(now)
        .extension_policies(
            ca_policy=ca_policy or ExtensionPolicy.webpki_defaults_ca(),
            ee_policy=ee_policy or ExtensionPolicy.permit_all(),
        )
        .build_client_verifier()
    )
