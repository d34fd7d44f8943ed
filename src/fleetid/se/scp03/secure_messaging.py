"""SCP03 arithmetic both ends of the channel share (GP Card Spec v2.3 Amendment D v1.2).

The key sets, the session-key derivation (§6.2.1), the cryptograms and the pseudo-random card
challenge (§6.2.2), the class-byte rules of secure messaging, the C-MAC and R-MAC chaining
(§6.2.4-5) and the encryption counter's ICVs (§6.2.6-7). Every derivation is the one SCP03 KDF,
``fleetid.crypto.symmetric.scp03_kdf``, with AES-CMAC under a key set up once as its PRF. The
host session (``host``) and the card's channel (``card``) import this module, not each other.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Final

from fleetid.crypto.symmetric import (
    AES_BLOCK,
    AesKey,
    Prf,
    aes_kcv,
    check_aes_key,
    scp03_kdf,
)
from fleetid.errors import EncodingError
from fleetid.formats.apdu import SHORT_MAX_NC, SW, CommandApdu

SCP03_ID: Final = 0x03

# Security level bits, P1 of EXTERNAL AUTHENTICATE (Table 7-6).
C_MAC: Final = 0x01
C_DECRYPTION: Final = 0x02
R_MAC: Final = 0x10
R_ENCRYPTION: Final = 0x20
SECURITY_LEVELS: Final = frozenset({0x00, 0x01, 0x03, 0x11, 0x13, 0x33})

# "i" parameter bits (Table 5-1).
I_S16: Final = 0x01
I_PSEUDO_RANDOM: Final = 0x10
I_R_MAC: Final = 0x20
I_R_ENC: Final = 0x40

# Derivation constants (Table 4-1).
DC_CARD_CRYPTOGRAM: Final = 0x00
DC_HOST_CRYPTOGRAM: Final = 0x01
DC_CARD_CHALLENGE: Final = 0x02
_DC_S_ENC: Final = 0x04
_DC_S_MAC: Final = 0x06
_DC_S_RMAC: Final = 0x07

KDD_LENGTH: Final = 10
SEQUENCE_COUNTER_LENGTH: Final = 3
SEQUENCE_COUNTER_MAX: Final = 0xFFFFFF
ZERO_CHAIN: Final = bytes(AES_BLOCK)

AES_KEY_TYPE: Final = 0x88  # GPCS Table 11-16, key type "AES"
KCV_LENGTH: Final = 3


# --- values -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class StaticKeys:
    """One SCP03 key set: Key-ENC, Key-MAC and Key-DEK, all the same AES length (§6.1)."""

    enc: bytes = field(repr=False)
    mac: bytes = field(repr=False)
    dek: bytes = field(repr=False)

    def __post_init__(self) -> None:
        for key in (self.enc, self.mac, self.dek):
            check_aes_key(key)
        if not len(self.enc) == len(self.mac) == len(self.dek):
            raise EncodingError("Key-ENC, Key-MAC and Key-DEK must have the same length (§6.1)")

    @property
    def key_length(self) -> int:
        return len(self.enc)

    def kcvs(self) -> tuple[bytes, bytes, bytes]:
        """The key check values of (Key-ENC, Key-MAC, Key-DEK), GPCS §11.8."""
        return aes_kcv(self.enc), aes_kcv(self.mac), aes_kcv(self.dek)


@dataclass(frozen=True, slots=True)
class SessionKeys:
    """S-ENC, S-MAC and S-RMAC of one secure channel session (§6.2.1)."""

    s_enc: bytes = field(repr=False)
    s_mac: bytes = field(repr=False)
    s_rmac: bytes = field(repr=False)


@dataclass(frozen=True, slots=True, kw_only=True)
class SessionCiphers:
    """S-ENC, S-MAC and S-RMAC set up once for the life of one session; dropped on close."""

    enc: AesKey
    mac: AesKey
    rmac: AesKey

    @classmethod
    def of(cls, keys: SessionKeys) -> SessionCiphers:
        return cls(enc=AesKey(keys.s_enc), mac=AesKey(keys.s_mac), rmac=AesKey(keys.s_rmac))


def kdf(key: AesKey, constant: int, context: bytes, length_bits: int) -> bytes:
    """The SCP03 KDF (§4.1.5) under a key already set up: a session keeps S-MAC set up, so its
    cryptograms cost one CMAC each."""
    return scp03_kdf(key.cmac, constant, context, length_bits)


def session_keys_by_prf(
    enc: Prf, mac: Prf, host_challenge: bytes, card_challenge: bytes, bits: int
) -> SessionKeys:
    """S-ENC, S-MAC and S-RMAC (§6.2.1, Table 6-2) with the static Key-ENC and Key-MAC held
    wherever ``enc`` and ``mac`` compute their CMAC (software, or an HSM by key handle)."""
    context = host_challenge + card_challenge
    return SessionKeys(
        s_enc=scp03_kdf(enc, _DC_S_ENC, context, bits),
        s_mac=scp03_kdf(mac, _DC_S_MAC, context, bits),
        s_rmac=scp03_kdf(mac, _DC_S_RMAC, context, bits),
    )


def derive(enc: AesKey, mac: AesKey, context: bytes, bits: int) -> SessionKeys:
    return session_keys_by_prf(enc.cmac, mac.cmac, context, b"", bits)


def derive_session_keys(
    keys: StaticKeys, host_challenge: bytes, card_challenge: bytes
) -> SessionKeys:
    """Derive the session keys from the static keys and both challenges (§6.2.1, Table 6-2)."""
    context = host_challenge + card_challenge
    return derive(AesKey(keys.enc), AesKey(keys.mac), context, keys.key_length * 8)


def card_challenge_of(key_enc: AesKey, sequence_counter: int, aid: bytes, s16: bool) -> bytes:
    context = sequence_counter.to_bytes(SEQUENCE_COUNTER_LENGTH, "big") + aid
    return kdf(key_enc, DC_CARD_CHALLENGE, context, 128 if s16 else 64)


def pseudo_random_card_challenge(
    key_enc: bytes, sequence_counter: int, aid: bytes, *, s16: bool = False
) -> bytes:
    """KDF(Key-ENC, 02, sequence counter (3 bytes) ‖ invoking AID), §6.2.2.1."""
    return card_challenge_of(AesKey(key_enc), sequence_counter, aid, s16)


# --- shared channel arithmetic ------------------------------------------------------------------


def has_secure_messaging(cla: int) -> bool:
    """Whether CLA indicates GP proprietary secure messaging (GPCS Tables 11-11, 11-12)."""
    if cla & 0x40:  # further interindustry class: SM is b6
        return bool(cla & 0x20)
    return cla & 0x0C == 0x04


def with_secure_messaging(cla: int) -> int:
    if cla & 0x40:
        return cla | 0x20
    return (cla & ~0x0C) | 0x04


def without_secure_messaging(cla: int) -> int:
    if cla & 0x40:
        return cla & ~0x20
    return cla & ~0x0C


def _mac_cla(cla: int) -> int:
    """CLA for the C-MAC: logical channel zeroed, b4 = 0, b3 = 1 (§6.2.4); chaining kept."""
    return (cla & 0x90) | 0x04


def _lc_field(length: int, extended: bool) -> bytes:
    return b"\x00" + length.to_bytes(2, "big") if extended else bytes((length,))


def is_success(sw: int) -> bool:
    """9000 and warnings (62xx, 63xx) carry protection; everything else is an error (§6.2.5)."""
    return sw == SW.OK or sw >> 8 in (0x62, 0x63)


def command_icv(s_enc: AesKey, counter: int) -> bytes:
    return s_enc.encrypt_block(counter.to_bytes(AES_BLOCK, "big"))


_COUNTER_LOW_BYTES: Final = (1 << 8 * (AES_BLOCK - 1)) - 1
_R_ICV_MARK: Final = 0x80 << 8 * (AES_BLOCK - 1)


def response_icv(s_enc: AesKey, counter: int) -> bytes:
    # §6.2.7: the counter block with its most significant byte set to '80'
    block = _R_ICV_MARK | counter & _COUNTER_LOW_BYTES
    return s_enc.encrypt_block(block.to_bytes(AES_BLOCK, "big"))


def c_mac_of(
    s_mac: AesKey, chain: bytes, cla: int, apdu: CommandApdu, nc: int, extended: bool, body: bytes
) -> bytes:
    """Full 16-byte CMAC over chain ‖ CLA' INS P1 P2 ‖ Lc' ‖ body; Lc' (``nc``) as on the wire."""
    message = (
        chain
        + bytes((_mac_cla(cla), apdu.ins, apdu.p1, apdu.p2))
        + _lc_field(nc, extended or nc > SHORT_MAX_NC)
        + body
    )
    return s_mac.cmac(message)


def r_mac_of(s_rmac: AesKey, chain: bytes, body: bytes, sw: int) -> bytes:
    return s_rmac.cmac(chain + body + sw.to_bytes(2, "big"))


def cryptogram_of(s_mac: AesKey, constant: int, context: bytes, length: int) -> bytes:
    return kdf(s_mac, constant, context, length * 8)
