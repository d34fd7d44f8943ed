"""``fleetid applet``: card content management (GlobalPlatform) for the operator.

``list`` prints the applet versions cards know (``fleetid.se.packages``); ``key`` makes (once)
and prints the fleet's applet-signing key in the authority's HSM, which the line puts on every
card; ``status`` is GET STATUS of a card kept in files; ``push`` upgrades cards kept in files to
a package, signed in the HSM, and logs each card's GET STATUS before and after in the
authority's audit log. The cards' ISD keys come from a TOML file (``enc``, ``mac``, ``dek`` in
hex), the format of ``fleetid line run --transport-keys``.
"""

from __future__ import annotations

import argparse
import tomllib
from pathlib import Path
from typing import Any

from fleetid.cli.output import add_json_flag, emit

__all__ = ["register"]


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("applet", help="applets on secure elements: list, status, push")
    verbs = parser.add_subparsers(dest="applet_command", metavar="ACTION", required=True)

    listing = verbs.add_parser("list", help="the applet versions cards know")
    add_json_flag(listing)
    listing.set_defaults(func=_list)

    key = verbs.add_parser("key", help="the fleet's applet-signing key (made once in the HSM)")
    key.add_argument("--data-dir", type=Path, required=True, help="the authority's directory")
    add_json_flag(key)
    key.set_defaults(func=_key)

    status = verbs.add_parser("status", help="GET STATUS of a card kept in files")
    _card_arguments(status, many=False)
    add_json_flag(status)
    status.set_defaults(func=_status)

    push = verbs.add_parser("push", help="upgrade cards kept in files to an applet version")
    push.add_argument("package", metavar="NAME", help="the applet (see `fleetid applet list`)")
    push.add_argument("--version", type=int, default=None, help="default: the highest known")
    push.add_argument("--data-dir", type=Path, required=True, help="the authority's directory")
    _card_arguments(push, many=True)
    add_json_flag(push)
    push.set_defaults(func=_push)


def _card_arguments(parser: argparse.ArgumentParser, *, many: bool) -> None:
    parser.add_argument(
        "--card",
        action="append" if many else "store",
        required=True,
        metavar="SILICON:FLASH",
        help="a card's chip file and sealed flash file"
        + (" (repeat for a cohort)" if many else ""),
    )
    parser.add_argument("--keys", type=Path, required=True, help="TOML: the ISD key set")
    parser.add_argument(
        "--kvn", type=lambda v: int(v, 0), default=0, help="key version (default: the first)"
    )


def _list(args: argparse.Namespace) -> int:
    from fleetid.se.packages import PACKAGES

    packages = sorted(PACKAGES.values(), key=lambda p: (p.name, p.version))
    document = [
        {
            "name": p.name,
            "version": p.version,
            "load_file": p.load_file_aid.hex().upper(),
            "module": p.module_aid.hex().upper(),
            "package_hash": p.data_block_hash.hex(),
        }
        for p in packages
    ]
    emit(
        args,
        document,
        lambda: (
            f"{d['name']} {d['version']} load file {d['load_file']} hash {d['package_hash']}"
            for d in document
        ),
    )
    return 0


def _key(args: argparse.Namespace) -> int:
    from cryptography.hazmat.primitives import serialization

    from fleetid.authority.applet_rollout import ensure_applet_signing_key
    from fleetid.authority.fleet_ca import FleetCa
    from fleetid.clock import SystemClock
    from fleetid.config import Settings
    from fleetid.errors import ConfigError

    if not args.data_dir.is_dir():
        raise ConfigError(f"data directory {args.data_dir} does not exist")
    ca = FleetCa.open(Settings.load(args.data_dir), clock=SystemClock())
    try:
        public = ensure_applet_signing_key(ca.hsm)
    finally:
        ca.close()
    pem = public.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    ).decode()
    emit(args, {"public_key": pem}, lambda: [pem.rstrip("\n")])
    return 0


def _keys(path: Path) -> Any:
    from fleetid.errors import ConfigError
    from fleetid.se.scp03 import StaticKeys

    try:
        doc = tomllib.loads(path.read_text())
        return StaticKeys(
            enc=bytes.fromhex(doc["enc"]),
            mac=bytes.fromhex(doc["mac"]),
            dek=bytes.fromhex(doc["dek"]),
        )
    except (OSError, KeyError, ValueError, TypeError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"cannot read the ISD keys {path}: {type(exc).__name__}") from exc


def _card(spec: str) -> Any:
    from fleetid.errors import ConfigError
    from fleetid.se.card import SecureElement

    silicon, sep, flash = spec.partition(":")
    if not sep or not silicon or not flash:
        raise ConfigError(f"--card takes SILICON:FLASH, not {spec!r}")
    for path in (Path(silicon), Path(flash)):
        if not path.is_file():
            raise ConfigError(f"card file {path} does not exist")
    return SecureElement.open(Path(silicon), Path(flash))


def _status(args: argparse.Namespace) -> int:
    from fleetid.authority.applet_rollout import read_status

    keys = _keys(args.keys)
    status = read_status(_card(args.card), lambda _serial: keys, key_version=args.kvn)
    document = status.to_json()
    emit(
        args,
        document,
        lambda: [
            *(
                f"load file {e['aid']} version {e['version']} modules {','.join(e['modules'])}"
                for e in document["load_files"]
            ),
            *(
                f"application {e['aid']} life cycle {e['life_cycle']} from {e['load_file']}"
                for e in document["applications"]
            ),
        ],
    )
    return 0


def _push(args: argparse.Namespace) -> int:
    from fleetid.authority.applet_rollout import RolloutOutcome, applet_signer, push_applet
    from fleetid.authority.fleet_ca import FleetCa
    from fleetid.clock import SystemClock
    from fleetid.config import Settings
    from fleetid.errors import ConfigError
    from fleetid.se.packages import package_named

    package = package_named(args.package, args.version)
    if package is None:
        raise ConfigError(f"no applet {args.package!r} version {args.version or 'any'}")
    keys = _keys(args.keys)
    cohort = {spec: _card(spec) for spec in args.card}
    if not args.data_dir.is_dir():
        raise ConfigError(f"data directory {args.data_dir} does not exist")
    ca = FleetCa.open(Settings.load(args.data_dir), clock=SystemClock())
    try:
        results = push_applet(
            package,
            cohort,
            signer=applet_signer(ca.hsm),
            card_keys=lambda _serial: keys,
            audit=ca.audit_log,
            key_version=args.kvn,
        )
    finally:
        ca.close()
    document = [r.to_json() for r in results]
    emit(
        args,
        document,
        lambda: (
            f"{r['serial']} {r['outcome']} {r['before']} -> {r['after']}"
            + (f" (SW {r['status_word']})" if r["status_word"] else "")
            for r in document
        ),
    )
    return 1 if any(r.outcome is RolloutOutcome.REFUSED for r in results) else 0
