"""Attestation-gated enrolment: evidence verifiers, one module per format, found by type key.

``examine_attested_csr`` reads the CSR's draft-ietf-lamps-csr-attestation bundle and hands the
first statement of an accepted format to its verifier, which checks the evidence itself and
returns an ``AttestedDevice``; ``check_attested_records`` then has the same verifier check the
authority's records (manifest, device, challenge) inside the issuance transaction. Each raises an
``AttestationError`` subclass (``fleetid.errors``);
``verify_attested_csr`` does both.

Formats: ``fleetid-se`` (``fleetid_se``), the fleetid secure element's key attestation;
``tcg-tpm-certify`` (``tpm``), a TPM 2.0's TPM2_Certify of the key by the device's AK.
"""

from __future__ import annotations

from fleetid.authority.attestation import (
    fleetid_se,  # noqa: F401 - registers the format
    tpm,  # noqa: F401 - registers the format
)
from fleetid.authority.attestation.base import (
    VERIFIERS,
    AttestedDevice,
    EnrolmentLedger,
    EvidenceVerifier,
    RepositoryLedger,
    VerificationPolicy,
    check_attested_records,
    examine_attested_csr,
    register,
    verifier_for_statement,
    verify_attested_csr,
)
from fleetid.errors import AttestationError

__all__ = [
    "VERIFIERS",
    "AttestationError",
    "AttestedDevice",
    "EnrolmentLedger",
    "EvidenceVerifier",
    "RepositoryLedger",
    "VerificationPolicy",
    "check_attested_records",
    "examine_attested_csr",
    "register",
    "verifier_for_statement",
    "verify_attested_csr",
]
