"""write_private_file: mode 0600 from creation, atomic replacement, exclusive creation."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from fleetid.private_file import write_private_file


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_a_new_file_is_owner_only_even_under_a_permissive_umask(tmp_path: Path) -> None:
    previous = os.umask(0)
    try:
        write_private_file(tmp_path / "keys" / "store.json", b"secret")
    finally:
        os.umask(previous)
    assert _mode(tmp_path / "keys" / "store.json") == 0o600
    assert (tmp_path / "keys" / "store.json").read_bytes() == b"secret"


def test_replacing_leaves_no_temporary_and_keeps_the_mode(tmp_path: Path) -> None:
    path = tmp_path / "store.json"
    write_private_file(path, b"old")
    write_private_file(path, b"new")
    assert path.read_bytes() == b"new"
    assert _mode(path) == 0o600
    assert sorted(p.name for p in tmp_path.iterdir()) == ["store.json"]


def test_exclusive_creation_refuses_to_overwrite(tmp_path: Path) -> None:
    path = tmp_path / "share-1-of-3.toml"
    write_private_file(path, b"first", replace=False)
    with pytest.raises(FileExistsError):
        write_private_file(path, b"second", replace=False)
    assert path.read_bytes() == b"first"


def test_a_failed_replacement_leaves_the_old_content(tmp_path: Path) -> None:
    path = tmp_path / "store.json"
    write_private_file(path, b"old")
    (tmp_path / ".store.json.tmp").mkdir()  # the temporary cannot be opened as a file
    with pytest.raises(IsADirectoryError):
        write_private_file(path, b"new")
    assert path.read_bytes() == b"old"


def test_a_private_key_is_pkcs8_pem_readable_back_and_owner_only(tmp_path: Path) -> None:
    from cryptography.hazmat.primitives import serialization

    from fleetid.crypto.keys import new_private_key
    from fleetid.private_file import write_private_key

    key = new_private_key()
    path = tmp_path / "tls" / "server.key"
    write_private_key(path, key)
    assert _mode(path) == 0o600
    assert path.read_bytes().startswith(b"-----BEGIN PRIVATE KEY-----")  # PKCS#8, RFC 7468 §10
    loaded = serialization.load_pem_private_key(path.read_bytes(), password=None)
    assert loaded.private_numbers() == key.private_numbers()  # type: ignore[union-attr]
