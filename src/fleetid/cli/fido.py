"""``fleetid fido init|load-metadata|operators``: FIDO registration of device operators.

* ``init --data-dir DIR --rp-id ID --origin URL [--origin URL] --metadata-root PEM`` makes the
  authority a WebAuthn Relying Party: its RP ID, the origins its registration pages are served
  from, and the root that signs the metadata BLOBs it accepts. ``fleetid serve`` then mounts the
  registration routes (``/operators/fido/...``).
* ``load-metadata --data-dir DIR [--crl DER ...] BLOB`` verifies a FIDO MDS3 BLOB (a JWS file)
  against that root, its chain against the CRLs given (a chain certificate that names a CRL
  distribution point needs a current CRL of its issuer), and makes its authenticator models the
  ones trusted; a forged, older, stale or revoked-signer BLOB is refused and the models held stay
  as they were.
* ``operators --data-dir DIR NAME`` lists the credentials registered for an operator.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

__all__ = ["register"]


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("fido", help="FIDO authenticators of device operators")
    verbs = parser.add_subparsers(dest="fido_command", metavar="ACTION", required=True)

    init = verbs.add_parser("init", help="set up the authority as a WebAuthn Relying Party")
    init.add_argument("--data-dir", type=Path, required=True, help="the authority's directory")
    init.add_argument("--rp-id", required=True, help="the RP ID (a domain, WebAuthn §5.1.3)")
    init.add_argument(
        "--origin", action="append", required=True, help="an accepted origin (repeat)"
    )
    init.add_argument(
        "--metadata-root", type=Path, required=True, help="PEM: the metadata BLOB signer's root"
    )
    init.set_defaults(func=_init)

    load = verbs.add_parser("load-metadata", help="verify and load a FIDO MDS3 BLOB")
    load.add_argument("--data-dir", type=Path, required=True, help="the authority's directory")
    load.add_argument(
        "--crl",
        type=Path,
        action="append",
        default=[],
        help="a DER CRL for the BLOB's chain (repeat for each issuer)",
    )
    load.add_argument("blob", type=Path, help="the BLOB (JWS compact serialisation)")
    load.set_defaults(func=_load)

    operators = verbs.add_parser("operators", help="an operator's registered credentials")
    operators.add_argument("--data-dir", type=Path, required=True, help="the authority's directory")
    operators.add_argument("operator", help="the operator's name")
    operators.set_defaults(func=_operators)


def _init(args: argparse.Namespace) -> int:
    from cryptography import x509

    from fleetid.authority.operator_keys import save_relying_party
    from fleetid.errors import ConfigError

    if not args.data_dir.is_dir():
        raise ConfigError(f"no authority directory {args.data_dir}")
    try:
        root = x509.load_pem_x509_certificate(args.metadata_root.read_bytes())
    except ValueError as exc:
        raise ConfigError(f"{args.metadata_root} is not a PEM certificate") from exc
    save_relying_party(args.data_dir, args.rp_id, list(args.origin), root)
    signer = root.subject.rfc4514_string()
    print(f"relying party {args.rp_id}: {len(args.origin)} origin(s), metadata root {signer}")
    return 0


def _registration(data_dir: Path) -> Any:
    from fleetid.authority.operator_keys import OperatorRegistration, has_fido, load_relying_party
    from fleetid.clock import SystemClock
    from fleetid.config import Settings
    from fleetid.errors import NotConfiguredError
    from fleetid.store.engine import engine_from_settings
    from fleetid.store.fido_repository import FidoRepository
    from fleetid.store.repositories import Store

    if not has_fido(data_dir):
        raise NotConfiguredError(f"{data_dir} is not set up for FIDO: run fleetid fido init")
    store = Store(engine_from_settings(Settings.load(data_dir)))
    return OperatorRegistration(
        FidoRepository(store.engine), load_relying_party(data_dir), SystemClock()
    )


def _load(args: argparse.Namespace) -> int:
    from fleetid.clock import SystemClock
    from fleetid.errors import ConfigError

    try:
        token = args.blob.read_text(encoding="ascii")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read the BLOB {args.blob}") from exc
    try:
        crls = [path.read_bytes() for path in args.crl]
    except OSError as exc:
        raise ConfigError(f"cannot read a CRL: {exc}") from exc
    registration = _registration(args.data_dir)
    loaded = registration.metadata.load_blob(token, SystemClock().now(), crls)
    print(
        f"metadata BLOB {loaded.serial} loaded: {loaded.models} authenticator models, next update"
        f" by {loaded.next_update.isoformat()}"
    )
    return 0


def _operators(args: argparse.Namespace) -> int:
    from fleetid.formats.webauthn import b64url_encode
    from fleetid.store.fido_repository import FidoRepository

    registration = _registration(args.data_dir)
    repository: FidoRepository = registration.repository
    for record in repository.credentials_of(args.operator):
        credential = b64url_encode(record.credential_id)
        print(f"{record.registered_at.isoformat()} {record.fmt} {record.aaguid} {credential}")
    return 0
