"""Certificate profiles: what each credential type's certificate says, and how long it lives.

The profiles follow RFC 5280 §4.2 for end entities: ``digitalSignature`` for ECDSA keys
(§4.2.1.3), an extended key usage naming the one purpose (§4.2.1.12), ``basicConstraints``
``cA=FALSE`` marked critical. The CA profiles carry ``keyCertSign`` and ``cRLSign`` and a path
length constraint (§4.2.1.9).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import timedelta

from cryptography.x509.oid import ExtendedKeyUsageOID, ObjectIdentifier

from fleetid.errors import ConfigError
from fleetid.policy.cadence import Cadence

__all__ = ["DEFAULT_POLICY", "CredentialType", "Policy", "Profile"]


class CredentialType(enum.StrEnum):
    """The kinds of certificate the fleet authority issues; stored as the ``profile`` column."""

    OPERATIONAL = "operational"  # a device's short-lived fleet credential (attestation-gated)
    TOKEN_DEVICE = "token-device"  # noqa: S105 - a profile name: enrolled by one-time token
    TLS_SERVER = "tls-server"  # the authority's own HTTPS listener


@dataclass(frozen=True, kw_only=True)
class Profile:
    """The certificate a credential type gets."""

    credential_type: CredentialType
    cadence: Cadence
    extended_key_usages: tuple[ObjectIdentifier, ...]
    # The subject key's curves this profile certifies (pyca names; the config file's key_types).
    key_types: tuple[str, ...] = ("secp256r1", "secp384r1")


def _days(n: float) -> timedelta:
    return timedelta(days=n)


@dataclass(frozen=True, kw_only=True)
class Policy:
    """The authority's issuance policy: one profile per credential type, CA lifetimes, TTLs."""

    profiles: dict[CredentialType, Profile] = field(
        default_factory=lambda: {
            CredentialType.OPERATIONAL: Profile(
                credential_type=CredentialType.OPERATIONAL,
                cadence=Cadence(lifetime=_days(30), renewal_window=_days(10)),
                extended_key_usages=(ExtendedKeyUsageOID.CLIENT_AUTH,),
            ),
            CredentialType.TOKEN_DEVICE: Profile(
                credential_type=CredentialType.TOKEN_DEVICE,
                cadence=Cadence(lifetime=_days(7), renewal_window=_days(2)),
                extended_key_usages=(ExtendedKeyUsageOID.CLIENT_AUTH,),
            ),
            CredentialType.TLS_SERVER: Profile(
                credential_type=CredentialType.TLS_SERVER,
                cadence=Cadence(lifetime=_days(90), renewal_window=_days(30)),
                extended_key_usages=(ExtendedKeyUsageOID.SERVER_AUTH,),
            ),
        }
    )
    root_lifetime: timedelta = timedelta(days=20 * 365)
    issuing_lifetime: timedelta = timedelta(days=5 * 365)
    token_ttl: timedelta = timedelta(hours=24)
    challenge_ttl: timedelta = timedelta(minutes=5)
    # Unused, unexpired challenges one device may hold; beyond it POST /enrol/challenge is 429.
    outstanding_challenges: int = 8
    # RFC 5280 §4.1.2.5: backdate notBefore a little against device clock skew.
    backdate: timedelta = timedelta(minutes=5)

    def profile(self, credential_type: CredentialType | str) -> Profile:
        try:
            return self.profiles[CredentialType(credential_type)]
        except (KeyError, ValueError) as exc:
            raise ConfigError(f"no certificate profile for {credential_type!r}") from exc


DEFAULT_POLICY = Policy()
