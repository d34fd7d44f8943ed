"""The EA imports manufactured vehicles from the provisioning line's manifest.

ETSI TS 102 941 §6.2.3.2: the EA knows each ITS-S's canonical identifier and canonical public
key from the manufacturer. fleetid's line generates the canonical key on the card during
personalisation and records, per unit, its public key and the card's ATTEST certificate over it
(``fleetid.factory.line``). The EA does not take the manifest's word for the key: for every
secured unit it checks the attestation chains through the unit's IDevID to a manufacturer root it
trusts, that the key was generated on the card, is non-exportable and can sign, that it answers
the unit's ``canonical_challenge`` and names the unit's chip, and that it is the key the manifest
recorded (``EnrolmentAuthority.register_attested_canonical_key``). The canonical id is the device
serial, in ASCII. Import is idempotent: a vehicle already on record is left as it is.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from cryptography import x509

from fleetid.authority.v2x.ea import EnrolmentAuthority, attested_key_properties
from fleetid.errors import VerificationError
from fleetid.factory.line import ManifestEntry, UnitState, canonical_challenge

__all__ = ["ImportReport", "import_manufactured", "its_id_of"]


def its_id_of(serial: str) -> bytes:
    """The canonical id of a manufactured vehicle: its device serial (CPLC KDD hex) in ASCII."""
    return serial.encode("ascii")


@dataclass(frozen=True, kw_only=True)
class ImportReport:
    imported: tuple[str, ...] = ()
    already: tuple[str, ...] = ()
    skipped: tuple[str, ...] = ()  # not secured, or no canonical key recorded
    refused: dict[str, str] = field(default_factory=dict)  # serial -> why


def _chip_serial(attestation: x509.Certificate) -> bytes:
    return attested_key_properties(attestation).chip_serial


def _import_one(
    ea: EnrolmentAuthority,
    entry: ManifestEntry,
    *,
    intermediates: list[x509.Certificate],
    trusted_roots: list[x509.Certificate],
) -> None:
    attestation, idevid = entry.canonical_attestation, entry.idevid
    if attestation is None or idevid is None or entry.canonical_public_key is None:
        raise VerificationError("no attested canonical key")  # callers filter these first
    if attestation.public_key() != entry.canonical_public_key:
        raise VerificationError("the attestation is over another key than the manifest's")
    if _chip_serial(attestation).hex().upper() != entry.serial:
        raise VerificationError("the attestation names another chip")
    ea.register_attested_canonical_key(
        its_id_of(entry.serial),
        attestation,
        [idevid, *intermediates],
        trusted_roots=trusted_roots,
        challenge=canonical_challenge(entry.serial),
    )


def import_manufactured(
    ea: EnrolmentAuthority,
    entries: Iterable[ManifestEntry],
    *,
    intermediates: list[x509.Certificate],
    trusted_roots: list[x509.Certificate],
) -> ImportReport:
    """Register the canonical key of every secured unit whose attestation checks out.

    ``intermediates``: the manufacturer certificates between an IDevID and a root (the line CA);
    ``trusted_roots``: the manufacturer roots this EA trusts. A unit that fails a check is
    reported in ``refused`` and not registered; the others are imported.
    """
    imported: list[str] = []
    already: list[str] = []
    skipped: list[str] = []
    refused: dict[str, str] = {}
    for entry in entries:
        if entry.state is not UnitState.SECURED or entry.canonical_attestation is None:
            skipped.append(entry.serial)
            continue
        if ea.is_registered(its_id_of(entry.serial)):
            already.append(entry.serial)
            continue
        try:
            _import_one(ea, entry, intermediates=intermediates, trusted_roots=trusted_roots)
        except VerificationError as exc:
            refused[entry.serial] = str(exc)
            continue
        imported.append(entry.serial)
    return ImportReport(
        imported=tuple(imported), already=tuple(already), skipped=tuple(skipped), refused=refused
    )
