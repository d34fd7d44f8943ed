"""Attestation-gated enrolment: evidence verifiers, one module per format, found by type key.

``verify_attested_csr`` reads the CSR's draft-ietf-lamps-csr-attestation bundle and hands the
first statement of an accepted format to its verifier, which raises an ``AttestationError``
subclass (``fleetid.authority.attestation.errors``) or returns an ``AttestedDevice``.

Formats: ``fleetid-se`` (``fleetid_se``), the fleetid secure element's key attestation.
"""

from __future__ import annotations

from fleetid.authority.attestation import fleetid_se  # noqa: F401 - registers the format
from fleetid.authority.attestation.base import (
    VERIFIERS,
    AttestedDevice,
    EnrolmentLedger,
    EvidenceVerifier,
    RepositoryLedger,
    VerificationPolicy,
    register,
    verifier_for_statement,
    verify_attested_csr,
)
from fleetid.authority.attestation.errors import AttestationError

__all__ = [
    "VERIFIERS",
    "AttestationError",
    "AttestedDevice",
    "EnrolmentLedger",
    "EvidenceVerifier",
    "RepositoryLedger",
    "VerificationPolicy",
    "register",
    "verifier_for_statement",
    "verify_attested_csr",
]
