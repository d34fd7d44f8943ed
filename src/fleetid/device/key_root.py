"""What the device agent needs of its root of trust: keys by handle, evidence, an identity.

The agent runs on a secure element (``SecureElementRoot``, over the card's APDUs) or on a TPM 2.0
(``fleetid.tpm.TpmDevice`` has this interface itself): either makes a key that never leaves it,
binds it to an authority's challenge in evidence of its own format (the card's key-attestation
certificate; the TPM's TPM2_Certify by its AK), and signs by handle.
"""

from __future__ import annotations

from typing import Protocol

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from fleetid.crypto.signer import Signer
from fleetid.formats.attestation import KeyUsage
from fleetid.formats.csr_attestation import (
    FLEETID_SE_KEY_ATTESTATION_OID,
    AttestationBundle,
    AttestationStatement,
)
from fleetid.se.client import SecureElementClient, SecureElementSigner
from fleetid.se.wire import Curve

__all__ = ["KeyRoot", "SecureElementRoot"]


class KeyRoot(Protocol):
    """A device's root of trust as the agent uses it."""

    def identity(self) -> x509.Certificate:
        """The certificate whose subject serialNumber names the device (802.1AR)."""
        ...

    def new_key(self) -> int:
        """A new non-exportable signing key; its handle."""
        ...

    def evidence(self, handle: int, nonce: bytes) -> AttestationBundle:
        """The key's attestation bound to ``nonce``, with the certificates that verify it."""
        ...

    def signer(self, handle: int) -> Signer: ...

    def public_key(self, handle: int) -> ec.EllipticCurvePublicKey: ...

    def delete_key(self, handle: int) -> None: ...


class SecureElementRoot:
    """A secure element as a ``KeyRoot``: GENERATE KEY, ATTEST, SIGN and DELETE by handle."""

    def __init__(self, se: SecureElementClient, curve: Curve = Curve.P256) -> None:
        self.se = se
        self.curve = curve

    def identity(self) -> x509.Certificate:
        return self.se.attestation_chain()[0]

    def new_key(self) -> int:
        return self.se.generate_key(self.curve, KeyUsage.SIGN).handle

    def evidence(self, handle: int, nonce: bytes) -> AttestationBundle:
        attestation = self.se.attest(handle, nonce)
        return AttestationBundle(
            statements=(
                AttestationStatement(
                    type=FLEETID_SE_KEY_ATTESTATION_OID,
                    statement=attestation.public_bytes(serialization.Encoding.DER),
                ),
            ),
            certificates=tuple(self.se.attestation_chain()),
        )

    def signer(self, handle: int) -> Signer:
        return SecureElementSigner(self.se, handle)

    def public_key(self, handle: int) -> ec.EllipticCurvePublicKey:
        return self.se.get_public_key(handle).public_key

    def delete_key(self, handle: int) -> None:
        self.se.delete_key(handle)
