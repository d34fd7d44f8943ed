"""One exception root for fleetid, with shallow families.

Callers catch the family they can handle; the HTTP and CLI edges map families to responses in
one place. The tree::

    FleetIdError
    ├── ConfigError            settings, files or command-line input that cannot be used
    │   └── NotConfiguredError a capability this authority is not set up for (HTTP 503)
    ├── EncodingError          bytes that do not parse as the format they claim to be
    │   ├── ProfileError       well-formed bytes that break their message profile (ETSI)
    │   ├── UnsupportedMediaTypeError  a body of another media type than the route takes
    │   └── BodyTooLargeError  a body over the route's size limit
    ├── VerificationError      a signature, MAC, cryptogram, hash or proof that does not verify
    │   ├── LogTamperedError   the audit log was altered; ``index`` names the first bad entry
    │   ├── CertificateRevokedError a revocation artefact (filter, OCSP, linked CRL) says revoked
    │   ├── AuthenticationError a presented credential (token, certificate) does not authenticate
    │   ├── StaleError         revocation material missing, expired or not yet valid: never "good"
    │   │   └── NotCoveredError the certificate is newer than the offline filter's coverage
    │   ├── ReplayError        an OCSP answer older than one already known, or a nonce not echoed
    │   ├── RollbackError      revocation material older than what the relying party holds
    │   │   ├── CrlRollbackError    a CRL numbered below the one held for its scope
    │   │   └── FilterRollbackError a filter below the held watermark or coverage
    │   ├── DeltaError         a delta (CRL or filter) that does not extend what is held
    │   │   ├── DeltaBaseError  it extends another base, or is not newer than its base
    │   │   └── DeltaGapError   its base is not held (none yet, or a newer one is needed)
    │   ├── BootRefusedError   a firmware image must not start; ``sw`` is the card's refusal
    │   └── RolloverRefusedError a new trust anchor does not chain from a held anchor
    ├── SecureElementError     a secure element answered an ISO 7816 status word other than 9000
    │   └── SecureChannelError the SCP03 session failed (authentication, MAC, sequence, level)
    ├── HsmError               the HSM refused or failed an operation
    │   └── HsmNotActivatedError   the HSM is locked until custodians activate it
    ├── CeremonyError          a key ceremony step is not allowed or its inputs are wrong
    ├── PolicyError            a request is well formed but policy forbids it
    │   └── LimitExceededError a per-client bound on outstanding work is reached (HTTP 429)
    ├── UnreachableError       a peer (the authority, a broker) cannot be reached or TLS failed
    └── StoreError             persistent state is missing, duplicated or inconsistent
        └── NotFoundError      the record a request names does not exist

Verification raises ``VerificationError``; no check in fleetid returns a bool to be ignored.
"""

from __future__ import annotations

__all__ = [
    "AuthenticationError",
    "BodyTooLargeError",
    "BootRefusedError",
    "CeremonyError",
    "CertificateRevokedError",
    "ConfigError",
    "CrlRollbackError",
    "DeltaBaseError",
    "DeltaError",
    "DeltaGapError",
    "EncodingError",
    "FilterRollbackError",
    "FleetIdError",
    "HsmError",
    "HsmNotActivatedError",
    "LimitExceededError",
    "LogTamperedError",
    "NotConfiguredError",
    "NotCoveredError",
    "NotFoundError",
    "PolicyError",
    "ProfileError",
    "ReplayError",
    "RollbackError",
    "RolloverRefusedError",
    "SecureChannelError",
    "SecureElementError",
    "StaleError",
    "StoreError",
    "UnreachableError",
    "UnsupportedMediaTypeError",
    "VerificationError",
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
