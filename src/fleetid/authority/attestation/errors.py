"""Why an attestation-gated enrolment was refused: one class per rule, each with a ``reason`` code.

Every class is an ``AttestationError``, a ``VerificationError``; the HTTP edge answers them with a
problem document (RFC 9457) whose ``reason`` member is the code below, so an integrator can tell
one refusal from another without parsing prose. The tree::

    AttestationError (VerificationError)          reason
    ├── EvidenceMissingError                      evidence-missing
    ├── EvidenceMalformedError                    evidence-malformed
    ├── EvidenceFormatUnsupportedError            evidence-format-unsupported
    ├── AttestationSignatureError                 attestation-signature
    ├── UnknownManufacturerError                  manufacturer-unknown
    ├── ChipSerialMismatchError                   chip-serial-mismatch
    ├── KeyMismatchError                          key-mismatch
    ├── KeyNotGeneratedOnCardError                key-not-generated-on-card
    ├── KeyExportableError                        key-exportable
    ├── KeyUsageError                             key-usage
    ├── NotOnManifestError                        not-on-manifest
    ├── QuarantinedDeviceError                    device-quarantined
    ├── IdevidMismatchError                       idevid-mismatch
    ├── CloneSuspectedError                       clone-suspected
    ├── DeviceRevokedError                        device-revoked
    │   └── DeviceTransferredError                device-transferred
    ├── ChallengeUnknownError                     challenge-unknown
    ├── ChallengeExpiredError                     challenge-expired
    ├── ChallengeReplayedError                    challenge-replayed
    └── ChallengeNotBoundError                    challenge-not-bound
"""

from __future__ import annotations

from typing import ClassVar

from fleetid.errors import VerificationError

__all__ = [
    "AttestationError",
    "AttestationSignatureError",
    "ChallengeExpiredError",
    "ChallengeNotBoundError",
    "ChallengeReplayedError",
    "ChallengeUnknownError",
    "ChipSerialMismatchError",
    "CloneSuspectedError",
    "DeviceRevokedError",
    "DeviceTransferredError",
    "EvidenceFormatUnsupportedError",
    "EvidenceMalformedError",
    "EvidenceMissingError",
    "IdevidMismatchError",
    "KeyExportableError",
    "KeyMismatchError",
    "KeyNotGeneratedOnCardError",
    "KeyUsageError",
    "NotOnManifestError",
    "QuarantinedDeviceError",
    "UnknownManufacturerError",
    "reason_codes",
]


class AttestationError(VerificationError):
    """Attestation evidence does not support the enrolment; ``reason`` says which rule failed."""

    reason: ClassVar[str] = "attestation"


class EvidenceMissingError(AttestationError):
    """The CSR carries no id-aa-attestation bundle, or none of a format this authority verifies
    for the key: the signal of a software key presented instead of a secure-element key."""

    reason = "evidence-missing"


class EvidenceMalformedError(AttestationError):
    """The bundle or statement does not parse (not DER, no key-attestation certificate, missing
    or undecodable key-properties extension)."""

    reason = "evidence-malformed"


class EvidenceFormatUnsupportedError(AttestationError):
    """The bundle holds only statement types no registered verifier handles."""

    reason = "evidence-format-unsupported"


class AttestationSignatureError(AttestationError):
    """The key-attestation certificate is not signed by the attestation key of an IDevID in the
    bundle."""

    reason = "attestation-signature"


class UnknownManufacturerError(AttestationError):
    """The IDevID does not chain to any manufacturer root this authority is configured with."""

    reason = "manufacturer-unknown"


class ChipSerialMismatchError(AttestationError):
    """The chip serial in the key properties differs from the IDevID's HardwareModuleName."""

    reason = "chip-serial-mismatch"


class KeyMismatchError(AttestationError):
    """The CSR's public key is not the attested key (an attestation of another key)."""

    reason = "key-mismatch"


class KeyNotGeneratedOnCardError(AttestationError):
    """The attested key was imported into the card, not generated there."""

    reason = "key-not-generated-on-card"


class KeyExportableError(AttestationError):
    """The attested key is marked exportable."""

    reason = "key-exportable"


class KeyUsageError(AttestationError):
    """The attested key's usage policy is not the one the credential requires."""

    reason = "key-usage"


class NotOnManifestError(AttestationError):
    """No accepted (secured) line-manifest entry lists this device serial here."""

    reason = "not-on-manifest"


class QuarantinedDeviceError(AttestationError):
    """The line manifest lists the device as quarantined."""

    reason = "device-quarantined"


class IdevidMismatchError(AttestationError):
    """The IDevID (or its attestation key) is not the one the line manifest recorded."""

    reason = "idevid-mismatch"


class CloneSuspectedError(AttestationError):
    """The device serial is enrolled already with a different IDevID key: a clone signal."""

    reason = "clone-suspected"


class DeviceRevokedError(AttestationError):
    """The device's lifecycle has ended here (revoked); it does not enrol again."""

    reason = "device-revoked"


class DeviceTransferredError(DeviceRevokedError):
    """The device moved to another authority; this one no longer enrols it."""

    reason = "device-transferred"


class ChallengeUnknownError(AttestationError):
    """The attested challenge was never issued by this authority."""

    reason = "challenge-unknown"


class ChallengeExpiredError(AttestationError):
    """The attested challenge is past its validity."""

    reason = "challenge-expired"


class ChallengeReplayedError(AttestationError):
    """The attested challenge was used already (single use)."""

    reason = "challenge-replayed"


class ChallengeNotBoundError(AttestationError):
    """The challenge was issued for another device, or the key properties carry none."""

    reason = "challenge-not-bound"


def reason_codes() -> dict[str, type[AttestationError]]:
    """Every reason code and its class (the documented vocabulary of refusals)."""
    out: dict[str, type[AttestationError]] = {}
    stack: list[type[AttestationError]] = [AttestationError]
    while stack:
        cls = stack.pop()
        out[cls.reason] = cls
        stack.extend(cls.__subclasses__())
    return out
