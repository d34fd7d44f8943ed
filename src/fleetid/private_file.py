"""Writing a file only its owner may read (mode 0600 from creation, never widened).

Key stores, custodian shares, sealed flash and delegated responder keys are written here and
nowhere else, so every such file gets the same care: the mode is set by ``open(2)`` itself (no
window in which the umask's mode applies), the bytes reach the disk (``fsync``) before the file is
visible under its name, and a replaced file is swapped in by one ``rename(2)``, so a crash leaves
either the old content or the new, never half of either.
"""

from __future__ import annotations

import os
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

__all__ = ["write_private_file", "write_private_key"]

_MODE = 0o600


def write_private_file(path: Path, data: bytes, *, replace: bool = True) -> None:
    """Write ``data`` to ``path`` with mode 0600.

    ``replace=True`` swaps the file in atomically through a temporary sibling; ``replace=False``
    creates it exclusively and raises ``FileExistsError`` if it exists (a share or a key store
    must never overwrite its predecessor).
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    if not replace:
        _write(path, data, os.O_EXCL)
        return
    temporary = path.with_name(f".{path.name}.tmp")
    _write(temporary, data, os.O_TRUNC)
    os.replace(temporary, path)


def _write(path: Path, data: bytes, mode_flag: int) -> None:
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | mode_flag, _MODE)
    with os.fdopen(descriptor, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())


def write_private_key(path: Path, key: ec.EllipticCurvePrivateKey) -> None:
    """A software key as unencrypted PKCS#8 PEM (RFC 5958, RFC 7468), owner-only, replaced
    atomically: the keys a host keeps by design (a TLS server's, a delegated OCSP responder's)."""
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    write_private_file(path, pem)
