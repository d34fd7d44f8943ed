"""The fleet issues a PIV card's authentication certificate (slot ``9A``) through enrolment.

The seed's "PIV cert" as a deployment-scoped credential: the key is generated in the card's PIV
application and never leaves it; the PKCS#10 request (RFC 2986) is signed by the card through
GENERAL AUTHENTICATE; the fleet CA issues over the usual enrolment path (EST ``simpleenroll``,
RFC 7030 §4.2); the certificate goes back into the card's X.509 Certificate for PIV
Authentication object (SP 800-73-4 Part 1 Table 3, ``5FC105``), where PIV middleware finds it.
"""

from __future__ import annotations

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from fleetid.device.transport import AuthorityTransport
from fleetid.errors import VerificationError
from fleetid.formats.csr_attestation import build_csr
from fleetid.se.piv_client import PivClient, PivSigner
from fleetid.se.piv_wire import SLOT_AUTHENTICATION
from fleetid.se.wire import Curve

__all__ = ["enrol_piv_authentication"]


def enrol_piv_authentication(
    card: PivClient,
    authority: AuthorityTransport,
    *,
    subject: x509.Name,
    management_key: bytes,
    pin: str,
    management_algorithm: int = 0x0A,
    curve: Curve = Curve.P256,
) -> x509.Certificate:
    """Generate the ``9A`` key on the card, enrol it, and store the issued certificate there.

    Raises ``SecureElementError`` when the card refuses (wrong administration key or PIN),
    ``VerificationError`` when the authority's certificate is not for the card's key, and the
    transport's errors when the authority refuses.
    """
    card.select()
    card.authenticate(management_key, management_algorithm)
    public_key = card.generate(SLOT_AUTHENTICATION, curve)
    card.verify_pin(pin)
    csr = build_csr(subject=subject, signer=PivSigner(card, SLOT_AUTHENTICATION))
    certificate = authority.simple_enroll(csr.public_bytes(serialization.Encoding.DER))
    if certificate.public_key() != public_key:
        raise VerificationError("the issued certificate is not for the card's 9A key")
    card.write_certificate(SLOT_AUTHENTICATION, certificate)
    return certificate
