"""Applet upgrades pushed to a cohort: GlobalPlatform card content management through the device.

The authority holds what opens each card's ISD (its SCP03 keys, or the HSM's session keys, by
chip serial) and the fleet's applet-signing key; the device relays the authority's APDUs to its
SE unread (``fleetid.device.card_relay``), as the unattended package download lets the device
carry what only its SE opens. For each card of the cohort: SELECT the ISD, open SCP03 (C-MAC,
C-ENC, R-MAC, R-ENC), GET STATUS (load files and modules, applications), INSTALL [for load] and
LOAD the load file signed for the package (its DAP), INSTALL [for install and make selectable],
GET STATUS again; one audit log entry (``ca.applet-upgrade``) records both listings.

Like the unattended download, a step that did not finish is simply done again: a card that lost
power between LOAD and INSTALL still runs the old version with the new one staged (see
``fleetid.se.applets.card_content``); the next push loads it again and installs it. A card
already at the package's version is left alone ("current"); one that refuses (an older package
than it runs, a missing applet-signing key) is reported with its status word and the rest of the
cohort goes on. ``crash`` is the fault-injection hook the line and the downloader have.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Final

from cryptography.hazmat.primitives.asymmetric import ec

from fleetid.crypto.signer import Signer
from fleetid.errors import NotConfiguredError, SecureElementError
from fleetid.factory.auditlog import AuditLog
from fleetid.hsm import Hsm
from fleetid.se.applet_management import (
    AppletManagement,
    StatusEntry,
    StatusScope,
    sign_load_file,
)
from fleetid.se.client import SecureElementClient, Transport
from fleetid.se.packages import AppletPackage
from fleetid.se.scp03.host import KeyProvider, SessionKeySource
from fleetid.se.scp03.secure_messaging import StaticKeys
from fleetid.store.event_kinds import EventKind

__all__ = [
    "APPLET_SIGNING_KEY_LABEL",
    "CardKeys",
    "CardStatus",
    "RolloutOutcome",
    "RolloutResult",
    "applet_signer",
    "ensure_applet_signing_key",
    "push_applet",
    "read_status",
]

#: The fleet's applet-signing key in the authority's HSM (ECDSA P-256: GPCS §B.4.3 DAP).
APPLET_SIGNING_KEY_LABEL: Final = "fleet-applet-signing-1"

#: The ISD keys of a card by its chip serial (the CPLC KDD).
CardKeys = Callable[[bytes], StaticKeys | SessionKeySource | KeyProvider]

_FULL_SECURITY = 0x33  # C-MAC, C-DECRYPTION, R-MAC, R-ENCRYPTION (Amd D Table 7-6)


class RolloutOutcome(StrEnum):
    UPGRADED = "upgraded"
    CURRENT = "current"
    REFUSED = "refused"


@dataclass(frozen=True, kw_only=True)
class CardStatus:
    """A card's GET STATUS: its load files (with versions and modules) and applications."""

    load_files: tuple[StatusEntry, ...]
    applications: tuple[StatusEntry, ...]

    def version_of(self, load_file_aid: bytes) -> int | None:
        return next((e.version for e in self.load_files if e.aid == load_file_aid), None)

    def to_json(self) -> dict[str, Any]:
        return {
            "load_files": [e.to_json() for e in self.load_files],
            "applications": [e.to_json() for e in self.applications],
        }


@dataclass(frozen=True, kw_only=True)
class RolloutResult:
    """What one card of the cohort did."""

    serial: str
    outcome: RolloutOutcome
    before: int | None
    after: int | None
    status_word: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "serial": self.serial,
            "outcome": str(self.outcome),
            "before": self.before,
            "after": self.after,
            "status_word": self.status_word,
        }


def ensure_applet_signing_key(hsm: Hsm) -> ec.EllipticCurvePublicKey:
    """The applet-signing key's public half, made in the HSM the first time (the line puts it on
    every card before SECURED: STORE DATA ``0F05``)."""
    if APPLET_SIGNING_KEY_LABEL not in hsm.labels():
        return hsm.generate_ec_key(APPLET_SIGNING_KEY_LABEL, "P-256")
    return hsm.public_key(APPLET_SIGNING_KEY_LABEL)


def applet_signer(hsm: Hsm) -> Signer:
    """The applet-signing key as a ``Signer`` (NotConfiguredError until it is made)."""
    if APPLET_SIGNING_KEY_LABEL not in hsm.labels():
        raise NotConfiguredError("no applet-signing key: run `fleetid applet key` first")
    return hsm.signer(APPLET_SIGNING_KEY_LABEL)


def _open_isd(
    transport: Transport, card_keys: CardKeys, key_version: int
) -> tuple[str, AppletManagement]:
    client = SecureElementClient(transport)
    client.select_isd()
    chip_serial = client.chip_serial()
    client.open_secure_channel(card_keys(chip_serial), _FULL_SECURITY, key_version=key_version)
    return chip_serial.hex().upper(), AppletManagement(client)


def _status(manager: AppletManagement) -> CardStatus:
    return CardStatus(
        load_files=tuple(manager.get_status(StatusScope.LOAD_FILES_AND_MODULES)),
        applications=tuple(manager.get_status(StatusScope.APPLICATIONS)),
    )


def read_status(transport: Transport, card_keys: CardKeys, *, key_version: int = 0) -> CardStatus:
    """GET STATUS of one card under SCP03 (the device serial is the chip serial in hex)."""
    _, manager = _open_isd(transport, card_keys, key_version)
    return _status(manager)


def push_applet(
    package: AppletPackage,
    cohort: Mapping[str, Transport],
    *,
    signer: Signer,
    card_keys: CardKeys,
    audit: AuditLog | None,
    key_version: int = 0,
    crash: Callable[[str], None] = lambda step: None,
) -> list[RolloutResult]:
    """Upgrade every card of ``cohort`` (name -> the device's card relay) to ``package``."""
    load_file = sign_load_file(package, signer)
    results = []
    for name, transport in cohort.items():
        serial, manager = _open_isd(transport, card_keys, key_version)
        before = _status(manager)
        old = before.version_of(package.load_file_aid)
        outcome, status_word = RolloutOutcome.CURRENT, None
        if old != package.version:
            try:
                manager.load(package, load_file)
                crash("loaded")
                manager.install(package)
                outcome = RolloutOutcome.UPGRADED
            except SecureElementError as exc:
                outcome, status_word = RolloutOutcome.REFUSED, f"{exc.sw:04X}"
                serial, manager = _open_isd(transport, card_keys, key_version)
        after = _status(manager)
        result = RolloutResult(
            serial=serial,
            outcome=outcome,
            before=old,
            after=after.version_of(package.load_file_aid),
            status_word=status_word,
        )
        if audit is not None:
            audit.append(
                EventKind.CA_APPLET_UPGRADE,
                serial,
                {
                    "device": name,
                    "package": package.name,
                    "version": package.version,
                    "package_hash": package.data_block_hash.hex(),
                    "outcome": str(outcome),
                    "status_word": status_word,
                    "before": before.to_json(),
                    "after": after.to_json(),
                },
            )
        results.append(result)
    return results
