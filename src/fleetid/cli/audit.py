"""``fleetid audit verify`` and ``fleetid audit prove SERIAL``: the audit log from outside.

Both read ``<data-dir>/fleetid.db``, or the database ``--database-url`` names (an authority on
PostgreSQL keeps its log there, beside its certificates). The log's verifier key
(``origin+keyid+base64(0x02||SPKI)``) comes from ``--vkey`` (the text or a file holding it) or
else ``<data-dir>/audit-log.vkey``; a verifier that does not trust the data directory passes the
key it was handed at the ceremony.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from fleetid.errors import ConfigError, LogTamperedError, NotFoundError, VerificationError

__all__ = ["register"]


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("audit", help="verify the audit log or prove a device's entries")
    verbs = parser.add_subparsers(dest="audit_command", metavar="ACTION", required=True)

    verify = verbs.add_parser(
        "verify",
        help="re-compute the Merkle tree, check every checkpoint; print OK or the first bad entry",
    )
    _common(verify)
    verify.add_argument(
        "--published",
        type=Path,
        action="append",
        default=[],
        metavar="NOTE",
        help="a checkpoint note published earlier that the log must still contain (repeatable)",
    )
    verify.set_defaults(func=_verify)

    prove = verbs.add_parser(
        "prove", help="print a device's entries with inclusion proofs against the latest checkpoint"
    )
    prove.add_argument("serial", help="the device serial (hex, either case)")
    _common(prove)
    prove.set_defaults(func=_prove)


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data-dir", type=Path, required=True, help="directory with fleetid.db")
    parser.add_argument(
        "--database-url",
        default=None,
        metavar="URL",
        help="the log's database when it is not DATA_DIR/fleetid.db "
        "(an authority's FLEETID_DATABASE_URL, e.g. postgresql+psycopg://...)",
    )
    parser.add_argument(
        "--vkey",
        default=None,
        help="the log's verifier key, or a file holding it (default: DATA_DIR/audit-log.vkey)",
    )


def _open(args: argparse.Namespace) -> tuple[Any, Any, str]:
    from fleetid.factory.auditlog import AuditLogReader, load_verifier_key
    from fleetid.formats.checkpoint import parse_verifier_key
    from fleetid.store.engine import DB_FILENAME

    data_dir: Path = args.data_dir
    if args.database_url is None and not (data_dir / DB_FILENAME).is_file():
        raise ConfigError(f"no audit log database at {data_dir / DB_FILENAME}")
    if args.vkey is None:
        origin, public_key = load_verifier_key(data_dir)
    else:
        candidate = Path(args.vkey)
        text = candidate.read_text() if candidate.is_file() else args.vkey
        origin, public_key = parse_verifier_key(text.strip())
    return AuditLogReader(args.database_url or data_dir, origin), public_key, origin


def _verify(args: argparse.Namespace) -> int:
    log, public_key, origin = _open(args)
    published = [path.read_bytes() for path in args.published]
    try:
        report = log.verify_all(public_key, published=published)
    except LogTamperedError as exc:
        # The message names the entry already (``entry N: ...``) when there is one.
        print(f"BAD {exc}" if exc.index is not None else f"BAD log: {exc}")
        return 1
    except VerificationError as exc:
        print(f"BAD: {exc}")
        return 1
    print(
        f"OK {origin}: {report.entries} entries, {report.checkpoints} checkpoints, "
        f"tree size {report.tree_size}, root {report.root_hash.hex()}"
    )
    return 0


def _prove(args: argparse.Namespace) -> int:
    from fleetid.formats.checkpoint import open_checkpoint, verifier_key

    log, public_key, origin = _open(args)
    proof = log.prove_serial(args.serial)
    if not proof["entries"]:
        raise NotFoundError(f"the audit log names no device {args.serial!r}")
    # Never hand out proofs against a checkpoint that does not verify under the log key.
    open_checkpoint(proof["checkpoint"].encode("utf-8"), public_key, origin)
    proof["verifier_key"] = verifier_key(origin, public_key)
    json.dump(proof, sys.stdout, indent=2, ensure_ascii=False)
    print()
    return 0
