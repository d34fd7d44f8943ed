"""A fresh proof of a device's SE identity with no CSR: an SE key attestation whose
challenge is the session's, checked by the ``fleetid-se`` verifier's rules 1-4 and 6."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from datetime import datetime

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from fleetid.authority.attestation.base import AttestedDevice, VerificationPolicy
from fleetid.authority.attestation.fleetid_se import FleetIdSeVerifier
from fleetid.crypto.symmetric import bytes_equal
from fleetid.errors import ChallengeNotBoundError, EvidenceMalformedError
from fleetid.formats.attestation import KeyUsage
from fleetid.formats.csr_attestation import (
    FLEETID_SE_KEY_ATTESTATION_OID,
    AttestationBundle,
    AttestationStatement,
)

__all__ = ["KeyProofVerifier", "spki"]


class KeyProofVerifier:
    """Checks ``(attestation, chain)`` pairs against the manufacturer roots of ``policy``."""

    def __init__(self) -> None:
        self._verifier = FleetIdSeVerifier()

    def verify(
        self,
        *,
        attestation: bytes,
        chain: Sequence[bytes],
        policy: VerificationPolicy,
        usage: KeyUsage,
        challenge: bytes,
        now: datetime,
    ) -> AttestedDevice:
        """The attested device and key; raises an ``AttestationError`` naming the broken rule."""
        try:
            certificates = tuple(x509.load_der_x509_certificate(c) for c in chain)
        except ValueError as exc:
            raise EvidenceMalformedError(f"a chain certificate is not DER: {exc}") from exc
        statement = AttestationStatement(type=FLEETID_SE_KEY_ATTESTATION_OID, statement=attestation)
        attested = self._verifier.examine_key(
            bundle=AttestationBundle(statements=(statement,), certificates=certificates),
            statement=statement,
            policy=dataclasses.replace(policy, required_usage=usage),
            now=now,
        )
        if not bytes_equal(attested.challenge, challenge):
            raise ChallengeNotBoundError("the attestation is not bound to this session")
        return attested


def spki(attested: AttestedDevice) -> bytes:
    """The attested key's DER SubjectPublicKeyInfo."""
    return attested.public_key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
