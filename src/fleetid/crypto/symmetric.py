"""AES primitives used by the GlobalPlatform secure channel and by key transport.

Everything here is a thin, typed wrapper around pyca/cryptography; only the SP 800-108 counter
loop is written out (a byte layout, no cryptography of its own):

* AES-CMAC (NIST SP 800-38B), full 16-byte output;
* the SCP03 data derivation scheme (GP Amendment D §4.1.5): NIST SP 800-108 counter mode with
  AES-CMAC as PRF, the PRF passed in so that an HSM can hold the key (pyca's ``KBKDFCMAC`` is
  the oracle the tests compare it with);
* AES-CBC without padding (GPCS §B.2.1) and single-block AES (the SCP03 ICV, the AES KCV);
* ISO/IEC 9797-1 padding method 2 (``80 00…``), which GPCS §B.2.3 mandates for SCP03;
* the AES key check value (GPCS §11.8 / Amd D §7.2.2);
* :class:`AesKey`, one key set up once for the many operations of a secure channel session.
"""

from __future__ import annotations

import hmac
from collections.abc import Callable

from cryptography.hazmat.primitives.ciphers import Cipher, CipherContext, algorithms, modes
from cryptography.hazmat.primitives.cmac import CMAC

from fleetid.errors import EncodingError

__all__ = [
    "AES_BLOCK",
    "AES_KEY_LENGTHS",
    "AesKey",
    "Prf",
    "aes_cbc_decrypt",
    "aes_cbc_encrypt",
    "aes_cmac",
    "aes_encrypt_block",
    "aes_encrypt_blocks",
    "aes_kcv",
    "bytes_equal",
    "check_aes_key",
    "hmac_sha256",
    "iso9797_m2_pad",
    "iso9797_m2_unpad",
    "scp03_kdf",
]

AES_BLOCK = 16
AES_KEY_LENGTHS = (16, 24, 32)

# Amd D §4.1.5: label = 11 x '00' || constant, separation indicator '00', L on two bytes; the
# 1-byte counter comes after these 15 bytes and before the context.
_KDF_LABEL_PAD = bytes(11)


def check_aes_key(key: bytes) -> None:
    """Raise ``EncodingError`` unless ``key`` is an AES-128, -192 or -256 key."""
    if len(key) not in AES_KEY_LENGTHS:
        raise EncodingError(f"an AES key has 16, 24 or 32 bytes, got {len(key)}")


def aes_cmac(key: bytes, message: bytes) -> bytes:
    """AES-CMAC (NIST SP 800-38B) of ``message``, the full 16 bytes."""
    mac = CMAC(algorithms.AES(key))
    mac.update(message)
    return mac.finalize()


Prf = Callable[[bytes], bytes]
"""A pseudo-random function: AES-CMAC under a key held somewhere (``AesKey.cmac``, an HSM)."""


def scp03_kdf(prf: Prf, constant: int, context: bytes, length_bits: int) -> bytes:
    """The SCP03 data derivation scheme (Amd D §4.1.5, §6.2.1), ``length_bits`` of output.

    NIST SP 800-108 counter mode with ``prf`` (AES-CMAC under the derivation key) as PRF: one PRF
    call per 16-byte block of output, over ``00 x11 || constant || 00 || L || i || context``, the
    1-byte counter ``i`` in the middle of the fixed data. The key stays wherever ``prf`` computes:
    ``AesKey(key).cmac`` in software, the HSM's CMAC by key handle on the line.
    """
    if length_bits <= 128:
        # One block (i = 01) covers 64 and 128 bits: AES-128 session keys, cryptograms and card
        # challenges, i.e. nearly every call; their labels are made once, at import.
        label = _ONE_BLOCK_LABELS.get((constant, length_bits))
        if label is not None:
            return prf(label + context)[: length_bits // 8]
    if length_bits not in (64, 128, 192, 256):
        raise ValueError(f"SCP03 derives 64, 128, 192 or 256 bits, not {length_bits}")
    if not 0 <= constant <= 0xFF:
        raise ValueError(f"derivation constant {constant} is not a byte")
    label = _kdf_label(constant, length_bits)
    blocks = -(-length_bits // 128)
    out = b"".join(prf(label + bytes((i,)) + context) for i in range(1, blocks + 1))
    return out[: length_bits // 8]


def _kdf_label(constant: int, length_bits: int) -> bytes:
    """``00 x11 || constant || 00 || L`` (Amd D §4.1.5), before the counter byte."""
    return _KDF_LABEL_PAD + bytes((constant, 0)) + length_bits.to_bytes(2, "big")


# The PRF input up to the context for the first block, for every one-block derivation.
_ONE_BLOCK_LABELS = {
    (constant, bits): _kdf_label(constant, bits) + b"\x01"
    for constant in range(0x100)
    for bits in (64, 128)
}


def aes_encrypt_block(key: bytes, block: bytes) -> bytes:
    """AES encryption of exactly one 16-byte block (the SCP03 ICV, the KCV).

    One block of CBC with a zero IV is the raw block cipher, so ECB mode is not needed.
    """
    if len(block) != AES_BLOCK:
        raise ValueError(f"one AES block is 16 bytes, got {len(block)}")
    return aes_cbc_encrypt(key, bytes(AES_BLOCK), block)


def aes_encrypt_blocks(key: bytes, data: bytes) -> bytes:
    """AES encryption of whole blocks, each on its own (the ECB mode of SP 800-38A §6.1).

    For constructions that encipher independent counter blocks (the butterfly expansion function
    of IEEE 1609.2.1 §9.3), never for data.
    """
    if not data or len(data) % AES_BLOCK:
        raise ValueError(f"whole AES blocks are needed, got {len(data)} bytes")
    encryptor = Cipher(algorithms.AES(key), modes.ECB()).encryptor()  # noqa: S305 - see above
    return encryptor.update(data) + encryptor.finalize()


def aes_cbc_encrypt(key: bytes, iv: bytes, data: bytes) -> bytes:
    """AES-CBC without padding (GPCS §B.2.1); ``data`` must be whole blocks."""
    if len(data) % AES_BLOCK:
        raise ValueError(f"AES-CBC without padding needs whole blocks, got {len(data)} bytes")
    encryptor = Cipher(algorithms.AES(key), modes.CBC(iv)).encryptor()
    return encryptor.update(data) + encryptor.finalize()


def aes_cbc_decrypt(key: bytes, iv: bytes, data: bytes) -> bytes:
    """AES-CBC decryption without unpadding; raises ``EncodingError`` on partial blocks."""
    if len(data) % AES_BLOCK:
        raise EncodingError(f"AES-CBC ciphertext is whole blocks, got {len(data)} bytes")
    decryptor = Cipher(algorithms.AES(key), modes.CBC(iv)).decryptor()
    return decryptor.update(data) + decryptor.finalize()


def iso9797_m2_pad(data: bytes, block: int = AES_BLOCK) -> bytes:
    """ISO/IEC 9797-1 padding method 2: append ``80`` then ``00`` up to a whole block.

    A block of padding is always added, also when ``data`` is already whole blocks (GPCS §B.2.3).
    """
    padded = data + b"\x80"
    return padded + bytes(-len(padded) % block)


def iso9797_m2_unpad(data: bytes, block: int = AES_BLOCK, *, strict: bool = True) -> bytes:
    """Remove ISO/IEC 9797-1 method 2 padding; raises ``EncodingError`` when it is malformed.

    ``strict`` also refuses padding longer than one block. Some cards pad further (the Samsung
    OpenSCP S16 transcripts pad 11 bytes of response data to 32), so a reader that has already
    checked a MAC over the ciphertext may pass ``strict=False``.
    """
    if not data or len(data) % block:
        raise EncodingError(f"padded data is whole {block}-byte blocks, got {len(data)} bytes")
    stripped = data.rstrip(b"\x00")
    if not stripped or stripped[-1] != 0x80:
        raise EncodingError("ISO 9797-1 method 2 padding is malformed")
    if strict and len(data) - len(stripped) >= block:
        raise EncodingError("ISO 9797-1 method 2 padding is longer than one block")
    return stripped[:-1]


def aes_kcv(key: bytes) -> bytes:
    """The AES key check value: the first 3 bytes of AES(key, 16 x ``01``) (GPCS §11.8)."""
    check_aes_key(key)
    return aes_encrypt_block(key, b"\x01" * AES_BLOCK)[:3]


class AesKey:
    """One AES key set up once for many operations (the session keys of a secure channel).

    Building pyca contexts costs far more than the AES work on an APDU, so this keeps long-lived
    ones, each made on first use: one CBC encryptor (which also enciphers single blocks), one
    CBC decryptor and a fresh CMAC context copied for each MAC. Every result equals that of the
    module function of the same name, byte for byte. Not thread-safe; keep an instance only as
    long as the session it serves. Its repr shows the key length, never the key.
    """

    __slots__ = (
        "_algorithm",
        "_cbc_decryptor",
        "_cbc_encryptor",
        "_chaining",
        "_cmac",
        "_key",
    )

    def __init__(self, key: bytes) -> None:
        check_aes_key(key)
        self._key = bytes(key)  # a private copy: contexts are made later, on first use
        self._algorithm: algorithms.AES | None = None  # shared by the contexts of this key
        # A CBC context chains on the last ciphertext block (SP 800-38A §6.2): for the encryptor
        # its last output block, kept here as an integer; for the decryptor its last input.
        self._cbc_encryptor: CipherContext | None = None
        self._chaining = 0
        self._cbc_decryptor: CipherContext | None = None
        self._cmac: CMAC | None = None

    def __repr__(self) -> str:
        return f"AesKey(<AES-{8 * len(self._key)}>)"

    def _aes(self) -> algorithms.AES:
        if self._algorithm is None:
            self._algorithm = algorithms.AES(self._key)
        return self._algorithm

    def encrypt_block(self, block: bytes) -> bytes:
        """AES encryption of exactly one 16-byte block, as :func:`aes_encrypt_block`: CBC of
        one block under an all-zero IV is that block enciphered (SP 800-38A §6.2), so the CBC
        encryptor serves and no ECB context is made."""
        if len(block) != AES_BLOCK:
            raise ValueError(f"one AES block is 16 bytes, got {len(block)}")
        return self.cbc_encrypt(_ZERO_BLOCK, block)

    def cbc_encrypt(self, iv: bytes, data: bytes) -> bytes:
        """AES-CBC without padding (GPCS §B.2.1), as :func:`aes_cbc_encrypt`."""
        if len(iv) != AES_BLOCK:
            raise ValueError(f"the CBC IV is one block, got {len(iv)} bytes")
        if len(data) % AES_BLOCK:
            raise ValueError(f"AES-CBC without padding needs whole blocks, got {len(data)} bytes")
        if not data:
            return b""
        if self._cbc_encryptor is None:
            self._cbc_encryptor = Cipher(self._aes(), _CBC_ZERO_IV).encryptor()
            self._chaining = 0
        # C1 = E(P1 xor IV), and the context enciphers its input xor its chaining value; feeding
        # P1 xor IV xor chaining value makes the two cancel. The other blocks chain on C1 as usual.
        first = int.from_bytes(data[:AES_BLOCK], "big") ^ int.from_bytes(iv, "big") ^ self._chaining
        out = self._cbc_encryptor.update(first.to_bytes(AES_BLOCK, "big") + data[AES_BLOCK:])
        self._chaining = int.from_bytes(out[-AES_BLOCK:], "big")
        return out

    def cbc_decrypt(self, iv: bytes, data: bytes) -> bytes:
        """AES-CBC decryption without unpadding, as :func:`aes_cbc_decrypt`."""
        if len(iv) != AES_BLOCK:
            raise ValueError(f"the CBC IV is one block, got {len(iv)} bytes")
        if len(data) % AES_BLOCK:
            raise EncodingError(f"AES-CBC ciphertext is whole blocks, got {len(data)} bytes")
        if self._cbc_decryptor is None:
            self._cbc_decryptor = Cipher(self._aes(), _CBC_ZERO_IV).decryptor()
        # P1 = D(C1) xor IV: reading the IV first as a ciphertext block makes it the chaining
        # value; the block deciphered from it is dropped.
        return self._cbc_decryptor.update(iv + data)[AES_BLOCK:]

    def cmac(self, message: bytes) -> bytes:
        """AES-CMAC (NIST SP 800-38B) of ``message``, the full 16 bytes, as :func:`aes_cmac`."""
        if self._cmac is None:
            self._cmac = CMAC(self._aes())
        mac = self._cmac.copy()
        mac.update(message)
        return mac.finalize()


# The CBC mode object holds no state of a context (only its initial IV, all zero here), so every
# context shares it.
_ZERO_BLOCK = bytes(AES_BLOCK)
_CBC_ZERO_IV = modes.CBC(_ZERO_BLOCK)


def bytes_equal(a: bytes, b: bytes) -> bool:
    """Constant-time comparison of MACs and cryptograms."""
    return hmac.compare_digest(a, b)


def hmac_sha256(key: bytes, data: bytes) -> bytes:
    """HMAC-SHA-256 (RFC 2104, FIPS 198-1): the 32-byte tag; callers truncate where a spec says."""
    return hmac.new(key, data, "sha256").digest()
