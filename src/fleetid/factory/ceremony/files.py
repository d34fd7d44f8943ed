"""What a ceremony writes: custodian shares and the activation state (owner-only, through
``fleetid.private_file``) and the public record and certificates."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

from fleetid.crypto.shamir import KekShare
from fleetid.factory.ceremony.record import RECORD_FILE, CeremonyRecord, pem
from fleetid.private_file import write_private_file

__all__ = ["write_private_json", "write_public", "write_share"]


def write_share(directory: Path, share: KekShare) -> Path:
    """One custodian's share file, created exclusively (a share never replaces another)."""
    slug = re.sub(r"[^A-Za-z0-9]+", "-", share.custodian).strip("-").lower() or "custodian"
    path = directory / f"{share.ceremony_id}.share-{share.index}-of-{share.total}.{slug}.toml"
    write_private_file(path, share.to_text().encode(), replace=False)
    return path


def write_public(data_dir: Path, record: CeremonyRecord) -> None:
    """The certificates as PEM and the record, the record swapped in last and whole."""
    (data_dir / "manufacturer-root.pem").write_text(pem(record.root_certificate))
    (data_dir / "line-ca.pem").write_text(pem(record.line_ca_certificate))
    temporary = data_dir / (RECORD_FILE + ".tmp")
    temporary.write_text(record.to_json())
    os.replace(temporary, data_dir / RECORD_FILE)


def write_private_json(path: Path, doc: dict[str, Any]) -> None:
    """``doc`` as JSON in an owner-only file, replaced atomically."""
    write_private_file(path, json.dumps(doc).encode())
