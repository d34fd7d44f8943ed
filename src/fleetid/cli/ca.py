"""``fleetid ca``: the fleet CA and what it trusts.

* ``init`` creates the fleet root and issuing CA, ``certs`` prints the chain.
* ``trust-manufacturer --cert ROOT.pem`` adds a manufacturer root whose IDevIDs attested
  enrolment accepts, ``manufacturers`` lists them, ``distrust-manufacturer FINGERPRINT`` removes
  one; ``import-manifest FILE`` lists a factory's devices here (the file ``fleetid line
  export-manifest`` writes). A running ``fleetid serve`` follows all four without a restart
  (``fleetid.authority.provisioners.attestation``).
* ``rollover`` makes the next issuing CA (``--root``: a new root with its RFC 4210 link
  certificates, and an issuing CA under it; ``fleetid.authority.rollover``); a running
  ``fleetid serve`` takes the new generation on ``fleetid reload``.
* ``bootstrap --ca-url URL --fingerprint SHA256`` fetches a running authority's root and pins it
  (``fleetid.cli.ca_bootstrap``).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from fleetid.cli import ca_bootstrap
from fleetid.cli.output import add_authority_arguments, add_json_flag, emit

__all__ = ["register"]


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "ca", help="the fleet CA: create it, print its certificates, manage what it trusts"
    )
    verbs = parser.add_subparsers(dest="ca_command", metavar="ACTION", required=True)
    init = verbs.add_parser("init", help="create the fleet root and issuing CA (keys in the HSM)")
    init.add_argument("--data-dir", type=Path, required=True, help="the authority's directory")
    init.add_argument(
        "--name",
        default="fleetid",
        help="organisation name in the CA subjects (1 to 42 bytes in UTF-8)",
    )
    add_json_flag(init)
    init.set_defaults(func=_init)
    certs = verbs.add_parser("certs", help="print the chain as PEM: issuing CA, then the root")
    certs.add_argument("--data-dir", type=Path, required=True, help="the authority's directory")
    add_json_flag(certs)
    certs.set_defaults(func=_certs)

    trust = verbs.add_parser(
        "trust-manufacturer",
        help="accept IDevIDs under this manufacturer root for attested enrolment",
    )
    trust.add_argument("--data-dir", type=Path, required=True, help="the authority's directory")
    trust.add_argument(
        "--cert", type=Path, required=True, help="the manufacturer root (PEM, self-signed CA)"
    )
    trust.set_defaults(func=_trust)
    listed = verbs.add_parser("manufacturers", help="list the trusted manufacturer roots")
    listed.add_argument("--data-dir", type=Path, required=True, help="the authority's directory")
    add_json_flag(listed)
    listed.set_defaults(func=_manufacturers)
    distrust = verbs.add_parser(
        "distrust-manufacturer", help="stop accepting IDevIDs under a manufacturer root"
    )
    distrust.add_argument("--data-dir", type=Path, required=True, help="the authority's directory")
    distrust.add_argument(
        "fingerprint", help="the root's SHA-256 fingerprint (hex, 16 digits or more)"
    )
    distrust.set_defaults(func=_distrust)

    manifest = verbs.add_parser(
        "import-manifest",
        help="accept a factory's devices (the file `fleetid line export-manifest` writes)",
    )
    manifest.add_argument("--data-dir", type=Path, required=True, help="the authority's directory")
    manifest.add_argument("file", type=Path, help="the line manifest file (JSON)")
    manifest.add_argument(
        "--unit",
        action="append",
        default=[],
        metavar="UNIT",
        help="import only this unit (repeatable; default: every unit in the file)",
    )
    manifest.set_defaults(func=_import_manifest)

    rollover = verbs.add_parser(
        "rollover", help="the next issuing CA generation (--root: a new root and its links)"
    )
    add_authority_arguments(rollover)
    rollover.add_argument(
        "--root", action="store_true", help="roll the root (RFC 4210 §4.4 link certificates)"
    )
    add_json_flag(rollover)
    rollover.set_defaults(func=_rollover)
    ca_bootstrap.register_into(verbs)


def _init(args: argparse.Namespace) -> int:
    from fleetid.authority.fleet_ca import FleetCa
    from fleetid.clock import SystemClock
    from fleetid.config import Settings

    ca = FleetCa.init(Settings.load(args.data_dir), clock=SystemClock(), name=args.name)
    try:
        chain = ca.chain()
    finally:
        ca.close()
    emit(
        args,
        [_facts(c) for c in chain],
        lambda: [f"{c.subject.rfc4514_string()}  serial {c.serial_number:x}" for c in chain],
    )
    return 0


def _certs(args: argparse.Namespace) -> int:
    from cryptography.hazmat.primitives import serialization

    from fleetid.authority.fleet_ca import FleetCa
    from fleetid.clock import SystemClock
    from fleetid.config import Settings

    ca = FleetCa.open(Settings.load(args.data_dir), clock=SystemClock())
    try:
        chain = ca.chain()
    finally:
        ca.close()
    pems = [c.public_bytes(serialization.Encoding.PEM).decode() for c in chain]
    if args.json:
        emit(args, [_facts(c) | {"pem": pem} for c, pem in zip(chain, pems, strict=True)])
    else:
        sys.stdout.write("".join(pems))
    return 0


def _facts(cert: Any) -> dict[str, Any]:
    """A CA certificate as ``--json`` shows it."""
    from cryptography.hazmat.primitives import hashes

    return {
        "subject": cert.subject.rfc4514_string(),
        "issuer": cert.issuer.rfc4514_string(),
        "serial": f"{cert.serial_number:x}",
        "not_after": cert.not_valid_after_utc,
        "sha256": cert.fingerprint(hashes.SHA256()).hex(),
    }


def _rollover(args: argparse.Namespace) -> int:
    from fleetid.authority.fleet_ca import FleetCa
    from fleetid.authority.rollover import roll_issuing_ca, roll_root
    from fleetid.cli.output import load_settings
    from fleetid.clock import SystemClock

    ca = FleetCa.open(load_settings(args), clock=SystemClock())
    try:
        if args.root:
            ca, rollover = roll_root(ca)
            made = {
                "root": rollover.new_root,
                "new_with_old": rollover.new_with_old,
                "old_with_new": rollover.old_with_new,
                "issuing": rollover.issuing,
            }
        else:
            ca = roll_issuing_ca(ca)
            made = {"issuing": ca.issuing.certificate}
    finally:
        ca.close()
    document = {name: _facts(cert) for name, cert in made.items()}
    emit(
        args,
        document,
        lambda: [
            f"{name:<12}  {d['subject']}  serial {d['serial']}  sha256 {d['sha256']}"
            for name, d in document.items()
        ],
    )
    return 0


def _require_authority(data_dir: Path) -> None:
    from fleetid.authority.ca_init import ACTIVATION_FILE, CA_DIR
    from fleetid.errors import ConfigError

    if not (data_dir / CA_DIR / ACTIVATION_FILE).is_file():
        raise ConfigError(f"no fleet CA in {data_dir}: run `fleetid ca init --data-dir` first")


def _describe(certificate: Any) -> str:
    from cryptography.hazmat.primitives import hashes

    return (
        f"{certificate.fingerprint(hashes.SHA256()).hex()}  "
        f"{certificate.subject.rfc4514_string()}  "
        f"until {certificate.not_valid_after_utc.date().isoformat()}"
    )


def _trust(args: argparse.Namespace) -> int:
    from cryptography import x509

    from fleetid.authority.provisioners.attestation import trust_manufacturer
    from fleetid.clock import SystemClock
    from fleetid.crypto.pkix import issued_by
    from fleetid.errors import EncodingError, VerificationError

    _require_authority(args.data_dir)
    try:
        (root,) = x509.load_pem_x509_certificates(args.cert.read_bytes())
    except ValueError as exc:
        raise EncodingError(f"{args.cert} is not one PEM certificate: {exc}") from exc
    # A trust anchor is a CA that signs itself (RFC 5280 §6.1.1 (d), §4.2.1.9).
    try:
        constraints = root.extensions.get_extension_for_class(x509.BasicConstraints).value
    except x509.ExtensionNotFound:
        constraints = None
    if constraints is None or not constraints.ca:
        raise VerificationError(f"{args.cert} is not a CA certificate (basicConstraints cA)")
    if not issued_by(root, root):
        raise VerificationError(f"{args.cert} is not a self-signed root")
    if root.not_valid_after_utc <= SystemClock().now():
        raise VerificationError(f"{args.cert} expired on {root.not_valid_after_utc.isoformat()}")
    path = trust_manufacturer(args.data_dir, root)
    print(f"trusted {_describe(root)} ({path.name})")
    return 0


def _manufacturers(args: argparse.Namespace) -> int:
    from fleetid.authority.provisioners.attestation import manufacturer_roots

    _require_authority(args.data_dir)
    roots = manufacturer_roots(args.data_dir)
    emit(args, [_facts(r) for r in roots], lambda: [_describe(r) for r in roots])
    return 0


def _distrust(args: argparse.Namespace) -> int:
    from fleetid.authority.provisioners.attestation import distrust_manufacturer

    _require_authority(args.data_dir)
    for root in distrust_manufacturer(args.data_dir, args.fingerprint):
        print(f"distrusted {_describe(root)}")
    return 0


def _import_manifest(args: argparse.Namespace) -> int:
    from fleetid.authority.provisioners.attestation import import_manifest
    from fleetid.clock import SystemClock
    from fleetid.config import Settings
    from fleetid.errors import NotFoundError
    from fleetid.factory.manifest_file import load_manifest
    from fleetid.store.engine import engine_from_settings
    from fleetid.store.repositories import Store

    _require_authority(args.data_dir)
    records = load_manifest(args.file.read_bytes())
    if args.unit:
        wanted = set(args.unit)
        records = [r for r in records if r.unit in wanted]
        missing = sorted(wanted - {r.unit for r in records})
        if missing:
            raise NotFoundError(f"{args.file} lists no unit {', '.join(missing)}")
    store = Store(engine_from_settings(Settings.load(args.data_dir)))
    try:
        imported = import_manifest(store, records, SystemClock().now())
    finally:
        store.dispose()
    print(f"imported {imported} units, {len(records) - imported} listed already")
    return 0
