"""The relying party's CRL processing (RFC 5280 §6.3), the one fleetid has.

:func:`verify_crl` checks one CRL against the CA that should have issued it; :class:`HeldCrls`
is the state a relying party keeps for one CA: per scope (the issuingDistributionPoint's names)
the newest complete CRL and the newest delta that applies to it, and the answer for a
certificate. The device's ``CrlClient`` (which fetches on contact) and ``PeerVerifier`` (which is
handed CRLs) both keep a ``HeldCrls``; no other code decides whether a CRL is acceptable.

Each CRL, before it is kept (:func:`verify_crl`):

* **issuer** (§6.3.3 (b)(1), (f)): the CRL names the CA as its issuer, the CA's keyUsage (when
  present) allows cRLSign, and the CA's key signed it (``fleetid.crypto.pkix.crl_signed_by``);
* **CRL number** (§5.2.3): present; a CRL without one cannot be ordered, so it is refused
  (``VerificationError``, like every other CRL that fails these checks);
* **nextUpdate** (§5.1.2.5): present; a CRL without one can never be judged current;
* **scope** (§5.2.5): an issuingDistributionPoint, critical, naming the distribution point(s) it
  covers by URI. fleetid partitions its CRLs, and a certificate's cRLDistributionPoints names its
  partition, so a CRL that does not say which partition it is cannot stand for one: a CRL without
  the extension is refused, never read as covering everything. Indirect CRLs, attribute-certificate
  CRLs and CRLs limited to some reasons are refused too: none can say "not revoked" for a fleet
  certificate on its own;
* **extensions** (§5.2, §5.3): a critical extension the checker does not understand, in the CRL
  or an entry, refuses the CRL; a complete CRL never lists removeFromCRL (§5.3.1); a delta's
  deltaCRLIndicator is critical (§5.2.4) and a delta carries no freshestCRL (§5.2.6).

What is kept (:class:`HeldCrls`):

* a **complete CRL** replaces the one held for its scope only if its CRL number is higher (a
  lower one is a rollback, ``CrlRollbackError``; an equal one must be the same CRL, byte for byte,
  §5.2.3, else ``VerificationError``, and the one held stays). A held delta survives only if it
  still applies to the new complete CRL;
* a **delta** (§5.2.4) applies to a complete CRL of the same scope (else ``DeltaBaseError``, or
  ``DeltaGapError`` when no complete CRL of that scope is held) whose number is at least the
  delta's BaseCRLNumber (else ``DeltaGapError``: a newer complete CRL is needed) and below the
  delta's own number (else ``DeltaBaseError``); a delta numbered below the held delta is a
  rollback (``CrlRollbackError``), one numbered as it must be the same CRL.

The answer (:meth:`HeldCrls.status`, §6.3.3): the certificate must be of this CA (its issuer name,
and its authorityKeyIdentifier when it has one) and inside a
held scope (its distribution point among the IDP's names, and of the kind ``onlyContainsUserCerts``
or ``onlyContainsCACerts`` allows), else ``StaleError`` (no CRL for it). The delta is read first:
an entry there decides (removeFromCRL releases a certificate the complete CRL lists on hold,
§6.3.3 (j)); then the complete CRL. A listed certificate raises ``CertificateRevokedError`` however
old the CRLs are. Otherwise the CRLs must be current: every held CRL of the scope (the complete
one and the delta) before its nextUpdate plus the policy's ``tolerance`` (§6.3.3 (a)), none with a
thisUpdate more than ``skew`` ahead of the clock, and the newest no older than ``max_age``; else
``StaleError``, never "not revoked".

The module imports only pyca/cryptography, ``fleetid.crypto`` and ``fleetid.errors``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from fleetid.crypto.pkix import crl_signed_by
from fleetid.errors import (
    CertificateRevokedError,
    CrlRollbackError,
    DeltaBaseError,
    DeltaGapError,
    EncodingError,
    StaleError,
    VerificationError,
)
from fleetid.revocation.check._extensions import key_usage, refuse_unknown_critical

__all__ = [
    "CheckedCrl",
    "CrlVerdict",
    "HeldCrls",
    "crl_number",
    "delta_crl_base",
    "distribution_point",
    "distribution_point_names",
    "verify_crl",
]

_NO_TIME = timedelta(0)


def crl_number(crl: x509.CertificateRevocationList) -> int:
    """The CRL number (RFC 5280 §5.2.3); a CRL without one raises ``VerificationError``."""
    try:
        return crl.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number
    except x509.ExtensionNotFound:
        raise VerificationError("a CRL without a CRL number (RFC 5280 §5.2.3)") from None


def delta_crl_base(crl: x509.CertificateRevocationList) -> int | None:
    """The BaseCRLNumber a delta CRL names (RFC 5280 §5.2.4), or None for a complete CRL."""
    try:
        return crl.extensions.get_extension_for_class(x509.DeltaCRLIndicator).value.crl_number
    except x509.ExtensionNotFound:
        return None


def _uris(names: object) -> frozenset[str]:
    found = names if isinstance(names, list | tuple) else ()
    return frozenset(n.value for n in found if isinstance(n, x509.UniformResourceIdentifier))


def distribution_point_names(certificate: x509.Certificate) -> frozenset[str]:
    """The URIs of the certificate's direct CRL distribution points (RFC 5280 §4.2.1.13): those
    with a fullName, no cRLIssuer (fleetid CRLs are direct) and no reason subset."""
    try:
        points = certificate.extensions.get_extension_for_class(x509.CRLDistributionPoints)
    except x509.ExtensionNotFound:
        return frozenset()
    names: set[str] = set()
    for point in points.value:
        if point.crl_issuer is None and point.reasons is None:
            names |= _uris(point.full_name)
    return frozenset(names)


def distribution_point(certificate: x509.Certificate) -> str:
    """The certificate's CRL distribution point URL (RFC 5280 §4.2.1.13): where to fetch."""
    try:
        points = certificate.extensions.get_extension_for_class(x509.CRLDistributionPoints)
    except x509.ExtensionNotFound:
        raise VerificationError("the certificate names no CRL distribution point") from None
    for point in points.value:
        for name in point.full_name or ():
            if isinstance(name, x509.UniformResourceIdentifier):
                return name.value
    raise VerificationError("the certificate's CRL distribution point has no URI")


def _is_ca(certificate: x509.Certificate) -> bool:
    try:
        return certificate.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    except x509.ExtensionNotFound:
        return False


@dataclass(frozen=True, kw_only=True)
class CheckedCrl:
    """A CRL :func:`verify_crl` accepted, with what the relying party reads from it."""

    crl: x509.CertificateRevocationList = field(repr=False)
    number: int
    base_number: int | None  # a delta's BaseCRLNumber; None for a complete CRL
    scope: frozenset[str]  # the issuingDistributionPoint's URIs
    only_user_certs: bool
    only_ca_certs: bool
    this_update: datetime
    next_update: datetime
    entries: dict[int, x509.ReasonFlags] = field(repr=False)  # serial -> reason

    @property
    def is_delta(self) -> bool:
        return self.base_number is not None

    def covers(self, certificate: x509.Certificate) -> bool:
        """Whether the certificate is inside this CRL's scope (RFC 5280 §6.3.3 (b)(2))."""
        if not self.scope & distribution_point_names(certificate):
            return False
        if self.only_user_certs and _is_ca(certificate):
            return False
        return not (self.only_ca_certs and not _is_ca(certificate))

    def same_scope(self, other: CheckedCrl) -> bool:
        return (self.scope, self.only_user_certs, self.only_ca_certs) == (
            other.scope,
            other.only_user_certs,
            other.only_ca_certs,
        )


def _entries(crl: x509.CertificateRevocationList, *, delta: bool) -> dict[int, x509.ReasonFlags]:
    entries: dict[int, x509.ReasonFlags] = {}
    for revoked in crl:
        extensions = revoked.extensions
        refuse_unknown_critical(extensions, "a CRL entry")
        try:
            extensions.get_extension_for_class(x509.CertificateIssuer)
        except x509.ExtensionNotFound:
            pass
        else:
            raise VerificationError("a CRL entry names another certificate issuer (indirect CRL)")
        try:
            reason = extensions.get_extension_for_class(x509.CRLReason).value.reason
        except x509.ExtensionNotFound:
            reason = x509.ReasonFlags.unspecified
        if reason is x509.ReasonFlags.remove_from_crl and not delta:
            raise VerificationError("a complete CRL lists removeFromCRL (RFC 5280 §5.3.1)")
        entries[revoked.serial_number] = reason
    return entries


def verify_crl(crl: x509.CertificateRevocationList | bytes, issuer: x509.Certificate) -> CheckedCrl:
    """Check one CRL against the CA ``issuer`` (the module doc's first list); raise or return it.

    ``EncodingError`` for bytes that are not a DER CRL; ``VerificationError`` for everything else.
    """
    if isinstance(crl, bytes):
        try:
            crl = x509.load_der_x509_crl(crl)
        except ValueError as exc:
            raise EncodingError(f"not a DER CRL: {exc}") from exc
    if crl.issuer != issuer.subject:
        raise VerificationError("the CRL is not signed by this certificate's issuer")
    usage = key_usage(issuer)
    if usage is not None and not usage.crl_sign:
        raise VerificationError("the issuer's keyUsage does not allow cRLSign (RFC 5280 §6.3.3)")
    if not crl_signed_by(crl, issuer):
        raise VerificationError("the CRL is not signed by this certificate's issuer")
    try:
        extensions = crl.extensions
    except ValueError as exc:
        raise EncodingError(f"the CRL's extensions do not parse: {exc}") from exc
    refuse_unknown_critical(extensions, "the CRL")
    number = crl_number(crl)
    next_update = crl.next_update_utc
    if next_update is None:
        raise VerificationError("a CRL without a nextUpdate (RFC 5280 §5.1.2.5)")
    try:
        idp_extension = extensions.get_extension_for_class(x509.IssuingDistributionPoint)
    except x509.ExtensionNotFound:
        raise VerificationError(
            "a CRL without an issuingDistributionPoint: it does not say which partition it "
            "covers (RFC 5280 §5.2.5)"
        ) from None
    idp = idp_extension.value
    if not idp_extension.critical:
        raise VerificationError("the issuingDistributionPoint is not critical (RFC 5280 §5.2.5)")
    if idp.indirect_crl or idp.only_contains_attribute_certs or idp.only_some_reasons:
        raise VerificationError(
            "an indirect, attribute-certificate or some-reasons CRL cannot answer for a fleet "
            "certificate (RFC 5280 §5.2.5)"
        )
    if idp.only_contains_user_certs and idp.only_contains_ca_certs:
        raise VerificationError("a CRL both for user and for CA certificates (RFC 5280 §5.2.5)")
    scope = _uris(idp.full_name)
    if not scope:
        raise VerificationError("the CRL's issuingDistributionPoint names no URI")
    base = None
    try:
        indicator = extensions.get_extension_for_class(x509.DeltaCRLIndicator)
    except x509.ExtensionNotFound:
        pass
    else:
        if not indicator.critical:
            raise VerificationError("the deltaCRLIndicator is not critical (RFC 5280 §5.2.4)")
        base = indicator.value.crl_number
        if base >= number:
            raise VerificationError(f"delta CRL {number} is not newer than its base {base}")
        try:
            extensions.get_extension_for_class(x509.FreshestCRL)
        except x509.ExtensionNotFound:
            pass
        else:
            raise VerificationError("a delta CRL names a freshest CRL (RFC 5280 §5.2.6)")
    return CheckedCrl(
        crl=crl,
        number=number,
        base_number=base,
        scope=scope,
        only_user_certs=idp.only_contains_user_certs,
        only_ca_certs=idp.only_contains_ca_certs,
        this_update=crl.last_update_utc,
        next_update=next_update,
        entries=_entries(crl, delta=base is not None),
    )


@dataclass(frozen=True, kw_only=True)
class CrlVerdict:
    """The certificate is not revoked according to CRLs current at ``this_update``."""

    serial_number: int
    crl_number: int
    delta_number: int | None
    this_update: datetime


def _same_key_id(certificate: x509.Certificate, issuer: x509.Certificate) -> bool:
    """The certificate's authorityKeyIdentifier names the issuer's subjectKeyIdentifier (RFC 5280
    §4.2.1.1), when both are there: a namesake CA with another key is not this issuer."""
    try:
        aki = certificate.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier).value
        ski = issuer.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    except x509.ExtensionNotFound:
        return True
    return aki.key_identifier is None or aki.key_identifier == ski.digest


def _same_crl(held: CheckedCrl, new: CheckedCrl) -> None:
    """A CRL number names one CRL of a scope (RFC 5280 §5.2.3): another CRL under a held number
    is refused, and the held one stays."""
    if held.crl.public_bytes(Encoding.DER) != new.crl.public_bytes(Encoding.DER):
        raise VerificationError(
            f"two different CRLs numbered {new.number} for one scope (RFC 5280 §5.2.3)"
        )


@dataclass
class _Scope:
    full: CheckedCrl
    delta: CheckedCrl | None = None


class HeldCrls:
    """The CRLs a relying party holds for one CA, per scope, and its answers from them."""

    def __init__(self, issuer: x509.Certificate) -> None:
        self._issuer = issuer
        self._scopes: dict[frozenset[str], _Scope] = {}

    @property
    def issuer(self) -> x509.Certificate:
        return self._issuer

    def _find(self, url: str) -> _Scope | None:
        return next((held for scope, held in self._scopes.items() if url in scope), None)

    def held(self, url: str) -> tuple[int, int | None] | None:
        """(complete CRL number, delta CRL number) held for the scope naming ``url``, if any."""
        found = self._find(url)
        if found is None:
            return None
        return found.full.number, None if found.delta is None else found.delta.number

    def complete(self, url: str) -> CheckedCrl | None:
        """The complete CRL held for the scope naming ``url``, if any."""
        found = self._find(url)
        return None if found is None else found.full

    # -- loading ---------------------------------------------------------------------------------

    def load(self, crl: x509.CertificateRevocationList | bytes) -> CheckedCrl:
        """Verify a complete or delta CRL and keep it (the module doc's second list)."""
        checked = verify_crl(crl, self._issuer)
        if checked.is_delta:
            self._apply_delta(checked)
        else:
            self._apply_full(checked)
        return checked

    def load_full(self, crl: x509.CertificateRevocationList | bytes, *, url: str | None) -> int:
        """Keep a complete CRL (for ``url``'s scope, when given); returns its CRL number."""
        checked = self._verified(crl, url)
        if checked.is_delta:
            raise VerificationError("a delta CRL where a complete CRL was expected")
        return self._apply_full(checked)

    def load_delta(self, crl: x509.CertificateRevocationList | bytes, *, url: str | None) -> int:
        """Apply a delta CRL (to ``url``'s scope, when given); returns its CRL number."""
        if url is not None and self._find(url) is None:
            raise DeltaGapError("no complete CRL held for this delta")
        checked = self._verified(crl, url)
        if not checked.is_delta:
            raise VerificationError("a complete CRL where a delta CRL was expected")
        return self._apply_delta(checked)

    def _verified(self, crl: x509.CertificateRevocationList | bytes, url: str | None) -> CheckedCrl:
        checked = verify_crl(crl, self._issuer)
        if url is not None and url not in checked.scope:
            raise VerificationError(f"the CRL's scope does not cover {url} (RFC 5280 §5.2.5)")
        return checked

    def _apply_full(self, checked: CheckedCrl) -> int:
        held = self._scopes.get(checked.scope)
        keep: CheckedCrl | None = None
        if held is not None:
            if checked.number < held.full.number:
                raise CrlRollbackError(
                    f"CRL {checked.number} is older than the held CRL {held.full.number}"
                )
            if checked.number == held.full.number:
                _same_crl(held.full, checked)
                return checked.number  # the same CRL: the one held stays
            delta = held.delta
            # §5.2.4: the held delta still applies to the new complete CRL.
            if delta is not None and (delta.base_number or 0) <= checked.number < delta.number:
                keep = delta
        self._scopes[checked.scope] = _Scope(full=checked, delta=keep)
        return checked.number

    def _apply_delta(self, checked: CheckedCrl) -> int:
        held = self._scopes.get(checked.scope)
        if held is None or not held.full.same_scope(checked):
            if held is not None or any(scope & checked.scope for scope in self._scopes):
                raise DeltaBaseError("the delta CRL's scope differs from its complete CRL's")
            raise DeltaGapError("no complete CRL held for this delta")
        base, number, full = checked.base_number, checked.number, held.full
        assert base is not None  # noqa: S101 - a delta has a base
        if base > full.number:
            raise DeltaGapError(
                f"delta CRL {number} needs complete CRL {base} or newer; {full.number} is held"
            )
        if number <= full.number:
            raise DeltaBaseError(f"delta CRL {number} is not newer than complete CRL {full.number}")
        if held.delta is not None:
            if number < held.delta.number:
                raise CrlRollbackError(
                    f"delta CRL {number} is older than the held delta {held.delta.number}"
                )
            if number == held.delta.number:
                _same_crl(held.delta, checked)
                return number
        held.delta = checked
        return number

    # -- answering -------------------------------------------------------------------------------

    def status(
        self,
        certificate: x509.Certificate,
        now: datetime,
        *,
        max_age: timedelta | None = None,
        tolerance: timedelta = _NO_TIME,
        skew: timedelta = _NO_TIME,
    ) -> CrlVerdict:
        """Raise ``CertificateRevokedError`` if listed, ``StaleError`` if the CRLs held are not
        current enough to say; otherwise the verdict "not revoked" (the module doc's last part).
        """
        if certificate.issuer != self._issuer.subject or not _same_key_id(
            certificate, self._issuer
        ):
            raise VerificationError("the certificate is not from this CRL issuer")
        held = next((h for h in self._scopes.values() if h.full.covers(certificate)), None)
        if held is None:
            raise StaleError("no CRL held for this certificate's distribution point")
        serial = certificate.serial_number
        for crl in (held.delta, held.full):
            if crl is None or serial not in crl.entries:
                continue
            reason = crl.entries[serial]
            if reason is x509.ReasonFlags.remove_from_crl:
                break  # released from hold (§6.3.3 (j)): not revoked
            raise CertificateRevokedError(
                f"CRL {crl.number}: serial {serial:x} is revoked ({reason.value})"
            )
        newest = held.full if held.delta is None else held.delta
        if max_age is not None and now - newest.this_update > max_age:
            raise StaleError(
                f"the newest CRL ({newest.number}, {newest.this_update:%Y-%m-%dT%H:%M:%SZ}) is "
                "too old for the policy"
            )
        for crl in (held.full, held.delta):
            if crl is None:
                continue
            if crl.this_update > now + skew:
                raise StaleError(f"CRL {crl.number}'s thisUpdate is in the future")
            if now > crl.next_update + tolerance:
                raise StaleError(
                    f"CRL {crl.number} is past its nextUpdate "
                    f"({crl.next_update:%Y-%m-%dT%H:%M:%SZ}, RFC 5280 §6.3.3 (a))"
                )
        return CrlVerdict(
            serial_number=serial,
            crl_number=held.full.number,
            delta_number=None if held.delta is None else held.delta.number,
            this_update=newest.this_update,
        )
