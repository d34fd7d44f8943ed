"""Secrets at rest: AES-256-GCM under HKDF of the authority's key, bound to their row."""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from fleetid.crypto.sealed_state import StateSealer
from fleetid.crypto.v2xkeys import generate_key
from fleetid.errors import EncodingError, VerificationError


def test_a_sealed_value_opens_for_its_row_only() -> None:
    sealer = StateSealer(bytes(range(32)))
    sealed = sealer.seal(b"ls(0) sixteen by", b"row 1")
    assert b"ls(0) sixteen by" not in sealed
    assert sealer.open(sealed, b"row 1") == b"ls(0) sixteen by"
    assert sealer.seal(b"ls(0) sixteen by", b"row 1") != sealed  # fresh nonce each time
    with pytest.raises(VerificationError):
        sealer.open(sealed, b"row 2")
    tampered = sealed[:-1] + bytes([sealed[-1] ^ 1])
    with pytest.raises(VerificationError):
        sealer.open(tampered, b"row 1")
    with pytest.raises(VerificationError):
        StateSealer(bytes(32)).open(sealed, b"row 1")
    with pytest.raises(EncodingError):
        sealer.open(sealed[:20], b"row 1")
    with pytest.raises(ValueError, match="32 bytes"):
        StateSealer(bytes(16))


def test_the_key_is_hkdf_of_the_private_value_and_opens_with_pyca_alone() -> None:
    key = generate_key("nistP256")
    sealed = StateSealer.for_key(key).seal(b"secret", b"ctx")
    d = key.private_numbers().private_value.to_bytes(32, "big")
    derived = HKDF(
        algorithm=hashes.SHA256(), length=32, salt=None, info=b"fleetid butterfly state v1"
    ).derive(d)
    assert AESGCM(derived).decrypt(sealed[:12], sealed[12:], b"ctx") == b"secret"
    assert "hidden" in repr(StateSealer.for_key(key))
    with pytest.raises(VerificationError):
        StateSealer.for_key(generate_key("nistP256")).open(sealed, b"ctx")
