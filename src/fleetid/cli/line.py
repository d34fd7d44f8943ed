"""``fleetid line``: run blank secure elements through the provisioning line.

``run --devices N --data-dir DIR [--lot LOT]`` processes wafer lot LOT of the data directory
(``DIR/wafer/LOT/``; fabricating N blank cards from ``--transport-keys`` the first time;
``--defect`` and ``--clone`` make faulty units for drills); one data directory runs any number
of lots, and re-running a lot resumes where a crash left off. ``--workers W`` runs W line
processes on the lot (``fleetid.factory.line_pool``). ``status`` prints the manifest;
``export-manifest --out FILE`` writes its accepted units for an authority to import
(``fleetid ca import-manifest``, format in ``fleetid.factory.manifest_file``).
"""

from __future__ import annotations

import argparse
import tomllib
from pathlib import Path
from typing import Any

__all__ = ["register"]


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "line", help="the provisioning line: run, status, export-manifest"
    )
    verbs = parser.add_subparsers(dest="line_command", metavar="ACTION", required=True)

    run = verbs.add_parser(
        "run", help="provision the devices of one wafer lot (resumable; one lot per --lot)"
    )
    run.add_argument("--devices", type=int, required=True, help="units in the wafer lot")
    run.add_argument("--data-dir", type=Path, required=True)
    run.add_argument(
        "--transport-keys",
        type=Path,
        default=None,
        help="the SE vendor's transport keys file (needed when the lot is fabricated)",
    )
    run.add_argument(
        "--lot",
        default="LOT1",
        help="wafer lot name, kept in DATA_DIR/wafer/LOT (unit ids are LOT-NNNNNN)",
    )
    run.add_argument("--batch-size", type=int, default=64)
    run.add_argument(
        "--applet-signing-key",
        type=Path,
        default=None,
        metavar="PEM",
        help="the fleet's applet-signing public key (`fleetid applet key`), put on every card",
    )
    run.add_argument(
        "--workers",
        type=int,
        default=1,
        help="line processes sharing the lot, the HSM and the manifest (one per core)",
    )
    run.add_argument(
        "--defect",
        action="append",
        default=[],
        metavar="INDEX:KIND",
        help="fabricate unit INDEX with a defect (refuses-put-key, bad-kcv, keygen-fails, "
        "store-data-fails)",
    )
    run.add_argument(
        "--clone",
        action="append",
        default=[],
        metavar="INDEX:SOURCE",
        help="fabricate unit INDEX with the chip serial of unit SOURCE",
    )
    run.set_defaults(func=_run)

    status = verbs.add_parser("status", help="print the line manifest")
    status.add_argument("--data-dir", type=Path, required=True)
    status.set_defaults(func=_status)

    export = verbs.add_parser(
        "export-manifest",
        help="write the secured and quarantined units for `fleetid ca import-manifest`",
    )
    export.add_argument("--data-dir", type=Path, required=True)
    export.add_argument("--out", type=Path, required=True, help="the manifest file to write")
    export.set_defaults(func=_export_manifest)


def _pairs(values: list[str], what: str) -> list[tuple[int, str]]:
    from fleetid.errors import ConfigError

    out = []
    for value in values:
        index, _, rest = value.partition(":")
        if not index.isdigit() or not rest:
            raise ConfigError(f"{what} takes INDEX:VALUE, not {value!r}")
        out.append((int(index), rest))
    return out


def _wafer(args: argparse.Namespace) -> Any:
    from fleetid.errors import ConfigError
    from fleetid.se.scp03 import StaticKeys
    from fleetid.sim.wafer import Defect, Wafer, lot_directory

    directory = lot_directory(args.data_dir / "wafer", args.lot)
    if (directory / "wafer.json").exists():
        wafer = Wafer.open(directory)
        if len(wafer.units) != args.devices:
            raise ConfigError(
                f"lot {args.lot} in {directory} has {len(wafer.units)} units, not {args.devices}"
            )
        return wafer
    if args.transport_keys is None:
        raise ConfigError(f"no wafer lot {args.lot} yet: pass --transport-keys to fabricate it")
    try:
        doc = tomllib.loads(args.transport_keys.read_text())
        keys = StaticKeys(
            enc=bytes.fromhex(doc["enc"]),
            mac=bytes.fromhex(doc["mac"]),
            dek=bytes.fromhex(doc["dek"]),
        )
    except (OSError, KeyError, ValueError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"cannot read transport keys {args.transport_keys}: {exc}") from exc
    try:
        defects = {i: Defect(kind) for i, kind in _pairs(args.defect, "--defect")}
    except ValueError as exc:
        raise ConfigError(str(exc)) from exc
    clones = {i: int(source) for i, source in _pairs(args.clone, "--clone")}
    return Wafer.fabricate(
        directory,
        lot=args.lot,
        count=args.devices,
        transport_keys=keys,
        defects=defects,
        clones=clones,
    )


def _run(args: argparse.Namespace) -> int:
    import os
    from functools import partial

    from fleetid.clock import SystemClock
    from fleetid.config import PKCS11_MODULE_ENV
    from fleetid.errors import ConfigError
    from fleetid.factory.line import CrashPlan, LineConfig, fewer_collections, open_line
    from fleetid.factory.line_pool import run_pool
    from fleetid.sim.wafer import Wafer

    if args.devices < 1:
        raise ConfigError("--devices is at least 1")
    if args.workers < 1:
        raise ConfigError("--workers is at least 1")
    if args.batch_size < 1:
        raise ConfigError("--batch-size is at least 1")
    config = LineConfig(
        batch_size=args.batch_size, applet_signing_key=_applet_signing_key(args.applet_signing_key)
    )
    # The crash tests' fault injection is chosen here, at the entry point, never in the line.
    crash = CrashPlan.from_environment(os.environ)
    pkcs11_module = os.environ.get(PKCS11_MODULE_ENV) or None
    # Refuses a locked HSM before a lot is fabricated.
    line = open_line(
        args.data_dir,
        clock=SystemClock(),
        config=config,
        crash=crash,
        collections=fewer_collections,
        pkcs11_module=pkcs11_module,
    )
    wafer = _wafer(args)
    units = [u.unit for u in wafer.units]
    if args.workers == 1:
        report = line.run(units, wafer)
    else:
        cards = partial(Wafer.open, wafer.directory)  # a lot on disk: _wafer made it there
        report = run_pool(
            args.data_dir,
            units,
            cards,
            workers=args.workers,
            config=config,
            crash=crash,
            pkcs11_module=pkcs11_module,
        )
    print(
        f"lot {wafer.lot}: processed {report.processed} (already done {report.already_done}): "
        f"{report.secured} secured, {report.quarantined} quarantined, "
        f"{report.duplicates} duplicate serials refused"
    )
    return 0


def _applet_signing_key(path: Path | None) -> bytes | None:
    """The DER SPKI of ``--applet-signing-key`` (a PEM public key, ECDSA P-256), or None."""
    if path is None:
        return None
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    from fleetid.errors import ConfigError

    try:
        key = serialization.load_pem_public_key(path.read_bytes())
    except (OSError, ValueError) as exc:
        raise ConfigError(f"cannot read the applet-signing key {path}: {exc}") from exc
    if not isinstance(key, ec.EllipticCurvePublicKey) or key.curve.name != "secp256r1":
        raise ConfigError(f"the applet-signing key {path} is not an ECDSA P-256 key")
    return key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def _status(args: argparse.Namespace) -> int:
    from fleetid.store.engine import open_engine
    from fleetid.store.line_manifest_rows import LineManifestRows

    for row in LineManifestRows(open_engine(args.data_dir)).all():
        detail = row.reason or (row.idevid_fingerprint or "")
        state = row.state.value
        print(f"{row.unit}  {row.serial}  {state:<12} step {int(row.step)}  {detail}")
    return 0


def _export_manifest(args: argparse.Namespace) -> int:
    from fleetid.errors import ConfigError
    from fleetid.factory.line import ManifestReader, UnitState
    from fleetid.factory.manifest_file import dump_manifest
    from fleetid.store.engine import DB_FILENAME, open_engine

    if not (args.data_dir / DB_FILENAME).is_file():
        raise ConfigError(f"no line manifest in {args.data_dir} (no {DB_FILENAME})")
    engine = open_engine(args.data_dir)
    try:
        entries = ManifestReader(engine).entries()
    finally:
        engine.dispose()
    args.out.write_bytes(dump_manifest(entries))
    secured = sum(1 for e in entries if e.state is UnitState.SECURED)
    quarantined = sum(1 for e in entries if e.state is UnitState.QUARANTINED)
    print(f"{secured} secured and {quarantined} quarantined units -> {args.out}")
    return 0
