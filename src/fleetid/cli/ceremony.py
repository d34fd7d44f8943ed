"""``fleetid ceremony``: run a key ceremony from a reviewed config, activate the HSM with M shares.

``init --config FILE --data-dir DIR`` creates the keys inside the HSM and one share file per
custodian; ``activate --share F ...`` needs M of them; ``deactivate`` locks the HSM again;
``example --out DIR`` writes a config (and a transport-keys file) to review and edit.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

__all__ = ["register"]


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("ceremony", help="key ceremony: init, activate, deactivate")
    verbs = parser.add_subparsers(dest="ceremony_command", metavar="ACTION", required=True)

    init = verbs.add_parser("init", help="run the ceremony described by a reviewed config file")
    init.add_argument("--config", type=Path, required=True, help="the reviewed ceremony TOML")
    init.add_argument("--data-dir", type=Path, required=True, help="new data directory")
    init.add_argument(
        "--shares-dir",
        type=Path,
        default=None,
        help="where the custodian share files go (default: DATA_DIR/shares)",
    )
    init.set_defaults(func=_init)

    activate = verbs.add_parser("activate", help="activate the HSM with M custodian shares")
    activate.add_argument("--data-dir", type=Path, required=True)
    activate.add_argument(
        "--share", type=Path, action="append", default=[], required=True, metavar="FILE"
    )
    activate.add_argument("--hours", type=float, default=12.0, help="activation lifetime")
    activate.set_defaults(func=_activate)

    deactivate = verbs.add_parser("deactivate", help="lock the HSM (forget the activation)")
    deactivate.add_argument("--data-dir", type=Path, required=True)
    deactivate.set_defaults(func=_deactivate)

    example = verbs.add_parser("example", help="write an example ceremony config to review")
    example.add_argument("--out", type=Path, required=True)
    example.add_argument("--threshold", type=int, default=3)
    example.add_argument(
        "--custodian", action="append", default=[], help="custodian name (repeat; default 5)"
    )
    example.set_defaults(func=_example)


def _pkcs11_module() -> str | None:
    from fleetid.config import PKCS11_MODULE_ENV

    return os.environ.get(PKCS11_MODULE_ENV) or None


def _init(args: argparse.Namespace) -> int:
    from fleetid.clock import SystemClock
    from fleetid.factory.ceremony import CeremonyConfig, init_ceremony

    config = CeremonyConfig.load(args.config)
    print(f"ceremony {config.ceremony_id}: config sha256 {config.config_sha256}")
    # The SO PIN is read here, from the variable the reviewed config names, and only for a token.
    so_pin = os.environ.get(config.hsm.so_pin_env) if config.hsm.backend == "pkcs11" else None
    outcome = init_ceremony(
        config,
        args.data_dir,
        clock=SystemClock(),
        shares_dir=args.shares_dir,
        so_pin=so_pin,
        pkcs11_module=_pkcs11_module(),
    )
    record = outcome.record
    custody = record.transcript["custody"]
    print(f"custody {record.threshold}-of-{record.total}, KEK KCV {custody['kek_kcv']}")
    for key in record.transcript["keys"]:
        check = key.get("spki_sha256") or key.get("kcv")
        print(f"  key {key['label']:<22} {key['role']:<22} {check}")
    for cert in record.transcript["certificates"]:
        print(f"  cert {cert['role']:<21} sha256 {cert['sha256']}")
    for path in outcome.share_files:
        print(f"  share -> {path}")
    print("transcript signed and logged as audit entry 0; the HSM is locked until activation")
    return 0


def _activate(args: argparse.Namespace) -> int:
    from datetime import timedelta

    from fleetid.clock import SystemClock
    from fleetid.errors import CeremonyError
    from fleetid.factory.ceremony import activate, read_shares

    try:
        shares = read_shares(args.share)
        hsm = activate(
            args.data_dir,
            shares,
            clock=SystemClock(),
            valid_for=timedelta(hours=args.hours),
            pkcs11_module=_pkcs11_module(),
        )
    except CeremonyError as exc:
        print(f"fleetid: activation refused: {exc}", file=sys.stderr)
        return 1
    hsm.lock()
    names = ", ".join(f"{s.index} ({s.custodian})" for s in shares)
    print(f"HSM activated by shares {names} for {args.hours:g} h")
    return 0


def _deactivate(args: argparse.Namespace) -> int:
    from fleetid.clock import SystemClock
    from fleetid.factory.ceremony import deactivate

    was = deactivate(args.data_dir, clock=SystemClock(), pkcs11_module=_pkcs11_module())
    print("HSM locked" if was else "HSM was not activated")
    return 0


def _example(args: argparse.Namespace) -> int:
    from fleetid.factory.ceremony import write_example_config

    custodians = tuple(args.custodian) or ("alice", "bob", "carol", "dave", "erin")
    path = write_example_config(args.out, threshold=args.threshold, custodians=custodians)
    print(f"wrote {path} and {path.parent / 'transport-keys.toml'}: review, then `ceremony init`")
    return 0
