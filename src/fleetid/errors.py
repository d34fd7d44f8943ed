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
    │   └── AuthenticationError a presented credential (token, certificate) does not authenticate
    ├── SecureElementError     a secure element answered an ISO 7816 status word other than 9000
    │   └── SecureChannelError the SCP03 session failed (authentication, MAC, sequence, level)
    ├── HsmError               the HSM refused or failed an operation
    │   └── HsmNotActivatedError   the HSM is locked until custodians activate it
    ├── CeremonyError          a key ceremony step is not allowed or its inputs are wrong
    ├── PolicyError            a request is well formed but policy forbids it
    │   ├── LimitExceededError a per-client bound on outstanding work is reached (HTTP 429)
    │   └── BatchRefusedError  a butterfly batch request refused (replay, revoked device, policy)
    ├── UnreachableError       a peer (the authority, a broker) cannot be reached or TLS failed
    └── StoreError             persistent state is missing, duplicated or inconsistent
        └── NotFoundError      the record a request names does not exist
            └── BatchPendingError  a butterfly batch downloaded before it is complete

Verification raises ``VerificationError``; no check in fleetid returns a bool to be ignored.
"""

from __future__ import annotations

__all__ = [
    "AuthenticationError",
    "BatchPendingError",
    "BatchRefusedError",
    "BodyTooLargeError",
    "CeremonyError",
    "CertificateRevokedError",
    "ConfigError",
    "EncodingError",
    "FleetIdError",
    "HsmError",
    "HsmNotActivatedError",
    "LimitExceededError",
    "LogTamperedError",
    "NotConfiguredError",
    "NotFoundError",
    "PolicyError",
    "ProfileError",
    "SecureChannelError",
    "SecureElementError",
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
