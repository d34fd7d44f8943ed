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
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, replace
from enum import StrEnum
from pathlib import Path
from typing import Final

from fleetid.crypto.symmetric import aes_encrypt_block
from fleetid.formats.apdu import SW, CommandApdu
from fleetid.se.applets.base import Applet, CommandContext, Reply, refuse
from fleetid.se.applets.boot import BootApplet
from fleetid.se.applets.identity import INS_GENERATE_KEY, IdentityApplet
from fleetid.se.applets.manager import INS_PUT_KEY, INS_STORE_DATA, ManagerApplet
from fleetid.se.card import SecureElement
from fleetid.se.keystore import SealedFlash, Silicon
from fleetid.se.scp03 import StaticKeys

__all__ = ["TRANSPORT_KVN", "Defect", "Wafer", "WaferUnit"]

TRANSPORT_KVN: Final = 0x01
_FORMAT: Final = "fleetid-wafer/1"
_LOT_CAPACITY: Final = 1 << 16  # two bytes of die number per lot


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
            kvn = reply.data[:1]
            keyset = ctx.state.keysets[kvn[0]]
            zero_block = [
                aes_encrypt_block(k, bytes(16))[:3] for k in (keyset.enc, keyset.mac, keyset.dek)
            ]
            return replace(reply, data=kvn + b"".join(zero_block))
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

    def __init__(self, directory: Path | None, lot: str, units: list[WaferUnit]) -> None:
        self._directory = directory
        self.lot = lot
        self._units = {u.unit: u for u in units}
        self._order = [u.unit for u in units]
        self._memory: dict[str, SecureElement] = {}

    @property
    def units(self) -> list[WaferUnit]:
        return [self._units[name] for name in self._order]

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
    ) -> Wafer:
        """Make ``count`` blank cards. ``defects``, ``clones`` and ``ic_serials`` are keyed by
        unit index: ``clones[i] = j`` gives unit ``i`` the chip serial of unit ``j``;
        ``ic_serials[i]`` sets unit ``i``'s 4-byte IC serial outright (a chip of another lot)."""
        if directory is not None and (directory / "wafer.json").exists():
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
        wafer = cls(directory, lot, units)
        for unit in units:
            wafer._make(unit, transport_keys)
        wafer._save()
        return wafer

    @classmethod
    def open(cls, directory: Path) -> Wafer:
        doc = json.loads((directory / "wafer.json").read_text())
        if doc.get("format") != _FORMAT:
            raise ValueError(f"{directory} is not a {_FORMAT} lot")
        units = [
            WaferUnit(
                unit=u["unit"],
                ic_serial=bytes.fromhex(u["ic_serial"]),
                defect=Defect(u["defect"]),
            )
            for u in doc["units"]
        ]
        return cls(directory, doc["lot"], units)

    def power_on(self, unit: str) -> SecureElement:
        """The card at ``unit``, powered up (reset) as the line finds it."""
        info = self._units[unit]
        if self._directory is None:
            card = self._memory[unit]
            card.reset()
            return card
        return SecureElement.open(
            self._directory / f"{unit}.fuse",
            self._directory / f"{unit}.flash",
            applets=_applets(info.defect),
        )

    def _make(self, unit: WaferUnit, transport_keys: StaticKeys) -> None:
        silicon = Silicon.fabricate()
        flash = SealedFlash(
            None if self._directory is None else self._directory / f"{unit.unit}.flash"
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
        (self._directory / "wafer.json").write_text(json.dumps(doc, indent=1) + "\n")
