"""The emulated chip fab: a wafer lot of blank secure elements, as the SE vendor delivers them.

Every unit is an emulated ``SecureElement`` in OP_READY with the batch's transport SCP03 keys
(one key set, ``TRANSPORT_KVN``) and a CPLC chip serial. The lot lives in a directory (one fuse
file and one sealed flash file per unit, plus ``wafer.json``) so that a line process killed at any
point finds every card exactly as it left it; ``directory=None`` keeps the lot in memory
(benchmarks, the demo).

Defective units are how the line's quarantine paths are exercised. Each defect is card firmware
misbehaving *inside* the chip, so every response is still properly protected by SCP03:

* ``refuses-put-key``: the card manager answers PUT KEY with 6A80;
* ``bad-kcv``: the card stores the keys but answers PUT KEY with check values computed over a
  zero block (a real vendor variant, see GPPro ``kcv_aes0``), which the line must not accept;
* ``keygen-fails``: GENERATE KEY of the attestation key answers 6F00 (failed RNG health test);
* ``store-data-fails``: STORE DATA answers 6A84 (not enough memory).

A clone (``clones``) is a second chip fabricated with another unit's serial.

A factory keeps many lots side by side under one wafer directory, each in its own subdirectory
named after the lot (``<factory>/wafer/<LOT>/``, ``lot_directory``); a wafer directory that is
itself a lot (``wafer.json`` at its top, as single-lot factories wrote it) still serves that lot.
``open_lot_of`` finds the lot that holds a unit (``<LOT>-NNNNNN``) from either kind of directory.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, replace
from enum import StrEnum
from pathlib import Path
from typing import Final

from fleetid.errors import ConfigError, NotFoundError
from fleetid.formats.apdu import SW, CommandApdu
from fleetid.se.applets.base import Applet, CommandContext, Reply, refuse
from fleetid.se.applets.boot import BootApplet
from fleetid.se.applets.identity import IdentityApplet
from fleetid.se.applets.manager import ManagerApplet
from fleetid.se.card import SecureElement
from fleetid.se.keystore import SealedFlash, Silicon
from fleetid.se.scp03 import StaticKeys
from fleetid.se.wire import INS_GENERATE_KEY, INS_PUT_KEY, INS_STORE_DATA

__all__ = ["TRANSPORT_KVN", "Defect", "Wafer", "WaferUnit", "lot_directory", "open_lot_of"]

TRANSPORT_KVN: Final = 0x01
_FORMAT: Final = "fleetid-wafer/1"
_LOT_CAPACITY: Final = 1 << 16  # two bytes of die number per lot
_MANIFEST: Final = "wafer.json"
# A lot's name is a directory name and the prefix of its unit ids: no separators, no dot first.
_LOT_NAME: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")


class Defect(StrEnum):
    NONE = "none"
    REFUSES_PUT_KEY = "refuses-put-key"
    BAD_KCV = "bad-kcv"
    KEYGEN_FAILS = "keygen-fails"
    STORE_DATA_FAILS = "store-data-fails"


@dataclass(frozen=True, kw_only=True)
class WaferUnit:
    """One die position of the lot."""

    unit: str
    ic_serial: bytes
    defect: Defect = Defect.NONE


class _FaultyManager(ManagerApplet):
    def __init__(self, defect: Defect) -> None:
        super().__init__()
        self._defect = defect

    def process(self, ctx: CommandContext, apdu: CommandApdu) -> Reply:
        if apdu.ins == INS_PUT_KEY and self._defect is Defect.REFUSES_PUT_KEY:
            raise refuse(SW.INCORRECT_DATA, "emulated defect: PUT KEY refused")
        if apdu.ins == INS_STORE_DATA and self._defect is Defect.STORE_DATA_FAILS:
            raise refuse(SW.NOT_ENOUGH_MEMORY, "emulated defect: STORE DATA out of memory")
        reply = super().process(ctx, apdu)
        if apdu.ins == INS_PUT_KEY and self._defect is Defect.BAD_KCV and reply.sw == SW.OK:
            # The response is KVN ‖ one KCV per key (GPCS §11.8.3.1); each KCV comes back with
            # every bit flipped, so none matches the key the host sent.
            kvn, kcvs = reply.data[:1], reply.data[1:]
            return replace(reply, data=kvn + bytes(b ^ 0xFF for b in kcvs))
        return reply


class _FaultyIdentity(IdentityApplet):
    def process(self, ctx: CommandContext, apdu: CommandApdu) -> Reply:
        if apdu.ins == INS_GENERATE_KEY:
            raise refuse(SW.NO_PRECISE_DIAGNOSIS, "emulated defect: RNG health test failed")
        return super().process(ctx, apdu)


def _applets(defect: Defect) -> list[Applet]:
    manager: Applet = (
        _FaultyManager(defect)
        if defect in (Defect.REFUSES_PUT_KEY, Defect.BAD_KCV, Defect.STORE_DATA_FAILS)
        else ManagerApplet()
    )
    identity: Applet = _FaultyIdentity() if defect is Defect.KEYGEN_FAILS else IdentityApplet()
    return [manager, identity, BootApplet()]


class Wafer:
    """A lot of blank cards; ``power_on(unit)`` hands one to the line as a transport."""

    def __init__(
        self, directory: Path | None, lot: str, units: list[WaferUnit], *, sync: bool = True
    ) -> None:
        self._directory = directory
        self._sync = sync  # each card's flash, as ``SealedFlash`` takes it
        self.lot = lot
        self._units = {u.unit: u for u in units}
        self._order = [u.unit for u in units]
        self._memory: dict[str, SecureElement] = {}

    @property
    def units(self) -> list[WaferUnit]:
        return [self._units[name] for name in self._order]

    @property
    def directory(self) -> Path | None:
        """Where the lot is kept (None: in memory)."""
        return self._directory

    def __contains__(self, unit: object) -> bool:
        return unit in self._units

    @classmethod
    def fabricate(
        cls,
        directory: Path | None,
        *,
        lot: str,
        count: int,
        transport_keys: StaticKeys,
        defects: Mapping[int, Defect] | None = None,
        clones: Mapping[int, int] | None = None,
        ic_serials: Mapping[int, bytes] | None = None,
        sync: bool = True,
    ) -> Wafer:
        """Make ``count`` blank cards. ``defects``, ``clones`` and ``ic_serials`` are keyed by
        unit index: ``clones[i] = j`` gives unit ``i`` the chip serial of unit ``j``;
        ``ic_serials[i]`` sets unit ``i``'s 4-byte IC serial outright (a chip of another lot).
        ``sync=False``: the cards' flash writes survive a killed process, not a power cut
        (``SealedFlash``)."""
        if directory is not None and (directory / _MANIFEST).exists():
            raise FileExistsError(f"{directory} already holds a wafer lot")
        if not 0 < count <= _LOT_CAPACITY:
            raise ValueError(f"a lot holds 1 to {_LOT_CAPACITY} chips, not {count}")
        defects, clones = defects or {}, clones or {}
        # The fab numbers chips lot by lot: two bytes that name the lot, two that count the die.
        # Derived from the lot's name, so lots with different names get different serials on
        # every run (a random prefix collided between lots of one data directory).
        prefix = hashlib.sha256(lot.encode()).digest()[:2]
        units = []
        for index in range(count):
            source = clones.get(index, index)
            serial = prefix + source.to_bytes(2, "big")
            serial = (ic_serials or {}).get(index, serial)
            units.append(
                WaferUnit(
                    unit=f"{lot}-{index:06d}",
                    ic_serial=serial,
                    defect=defects.get(index, Defect.NONE),
                )
            )
        wafer = cls(directory, lot, units, sync=sync)
        for unit in units:
            wafer._make(unit, transport_keys)
        wafer._save()
        return wafer

    @classmethod
    def open(cls, directory: Path, *, sync: bool = True) -> Wafer:
        try:
            doc = json.loads((directory / _MANIFEST).read_text())
        except FileNotFoundError:
            raise ConfigError(f"no wafer lot in {directory} (no {_MANIFEST})") from None
        except ValueError as exc:
            raise ConfigError(f"{directory / _MANIFEST} is not JSON: {exc}") from exc
        if not isinstance(doc, dict) or doc.get("format") != _FORMAT:
            raise ConfigError(f"{directory} is not a {_FORMAT} lot")
        units = [
            WaferUnit(
                unit=u["unit"],
                ic_serial=bytes.fromhex(u["ic_serial"]),
                defect=Defect(u["defect"]),
            )
            for u in doc["units"]
        ]
        return cls(directory, doc["lot"], units, sync=sync)

    def power_on(self, unit: str) -> SecureElement:
        """The card at ``unit``, powered up (reset) as the line finds it."""
        info = self._units.get(unit)
        if info is None:
            raise NotFoundError(f"lot {self.lot} has no unit {unit!r}")
        if self._directory is None:
            card = self._memory[unit]
            card.reset()
            return card
        return SecureElement.open(
            self._directory / f"{unit}.fuse",
            self._directory / f"{unit}.flash",
            applets=_applets(info.defect),
            sync=self._sync,
        )

    def _make(self, unit: WaferUnit, transport_keys: StaticKeys) -> None:
        silicon = Silicon.fabricate()
        flash = SealedFlash(
            None if self._directory is None else self._directory / f"{unit.unit}.flash",
            sync=self._sync,
        )
        if self._directory is not None:
            self._directory.mkdir(parents=True, exist_ok=True)
            silicon.save(self._directory / f"{unit.unit}.fuse")
        card = SecureElement.fabricate(
            silicon=silicon,
            flash=flash,
            ic_serial=unit.ic_serial,
            keysets={TRANSPORT_KVN: transport_keys},
            applets=_applets(unit.defect),
        )
        if self._directory is None:
            self._memory[unit.unit] = card

    def _save(self) -> None:
        if self._directory is None:
            return
        doc = {
            "format": _FORMAT,
            "lot": self.lot,
            "units": [
                {"unit": u.unit, "ic_serial": u.ic_serial.hex(), "defect": u.defect.value}
                for u in self.units
            ],
        }
        (self._directory / _MANIFEST).write_text(json.dumps(doc, indent=1) + "\n")


def _lot_at(directory: Path) -> str | None:
    """The name of the lot whose ``wafer.json`` is in ``directory``, if any."""
    if not (directory / _MANIFEST).is_file():
        return None
    return Wafer.open(directory).lot


def lot_directory(root: Path, lot: str) -> Path:
    """Where lot ``lot`` lives under the wafer directory ``root``: ``root/<lot>``, or ``root``
    itself when that is a single-lot directory holding this very lot."""
    if not _LOT_NAME.fullmatch(lot):
        raise ConfigError(
            f"a lot name is 1 to 64 letters, digits, '-', '_' or '.', not starting with a "
            f"separator: {lot!r}"
        )
    return root if _lot_at(root) == lot else root / lot


def open_lot_of(root: Path, unit: str) -> Wafer:
    """The lot holding ``unit`` (``<LOT>-NNNNNN``): ``root`` is a lot or a directory of lots."""
    if _lot_at(root) is None and not root.is_dir():
        raise ConfigError(f"no wafer directory at {root}")
    lot, _, index = unit.rpartition("-")
    candidates = [root] if _lot_at(root) is not None else []
    if lot and index.isdigit() and _LOT_NAME.fullmatch(lot):
        candidates.append(root / lot)
    for directory in candidates:
        if (directory / _MANIFEST).is_file():
            wafer = Wafer.open(directory)
            if unit in wafer:
                return wafer
    raise NotFoundError(f"no unit {unit!r} in the wafer lots under {root}")
