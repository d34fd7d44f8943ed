"""``fleetid v2x init|publish|stats``: the operator's view of the V2X PKI (ETSI TS 102 941).

* ``init`` creates a Root CA, an EA and an AA under ``<data-dir>/v2x`` (``--family brainpool``,
  the ETSI default, or ``nist``) and publishes the first CTL and CRL; beside them the butterfly
  authorities (registration authority, pseudonym CA, LA1, LA2: keys, configuration and
  databases), which ``fleetid serve`` then mounts by itself;
* ``publish`` signs a new CTL and CA CRL (``--revoke-ca HASHEDID8`` first adds a CA to the CRL)
  and writes them to ``--out`` as ``ctl.oer`` and ``crl.oer`` when asked;
* ``stats`` prints the hierarchy and its counters as JSON.

The authorities' key store is unlocked with the passphrase in ``FLEETID_V2X_PASSPHRASE``.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path
from typing import Any

from fleetid.config import V2X_PASSPHRASE_ENV
from fleetid.errors import ConfigError

__all__ = ["register"]

PASSPHRASE_ENV = V2X_PASSPHRASE_ENV


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "v2x", help="the V2X PKI: Root CA, EA, AA (ETSI TS 102 941) and butterfly authorities"
    )
    verbs = parser.add_subparsers(dest="v2x_command", metavar="ACTION", required=True)

    init = verbs.add_parser(
        "init", help="create the Root CA, EA, AA, RA, pseudonym CA and LAs; publish CTL and CRL"
    )
    _common(init)
    init.add_argument("--family", choices=("brainpool", "nist"), default="brainpool")
    init.set_defaults(func=_init)

    publish = verbs.add_parser("publish", help="sign a new CTL and CA CRL")
    _common(publish)
    publish.add_argument(
        "--revoke-ca",
        action="append",
        default=[],
        metavar="HASHEDID8",
        help="add this EA/AA certificate (16 hex digits) to the CA CRL first (repeatable)",
    )
    publish.add_argument("--out", type=Path, default=None, help="write ctl.oer and crl.oer here")
    publish.set_defaults(func=_publish)

    stats = verbs.add_parser("stats", help="print the hierarchy and its counters as JSON")
    _common(stats)
    stats.set_defaults(func=_stats)


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data-dir", type=Path, required=True, help="the fleetid data directory")


def _passphrase() -> bytes:
    value = os.environ.get(PASSPHRASE_ENV)
    if not value:
        raise ConfigError(f"set {PASSPHRASE_ENV} to the V2X key store passphrase")
    return value.encode()


def _init(args: argparse.Namespace) -> int:
    from fleetid.authority.v2x.on_disk import init_v2x
    from fleetid.clock import SystemClock

    store = init_v2x(
        args.data_dir, family_name=args.family, passphrase=_passphrase(), clock=SystemClock()
    )
    try:
        h = store.hierarchy
        print(
            json.dumps(
                {
                    "family": h.family.name,
                    "root": h.root.certificate.hashed_id8.hex(),
                    "ea": h.ea.certificate.hashed_id8.hex(),
                    "aa": h.aa.certificate.hashed_id8.hex(),
                    **_butterfly_ids(store),
                    "directory": str(store.directory),
                },
                indent=2,
            )
        )
    finally:
        store.close()
    return 0


def _butterfly_ids(store: Any) -> dict[str, str]:
    if store.butterfly is None:
        return {}
    authorities = store.butterfly.authorities
    return {
        "ra": authorities.ra.certificate.hashed_id8.hex(),
        "pseudonym_ca": authorities.ca.keys.certificate.hashed_id8.hex(),
    }


def _publish(args: argparse.Namespace) -> int:
    from fleetid.authority.v2x.on_disk import open_v2x
    from fleetid.clock import SystemClock

    try:
        revoke = tuple(bytes.fromhex(value) for value in args.revoke_ca)
    except ValueError:
        raise ConfigError("--revoke-ca takes a HashedId8 in hex") from None
    if any(len(cert_id) != 8 for cert_id in revoke):
        raise ConfigError("a HashedId8 is 8 bytes (16 hex digits)")
    store = open_v2x(args.data_dir, passphrase=_passphrase(), clock=SystemClock())
    try:
        ctl, crl = store.publish(revoke=revoke)
        if args.out is not None:
            args.out.mkdir(parents=True, exist_ok=True)
            (args.out / "ctl.oer").write_bytes(ctl)
            (args.out / "crl.oer").write_bytes(crl)
        print(
            json.dumps(
                {
                    "ctl_sequence": store.hierarchy.ctl_sequence,
                    "crl_entries": [cert_id.hex() for cert_id in store.hierarchy.revoked],
                    "ctl_bytes": len(ctl),
                    "crl_bytes": len(crl),
                },
                indent=2,
            )
        )
    finally:
        store.close()
    return 0


def _stats(args: argparse.Namespace) -> int:
    from fleetid.authority.v2x.on_disk import open_v2x
    from fleetid.clock import SystemClock

    store = open_v2x(args.data_dir, passphrase=_passphrase(), clock=SystemClock())
    try:
        print(json.dumps(store.stats(), indent=2, sort_keys=True))
    finally:
        store.close()
    return 0
