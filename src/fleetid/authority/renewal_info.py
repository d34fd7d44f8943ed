"""When each certificate should be renewed, as the authority tells its devices (RFC 9773).

``renewal_window`` looks the certificate up by its ARI identifier (this issuing CA's key
identifier and a serial it issued) and answers ``fleetid.policy.renewal_window``'s deterministic
window on its profile's cadence. A revoked certificate gets a window already past, which asks
for renewal at once (RFC 9773 §4.2); an unknown certificate, or another issuer's, is a
``NotFoundError``.
"""

from __future__ import annotations

from datetime import timedelta

from cryptography import x509

from fleetid.authority.fleet_ca import FleetCa
from fleetid.errors import NotFoundError
from fleetid.formats.renewal_info import RenewalWindow, parse_cert_id
from fleetid.policy.renewal_window import suggested_window
from fleetid.store.schema import CertificateStatus

__all__ = ["renewal_window"]


def _key_identifier(certificate: x509.Certificate) -> bytes:
    ski = certificate.extensions.get_extension_for_class(x509.SubjectKeyIdentifier)
    return ski.value.digest


def renewal_window(ca: FleetCa, identifier: str) -> RenewalWindow:
    """The window for the certificate ``identifier`` names (``EncodingError`` if malformed)."""
    key_id, serial = parse_cert_id(identifier)
    if key_id != _key_identifier(ca.issuing.certificate):
        raise NotFoundError("no certificate of this issuer has that identifier")
    with ca.store.transaction() as tx:
        record = tx.certificates.by_serial(format(serial, "x"))
    if record.status != CertificateStatus.VALID:
        now = ca.clock.now()
        return RenewalWindow(start=now - timedelta(minutes=2), end=now - timedelta(minutes=1))
    cadence = ca.settings.policy.profile(record.profile).cadence
    return suggested_window(cadence, record.not_after, serial)
