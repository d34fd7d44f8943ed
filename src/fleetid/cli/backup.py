"""``fleetid backup`` and ``fleetid restore``: the authority's data directory and database, out and
back, checked (docs/operations.md, "Backup and restore").

``backup --data-dir D --to B`` writes into a new (or empty) directory ``B``: the database
(``fleetid.store.backup``: SQLite's online backup API, so a running server need not stop; or
``pg_dump``), every other file of the data directory (the CA's HSM and its activation key, the
audit log's verifier key, trusted manufacturers, link certificates, the config file), and
``backup.json`` listing each file with its SHA-256. ``B`` is made owner-only: it holds the
HSM's activation key.

``restore --from B --data-dir T`` refuses a target directory that holds anything (and a target
database that holds a table), checks every file against ``backup.json``, restores, and then
verifies the restored audit log end to end under the restored verifier key, as ``fleetid audit
verify`` does; a log that does not verify is a failed restore (exit 1).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Final

from fleetid.cli.output import add_authority_arguments, add_json_flag, emit

__all__ = ["MANIFEST", "register"]

MANIFEST: Final = "backup.json"
# What the database is, beside it (copied by the database's own backup, never as files).
_DATABASE_FILES: Final = ("fleetid.db", "fleetid.db-wal", "fleetid.db-shm", "fleetid.db.writer")
_SKIPPED: Final = (*_DATABASE_FILES, "fleetid.pid")


def register(subparsers: Any) -> None:
    backup = subparsers.add_parser(
        "backup", help="copy the data directory and database into a new directory"
    )
    add_authority_arguments(backup)
    backup.add_argument("--to", type=Path, required=True, metavar="DIR", help="new or empty")
    add_json_flag(backup)
    backup.set_defaults(func=_backup)
    restore = subparsers.add_parser(
        "restore", help="restore a backup into an empty data directory and verify its audit log"
    )
    restore.add_argument("--from", dest="source", type=Path, required=True, metavar="DIR")
    restore.add_argument("--data-dir", type=Path, required=True, help="the new data directory")
    restore.add_argument(
        "--database-url",
        metavar="URL",
        help="an empty database to restore into (default: SQLite DATA_DIR/fleetid.db)",
    )
    add_json_flag(restore)
    restore.set_defaults(func=_restore)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as file:
        for block in iter(lambda: file.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _copy(source_root: Path, target_root: Path, relative: Path) -> Path:
    """Copy one file with its mode, making its directories with their modes (``ca/`` is 0700)."""
    target_root.mkdir(mode=0o700, parents=True, exist_ok=True)
    for parent in reversed(relative.parents[:-1]):  # its directories, the outermost first
        made = target_root / parent
        if not made.exists():
            made.mkdir(parents=True)
            shutil.copymode(source_root / parent, made)
    target = target_root / relative
    shutil.copy2(source_root / relative, target)
    return target


def _require_empty(directory: Path, what: str) -> None:
    from fleetid.errors import ConfigError

    if directory.exists() and (not directory.is_dir() or any(directory.iterdir())):
        raise ConfigError(f"{what} {directory} is not empty: nothing is overwritten")


def _data_files(data_dir: Path, exclude: Path) -> Iterator[Path]:
    """Every file of the data directory but the database's own and ``exclude``'s tree."""
    for path in sorted(data_dir.rglob("*")):
        if not path.is_file() or (path.name in _SKIPPED and path.parent == data_dir):
            continue
        if path.resolve().is_relative_to(exclude.resolve()):
            continue
        yield path


def _backup(args: argparse.Namespace) -> int:
    from fleetid.cli.output import load_settings
    from fleetid.clock import SystemClock
    from fleetid.store.backup import backup_database
    from fleetid.store.engine import database_errors, engine_from_settings

    settings = load_settings(args)
    _require_empty(args.to, "backup directory")
    args.to.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.chmod(args.to, 0o700)
    files: dict[str, str] = {}
    for path in _data_files(settings.data_dir, args.to):
        relative = path.relative_to(settings.data_dir)
        target = _copy(settings.data_dir, args.to / "data", relative)
        files[str(relative)] = _sha256(target)
    engine = engine_from_settings(settings)
    try:
        with database_errors():
            dump = backup_database(engine, args.to)
    finally:
        engine.dispose()
    manifest = {
        "created_at": SystemClock().now(),
        "database": dump.name,
        "database_sha256": _sha256(dump),
        "files": files,
    }
    from fleetid.cli.output import jsonable

    (args.to / MANIFEST).write_text(json.dumps(jsonable(manifest), indent=1, sort_keys=True))
    emit(
        args,
        {"backup": args.to, **manifest},
        lambda: [f"backed up {len(files)} files and the database ({dump.name}) to {args.to}"],
    )
    return 0


def _read_manifest(source: Path) -> dict[str, Any]:
    from fleetid.errors import ConfigError, VerificationError

    try:
        manifest = json.loads((source / MANIFEST).read_text())
        files = dict(manifest["files"])
        database = str(manifest["database"])
        database_sha256 = str(manifest["database_sha256"])
    except FileNotFoundError:
        raise ConfigError(f"{source} is not a fleetid backup (no {MANIFEST})") from None
    except (ValueError, KeyError, TypeError) as exc:
        raise ConfigError(f"{source / MANIFEST} is unreadable: {exc!r}") from None
    if Path(database).name != database:
        raise ConfigError(f"{source / MANIFEST} names a database outside the backup")
    if _sha256(source / database) != database_sha256:
        raise VerificationError(f"{source / database} does not match its SHA-256 in {MANIFEST}")
    for relative, digest in files.items():
        path = source / "data" / relative
        if not path.resolve().is_relative_to((source / "data").resolve()):
            raise ConfigError(f"{MANIFEST} names {relative}, outside the backup")
        if not path.is_file() or _sha256(path) != digest:
            raise VerificationError(f"{path} is missing or does not match its SHA-256")
    return {"files": files, "database": source / database}


def _restore(args: argparse.Namespace) -> int:
    from fleetid.errors import LogTamperedError, VerificationError
    from fleetid.factory.auditlog import AuditLogReader, load_verifier_key
    from fleetid.store.backup import restore_database
    from fleetid.store.engine import database_errors, open_engine

    manifest = _read_manifest(args.source)
    _require_empty(args.data_dir, "data directory")
    target = args.database_url or args.data_dir
    args.data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    for relative in manifest["files"]:
        _copy(args.source / "data", args.data_dir, Path(relative))
    engine = open_engine(target)
    try:
        with database_errors():
            restore_database(manifest["database"], engine)
        origin, public_key = load_verifier_key(args.data_dir)
        # ``fleetid audit verify`` on the restored copy: every entry and checkpoint.
        report = AuditLogReader(engine, origin).verify_all(public_key)
    except (LogTamperedError, VerificationError) as exc:
        print(f"BAD restored audit log: {exc}")
        return 1
    finally:
        engine.dispose()
    document = {
        "data_dir": args.data_dir,
        "files": len(manifest["files"]),
        "audit_entries": report.entries,
        "audit_root": report.root_hash.hex(),
    }
    emit(
        args,
        document,
        lambda: [
            f"restored {len(manifest['files'])} files and the database into {args.data_dir}",
            f"audit log OK {origin}: {report.entries} entries, root {report.root_hash.hex()}",
        ],
    )
    return 0
