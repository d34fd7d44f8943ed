"""What every evidence-format verifier shares: its inputs, its result, and the registry.

A verifier is one module per statement format (``AttestationStatement.type``), registered by a
type key, as in python-fido2's ``fido2/attestation/``. Adding a format is adding a module that
defines a class with ``type_key`` and ``statement_type`` and decorates it with ``register``.

Verifiers read the authority's records through ``EnrolmentLedger`` (the line manifest, the
device, the challenge). It is implemented over one store transaction (``RepositoryLedger``), so
the challenge is spent only if the certificate is recorded in the same transaction.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import ClassVar, Protocol

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec

from fleetid.errors import (
    ConfigError,
    EncodingError,
    EvidenceFormatUnsupportedError,
    EvidenceMalformedError,
    EvidenceMissingError,
)
from fleetid.formats.attestation import KeyProperties, KeyUsage, TcbInfo
from fleetid.formats.csr_attestation import (
    AttestationBundle,
    AttestationStatement,
    attestation_bundle_of,
)
from fleetid.store.repositories import (
    ChallengeRecord,
    DeviceRecord,
    ManifestRecord,
    Repositories,
)

__all__ = [
    "VERIFIERS",
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


class EnrolmentLedger(Protocol):
    """The authority's records a verifier consults."""

    def manifest_entry(self, serial: str) -> ManifestRecord | None: ...

    def device(self, device_id: str) -> DeviceRecord | None: ...

    def challenge(self, nonce: bytes) -> ChallengeRecord | None: ...

    def spend_challenge(self, nonce: bytes, now: datetime) -> ChallengeRecord | None:
        """Spend an unused, unexpired challenge and return it; ``None`` if it is not (any more):
        ``challenge`` then tells why."""
        ...


class RepositoryLedger:
    """``EnrolmentLedger`` over the repositories of one store transaction. A device is read
    once: the provisioner asks again for the record the verifier saw."""

    def __init__(self, tx: Repositories) -> None:
        self._tx = tx
        self._devices: dict[str, DeviceRecord | None] = {}

    def manifest_entry(self, serial: str) -> ManifestRecord | None:
        return self._tx.manifest.by_serial(serial)

    def device(self, device_id: str) -> DeviceRecord | None:
        if device_id not in self._devices:
            self._devices[device_id] = self._tx.devices.get(device_id)
        return self._devices[device_id]

    def challenge(self, nonce: bytes) -> ChallengeRecord | None:
        return self._tx.challenges.get(nonce)

    def spend_challenge(self, nonce: bytes, now: datetime) -> ChallengeRecord | None:
        return self._tx.challenges.spend(nonce, now)


@dataclass(frozen=True, kw_only=True)
class VerificationPolicy:
    """What the authority requires of evidence."""

    manufacturer_roots: tuple[x509.Certificate, ...]
    # The usage policy the attested key must have, exactly (a signing credential: SIGN only).
    required_usage: KeyUsage = KeyUsage.SIGN

    def __post_init__(self) -> None:
        if not self.manufacturer_roots:
            raise ConfigError("attestation needs at least one configured manufacturer root")


@dataclass(frozen=True, kw_only=True)
class AttestedDevice:
    """What verified evidence establishes about the requester."""

    format: str  # the verifier's type key
    device_id: str  # the IDevID's device serial: the device's name at this authority
    chip_serial: bytes
    idevid: x509.Certificate
    idevid_key_sha256: bytes  # SHA-256 of the IDevID's DER SubjectPublicKeyInfo
    public_key: ec.EllipticCurvePublicKey  # the attested key, equal to the CSR's
    key_properties: KeyProperties
    tcb_info: TcbInfo | None
    challenge: bytes


class EvidenceVerifier(Protocol):
    """One evidence format, in two steps: ``examine`` checks what needs no records (run before
    the issuance transaction), ``check_records`` what the authority's records say (run inside it).
    Each raises an ``AttestationError`` subclass."""

    type_key: ClassVar[str]
    statement_type: ClassVar[str]

    def examine(
        self,
        *,
        csr: x509.CertificateSigningRequest,
        bundle: AttestationBundle,
        statement: AttestationStatement,
        policy: VerificationPolicy,
        now: datetime,
    ) -> AttestedDevice: ...

    def check_records(
        self, attested: AttestedDevice, ledger: EnrolmentLedger, now: datetime
    ) -> None: ...


VERIFIERS: dict[str, EvidenceVerifier] = {}


def register(cls: type[EvidenceVerifier]) -> type[EvidenceVerifier]:
    """Class decorator: make a verifier findable by its type key and statement OID."""
    if cls.type_key in VERIFIERS:
        raise ConfigError(f"evidence format {cls.type_key!r} is registered twice")
    VERIFIERS[cls.type_key] = cls()
    return cls


def verifier_for_statement(type_oid: str) -> EvidenceVerifier | None:
    for verifier in VERIFIERS.values():
        if verifier.statement_type == type_oid:
            return verifier
    return None


def examine_attested_csr(
    csr: x509.CertificateSigningRequest,
    *,
    policy: VerificationPolicy,
    now: datetime,
    formats: Sequence[str] | None = None,
) -> AttestedDevice:
    """Check the CSR's evidence as far as no records are needed, with the first statement of a
    format this authority accepts (``formats`` limits the type keys; default: every one)."""
    try:
        bundle = attestation_bundle_of(csr)
    except EncodingError as exc:
        raise EvidenceMalformedError(str(exc)) from exc
    if bundle is None:
        raise EvidenceMissingError(
            "the CSR carries no attestation (draft-ietf-lamps-csr-attestation id-aa-attestation);"
            " a key without secure-element or TPM evidence is not enrolled here"
        )
    for statement in bundle.statements:
        verifier = verifier_for_statement(statement.type)
        if verifier is not None and (formats is None or verifier.type_key in formats):
            return verifier.examine(
                csr=csr, bundle=bundle, statement=statement, policy=policy, now=now
            )
    kinds = ", ".join(sorted({s.type for s in bundle.statements}))
    raise EvidenceFormatUnsupportedError(f"no accepted verifier for statement types {kinds}")


def check_attested_records(
    attested: AttestedDevice, *, ledger: EnrolmentLedger, now: datetime
) -> None:
    """The second step of ``attested``'s format: the manifest, the device and the challenge
    (spent in the ledger's transaction)."""
    VERIFIERS[attested.format].check_records(attested, ledger, now)


def verify_attested_csr(
    csr: x509.CertificateSigningRequest,
    *,
    policy: VerificationPolicy,
    ledger: EnrolmentLedger,
    now: datetime,
    formats: Sequence[str] | None = None,
) -> AttestedDevice:
    """Both steps at once: ``examine_attested_csr`` then ``check_attested_records``."""
    attested = examine_attested_csr(csr, policy=policy, now=now, formats=formats)
    check_attested_records(attested, ledger=ledger, now=now)
    return attested
