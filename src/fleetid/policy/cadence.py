"""Renewal cadence: how long a credential lives and when its holder should renew it.

The renewal window is the last stretch of a certificate's validity; a holder renews once it is
inside it. This is the "renewal at a fraction of validity" habit of cert-manager and Vault agent,
with the window given as a duration so that it reads the same for an hour-long and a year-long
credential. ARI (RFC 9773) would let the server move the window; not used yet.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from fleetid.errors import ConfigError

__all__ = ["Cadence"]


@dataclass(frozen=True, kw_only=True)
class Cadence:
    """A credential's lifetime and the window before expiry in which it is renewed."""

    lifetime: timedelta
    renewal_window: timedelta

    def __post_init__(self) -> None:
        if self.lifetime <= timedelta(0):
            raise ConfigError("a lifetime is positive")
        if not timedelta(0) < self.renewal_window < self.lifetime:
            raise ConfigError("the renewal window is positive and shorter than the lifetime")

    def renew_from(self, not_after: datetime) -> datetime:
        """The moment a certificate expiring at ``not_after`` enters its renewal window."""
        return not_after - self.renewal_window

    def renewal_due(self, not_after: datetime, now: datetime) -> bool:
        """Whether a certificate expiring at ``not_after`` should be renewed at ``now``."""
        return now >= self.renew_from(not_after)
