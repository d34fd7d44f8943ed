"""The agent's CRL fetching for intermittently connected devices: fetch what is missing on contact,
answer from what is held, and never mistake old material for "not revoked".

Sans-I/O: the caller passes ``fetch(url) -> bytes`` (HTTP, a gateway relay, a file), so the same
class runs over any transport and in tests.

On each contact (:meth:`CrlClient.refresh`) for a certificate's distribution point:

1. with no complete CRL held (or the one held past its nextUpdate), fetch the shard's full CRL,
   then the delta its freshestCRL names;
2. otherwise fetch only the delta. A delta whose BaseCRLNumber is at or below the held full
   CRL's number applies (RFC 5280 §5.2.4: a delta is cumulative since its base); one whose base
   is newer (``DeltaGapError``) means the device is too far behind, so it fetches the full shard
   and applies the delta to that.

Whether a CRL is acceptable, what is kept and what the answer is are
``fleetid.revocation.check.crl``'s (``HeldCrls``), the one relying-party CRL check: this module
only decides what to fetch. :meth:`CrlClient.check` raises ``CertificateRevokedError`` for a listed
certificate and ``StaleError`` when the CRLs held cannot say (none held, older than ``max_age``,
past a nextUpdate).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from cryptography import x509

from fleetid.errors import DeltaGapError
from fleetid.revocation.check.crl import CrlVerdict, HeldCrls, distribution_point

__all__ = ["CrlClient", "CrlVerdict", "RefreshReport", "distribution_point"]


@dataclass(frozen=True, kw_only=True)
class RefreshReport:
    """What one contact downloaded."""

    fetched: tuple[str, ...]  # "full" / "delta", in order
    bytes: int


def _freshest(crl: x509.CertificateRevocationList) -> str | None:
    """The delta CRL URL a complete CRL names in freshestCRL (RFC 5280 §5.2.6)."""
    try:
        points = crl.extensions.get_extension_for_class(x509.FreshestCRL).value
    except x509.ExtensionNotFound:
        return None
    for point in points:
        for name in point.full_name or ():
            if isinstance(name, x509.UniformResourceIdentifier):
                return name.value
    return None


class CrlClient:
    """CRLs of one issuing CA as a device holds them, per distribution point."""

    def __init__(
        self, issuer: x509.Certificate, *, fetch: Callable[[str], bytes], max_age: timedelta
    ) -> None:
        self._fetch = fetch
        self.max_age = max_age
        self._held = HeldCrls(issuer)

    @property
    def issuer(self) -> x509.Certificate:
        return self._held.issuer

    def held(self, url: str) -> tuple[int, int | None] | None:
        """(full CRL number, delta CRL number) held for ``url``, if any."""
        return self._held.held(url)

    # -- loading -------------------------------------------------------------------------------

    def load_full(self, url: str, der: bytes) -> int:
        """Keep a complete CRL for ``url``; returns its CRL number."""
        return self._held.load_full(der, url=url)

    def load_delta(self, url: str, der: bytes) -> int:
        """Apply a delta CRL to the complete CRL held for ``url``; returns its CRL number."""
        return self._held.load_delta(der, url=url)

    # -- on contact ----------------------------------------------------------------------------

    def refresh(self, certificate: x509.Certificate, now: datetime) -> RefreshReport:
        """Fetch what is missing for ``certificate``'s distribution point (see the module doc)."""
        url = distribution_point(certificate)
        fetched: list[str] = []
        size = 0
        held = self._held.complete(url)
        needs_full = held is None or now >= held.next_update
        if needs_full:
            der = self._fetch(url)
            fetched.append("full")
            size += len(der)
            self.load_full(url, der)
        full = self._held.complete(url)
        delta_url = None if full is None else _freshest(full.crl)
        if delta_url is None:
            return RefreshReport(fetched=tuple(fetched), bytes=size)
        der = self._fetch(delta_url)
        fetched.append("delta")
        size += len(der)
        try:
            self.load_delta(url, der)
        except DeltaGapError:
            if needs_full:
                raise  # a delta newer than the full just fetched: retry at the next contact
            full_der = self._fetch(url)  # too far behind: the whole shard
            fetched.append("full")
            size += len(full_der)
            self.load_full(url, full_der)
            self.load_delta(url, der)
        return RefreshReport(fetched=tuple(fetched), bytes=size)

    # -- answering -----------------------------------------------------------------------------

    def check(self, certificate: x509.Certificate, now: datetime) -> CrlVerdict:
        """Raise ``CertificateRevokedError`` if listed, ``StaleError`` if the CRLs are not
        current enough to say; otherwise the verdict "not revoked".
        """
        return self._held.status(certificate, now, max_age=self.max_age)
