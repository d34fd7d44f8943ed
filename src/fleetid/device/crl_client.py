"""The agent's CRL logic for intermittently connected devices: fetch what is missing on contact,
answer from what is held, and never mistake old material for "not revoked".

Sans-I/O: the caller passes ``fetch(url) -> bytes`` (HTTP, a gateway relay, a file), so the same
class runs over any transport and in tests.

On each contact (:meth:`CrlClient.refresh`) for a certificate's distribution point:

1. with no complete CRL held, fetch the shard's full CRL, then the delta its freshestCRL names;
2. otherwise fetch only the delta. A delta whose BaseCRLNumber is at or below the held full
   CRL's number applies (RFC 5280 §5.2.4: a delta is cumulative since its base); one whose base
   is newer means the device is too far behind, so it fetches the full shard and applies the
   delta to that.

:meth:`CrlClient.check` answers from the held CRLs: revoked if the full or the delta lists the
serial; otherwise *stale* (``StaleCrlError``) when the newest CRL is older than the policy's
``max_age``, or the complete CRL is past its nextUpdate (§6.3.3 (a)), or nothing is held; only
then valid. Every CRL is checked before it is kept: the issuer's signature and name, a CRL
number (§5.2.3), the scope (the issuingDistributionPoint must name the certificate's
distribution point, §5.2.5), no rollback to a lower CRL number, and for a delta the
deltaCRLIndicator, the same scope as its full CRL and a CRL number above it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from cryptography import x509

from fleetid.errors import EncodingError, VerificationError
from fleetid.revocation.filter import CertificateRevokedError, DeltaBaseError, DeltaGapError

__all__ = [
    "CrlClient",
    "CrlRollbackError",
    "CrlVerdict",
    "RefreshReport",
    "StaleCrlError",
    "delta_crl_base",
    "distribution_point",
]


class StaleCrlError(VerificationError):
    """No current CRL for the certificate: never read as "not revoked"."""


class CrlRollbackError(VerificationError):
    """A CRL with a lower CRL number than one already held for the same scope."""


@dataclass(frozen=True, kw_only=True)
class CrlVerdict:
    """The certificate is not revoked according to CRLs current at ``this_update``."""

    serial_number: int
    crl_number: int
    delta_number: int | None
    this_update: datetime


@dataclass(frozen=True, kw_only=True)
class RefreshReport:
    """What one contact downloaded."""

    fetched: tuple[str, ...]  # "full" / "delta", in order
    bytes: int


@dataclass
class _Held:
    full: x509.CertificateRevocationList
    number: int
    delta: x509.CertificateRevocationList | None = None
    delta_number: int | None = None
    revoked: set[int] = field(default_factory=set)


def distribution_point(certificate: x509.Certificate) -> str:
    """The certificate's CRL distribution point URL (RFC 5280 §4.2.1.13)."""
    try:
        points = certificate.extensions.get_extension_for_class(x509.CRLDistributionPoints)
    except x509.ExtensionNotFound:
        raise VerificationError("the certificate names no CRL distribution point") from None
    for point in points.value:
        for name in point.full_name or ():
            if isinstance(name, x509.UniformResourceIdentifier):
                return name.value
    raise VerificationError("the certificate's CRL distribution point has no URI")


def _number(crl: x509.CertificateRevocationList) -> int:
    try:
        return crl.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number
    except x509.ExtensionNotFound:
        raise VerificationError("a CRL without a CRL number (RFC 5280 §5.2.3)") from None


def delta_crl_base(crl: x509.CertificateRevocationList) -> int | None:
    """The base CRL number a delta CRL names (RFC 5280 §5.2.4), or None for a full CRL."""
    try:
        return crl.extensions.get_extension_for_class(x509.DeltaCRLIndicator).value.crl_number
    except x509.ExtensionNotFound:
        return None


def _scope(crl: x509.CertificateRevocationList) -> set[str]:
    try:
        idp = crl.extensions.get_extension_for_class(x509.IssuingDistributionPoint).value
    except x509.ExtensionNotFound:
        raise VerificationError("a sharded CRL without an issuingDistributionPoint") from None
    return {n.value for n in idp.full_name or () if isinstance(n, x509.UniformResourceIdentifier)}


def _freshest(crl: x509.CertificateRevocationList) -> str | None:
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
        self._issuer = issuer
        self._fetch = fetch
        self.max_age = max_age
        self._held: dict[str, _Held] = {}

    def held(self, url: str) -> tuple[int, int | None] | None:
        """(full CRL number, delta CRL number) held for ``url``, if any."""
        found = self._held.get(url)
        return None if found is None else (found.number, found.delta_number)

    # -- loading -------------------------------------------------------------------------------

    def _parse(self, der: bytes, url: str) -> x509.CertificateRevocationList:
        try:
            crl = x509.load_der_x509_crl(der)
        except ValueError as exc:
            raise EncodingError(f"not a DER CRL: {exc}") from exc
        if crl.issuer != self._issuer.subject or not crl.is_signature_valid(
            self._issuer.public_key()  # type: ignore[arg-type]
        ):
            raise VerificationError("the CRL is not signed by this certificate's issuer")
        if url not in _scope(crl):
            raise VerificationError(f"the CRL's scope does not cover {url} (RFC 5280 §5.2.5)")
        return crl

    def load_full(self, url: str, der: bytes) -> int:
        """Keep a complete CRL for ``url``; returns its CRL number."""
        crl = self._parse(der, url)
        if delta_crl_base(crl) is not None:
            raise VerificationError("a delta CRL where a complete CRL was expected")
        number = _number(crl)
        held = self._held.get(url)
        if held is not None:
            if number < held.number:
                raise CrlRollbackError(f"CRL {number} is older than the held CRL {held.number}")
            if number == held.number:
                return number
        new = _Held(full=crl, number=number, revoked={r.serial_number for r in crl})
        if held is not None and held.delta is not None and held.delta_number is not None:
            base = delta_crl_base(held.delta)
            if base is not None and base <= number < held.delta_number:
                self._apply(new, held.delta, held.delta_number)
        self._held[url] = new
        return number

    def load_delta(self, url: str, der: bytes) -> int:
        """Apply a delta CRL to the complete CRL held for ``url``; returns its CRL number."""
        held = self._held.get(url)
        if held is None:
            raise DeltaGapError("no complete CRL held for this delta")
        crl = self._parse(der, url)
        base = delta_crl_base(crl)
        if base is None:
            raise VerificationError("a complete CRL where a delta CRL was expected")
        if _scope(crl) != _scope(held.full):
            raise DeltaBaseError("the delta CRL's scope differs from its complete CRL's")
        number = _number(crl)
        if base > held.number:
            raise DeltaGapError(
                f"delta CRL {number} needs complete CRL {base} or newer; {held.number} is held"
            )
        if number <= held.number:
            raise DeltaBaseError(f"delta CRL {number} is not newer than complete CRL {held.number}")
        if held.delta_number is not None and number < held.delta_number:
            raise CrlRollbackError(f"delta CRL {number} is older than the held {held.delta_number}")
        self._apply(held, crl, number)
        return number

    @staticmethod
    def _apply(held: _Held, delta: x509.CertificateRevocationList, number: int) -> None:
        held.delta, held.delta_number = delta, number
        held.revoked = {r.serial_number for r in held.full} | {r.serial_number for r in delta}

    # -- on contact ----------------------------------------------------------------------------

    def refresh(self, certificate: x509.Certificate, now: datetime) -> RefreshReport:
        """Fetch what is missing for ``certificate``'s distribution point (see the module doc)."""
        url = distribution_point(certificate)
        fetched: list[str] = []
        size = 0
        held = self._held.get(url)
        needs_full = held is None or (
            held.full.next_update_utc is not None and now >= held.full.next_update_utc
        )
        if needs_full:
            der = self._fetch(url)
            fetched.append("full")
            size += len(der)
            self.load_full(url, der)
        held = self._held[url]
        delta_url = _freshest(held.full)
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
            full = self._fetch(url)  # too far behind: the whole shard
            fetched.append("full")
            size += len(full)
            self.load_full(url, full)
            self.load_delta(url, der)
        return RefreshReport(fetched=tuple(fetched), bytes=size)

    # -- answering -----------------------------------------------------------------------------

    def check(self, certificate: x509.Certificate, now: datetime) -> CrlVerdict:
        """Raise ``CertificateRevokedError`` if listed, ``StaleCrlError`` if the CRLs are not
        current enough to say; otherwise the verdict "not revoked".
        """
        if certificate.issuer != self._issuer.subject:
            raise VerificationError("the certificate is not from this client's issuer")
        held = self._held.get(distribution_point(certificate))
        if held is None:
            raise StaleCrlError("no CRL held for this certificate's distribution point")
        if certificate.serial_number in held.revoked:
            raise CertificateRevokedError(f"CRL: serial {certificate.serial_number:x} is revoked")
        newest = held.full if held.delta is None else held.delta
        this_update = newest.last_update_utc
        if now - this_update > self.max_age:
            raise StaleCrlError(f"the newest CRL ({this_update:%Y-%m-%dT%H:%M:%SZ}) is too old")
        if held.full.next_update_utc is not None and now > held.full.next_update_utc:
            raise StaleCrlError("the complete CRL is past its nextUpdate (RFC 5280 §6.3.3)")
        return CrlVerdict(
            serial_number=certificate.serial_number,
            crl_number=held.number,
            delta_number=held.delta_number,
            this_update=this_update,
        )
