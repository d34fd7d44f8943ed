"""One exception root for fleetid, with shallow families.

Callers catch the family they can handle; the HTTP and CLI edges map families to responses in
one place. The tree::

    FleetIdError
    ├── ConfigError settings, files or command-line input that cannot be used
    │   └── NotConfiguredError a capability this authority is not set up for (HTTP 503)
    ├── EncodingError bytes that do not parse as the format they claim to be
    │   ├── UnsupportedMediaTypeError a body of another media type than the route takes
    │   ├── BodyTooLargeError a body over the route's size limit
    │   ├── ProfileError well-formed bytes that break their message profile (ETSI)
    │   ├── OperatorRequestError an admin API request whose values cannot be used (HTTP 400)
    │   ├── MalformedApduError bytes that are not an APDU (a card answers 6700)
    │   ├── MalformedImageError bytes that are not an MCUboot image (also a VerificationError)
    │   └── TlvError bytes that are not BER-TLV or DGI
    ├── VerificationError a signature, MAC, cryptogram, hash or proof that does not verify
    │   ├── CertificateRevokedError a revocation artefact (filter, OCSP, linked CRL) says revoked
    │   ├── LogTamperedError the audit log was altered; ``index`` names the first bad entry
    │   ├── AuthenticationError a presented credential (token, certificate) does not authenticate
    │   │   ├── AuthorityHopError a butterfly authority's message not signed by the one expected
    │   │   └── OperatorAuthenticationError no operator certificate, or one the operator CA did
    │   │           not issue, expired, revoked or unknown; ``reason`` names which (HTTP 401)
    │   ├── AttestationError attestation evidence does not support an enrolment; ``reason``:
    │   │   ├── EvidenceMissingError evidence-missing
    │   │   ├── EvidenceMalformedError evidence-malformed
    │   │   ├── EvidenceFormatUnsupportedError evidence-format-unsupported
    │   │   ├── AttestationSignatureError attestation-signature
    │   │   ├── UnknownManufacturerError manufacturer-unknown
    │   │   ├── ChipSerialMismatchError chip-serial-mismatch
    │   │   ├── KeyMismatchError key-mismatch
    │   │   ├── KeyNotGeneratedOnCardError key-not-generated-on-card
    │   │   ├── KeyExportableError key-exportable
    │   │   ├── KeyUsageError key-usage
    │   │   ├── NotOnManifestError not-on-manifest
    │   │   ├── QuarantinedDeviceError device-quarantined
    │   │   ├── IdevidMismatchError idevid-mismatch
    │   │   ├── CloneSuspectedError clone-suspected
    │   │   ├── DeviceRevokedError device-revoked
    │   │   │   └── DeviceTransferredError device-transferred
    │   │   ├── ChallengeUnknownError challenge-unknown
    │   │   ├── ChallengeExpiredError challenge-expired
    │   │   ├── ChallengeReplayedError challenge-replayed
    │   │   ├── ChallengeNotBoundError challenge-not-bound
    │   │   ├── AttestationTypeRefusedError attestation-type-refused ("none", self attestation)
    │   │   ├── AuthenticatorUnknownError authenticator-unknown (no FIDO metadata for the model)
    │   │   └── AuthenticatorStatusError authenticator-status (a status report refuses the model)
    │   ├── FlashSealError a secure element's flash does not open under its chip's fuse
    │   ├── StaleError revocation material missing, expired or not yet valid: never "good"
    │   │   ├── NotCoveredError the certificate is newer than the offline filter's coverage
    │   │   └── MetadataStaleError a FIDO metadata BLOB past its nextUpdate
    │   ├── ReplayError an OCSP answer older than one already known, or a nonce not echoed
    │   │   └── NotificationReplayedError a package notification the service has already seen
    │   ├── RollbackError revocation material older than what the relying party holds
    │   │   ├── CrlRollbackError a CRL numbered below the one held for its scope
    │   │   ├── FilterRollbackError a filter below the held watermark or coverage
    │   │   └── MetadataRollbackError a FIDO metadata BLOB numbered below the one held
    │   ├── DeltaError a delta (CRL or filter) that does not extend what is held
    │   │   ├── DeltaBaseError it extends another base, or is not newer than its base
    │   │   └── DeltaGapError its base is not held (none yet, or a newer one is needed)
    │   ├── BootRefusedError a firmware image must not start; ``sw`` is the card's refusal
    │   ├── RolloverRefusedError a new trust anchor does not chain from a held anchor
    │   ├── MetadataBlobError a FIDO metadata BLOB whose signature or chain does not verify
    │   └── FidoAssertionError a WebAuthn assertion that does not verify (RP, flags, signature)
    │       └── AssertionCounterError its signature counter is not above the one held
    ├── SecureElementError a secure element answered an ISO 7816 status word other than 9000
    │   ├── SecureChannelError the SCP03 session failed (authentication, MAC, sequence, level)
    │   ├── WrongLengthError 6700: wrong length
    │   ├── SecurityStatusError 6982: security status not satisfied (no session)
    │   ├── ConditionsNotSatisfiedError 6985: conditions of use (life cycle, policy, order)
    │   ├── IncorrectDataError 6A80: incorrect data
    │   ├── ReferencedDataNotFoundError 6A82 / 6A88: application or referenced data not found
    │   ├── IncorrectParametersError 6A86 / 6B00: incorrect P1 P2
    │   └── UnsupportedCommandError 6D00 / 6E00 / 6881 / 6884: not supported
    ├── HsmError the HSM refused or failed an operation
    │   └── HsmNotActivatedError the HSM is locked until custodians activate it
    ├── TpmError a TPM 2.0 refused or failed a command, or no TPM stack is installed
    ├── CeremonyError a key ceremony step is not allowed or its inputs are wrong
    ├── PolicyError a request is well formed but policy forbids it
    │   ├── LimitExceededError a per-client bound on outstanding work is reached (HTTP 429)
    │   ├── RequestRefusedError a V2X authority refuses a request; ``code`` is the TS 102 941
    │   │       response code it answers with (signed, never raised to a caller)
    │   ├── BatchRefusedError a butterfly batch request refused (replay, revoked device, policy)
    │   ├── PackageRefusedError a preparation service refuses a download step; ``reason``
    │   │   └── PackageExpiredError the package's order expired before it was downloaded
    │   └── OperatorRoleError an authenticated operator's role does not allow the action (403)
    ├── LineWorkerError a line worker process died; the next run resumes its units
    ├── UnreachableError a peer (the authority, a broker) cannot be reached or TLS failed
    └── StoreError persistent state is missing, duplicated or inconsistent
        ├── NotFoundError the record a request names does not exist
        │   └── BatchPendingError a butterfly batch downloaded before it is complete
        └── DatabaseUnavailableError the database is down or dropped the connection (HTTP 503)

Verification raises ``VerificationError``; no check in fleetid returns a bool to be ignored (the
predicates that choose among candidate issuers, ``fleetid.crypto.pkix.issued_by`` and its kin,
answer a question their caller branches on, and the caller raises).
"""

from __future__ import annotations

from typing import ClassVar

__all__ = [
    "AssertionCounterError",
    "AttestationError",
    "AttestationSignatureError",
    "AttestationTypeRefusedError",
    "AuthenticationError",
    "AuthenticatorStatusError",
    "AuthenticatorUnknownError",
    "AuthorityHopError",
    "BatchPendingError",
    "BatchRefusedError",
    "BodyTooLargeError",
    "BootRefusedError",
    "CeremonyError",
    "CertificateRevokedError",
    "ChallengeExpiredError",
    "ChallengeNotBoundError",
    "ChallengeReplayedError",
    "ChallengeUnknownError",
    "ChipSerialMismatchError",
    "CloneSuspectedError",
    "ConditionsNotSatisfiedError",
    "ConfigError",
    "CrlRollbackError",
    "DatabaseUnavailableError",
    "DeltaBaseError",
    "DeltaError",
    "DeltaGapError",
    "DeviceRevokedError",
    "DeviceTransferredError",
    "EncodingError",
    "EvidenceFormatUnsupportedError",
    "EvidenceMalformedError",
    "EvidenceMissingError",
    "FidoAssertionError",
    "FilterRollbackError",
    "FlashSealError",
    "FleetIdError",
    "HsmError",
    "HsmNotActivatedError",
    "IdevidMismatchError",
    "IncorrectDataError",
    "IncorrectParametersError",
    "KeyExportableError",
    "KeyMismatchError",
    "KeyNotGeneratedOnCardError",
    "KeyUsageError",
    "LimitExceededError",
    "LineWorkerError",
    "LogTamperedError",
    "MalformedApduError",
    "MalformedImageError",
    "MetadataBlobError",
    "MetadataRollbackError",
    "MetadataStaleError",
    "NotConfiguredError",
    "NotCoveredError",
    "NotFoundError",
    "NotOnManifestError",
    "NotificationReplayedError",
    "OperatorAuthenticationError",
    "OperatorRequestError",
    "OperatorRoleError",
    "PackageExpiredError",
    "PackageRefusedError",
    "PolicyError",
    "ProfileError",
    "QuarantinedDeviceError",
    "ReferencedDataNotFoundError",
    "ReplayError",
    "RequestRefusedError",
    "RollbackError",
    "RolloverRefusedError",
    "SecureChannelError",
    "SecureElementError",
    "SecurityStatusError",
    "StaleError",
    "StoreError",
    "TlvError",
    "TpmError",
    "UnknownManufacturerError",
    "UnreachableError",
    "UnsupportedCommandError",
    "UnsupportedMediaTypeError",
    "VerificationError",
    "WrongLengthError",
    "reason_codes",
]


class FleetIdError(Exception):
    """Root of every error fleetid raises on purpose."""


class ConfigError(FleetIdError):
    """Settings, files or command-line input that cannot be used."""


class NotConfiguredError(ConfigError):
    """A capability this authority is not set up for (e.g. attestation without a trusted
    manufacturer): the request may succeed elsewhere or later, so HTTP answers 503."""


class EncodingError(FleetIdError):
    """Bytes that do not parse as the format they claim to be."""


class UnsupportedMediaTypeError(EncodingError):
    """A request body of a media type the route does not take (HTTP 415)."""


class BodyTooLargeError(EncodingError):
    """A request body over the route's size limit (HTTP 413)."""


class ProfileError(EncodingError):
    """Well-formed bytes that break the profile of the message they claim to be.

    Example: an ``EtsiTs103097Data-Encrypted-Unicast`` with two recipients, or a PKI request whose
    psid is not 623. ETSI TS 102 941 answers these with ``badcontenttype`` rather than
    ``cantparse``.
    """


class VerificationError(FleetIdError):
    """A signature, MAC, cryptogram, hash or proof that does not verify."""


class CertificateRevokedError(VerificationError):
    """A revocation artefact (the filter, an OCSP answer, a linked CRL) says the certificate is
    revoked."""


class LogTamperedError(VerificationError):
    """The audit log does not verify; ``index`` is the first altered, deleted or reordered entry
    (``None`` when the fault is not in an entry, e.g. a forged checkpoint signature).
    """

    def __init__(self, message: str, index: int | None = None) -> None:
        self.index = index
        super().__init__(message if index is None else f"entry {index}: {message}")


class AuthenticationError(VerificationError):
    """A presented credential (one-time token, client certificate) does not authenticate the
    request: unknown, wrong, already used, expired or revoked. HTTP edges answer 401.
    """


class SecureElementError(FleetIdError):
    """A secure element answered with a status word other than 9000.

    The ISO 7816-4 status word travels with the error so that host code can tell "security status
    not satisfied" (6982) from "conditions of use not satisfied" (6985) and so on.
    """

    def __init__(self, sw: int, message: str = "", *, meaning: str = "") -> None:
        self.sw = sw
        self.detail = message  # what was refused (e.g. the instruction)
        self.meaning = meaning  # the status word in words (``formats.apdu.status_word_meaning``)
        words = f" ({meaning})" if meaning else ""
        super().__init__(f"SW {sw:04X}{words}" + (f": {message}" if message else ""))


class SecureChannelError(SecureElementError):
    """The SCP03 secure channel failed: authentication, MAC, sequence or security level."""


class HsmError(FleetIdError):
    """The HSM refused or failed an operation."""


class HsmNotActivatedError(HsmError):
    """The HSM is locked until M custodians present their shares."""


class CeremonyError(FleetIdError):
    """A key ceremony step is not allowed, or its inputs (config, shares) are wrong."""


class PolicyError(FleetIdError):
    """A request is well formed, but policy forbids it."""


class LimitExceededError(PolicyError):
    """A per-client bound on outstanding work is reached (HTTP 429); retry later."""


class UnreachableError(FleetIdError):
    """A peer (the authority, an MQTT broker) cannot be reached: refused, timed out, or its TLS
    handshake failed (an untrusted certificate, a wrong name)."""


class StoreError(FleetIdError):
    """Persistent state is missing, duplicated or inconsistent."""


class NotFoundError(StoreError):
    """The record a request names (a serial, a device) does not exist."""


# --- store and V2X authorities ------------------------------------------------------------------


class RequestRefusedError(PolicyError):
    """A V2X authority (EA or AA) refuses a request it could open: the request is answered, with a
    signed response whose ``responseCode`` (ETSI TS 102 941 §6.2.3) is ``code``, not raised to the
    requester. Refusals of malformed content and of bad signatures are answered the same way, each
    with its own code; what the authority cannot even decrypt raises its own family instead.
    """

    def __init__(self, code: str, reason: str) -> None:
        self.code = code
        super().__init__(f"{code}: {reason}")


# --- the authority: why an attestation-gated enrolment was refused ------------------------------
# One class per rule, each with a ``reason`` code that the HTTP edge sends as the problem
# document's ``reason`` member (RFC 9457), so an integrator can tell one refusal from another
# without parsing prose. ``reason_codes`` lists the vocabulary.


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


# --- the secure element: one class per ISO 7816-4 status word family the host acts on ----------
# ``fleetid.se.client.error_for_sw`` maps each status word to its class; the card raises the
# plain ``SecureElementError`` with the status word, and the host sees the typed one.


class WrongLengthError(SecureElementError):
    """6700: wrong length (malformed APDU, wrong Lc, digest of the wrong size)."""


class SecurityStatusError(SecureElementError):
    """6982: security status not satisfied (needs a secure channel session)."""


class ConditionsNotSatisfiedError(SecureElementError):
    """6985: conditions of use not satisfied (life cycle, key usage policy, order)."""


class IncorrectDataError(SecureElementError):
    """6A80: incorrect data (bad point, bad KCV, bad certificate)."""


class ReferencedDataNotFoundError(SecureElementError):
    """6A82 / 6A88: the application or the referenced data (key handle, object) is not on the
    card. Not ``NotFoundError``, which is a store record that does not exist."""


class IncorrectParametersError(SecureElementError):
    """6A86 / 6B00: incorrect P1 P2."""


class UnsupportedCommandError(SecureElementError):
    """6D00 / 6E00 / 6881 / 6884: instruction, class, channel or chaining not supported."""


class FlashSealError(VerificationError):
    """The card's flash blob does not open under this chip's fuse (wrong chip, corrupted or
    forged)."""


class MalformedApduError(EncodingError):
    """The bytes are not a well-formed APDU (ISO 7816-4 §5.1); a card answers 6700 (wrong
    length), the status word ``sw`` carries."""

    sw = 0x6700


class TlvError(EncodingError):
    """Bytes that are not well-formed BER-TLV (ISO 7816-4 §5.2) or DGI (GPCS §11.11)."""


# --- revocation and the relying party's checks ---------------------------------------------------
# One family per way revocation material can fail a relying party, whatever the channel (OCSP,
# CRL, offline filter): ``fleetid.revocation.check`` raises them, the device verifier maps them to
# verdicts. Each family is a ``VerificationError``: the material is refused, never read as "good".


class StaleError(VerificationError):
    """Revocation material that cannot answer now: none held, past its nextUpdate, older than the
    policy allows, not yet valid (thisUpdate ahead of the clock by more than the skew), or an
    OCSP responder that gave no status. Never read as "not revoked"."""


class NotCoveredError(StaleError):
    """The certificate was issued after the newest loaded filter's coverage (or none is loaded):
    the filter cannot answer for it."""


class ReplayError(VerificationError):
    """An OCSP response older than one the relying party already knows of (its thisUpdate before
    a known change of status), or one that does not echo the request's nonce (RFC 8954)."""


class RollbackError(VerificationError):
    """Revocation material older than what the relying party already holds for the same scope."""


class CrlRollbackError(RollbackError):
    """A CRL whose CRL number is below the one held for its scope (RFC 5280 §5.2.3: CRL numbers
    only increase), full or delta."""


class FilterRollbackError(RollbackError):
    """An offline filter whose watermark or coverage is below the loaded one's."""


class DeltaError(VerificationError):
    """A delta (CRL, RFC 5280 §5.2.4, or filter) that does not extend the artefacts held."""


class DeltaBaseError(DeltaError):
    """The delta extends another base than the one held (another full filter, another CRL scope),
    or is not newer than the complete CRL held."""


class DeltaGapError(DeltaError):
    """The delta's base is not held: nothing is held yet, an earlier delta is missing, or it needs
    a newer complete CRL than the one held."""


class BootRefusedError(VerificationError):
    """A firmware image must not start. ``sw`` is the secure element's status word when the card
    refused it (``fleetid.device.boot``)."""

    def __init__(self, message: str, sw: int | None = None) -> None:
        self.sw = sw
        super().__init__(message if sw is None else f"{message} (SW {sw:04X})")


class RolloverRefusedError(VerificationError):
    """A new trust anchor does not chain from an anchor the device holds (a root offered without
    a NewWithOld link certificate, ``fleetid.device.truststore``)."""


# V2X batches


class BatchRefusedError(PolicyError):
    """The registration authority or the pseudonym CA refuses a butterfly batch request: a
    replayed or stale request, a device whose certificates are revoked, a request outside
    policy. ``code`` names the reason for the problem document."""

    def __init__(self, code: str, message: str) -> None:
        self.code = code
        super().__init__(f"{code}: {message}")


class BatchPendingError(NotFoundError):
    """A batch download asked for before every certificate of the batch is issued."""


# --- the line and its images ---------------------------------------------------------------------


class MalformedImageError(EncodingError, VerificationError):
    """The bytes are not a well-formed MCUboot image (truncated, sizes inconsistent, bad TLVs).

    It is a ``VerificationError`` too: a malformed image never verifies.
    """


class LineWorkerError(FleetIdError):
    """A line worker process died (killed, crashed); the next run resumes its units."""


# --- TPM 2.0-rooted devices -----------------------------------------------------------------------


class TpmError(FleetIdError):
    """A TPM 2.0 refused or failed a command (``rc`` is its TPM2_RC response code when it
    answered one), or the TPM software stack (tpm2-pytss, libtss2) is not installed."""

    def __init__(self, message: str, rc: int | None = None) -> None:
        self.rc = rc
        super().__init__(message if rc is None else f"{message} (TPM rc 0x{rc:03X})")


# --- FIDO authenticators and their metadata (WebAuthn attestation, FIDO MDS3) --------------------


class AttestationTypeRefusedError(AttestationError):
    """A WebAuthn attestation of a type this authority's policy refuses: format "none", or self
    attestation (a packed statement without x5c), neither of which names the authenticator's
    maker."""

    reason = "attestation-type-refused"


class AuthenticatorUnknownError(AttestationError):
    """The metadata store holds no entry for the authenticator model (its AAGUID, or for a U2F
    authenticator its attestation certificate key identifier)."""

    reason = "authenticator-unknown"


class AuthenticatorStatusError(AttestationError):
    """A status report of the authenticator model refuses it (REVOKED,
    ATTESTATION_KEY_COMPROMISE, USER_VERIFICATION_BYPASS, ...); ``status`` names the report."""

    reason = "authenticator-status"

    def __init__(self, message: str, status: str) -> None:
        self.status = status
        super().__init__(message)


class MetadataBlobError(VerificationError):
    """A FIDO metadata BLOB that is not a JWS, or whose signature or x5c chain to the configured
    metadata root does not verify (FIDO MDS3 §3.2)."""


class MetadataRollbackError(RollbackError):
    """A FIDO metadata BLOB whose serial number (``no``) is below the one the store holds."""


class MetadataStaleError(StaleError):
    """A FIDO metadata BLOB whose ``nextUpdate`` has passed, or a store that holds none."""


# --- credential packages: preparation and discovery ----------------------------------------------


class PackageRefusedError(PolicyError):
    """A preparation service refuses a step of a package download: the package is bound
    to another device, was downloaded already, needs a confirmation code that was not given.
    ``reason`` names it for the problem document, after the SGP.22 ES9+ reason codes."""

    def __init__(self, reason: str, message: str) -> None:
        self.reason = reason
        super().__init__(f"{reason}: {message}")


class PackageExpiredError(PackageRefusedError):
    """The package's order expired before the device downloaded it (SGP.22 "order expired")."""

    def __init__(self, message: str) -> None:
        super().__init__("order-expired", message)


class NotificationReplayedError(ReplayError):
    """A package notification (sequence number, transaction) the service has already handled."""


# --- butterfly authorities over HTTP -------------------------------------------------------------


class AuthorityHopError(AuthenticationError):
    """A message between butterfly authorities (RA, pseudonym CA, LA) is not signed by the one
    authority the receiving route expects, or its signature does not verify (HTTP 401)."""


# --- FIDO assertions -----------------------------------------------------------------------------


class FidoAssertionError(VerificationError):
    """A WebAuthn assertion (WebAuthn L3 §7.2) that does not verify: another RP's, without user
    presence (or verification where required), or with a signature that does not verify."""


class AssertionCounterError(FidoAssertionError):
    """An assertion whose signature counter is not above the one held for the credential
    (§7.2 step 22: a replayed assertion or a cloned authenticator)."""


# --- the operator's admin API (mTLS operator credentials, roles) ---------------------------------


class OperatorAuthenticationError(AuthenticationError):
    """A request to the admin API without an operator certificate, or with one the operator CA
    did not issue, or that expired, was revoked or is not on record. ``reason`` names which
    (``operator-certificate-missing``, ``-foreign``, ``-expired``, ``-revoked``, ``-unknown``);
    ``challenge`` is the 401 answer's ``WWW-Authenticate`` (no HTTP authentication scheme names
    TLS client certificates, so it names the realm and what is asked for)."""

    challenge = 'Mutual realm="fleetid operators", scheme="tls-client-certificate"'

    def __init__(self, reason: str, message: str) -> None:
        self.reason = f"operator-certificate-{reason}"
        super().__init__(message)


class OperatorRoleError(PolicyError):
    """An authenticated operator whose role does not allow the action (viewer, operator,
    security officer; ``fleetid.authority.operator_ca.Role``)."""

    reason = "operator-role"


class OperatorRequestError(EncodingError):
    """An admin API request whose values cannot be used: a device id, a count, a fingerprint
    the service refuses as it would refuse them on the command line (HTTP 400)."""


# --- the database under faults --------------------------------------------------------------


class DatabaseUnavailableError(StoreError):
    """The database cannot be reached or ended the connection (a restart, a failover, a
    terminated backend): nothing of the transaction committed, and the same request may be sent
    again (HTTP 503 with Retry-After)."""
