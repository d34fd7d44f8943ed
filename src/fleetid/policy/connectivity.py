"""Which revocation material a device relies on, by how often it can reach the authority.

One registry, three connectivity profiles (``docs/revocation.md``):

* **always-on**: OCSP (RFC 6960), the peer's own pre-signed response stapled to its handshake or
  fetched at check time. Staleness is bounded by the response's ``nextUpdate`` and by a maximum
  age of ``thisUpdate``, so a replayed old "good" response is refused once it is that old.
* **intermittent**: X.509 CRLs (RFC 5280 §5), full plus delta, fetched on each contact. A CRL
  past its ``nextUpdate`` (plus a tolerance) is *stale*, never read as "not revoked".
* **offline**: the signed filter (``fleetid.revocation.filter``), pushed in advance over a
  broadcast channel; the check needs no network. The filter's age is bounded from its coverage
  time (SCMS tolerates a CRL two weeks overdue; so do we by default).

What an offline verifier does with a certificate newer than its filter (NOT_COVERED) is
``not_covered``: ``REJECT`` (the default: fail closed) or ``ACCEPT_WITHIN_GRACE``, accepting peers
whose notBefore is at most ``not_covered_grace`` after the coverage, reported as such.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import timedelta
from typing import Final

from fleetid.errors import ConfigError

__all__ = [
    "DEFAULT_POLICIES",
    "ConnectivityProfile",
    "NotCoveredAction",
    "RevocationPolicy",
    "policy_for",
]


class ConnectivityProfile(enum.StrEnum):
    """How a device reaches its authority, and so which revocation artefact it uses."""

    ALWAYS_ON = "always-on"
    INTERMITTENT = "intermittent"
    OFFLINE = "offline"


class NotCoveredAction(enum.StrEnum):
    """What an offline verifier does with a certificate issued after its filter's coverage."""

    REJECT = "reject"
    ACCEPT_WITHIN_GRACE = "accept-within-grace"


@dataclass(frozen=True, kw_only=True)
class RevocationPolicy:
    """The revocation rules of one profile: the artefact and how old it may be."""

    profile: ConnectivityProfile
    # OCSP (always-on): thisUpdate at most this old, and never past nextUpdate.
    max_ocsp_age: timedelta = timedelta(days=2)
    # CRL (intermittent): usable until nextUpdate + tolerance (RFC 5280 §6.3.3 (a)(2)).
    crl_tolerance: timedelta = timedelta(0)
    max_crl_age: timedelta = timedelta(days=7)
    # Filter (offline): coverage at most this old at check time.
    max_filter_age: timedelta = timedelta(days=14)
    not_covered: NotCoveredAction = NotCoveredAction.REJECT
    not_covered_grace: timedelta = timedelta(0)

    def __post_init__(self) -> None:
        for name in ("max_ocsp_age", "crl_tolerance", "max_crl_age", "max_filter_age"):
            if getattr(self, name) < timedelta(0):
                raise ConfigError(f"{name} cannot be negative")
        if self.not_covered_grace < timedelta(0):
            raise ConfigError("not_covered_grace cannot be negative")
        if self.not_covered is NotCoveredAction.REJECT and self.not_covered_grace:
            raise ConfigError("a grace for not-covered peers needs ACCEPT_WITHIN_GRACE")


DEFAULT_POLICIES: Final[dict[ConnectivityProfile, RevocationPolicy]] = {
    ConnectivityProfile.ALWAYS_ON: RevocationPolicy(profile=ConnectivityProfile.ALWAYS_ON),
    ConnectivityProfile.INTERMITTENT: RevocationPolicy(profile=ConnectivityProfile.INTERMITTENT),
    ConnectivityProfile.OFFLINE: RevocationPolicy(profile=ConnectivityProfile.OFFLINE),
}


def policy_for(profile: ConnectivityProfile | str) -> RevocationPolicy:
    """The default policy of a profile (by enum or by its name, e.g. ``"offline"``)."""
    try:
        return DEFAULT_POLICIES[ConnectivityProfile(profile)]
    except ValueError:
        names = ", ".join(p.value for p in ConnectivityProfile)
        raise ConfigError(f"unknown connectivity profile {profile!r}; use one of {names}") from None
