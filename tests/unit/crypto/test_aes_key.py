"""AesKey: long-lived pyca contexts give the same bytes as fresh ones, call after call.

Independent references: pycryptodome (a fresh cipher per operation) and the NIST SP 800-38A
F.2.1 / SP 800-38B D.1 examples.
"""

from __future__ import annotations

import pytest
from Crypto.Cipher import AES as PycryptodomeAES
from Crypto.Hash import CMAC as PycryptodomeCMAC
from hypothesis import given
from hypothesis import strategies as st

from fleetid.crypto.symmetric import (
    AesKey,
    aes_cbc_decrypt,
    aes_cbc_encrypt,
    aes_cmac,
    aes_encrypt_block,
)
from fleetid.errors import EncodingError

# NIST SP 800-38A F.2.1 (CBC-AES128.Encrypt) and SP 800-38B D.1 (AES-128 CMAC).
_NIST_KEY = bytes.fromhex("2b7e151628aed2a6abf7158809cf4f3c")
_NIST_IV = bytes.fromhex("000102030405060708090a0b0c0d0e0f")
_NIST_PLAIN = bytes.fromhex(
    "6bc1bee22e409f96e93d7e117393172aae2d8a571e03ac9c9eb76fac45af8e51"
    "30c81c46a35ce411e5fbc1191a0a52eff69f2445df4f9b17ad2b417be66c3710"
)
_NIST_CBC = bytes.fromhex(
    "7649abac8119b246cee98e9b12e9197d5086cb9b507219ee95db113a917678b2"
    "73bed6b8e3c1743b7116e69e222295163ff1caa1681fac09120eca307586e1a7"
)
_NIST_CMAC_EMPTY = bytes.fromhex("bb1d6929e95937287fa37d129b756746")
_NIST_CMAC_ONE_BLOCK = bytes.fromhex("070a16b46b4d4144f79bdd9dd04a287c")

_blocks = st.integers(0, 5).flatmap(lambda n: st.binary(min_size=16 * n, max_size=16 * n))
_operation = st.one_of(
    st.tuples(st.just("encrypt"), st.binary(min_size=16, max_size=16), _blocks),
    st.tuples(st.just("decrypt"), st.binary(min_size=16, max_size=16), _blocks),
    st.tuples(st.just("block"), st.binary(min_size=16, max_size=16), st.just(b"")),
    st.tuples(st.just("cmac"), st.just(b""), st.binary(max_size=70)),
)


def test_nist_cbc_and_cmac_examples_twice_on_one_key() -> None:
    key = AesKey(_NIST_KEY)
    for _ in range(2):  # the second round runs on contexts that have already chained
        assert key.cbc_encrypt(_NIST_IV, _NIST_PLAIN) == _NIST_CBC
        assert key.cbc_decrypt(_NIST_IV, _NIST_CBC) == _NIST_PLAIN
        assert key.cmac(b"") == _NIST_CMAC_EMPTY
        assert key.cmac(_NIST_PLAIN[:16]) == _NIST_CMAC_ONE_BLOCK
    # One block of CBC under a zero IV is the raw block cipher.
    assert key.encrypt_block(_NIST_PLAIN[:16]) == aes_cbc_encrypt(
        _NIST_KEY, bytes(16), _NIST_PLAIN[:16]
    )


@given(
    key=st.sampled_from((16, 24, 32)).flatmap(lambda n: st.binary(min_size=n, max_size=n)),
    operations=st.lists(_operation, min_size=1, max_size=12),
)
def test_interleaved_operations_match_fresh_pycryptodome(
    key: bytes, operations: list[tuple[str, bytes, bytes]]
) -> None:
    aes_key = AesKey(key)
    for kind, iv, data in operations:
        if kind == "encrypt":
            expected = PycryptodomeAES.new(key, PycryptodomeAES.MODE_CBC, iv=iv).encrypt(data)
            assert aes_key.cbc_encrypt(iv, data) == expected == aes_cbc_encrypt(key, iv, data)
        elif kind == "decrypt":
            expected = PycryptodomeAES.new(key, PycryptodomeAES.MODE_CBC, iv=iv).decrypt(data)
            assert aes_key.cbc_decrypt(iv, data) == expected == aes_cbc_decrypt(key, iv, data)
        elif kind == "block":
            expected = PycryptodomeAES.new(key, PycryptodomeAES.MODE_ECB).encrypt(iv)
            assert aes_key.encrypt_block(iv) == expected == aes_encrypt_block(key, iv)
        else:
            expected = PycryptodomeCMAC.new(key, data, ciphermod=PycryptodomeAES).digest()
            assert aes_key.cmac(data) == expected == aes_cmac(key, data)


@pytest.mark.parametrize("length", [0, 8, 15, 17, 33])
def test_refuses_bad_key_lengths(length: int) -> None:
    with pytest.raises(EncodingError, match="16, 24 or 32"):
        AesKey(bytes(length))


def test_partial_blocks_and_bad_ivs_refused_without_disturbing_the_contexts() -> None:
    key = AesKey(_NIST_KEY)
    with pytest.raises(ValueError, match="whole blocks"):
        key.cbc_encrypt(_NIST_IV, _NIST_PLAIN[:17])
    with pytest.raises(EncodingError, match="whole blocks"):
        key.cbc_decrypt(_NIST_IV, _NIST_CBC[:31])
    with pytest.raises(ValueError, match="IV is one block"):
        key.cbc_encrypt(_NIST_IV[:8], _NIST_PLAIN)
    with pytest.raises(ValueError, match="IV is one block"):
        key.cbc_decrypt(_NIST_IV + b"\x00", _NIST_CBC)
    with pytest.raises(ValueError, match="one AES block"):
        key.encrypt_block(_NIST_PLAIN[:15])
    with pytest.raises(ValueError, match="one AES block"):
        key.encrypt_block(_NIST_PLAIN[:17])
    assert key.cbc_encrypt(_NIST_IV, _NIST_PLAIN) == _NIST_CBC
    assert key.cbc_decrypt(_NIST_IV, _NIST_CBC) == _NIST_PLAIN


def test_empty_data_is_empty_and_leaves_the_chain_alone() -> None:
    key = AesKey(_NIST_KEY)
    assert key.cbc_encrypt(_NIST_IV, b"") == b""
    assert key.cbc_decrypt(_NIST_IV, b"") == b""
    assert key.cbc_encrypt(_NIST_IV, _NIST_PLAIN) == _NIST_CBC


def test_a_tampered_ciphertext_block_garbles_its_plaintext() -> None:
    key = AesKey(_NIST_KEY)
    tampered = bytearray(_NIST_CBC)
    tampered[20] ^= 0x01
    plain = key.cbc_decrypt(_NIST_IV, bytes(tampered))
    assert plain[:16] == _NIST_PLAIN[:16]
    assert plain[16:32] != _NIST_PLAIN[16:32]
    assert plain[32:48] != _NIST_PLAIN[32:48]  # the flipped bit carries into the next block
    assert plain[48:] == _NIST_PLAIN[48:]


@pytest.mark.parametrize("length", [16, 24, 32])
def test_repr_shows_no_key(length: int) -> None:
    secret = bytes(range(1, length + 1))
    key = AesKey(secret)
    text = repr(key) + str(key)
    assert text == f"AesKey(<AES-{8 * length}>)" * 2
    assert secret.hex() not in text
    assert not hasattr(key, "__dict__")


def test_keeps_its_own_copy_of_a_mutable_key() -> None:
    material = bytearray(_NIST_KEY)
    key = AesKey(material)
    material[:] = bytes(16)  # contexts are made on first use, after this
    assert key.cbc_encrypt(_NIST_IV, _NIST_PLAIN) == _NIST_CBC
    assert key.cmac(b"") == _NIST_CMAC_EMPTY
