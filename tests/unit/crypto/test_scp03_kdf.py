"""The one SCP03 KDF (GP Amendment D §4.1.5, §6.2.1): NIST SP 800-108 counter mode, AES-CMAC PRF.

``scp03_kdf`` takes its PRF, so the card, the host session and the line (whose static keys stay
in the HSM) all derive through it. Checked against published vectors, against pyca's
``KBKDFCMAC`` (the oracle: a KBKDF built with the counter in the middle of the fixed data) and
against pycryptodome's CMAC spelled out by hand (the HSM's CMAC as PRF: tests/unit/factory).
"""

from __future__ import annotations

import os

import pytest
from Crypto.Cipher import AES as PycryptodomeAES
from Crypto.Hash import CMAC as PycryptodomeCMAC
from cryptography.hazmat.primitives.ciphers import algorithms
from cryptography.hazmat.primitives.kdf.kbkdf import KBKDFCMAC, CounterLocation, Mode
from hypothesis import given
from hypothesis import strategies as st

from fleetid.crypto.symmetric import AesKey, scp03_kdf

# blaufish/scp03_kdf_testvectors, commit 2b0910b3b2a3c579bf5765200c3a323b006d2265, testvectors.txt
# (lines 1, 4, 5, 6 and 40): key, derivation constant, context, output (L = its length).
BLAUFISH_KDF = [
    (
        "00000000000000000000000000000000",
        0x01,
        "00000000000000000000000000000000",
        "329c873894717f6d545c755d175ae7ecdab085de2592fc3b9218a7fd77005e31",
    ),
    (
        "2af2b9613f5b87b9e33f28f39edc8376ddb4b6fe7701232ddd5477ceb17da9f7",
        0x04,
        "0e6f2b49dc94633d02549405ea86612c717eaf8cb9ef3d7d80ddfc3792184d34",
        "b863b9a5b35d5566a67e44f560b5e75c",
    ),
    (
        "0e6f2b49dc94633d02549405ea86612c717eaf8cb9ef3d7d80ddfc3792184d34",
        0x05,
        "b863b9a5b35d5566a67e44f560b5e75c",
        "0c5ac50c3e0bd61a37db5d5aa64c6474",
    ),
    (
        "b863b9a5b35d5566a67e44f560b5e75c",
        0x06,
        "0c5ac50c3e0bd61a37db5d5aa64c6474",
        "eebc5fd69f6b2003a7d1cf5b11a0471019c794d29ec3a67ef94692119adfb610",
    ),
    (
        "0c3b7c4e85e5ce4ae946be7e5adfeec8291b2fbdcfd4a6afc2eb422b14f27a74",
        0x28,
        "cbbbd32ba6f57ed8c8caeee156fdf95b",
        "31209e2da75c9083d16508a5eb63a82c",
    ),
]


@pytest.mark.parametrize(("key", "constant", "context", "output"), BLAUFISH_KDF)
def test_kdf_public_vectors(key: str, constant: int, context: str, output: str) -> None:
    out = bytes.fromhex(output)
    prf = AesKey(bytes.fromhex(key)).cmac
    assert scp03_kdf(prf, constant, bytes.fromhex(context), len(out) * 8) == out


def _kdf_with_kbkdf(key: bytes, constant: int, context: bytes, bits: int) -> bytes:
    """pyca's SP 800-108 KBKDF: the fixed data is ``00 x11 ‖ constant ‖ 00 ‖ L ‖ context`` and the
    1-byte counter goes in at offset 15 (``CounterLocation.MiddleFixed``)."""
    fixed = bytes(11) + bytes((constant, 0)) + bits.to_bytes(2, "big") + context
    kdf = KBKDFCMAC(
        algorithm=algorithms.AES,
        mode=Mode.CounterMode,
        length=bits // 8,
        rlen=1,
        llen=None,
        location=CounterLocation.MiddleFixed,
        label=None,
        context=None,
        fixed=fixed,
        break_location=15,
    )
    return kdf.derive(key)


def _kdf_with_pycryptodome(key: bytes, constant: int, context: bytes, bits: int) -> bytes:
    """Amd D §4.1.5 spelled out with pycryptodome's CMAC: a second independent implementation."""
    out = b""
    for i in range(1, -(-bits // 128) + 1):
        prf_input = bytes(11) + bytes((constant, 0)) + bits.to_bytes(2, "big") + bytes((i,))
        out += PycryptodomeCMAC.new(key, prf_input + context, ciphermod=PycryptodomeAES).digest()
    return out[: bits // 8]


_KEYS = st.sampled_from((16, 24, 32)).flatmap(lambda n: st.binary(min_size=n, max_size=n))


@given(
    key=_KEYS,
    constant=st.integers(0, 255),
    context=st.binary(max_size=40),
    bits=st.sampled_from((64, 128, 192, 256)),
)
def test_kdf_equals_both_oracles(key: bytes, constant: int, context: bytes, bits: int) -> None:
    ours = scp03_kdf(AesKey(key).cmac, constant, context, bits)
    assert ours == _kdf_with_kbkdf(key, constant, context, bits)
    assert ours == _kdf_with_pycryptodome(key, constant, context, bits)


def test_a_different_prf_gives_different_bytes() -> None:
    """The PRF is what keys the derivation: the same inputs under another key differ."""
    context = os.urandom(16)
    one = scp03_kdf(AesKey(bytes(16)).cmac, 0x04, context, 128)
    other = scp03_kdf(AesKey(bytes(15) + b"\x01").cmac, 0x04, context, 128)
    assert one != other


@pytest.mark.parametrize("bits", [0, 8, 96, 100, 384])
def test_kdf_rejects_lengths_outside_amendment_d(bits: int) -> None:
    with pytest.raises(ValueError, match="64, 128, 192 or 256"):
        scp03_kdf(AesKey(bytes(16)).cmac, 0x04, b"", bits)


@pytest.mark.parametrize("constant", [-1, 0x100])
def test_kdf_rejects_a_constant_that_is_not_a_byte(constant: int) -> None:
    with pytest.raises(ValueError, match="not a byte"):
        scp03_kdf(AesKey(bytes(16)).cmac, constant, b"", 128)
