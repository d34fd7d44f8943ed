"""The line manifest as a file a factory hands to an authority (``fleetid line export-manifest``,
``fleetid ca import-manifest``).

One JSON document, ``{"format": "fleetid-line-manifest/1", "units": [...]}``; each unit the line
accepted (secured or quarantined; never an in-progress or duplicate row) as::

    {"unit": "LOT1-000001", "serial": "F1D0...", "state": "secured",
     "idevid": base64(DER certificate), "idevid_fingerprint": hex(SHA-256(DER)),
     "attestation_public_key": base64(DER SubjectPublicKeyInfo)}

Public material only. Reading checks each row for itself: the IDevID parses and hashes to its
fingerprint, names the row's serial (X.520 serialNumber, 802.1AR §8.6), and the attestation key
parses; a secured row has both. The authority still validates every IDevID to a trusted
manufacturer root when the device enrols.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from collections.abc import Iterable
from typing import Any, Final

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import NameOID

from fleetid.errors import EncodingError
from fleetid.factory.line import ManifestEntry, UnitState
from fleetid.store.repositories import ManifestRecord

__all__ = ["MANIFEST_FORMAT", "dump_manifest", "load_manifest", "manifest_record"]

MANIFEST_FORMAT: Final = "fleetid-line-manifest/1"
_ACCEPTED: Final = (UnitState.SECURED, UnitState.QUARANTINED)


def manifest_record(entry: ManifestEntry) -> ManifestRecord:
    """The row an authority keeps for one unit of the line's manifest."""
    key = entry.attestation_public_key
    return ManifestRecord(
        unit=entry.unit,
        serial=entry.serial,
        state=entry.state,
        idevid_fingerprint=entry.idevid_fingerprint,
        attestation_public_key=None
        if key is None
        else key.public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        ),
        idevid=None
        if entry.idevid is None
        else entry.idevid.public_bytes(serialization.Encoding.DER),
    )


def dump_manifest(entries: Iterable[ManifestEntry]) -> bytes:
    """The accepted units of ``entries`` as the manifest file."""

    def b64(data: bytes | None) -> str | None:
        return None if data is None else base64.b64encode(data).decode("ascii")

    units = []
    for entry in entries:
        if entry.state not in _ACCEPTED:
            continue
        record = manifest_record(entry)
        units.append(
            {
                "unit": record.unit,
                "serial": record.serial,
                "state": record.state,
                "idevid": b64(record.idevid),
                "idevid_fingerprint": record.idevid_fingerprint,
                "attestation_public_key": b64(record.attestation_public_key),
            }
        )
    return (json.dumps({"format": MANIFEST_FORMAT, "units": units}, indent=1) + "\n").encode()


def load_manifest(data: bytes) -> list[ManifestRecord]:
    """The rows of a manifest file; raises ``EncodingError`` naming the first bad unit."""
    try:
        doc = json.loads(data)
    except (UnicodeDecodeError, ValueError) as exc:
        raise EncodingError(f"a manifest file is JSON: {exc}") from exc
    if not isinstance(doc, dict) or doc.get("format") != MANIFEST_FORMAT:
        raise EncodingError(f"not a {MANIFEST_FORMAT} document")
    units = doc.get("units")
    if not isinstance(units, list):
        raise EncodingError("a manifest file lists its units in 'units'")
    return [_record(position, unit) for position, unit in enumerate(units)]


def _record(position: int, unit: Any) -> ManifestRecord:
    where = f"manifest unit {position}"
    if not isinstance(unit, dict):
        raise EncodingError(f"{where} is not an object")
    name, serial, state = unit.get("unit"), unit.get("serial"), unit.get("state")
    if not (isinstance(name, str) and name and isinstance(serial, str) and serial):
        raise EncodingError(f"{where} needs a unit and a serial")
    where = f"manifest unit {name}"
    if state not in {str(s) for s in _ACCEPTED}:
        raise EncodingError(f"{where}: state {state!r} is not secured or quarantined")
    idevid = _der(unit, "idevid", where)
    key = _der(unit, "attestation_public_key", where)
    fingerprint = unit.get("idevid_fingerprint")
    if state == str(UnitState.SECURED) and (idevid is None or key is None):
        raise EncodingError(f"{where}: a secured unit has its IDevID and attestation key")
    if idevid is not None:
        try:
            certificate = x509.load_der_x509_certificate(idevid)
        except ValueError as exc:
            raise EncodingError(f"{where}: the IDevID is not a DER certificate: {exc}") from exc
        if fingerprint != hashlib.sha256(idevid).hexdigest():
            raise EncodingError(f"{where}: idevid_fingerprint is not the IDevID's SHA-256")
        named = [a.value for a in certificate.subject.get_attributes_for_oid(NameOID.SERIAL_NUMBER)]
        if named != [serial]:
            raise EncodingError(f"{where}: the IDevID names serial {named}, not {serial}")
    elif fingerprint is not None:
        raise EncodingError(f"{where}: a fingerprint without its IDevID")
    if key is not None:
        try:
            serialization.load_der_public_key(key)
        except ValueError as exc:
            raise EncodingError(f"{where}: the attestation key is not DER SPKI: {exc}") from exc
    return ManifestRecord(
        unit=name,
        serial=serial,
        state=UnitState(state),
        idevid_fingerprint=fingerprint,
        attestation_public_key=key,
        idevid=idevid,
    )


def _der(unit: dict[str, Any], field: str, where: str) -> bytes | None:
    value = unit.get(field)
    if value is None:
        return None
    if not isinstance(value, str):
        raise EncodingError(f"{where}: {field} is base64 text")
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise EncodingError(f"{where}: {field} is not base64: {exc}") from exc
