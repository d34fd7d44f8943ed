"""The factory stages of the fleet simulation: the key ceremony, then every device through the
real line (emulated SE, SCP03 injection, IDevID, audit log) on every core.

Lots of ``lot_size`` chips are the unit of work and of memory: each worker process fabricates a
lot on disk (one sealed flash file per chip, ``fleetid.sim.wafer``; replaced atomically on each
write but not forced to the disk, so a killed run finds every card as it left it, while a power
cut is outside what the simulation promises), runs it through its own
line (opened once per process, as ``fleetid.factory.line_pool`` does) and hands back the lot's
manifest records; the parent imports them at the authorities and writes the device rows. A lot
whose rows are written is done; a lot killed half way is run again, and the line resumes its
units (every unit it secured stays secured, once).
"""

from __future__ import annotations

import multiprocessing
import shutil
import time
import tomllib
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from pathlib import Path
from typing import Any, Final

from cryptography.hazmat.primitives import serialization

from fleetid.clock import ManualClock
from fleetid.factory import ceremony
from fleetid.factory.line import UnitState, fewer_collections, open_line
from fleetid.factory.line.provisioning import ProvisioningLine
from fleetid.factory.manifest_file import manifest_record
from fleetid.se.card import SecureElement
from fleetid.se.scp03 import StaticKeys
from fleetid.sim.fleet.options import FleetOptions
from fleetid.sim.fleet.plan import plan_for
from fleetid.sim.wafer import Defect, Wafer
from fleetid.store.repositories import ManifestRecord

__all__ = [
    "LotResult",
    "factory_dir",
    "lot_count",
    "manufacturer_root",
    "open_card",
    "run_ceremony",
    "run_lots",
    "unit_name",
]

_CEREMONY_DONE: Final = "ceremony.done"
_DER = serialization.Encoding.DER


def factory_dir(state_dir: Path) -> Path:
    return state_dir / "factory"


def _lot_name(lot: int) -> str:
    return f"F{lot:05d}"


def unit_name(options: FleetOptions, idx: int) -> str:
    lot, index = divmod(idx, options.lot_size)
    return f"{_lot_name(lot)}-{index:06d}"


def run_ceremony(options: FleetOptions, clock: ManualClock) -> None:
    """A 3-of-5 ceremony and its activation, once (a rerun finds it done)."""
    root = factory_dir(options.state_dir)
    if (root / _CEREMONY_DONE).exists():
        return
    shutil.rmtree(root, ignore_errors=True)
    config_path = ceremony.write_example_config(
        root / "ceremony", ceremony_id="fleet-ceremony-1", threshold=3
    )
    outcome = ceremony.init_ceremony(
        ceremony.CeremonyConfig.load(config_path), root / "data", clock=clock
    )
    shares = ceremony.read_shares([outcome.share_files[i] for i in (0, 2, 4)])
    ceremony.activate(root / "data", shares, clock=clock)
    (root / _CEREMONY_DONE).write_text("done\n")


def manufacturer_root(options: FleetOptions) -> bytes:
    """The manufacturer root certificate (DER) the ceremony made."""
    record = ceremony.load_record(factory_dir(options.state_dir) / "data")
    return record.root_certificate.public_bytes(_DER)


@dataclass(frozen=True, kw_only=True)
class LotResult:
    lot: int
    records: list[tuple[int, ManifestRecord | None]]  # (device index, record; None: quarantined)
    seconds: float


# --- the worker side --------------------------------------------------------------------------

_LINES: dict[str, ProvisioningLine] = {}


def _line(data_dir: Path, start: datetime) -> ProvisioningLine:
    key = str(data_dir)
    if key not in _LINES:
        _LINES[key] = open_line(data_dir, clock=ManualClock(start), collections=fewer_collections)
    return _LINES[key]


def _transport_keys(root: Path) -> StaticKeys:
    doc = tomllib.loads((root / "ceremony" / "transport-keys.toml").read_text())
    return StaticKeys(**{role: bytes.fromhex(doc[role]) for role in ("enc", "mac", "dek")})


def run_lot(options: FleetOptions, lot: int, start: datetime) -> LotResult:
    """One lot: fabricate it (unless a whole one is on disk), run it through the line."""
    begun = time.perf_counter()
    root = factory_dir(options.state_dir)
    first = lot * options.lot_size
    count = min(options.lot_size, options.devices - first)
    directory = root / "wafer" / _lot_name(lot)
    if (directory / "wafer.json").exists():
        wafer = Wafer.open(directory, sync=False)
    else:
        shutil.rmtree(directory, ignore_errors=True)  # a lot cut short while it was made
        defects = {
            i: Defect.KEYGEN_FAILS for i in range(count) if plan_for(options, first + i).defective
        }
        wafer = Wafer.fabricate(
            directory,
            lot=_lot_name(lot),
            count=count,
            transport_keys=_transport_keys(root),
            defects=defects,
            ic_serials={i: (first + i).to_bytes(4, "big") for i in range(count)},
            sync=False,
        )
    line = _line(root / "data", start)
    units = [unit.unit for unit in wafer.units]
    line.run(units, wafer)
    records: list[tuple[int, ManifestRecord | None]] = []
    for offset, unit in enumerate(units):
        entry = line.entry(unit)
        if entry is None or entry.state is not UnitState.SECURED:
            records.append((first + offset, None))
            continue
        records.append((first + offset, manifest_record(entry)))
    return LotResult(lot=lot, records=records, seconds=time.perf_counter() - begun)


def run_lots(options: FleetOptions, lots: list[int], start: datetime, done: Any) -> None:
    """Run ``lots`` on ``options.worker_count`` processes, at most two lots in flight per
    worker; ``done(result)`` is called in this process as each lot finishes."""
    if options.worker_count == 1 or len(lots) == 1:
        for lot in lots:
            done(run_lot(options, lot, start))
        return
    context = multiprocessing.get_context("spawn")  # no fork of an activated HSM or open engine
    pending = iter(lots)
    with ProcessPoolExecutor(max_workers=options.worker_count, mp_context=context) as pool:
        running: set[Future[LotResult]] = set()
        for lot in pending:
            running.add(pool.submit(run_lot, options, lot, start))
            if len(running) >= 2 * options.worker_count:
                finished, running = wait(running, return_when=FIRST_COMPLETED)
                for future in finished:
                    done(future.result())
        for future in running:
            done(future.result())


# --- the cards, after the line -------------------------------------------------------------------


@lru_cache(maxsize=8)
def _wafer(directory: Path) -> Wafer:
    return Wafer.open(directory, sync=False)


def open_card(options: FleetOptions, unit: str) -> SecureElement:
    """The device's secure element, powered up from its sealed files."""
    lot = unit.rpartition("-")[0]
    return _wafer(factory_dir(options.state_dir) / "wafer" / lot).power_on(unit)


def lot_count(options: FleetOptions) -> int:
    return -(-options.devices // options.lot_size)


def lot_of(options: FleetOptions, idx: int) -> int:
    return idx // options.lot_size
