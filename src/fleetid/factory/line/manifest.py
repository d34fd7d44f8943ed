"""The line manifest as the factory reads it: rows of the store's repository, keys and
certificates decoded."""

from __future__ import annotations

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from fleetid.errors import StoreError, VerificationError
from fleetid.factory.line.values import ManifestEntry
from fleetid.store.engine import Engine
from fleetid.store.line_manifest_rows import (
    LineManifestRows,
    ManifestRow,
    UnitState,
)

__all__ = ["ManifestReader", "manifest_entry"]


class ManifestReader:
    """Read-only access to the line manifest, needing no HSM (the enrolment side uses this)."""

    def __init__(self, source: LineManifestRows | Engine) -> None:
        self._rows = source if isinstance(source, LineManifestRows) else LineManifestRows(source)

    def entries(self) -> list[ManifestEntry]:
        return [manifest_entry(row) for row in self._rows.all()]

    def entry(self, unit: str) -> ManifestEntry | None:
        row = self._rows.by_unit(unit)
        return None if row is None else manifest_entry(row)

    def by_serial(self, serial: str) -> ManifestEntry | None:
        """The accepted unit (secured or quarantined) holding ``serial``, if any."""
        row = self._rows.accepted_by_serial(serial)
        return None if row is None else manifest_entry(row)

    def require_secured(self, serial: str) -> ManifestEntry:
        """The secured unit with ``serial``; raise ``VerificationError`` for any other answer."""
        entry = self.by_serial(serial)
        if entry is None:
            raise VerificationError(f"serial {serial} is not on the line manifest")
        if entry.state is not UnitState.SECURED:
            raise VerificationError(f"serial {serial} left the line {entry.state.value}")
        return entry


def manifest_entry(row: ManifestRow) -> ManifestEntry:
    """A manifest row with its keys and certificates decoded."""
    return ManifestEntry(
        unit=row.unit,
        serial=row.serial,
        state=row.state,
        step=row.step,
        reason=row.reason,
        key_version=row.key_version,
        attestation_public_key=_ec_key(row.unit, row.attestation_public_key, "attestation key"),
        idevid=_certificate(row.idevid),
        idevid_fingerprint=row.idevid_fingerprint,
        canonical_public_key=_ec_key(row.unit, row.canonical_public_key, "canonical key"),
        canonical_attestation=_certificate(row.canonical_attestation),
    )


def _ec_key(unit: str, der: bytes | None, what: str) -> ec.EllipticCurvePublicKey | None:
    if der is None:
        return None
    loaded = serialization.load_der_public_key(der)
    if not isinstance(loaded, ec.EllipticCurvePublicKey):
        raise StoreError(f"unit {unit}: {what} is not EC")
    return loaded


def _certificate(der: bytes | None) -> x509.Certificate | None:
    return None if der is None else x509.load_der_x509_certificate(der)
