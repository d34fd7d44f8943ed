"""RFC 5280 path validation of an IDevID to a configured manufacturer root, remembering issuers.

Every device of a line presents the same issuing CA (the line CA) under the same root, so a full
validation per enrolment re-verifies the same root signature each time (a P-384 verification is
about 1 ms, most of the cost). ``IdevidPaths`` validates the full path (``pkix.path_verifier``:
signatures, validity at ``now``, the CA profile, the IDevID's keyUsage) and remembers an issuer
whose path to a root it has validated. A later IDevID under a remembered issuer is validated
with that issuer as the trust anchor, which is RFC 5280 §6.1 with the remembered path's outcome
as the input state (§6.1.1 (d)-(f): working public key, algorithm and issuer name), provided
that:

* ``now`` lies in every validity period of the remembered path (it was valid then, and nothing
  else in the path's outcome depends on time; pyca checks no revocation);
* no certificate of the remembered path carries name constraints (§4.2.1.10), the one state
  (§6.1.2 (b), (c)) that would pass from it to the IDevID; pyca processes no certificate
  policies, and the path length constraint (§4.2.1.9) bounds CA certificates only.

Anything else (a first sight, a path with name constraints, a failure under the remembered
issuer) is validated in full, so a refusal always comes from the full validation.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from threading import Lock
from typing import Final

from cryptography import x509

from fleetid.crypto.pkix import (
    Criticality,
    ExtensionPolicy,
    PathValidationError,
    path_verifier,
)
from fleetid.formats import x509_tbs

__all__ = ["IdevidPaths"]

_MAX_ISSUERS: Final = 256  # line CAs remembered; the oldest is forgotten first


def _require_digital_signature(
    _policy: object, _certificate: x509.Certificate, extension: x509.KeyUsage | None
) -> None:
    if extension is None or not extension.digital_signature:
        raise ValueError("an IDevID's keyUsage has digitalSignature (802.1AR §8.10.1)")


# The CA certificates are held to the Web PKI CA profile; the IDevID must carry keyUsage
# digitalSignature and may carry anything else (an 802.1AR identity has no EKU, and its only
# name is an RFC 4108 HardwareModuleName).
_EE_POLICY: Final = ExtensionPolicy.permit_all().require_present(
    x509.KeyUsage, Criticality.AGNOSTIC, _require_digital_signature
)


@dataclass(frozen=True)
class _Validated:
    """An issuer whose path to a root validated, and when every certificate on it is valid."""

    not_before: datetime
    not_after: datetime


def _constrains_names(certificate: x509.Certificate) -> bool:
    try:
        certificate.extensions.get_extension_for_class(x509.NameConstraints)
    except x509.ExtensionNotFound:
        return False
    return True


class IdevidPaths:
    """Validate IDevIDs to manufacturer roots; thread-safe; see the module docstring."""

    def __init__(self) -> None:
        self._lock = Lock()
        self._issuers: dict[tuple[tuple[x509.Certificate, ...], x509.Certificate], _Validated] = {}

    def validate(
        self,
        idevid: x509.Certificate,
        intermediates: Sequence[x509.Certificate],
        roots: tuple[x509.Certificate, ...],
        now: datetime,
    ) -> None:
        """Raise ``PathValidationError`` unless ``idevid`` chains to one of ``roots`` at ``now``."""
        for issuer in (c for c in intermediates if x509_tbs.names_issuer(idevid, c)):
            if self._remembered(roots, issuer, now):
                try:
                    path_verifier([issuer], now, ee_policy=_EE_POLICY).verify(idevid, [])
                    return
                except PathValidationError:
                    break  # the full validation below says why
        verifier = path_verifier(roots, now, ee_policy=_EE_POLICY)
        verified = verifier.verify(idevid, list(intermediates))
        self._remember(roots, verified.chain[1:], now)

    def _remembered(
        self, roots: tuple[x509.Certificate, ...], issuer: x509.Certificate, now: datetime
    ) -> bool:
        with self._lock:
            validated = self._issuers.get((roots, issuer))
        return validated is not None and validated.not_before <= now <= validated.not_after

    def _remember(
        self, roots: tuple[x509.Certificate, ...], path: Sequence[x509.Certificate], now: datetime
    ) -> None:
        """``path`` is the validated chain above the IDevID: its issuer first, a root last."""
        if not path or any(_constrains_names(c) for c in path):
            return
        window = _Validated(
            not_before=max(c.not_valid_before_utc for c in path),
            not_after=min(c.not_valid_after_utc for c in path),
        )
        if not window.not_before <= now <= window.not_after:
            return
        with self._lock:
            if len(self._issuers) >= _MAX_ISSUERS:
                del self._issuers[next(iter(self._issuers))]
            self._issuers[(roots, path[0])] = window
