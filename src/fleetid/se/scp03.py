"""GlobalPlatform Secure Channel Protocol '03' (GP Card Spec v2.3 Amendment D v1.2), both sides.

Section numbers are those of Amendment D v1.2 unless marked GPCS (Card Specification v2.3.1).

The host side, :class:`HostSession`, is sans-I/O: it builds the INITIALIZE UPDATE and EXTERNAL
AUTHENTICATE APDUs, then wraps command APDUs and unwraps response APDUs as bytes. The card side,
:class:`CardChannel`, is what the emulated security domain calls: it answers INITIALIZE UPDATE,
verifies EXTERNAL AUTHENTICATE, unwraps incoming commands and wraps outgoing responses.

Protocol summary (what both sides implement):

* Session keys S-ENC, S-MAC, S-RMAC = KDF(Key-ENC/MAC/MAC, 04/06/07, host ‖ card challenge),
  L = static key length (§6.2.1). There is no session DEK: the static Key-DEK encrypts sensitive
  data (§6.2.8).
* Card/host cryptogram = KDF(S-MAC, 00/01, host ‖ card challenge), 8 bytes in S8 mode, 16 in S16
  (§6.2.2). A pseudo-random card challenge is KDF(Key-ENC, 02, sequence counter ‖ AID) (§6.2.2.1).
* C-MAC = CMAC(S-MAC, chaining value ‖ CLA' INS P1 P2 ‖ Lc' ‖ data')[:8 or 16]; the full CMAC is
  the next chaining value; EXTERNAL AUTHENTICATE starts from 16 × ``00``; Le is not MACed (§6.2.4).
  CLA' is the class byte with the logical channel zeroed and bit 3 set (``84``).
* C-DECRYPTION: an encryption counter starts at 1 for the first command after EXTERNAL
  AUTHENTICATE and increments for *every* command, with data or not; ICV = AES(S-ENC, counter);
  data is padded ``80 00…`` and encrypted before MACing (§6.2.6).
* R-MAC = CMAC(S-RMAC, chaining value ‖ response data ‖ SW)[:8 or 16]; none on error status
  words (anything but 9000, 62xx, 63xx) nor on EXTERNAL AUTHENTICATE (§6.2.5). R-ENCRYPTION uses
  the command's counter block with its first byte set to ``80`` as ICV input (§6.2.7).

Choices where the spec leaves room (documented so the card and the host agree):

* Extended-length commands: the MAC covers Lc' as it is encoded on the wire (``00 Lc1 Lc2``).
* A wrapped command whose original carried Le gets Le = ``00`` (``0000`` extended): the R-MAC
  and padding make the response longer than the original Ne. pySim and GPPro do the same.
* Card, no session and a command with the secure-messaging bit: ``6985`` (conditions of use not
  satisfied). ``6882`` would claim that the card does not support secure messaging at all.
* Card, after a session established by EXTERNAL AUTHENTICATE was aborted by a security error,
  every further command is refused with ``6982`` until the session is terminated (a new
  INITIALIZE UPDATE, or :meth:`CardChannel.close` on SELECT / reset), as §5.6 requires. A failed
  mutual authentication (wrong host cryptogram) just returns to "no session".
* Card, level ``00`` (authenticated, no secure messaging expected): plain commands pass; a
  command that carries a C-MAC anyway is verified as such, since it exceeds the level (§5.6).
* Card, the sequence counter moves only when the challenge is pseudo-random (it feeds nothing
  else); it is incremented first and the new value is used and returned (§6.2.2.1).
* Host, R-ENCRYPTION padding is removed leniently (``80`` then any zeros) once the R-MAC has
  verified: the Samsung OpenSCP transcripts show cards padding beyond one block. The card side
  is strict, because our host always pads minimally.
* Logical channels 4-19 (further interindustry CLA): secure messaging is b6 on the wire; the MAC
  is computed over the ``84``-style class byte as for channel 0 (§6.2.4, GPCS Table 11-12).

Verified against the pySim, Samsung OpenSCP (S8 and S16) and kaoh/globalplatform transcripts;
see ``tests/vectors/test_scp03_vectors.py``.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Final, Protocol, runtime_checkable

from fleetid.crypto.symmetric import (
    AES_BLOCK,
    AesKey,
    aes_cbc_encrypt,
    aes_kcv,
    bytes_equal,
    check_aes_key,
    iso9797_m2_pad,
    iso9797_m2_unpad,
)
from fleetid.errors import (
    ConfigError,
    EncodingError,
    SecureChannelError,
    SecureElementError,
    VerificationError,
)
from fleetid.formats.apdu import (
    EXTENDED_MAX_NE,
    SHORT_MAX_NC,
    SHORT_MAX_NE,
    SW,
    CommandApdu,
    parse_command,
    parse_response,
)

__all__ = [
    "AES_KEY_TYPE",
    "C_DECRYPTION",
    "C_MAC",
    "R_ENCRYPTION",
    "R_MAC",
    "SCP03_ID",
    "SECURITY_LEVELS",
    "CardChannel",
    "HostSession",
    "SessionKeySource",
    "SessionKeys",
    "StaticKeys",
    "aes_key_component",
    "derive_session_keys",
    "encrypt_key_component",
    "pseudo_random_card_challenge",
    "put_key_command",
]

SCP03_ID: Final = 0x03

# Security level bits, P1 of EXTERNAL AUTHENTICATE (Table 7-6).
C_MAC: Final = 0x01
C_DECRYPTION: Final = 0x02
R_MAC: Final = 0x10
R_ENCRYPTION: Final = 0x20
SECURITY_LEVELS: Final = frozenset({0x00, 0x01, 0x03, 0x11, 0x13, 0x33})

# "i" parameter bits (Table 5-1).
_I_S16: Final = 0x01
_I_PSEUDO_RANDOM: Final = 0x10
_I_R_MAC: Final = 0x20
_I_R_ENC: Final = 0x40

# Derivation constants (Table 4-1).
_DC_CARD_CRYPTOGRAM: Final = 0x00
_DC_HOST_CRYPTOGRAM: Final = 0x01
_DC_CARD_CHALLENGE: Final = 0x02
_DC_S_ENC: Final = 0x04
_DC_S_MAC: Final = 0x06
_DC_S_RMAC: Final = 0x07

_INS_INITIALIZE_UPDATE: Final = 0x50
_INS_EXTERNAL_AUTHENTICATE: Final = 0x82
_INS_PUT_KEY: Final = 0xD8

_KDD_LENGTH: Final = 10
_SEQUENCE_COUNTER_LENGTH: Final = 3
_SEQUENCE_COUNTER_MAX: Final = 0xFFFFFF
_ZERO_CHAIN: Final = bytes(AES_BLOCK)

AES_KEY_TYPE: Final = 0x88  # GPCS Table 11-16, key type "AES"
_KCV_LENGTH: Final = 3


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
class _SessionCiphers:
    """S-ENC, S-MAC and S-RMAC set up once for the life of one session; dropped on close."""

    enc: AesKey
    mac: AesKey
    rmac: AesKey

    @classmethod
    def of(cls, keys: SessionKeys) -> _SessionCiphers:
        return cls(enc=AesKey(keys.s_enc), mac=AesKey(keys.s_mac), rmac=AesKey(keys.s_rmac))


def _kdf(key: AesKey, constant: int, context: bytes, length_bits: int) -> bytes:
    """``scp03_kdf`` (§4.1.5) with a key already set up: one CMAC per 16-byte block of output,
    over ``00 x11 ‖ constant ‖ 00 ‖ L ‖ i ‖ context``. A session keeps S-MAC set up, so its
    cryptograms cost one CMAC each (``scp03_kdf`` builds a KBKDF for every call)."""
    if length_bits <= 128:
        # One block (i = 01) covers 64 and 128 bits: session keys of AES-128, cryptograms and
        # card challenges, i.e. nearly every call.
        label = _ONE_BLOCK_LABELS.get((constant, length_bits))
        if label is not None:
            return key.cmac(label + context)[: length_bits // 8]
    if length_bits not in (64, 128, 192, 256):
        raise ValueError(f"SCP03 derives 64, 128, 192 or 256 bits, not {length_bits}")
    label = _kdf_label(constant, length_bits)
    blocks = -(-length_bits // 128)
    out = b"".join(key.cmac(label + bytes((i,)) + context) for i in range(1, blocks + 1))
    return out[: length_bits // 8]


def _kdf_label(constant: int, length_bits: int) -> bytes:
    """``00 x11 ‖ constant ‖ 00 ‖ L`` (§4.1.5), before the counter byte."""
    return bytes(11) + bytes((constant, 0)) + length_bits.to_bytes(2, "big")


# The PRF input up to the context for the first block, for every one-block derivation.
_ONE_BLOCK_LABELS = {
    (constant, bits): _kdf_label(constant, bits) + b"\x01"
    for constant in range(0x100)
    for bits in (64, 128)
}


def _derive(enc: AesKey, mac: AesKey, context: bytes, bits: int) -> SessionKeys:
    return SessionKeys(
        s_enc=_kdf(enc, _DC_S_ENC, context, bits),
        s_mac=_kdf(mac, _DC_S_MAC, context, bits),
        s_rmac=_kdf(mac, _DC_S_RMAC, context, bits),
    )


def derive_session_keys(
    keys: StaticKeys, host_challenge: bytes, card_challenge: bytes
) -> SessionKeys:
    """Derive the session keys from the static keys and both challenges (§6.2.1, Table 6-2)."""
    context = host_challenge + card_challenge
    return _derive(AesKey(keys.enc), AesKey(keys.mac), context, keys.key_length * 8)


def _card_challenge(key_enc: AesKey, sequence_counter: int, aid: bytes, s16: bool) -> bytes:
    context = sequence_counter.to_bytes(_SEQUENCE_COUNTER_LENGTH, "big") + aid
    return _kdf(key_enc, _DC_CARD_CHALLENGE, context, 128 if s16 else 64)


def pseudo_random_card_challenge(
    key_enc: bytes, sequence_counter: int, aid: bytes, *, s16: bool = False
) -> bytes:
    """KDF(Key-ENC, 02, sequence counter (3 bytes) ‖ invoking AID), §6.2.2.1."""
    return _card_challenge(AesKey(key_enc), sequence_counter, aid, s16)


# --- PUT KEY key data (GPCS §11.8.2.3, Amd D §6.2.8) -----------------------------------------


def encrypt_key_component(
    dek: bytes, key: bytes, *, random: Callable[[int], bytes] = os.urandom
) -> bytes:
    """Encrypt an AES key under the static Key-DEK: AES-CBC, zero ICV (§6.2.8).

    16- and 32-byte keys are whole blocks; a 24-byte key gets eight arbitrary (here random) bytes.
    """
    check_aes_key(key)
    return aes_cbc_encrypt(dek, bytes(AES_BLOCK), key + random(-len(key) % AES_BLOCK))


def aes_key_component(encrypted_key: bytes, key_length: int, kcv: bytes) -> bytes:
    """One AES key data block of PUT KEY: ``88 ‖ L ‖ key length ‖ encrypted key ‖ 03 ‖ KCV``.

    It takes a key that is already encrypted (by :func:`encrypt_key_component`, or inside an HSM
    with CKM_AES_CBC and a zero IV) and its KCV, so the clear key never has to be here.
    """
    if key_length not in (16, 24, 32):
        raise EncodingError(f"an AES key has 16, 24 or 32 bytes, not {key_length}")
    if len(encrypted_key) != key_length + (-key_length % AES_BLOCK):
        raise EncodingError(f"a wrapped {key_length}-byte key has whole blocks of ciphertext")
    if len(kcv) != _KCV_LENGTH:
        raise EncodingError(f"an AES KCV has {_KCV_LENGTH} bytes, got {len(kcv)}")
    return (
        bytes((AES_KEY_TYPE, 1 + len(encrypted_key), key_length))
        + encrypted_key
        + bytes((_KCV_LENGTH,))
        + kcv
    )


def put_key_command(
    *, new_kvn: int, components: Sequence[bytes], old_kvn: int = 0, key_id: int = 1
) -> bytes:
    """The plain PUT KEY C-APDU ``80 D8 old-KVN key-id Lc new-KVN ‖ blocks 00`` (GPCS §11.8).

    ``old_kvn`` 0 creates a new key set; P2 b8 is set when more than one key follows. Wrap the
    result with :meth:`HostSession.wrap`.
    """
    if not components:
        raise EncodingError("PUT KEY needs at least one key data block")
    p2 = key_id | (0x80 if len(components) > 1 else 0x00)
    data = bytes((new_kvn,)) + b"".join(components)
    return CommandApdu(0x80, _INS_PUT_KEY, old_kvn, p2, data, ne=SHORT_MAX_NE).encode()


# --- shared channel arithmetic ------------------------------------------------------------------


def _has_secure_messaging(cla: int) -> bool:
    """Whether CLA indicates GP proprietary secure messaging (GPCS Tables 11-11, 11-12)."""
    if cla & 0x40:  # further interindustry class: SM is b6
        return bool(cla & 0x20)
    return cla & 0x0C == 0x04


def _with_secure_messaging(cla: int) -> int:
    if cla & 0x40:
        return cla | 0x20
    return (cla & ~0x0C) | 0x04


def _without_secure_messaging(cla: int) -> int:
    if cla & 0x40:
        return cla & ~0x20
    return cla & ~0x0C


def _mac_cla(cla: int) -> int:
    """CLA for the C-MAC: logical channel zeroed, b4 = 0, b3 = 1 (§6.2.4); chaining kept."""
    return (cla & 0x90) | 0x04


def _lc_field(length: int, extended: bool) -> bytes:
    return b"\x00" + length.to_bytes(2, "big") if extended else bytes((length,))


def _is_success(sw: int) -> bool:
    """9000 and warnings (62xx, 63xx) carry protection; everything else is an error (§6.2.5)."""
    return sw == SW.OK or sw >> 8 in (0x62, 0x63)


def _command_icv(s_enc: AesKey, counter: int) -> bytes:
    return s_enc.encrypt_block(counter.to_bytes(AES_BLOCK, "big"))


_COUNTER_LOW_BYTES: Final = (1 << 8 * (AES_BLOCK - 1)) - 1
_R_ICV_MARK: Final = 0x80 << 8 * (AES_BLOCK - 1)


def _response_icv(s_enc: AesKey, counter: int) -> bytes:
    # §6.2.7: the counter block with its most significant byte set to '80'
    block = _R_ICV_MARK | counter & _COUNTER_LOW_BYTES
    return s_enc.encrypt_block(block.to_bytes(AES_BLOCK, "big"))


def _c_mac(
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


def _r_mac(s_rmac: AesKey, chain: bytes, body: bytes, sw: int) -> bytes:
    return s_rmac.cmac(chain + body + sw.to_bytes(2, "big"))


def _cryptogram(s_mac: AesKey, constant: int, context: bytes, length: int) -> bytes:
    return _kdf(s_mac, constant, context, length * 8)


# --- host side ----------------------------------------------------------------------------------


@runtime_checkable
class SessionKeySource(Protocol):
    """Static keys held elsewhere (an HSM): it derives the session keys (§6.2.1) itself, so the
    static keys never reach the host. ``key_component`` is then unavailable: PUT KEY blocks come
    wrapped from the same place."""

    def session_keys(self, host_challenge: bytes, card_challenge: bytes) -> SessionKeys: ...


KeyProvider = Callable[[bytes, int], "StaticKeys | SessionKeySource"]
"""Given (key diversification data, KVN) from INITIALIZE UPDATE, return the card's static keys."""


class HostSession:
    """The off-card entity of one SCP03 session.

    ``keys`` is a :class:`StaticKeys`, or a callable ``(kdd, kvn) -> StaticKeys`` for per-card keys
    diversified from the KDD the card returns. ``s16`` selects 16-byte challenges, cryptograms and
    MACs. Call :meth:`initialize_update`, send it, pass the response to
    :meth:`external_authenticate`, send that, then :meth:`wrap` / :meth:`unwrap` each exchange.
    """

    def __init__(
        self,
        keys: StaticKeys | SessionKeySource | KeyProvider,
        security_level: int,
        host_challenge: bytes | None = None,
        s16: bool = False,
    ) -> None:
        if security_level not in SECURITY_LEVELS:
            raise ConfigError(f"security level {security_level:#04x} is not defined (Table 7-6)")
        self._n = 16 if s16 else 8
        if host_challenge is not None and len(host_challenge) != self._n:
            raise ConfigError(f"the host challenge has {self._n} bytes in this mode")
        self._keys = keys
        self._level = security_level
        self._fixed_challenge = host_challenge
        self._s16 = s16
        self._host_challenge = b""
        self._requested_kvn = 0
        self._static: StaticKeys | None = None
        self._ciphers: _SessionCiphers | None = None
        self._chain = _ZERO_CHAIN
        self._counter = 0
        self._awaiting_response = False
        self._open = False
        self.key_diversification_data = b""
        self.key_version = 0
        self.sequence_counter: int | None = None

    @property
    def security_level(self) -> int:
        return self._level

    @property
    def is_open(self) -> bool:
        """True after :meth:`external_authenticate` until :meth:`close` or a failure."""
        return self._open

    def close(self) -> None:
        self._ciphers = None
        self._static = None
        self._open = False
        self._awaiting_response = False
        self._chain = _ZERO_CHAIN
        self._counter = 0

    def initialize_update(self, key_version: int = 0) -> bytes:
        """The INITIALIZE UPDATE C-APDU ``80 50 KVN 00 Lc host-challenge 00`` (§7.1.1)."""
        if not 0 <= key_version <= 0xFF:
            raise ConfigError(f"key version {key_version} is not a byte")
        self.close()
        self._host_challenge = self._fixed_challenge or os.urandom(self._n)
        self._requested_kvn = key_version
        self._awaiting_response = True
        return CommandApdu(
            0x80, _INS_INITIALIZE_UPDATE, key_version, 0x00, self._host_challenge, SHORT_MAX_NE
        ).encode()

    def external_authenticate(self, initialize_update_response: bytes) -> bytes:
        """Check the card cryptogram and return the EXTERNAL AUTHENTICATE C-APDU (§7.1.2).

        The response may be the data field alone or data ‖ SW1SW2. Raises ``SecureElementError``
        for a status word other than 9000, ``EncodingError`` for a malformed response and
        ``VerificationError`` when the card cryptogram is wrong.
        """
        if not self._awaiting_response:
            raise SecureChannelError(SW.CONDITIONS_NOT_SATISFIED, "INITIALIZE UPDATE not sent")
        self._awaiting_response = False
        data = self._initialize_update_data(initialize_update_response)
        n = self._n
        kdd, kvn, scp, i = data[:_KDD_LENGTH], data[10], data[11], data[12]
        card_challenge, card_cryptogram = data[13 : 13 + n], data[13 + n : 13 + 2 * n]
        counter = data[13 + 2 * n :]
        if scp != SCP03_ID:
            raise EncodingError(f"the card answered for SCP {scp:02X}, not SCP03")
        if bool(i & _I_S16) != self._s16:
            raise EncodingError(f"the card's i={i:02X} is not in {'S16' if self._s16 else 'S8'}")
        if bool(i & _I_PSEUDO_RANDOM) != bool(counter):
            raise EncodingError(
                "the sequence counter is present iff the challenge is pseudo-random"
            )
        if self._requested_kvn and kvn != self._requested_kvn:
            raise EncodingError(f"asked for KVN {self._requested_kvn:02X}, card used {kvn:02X}")
        if self._level & R_MAC and not i & _I_R_MAC:
            raise ConfigError(f"the card (i={i:02X}) does not support R-MAC")
        if self._level & R_ENCRYPTION and not i & _I_R_ENC:
            raise ConfigError(f"the card (i={i:02X}) does not support R-ENCRYPTION")

        keys = self._keys(kdd, kvn) if callable(self._keys) else self._keys
        if isinstance(keys, StaticKeys):
            session = derive_session_keys(keys, self._host_challenge, card_challenge)
        else:
            session = keys.session_keys(self._host_challenge, card_challenge)
        context = self._host_challenge + card_challenge
        ciphers = _SessionCiphers.of(session)
        expected = _cryptogram(ciphers.mac, _DC_CARD_CRYPTOGRAM, context, n)
        if not bytes_equal(expected, card_cryptogram):
            raise VerificationError("SCP03 card cryptogram does not verify (§6.2.2.2)")
        host_cryptogram = _cryptogram(ciphers.mac, _DC_HOST_CRYPTOGRAM, context, n)

        self.key_diversification_data = kdd
        self.key_version = kvn
        self.sequence_counter = int.from_bytes(counter, "big") if counter else None
        self._static = keys if isinstance(keys, StaticKeys) else None
        self._ciphers = ciphers
        # §6.2.3: EXTERNAL AUTHENTICATE is always MACed, from a zero chaining value, never
        # encrypted; the encryption counter then starts at 1 with the next command (§6.2.6).
        apdu = self._mac_command(
            ciphers.mac,
            CommandApdu(0x84, _INS_EXTERNAL_AUTHENTICATE, self._level, 0x00, host_cryptogram),
            host_cryptogram,
            _ZERO_CHAIN,
            extended=False,
        )
        self._counter = 0
        self._open = True
        return apdu

    def check_authentication(self, response: bytes) -> None:
        """Check the card's answer to EXTERNAL AUTHENTICATE: anything but ``9000`` closes the
        session and raises ``SecureChannelError`` with the card's status word (6300: the card
        refused the host cryptogram, §7.1.2.7)."""
        reply = parse_response(response)
        if reply.sw != SW.OK or reply.data:
            self.close()
            raise SecureChannelError(reply.sw, "EXTERNAL AUTHENTICATE refused")

    def _initialize_update_data(self, response: bytes) -> bytes:
        base = _KDD_LENGTH + 3 + 2 * self._n
        data_lengths = (base, base + _SEQUENCE_COUNTER_LENGTH)
        if len(response) in data_lengths:
            return response
        if len(response) == 2 or len(response) - 2 in data_lengths:
            reply = parse_response(response)
            if reply.sw != SW.OK:
                raise SecureElementError(reply.sw, "INITIALIZE UPDATE refused")
            if reply.data:
                return reply.data
        raise EncodingError(f"INITIALIZE UPDATE response of {len(response)} bytes is malformed")

    def _mac_command(
        self, s_mac: AesKey, apdu: CommandApdu, data: bytes, chain: bytes, *, extended: bool
    ) -> bytes:
        """``apdu`` with ``data`` (already final) ‖ C-MAC, encoded; advances the chaining value.

        Lc' and the form are those of the wrapped command: extended when the original was
        (``extended``), or when data ‖ C-MAC or Ne needs it; Le becomes ``00`` (``0000``
        extended) when present.
        """
        cla = _with_secure_messaging(apdu.cla)
        nc = len(data) + self._n
        extended = extended or nc > SHORT_MAX_NC or (apdu.ne is not None and apdu.ne > SHORT_MAX_NE)
        ne = None if apdu.ne is None else (EXTENDED_MAX_NE if extended else SHORT_MAX_NE)
        full = _c_mac(s_mac, chain, cla, apdu, nc, extended, data)
        wrapped = CommandApdu(
            cla, apdu.ins, apdu.p1, apdu.p2, data + full[: self._n], ne, extended=extended
        )
        self._chain = full
        return wrapped.encode()

    def wrap(self, command: bytes) -> bytes:
        """Protect a plain C-APDU at the session's level: C-DECRYPTION, then C-MAC (§6.2.4-6)."""
        ciphers = self._require_open()
        apdu = parse_command(command)
        if _has_secure_messaging(apdu.cla):
            raise EncodingError("the command already indicates secure messaging")
        if not self._level & C_MAC:
            return command  # level 00: authenticated only, no secure messaging expected
        return self._protect(ciphers, apdu, extended=apdu.extended)

    def wrap_apdu(self, apdu: CommandApdu) -> bytes:
        """:meth:`wrap` for a command already built: the bytes of ``wrap(apdu.encode())``,
        without encoding the plain command and parsing it back."""
        ciphers = self._require_open()
        if _has_secure_messaging(apdu.cla):
            raise EncodingError("the command already indicates secure messaging")
        if not self._level & C_MAC:
            return apdu.encode()
        # apdu.encode() takes the extended form when forced or needed, unless case 1 (no body).
        return self._protect(ciphers, apdu, extended=apdu.extended and apdu.case != 1)

    def _protect(self, ciphers: _SessionCiphers, apdu: CommandApdu, *, extended: bool) -> bytes:
        self._counter += 1  # §6.2.6: every command counts, with data or without
        data = apdu.data
        if self._level & C_DECRYPTION and data:
            icv = _command_icv(ciphers.enc, self._counter)
            data = ciphers.enc.cbc_encrypt(icv, iso9797_m2_pad(data))
        return self._mac_command(ciphers.mac, apdu, data, self._chain, extended=extended)

    def unwrap(self, response: bytes) -> bytes:
        """Check the R-MAC and decrypt R-ENCRYPTION; returns the plain data ‖ SW1SW2 (§6.2.5-7).

        Raises ``VerificationError`` (and closes the session) when the R-MAC is missing or wrong.
        """
        ciphers = self._require_open()
        reply = parse_response(response)
        if not self._level & R_MAC or not _is_success(reply.sw):
            return response  # §6.2.5: no R-MAC on error status words
        if len(reply.data) < self._n:
            self.close()
            raise VerificationError(f"response of {len(reply.data)} bytes has no R-MAC")
        body, r_mac = reply.data[: -self._n], reply.data[-self._n :]
        expected = _r_mac(ciphers.rmac, self._chain, body, reply.sw)[: self._n]
        if not bytes_equal(expected, r_mac):
            self.close()
            raise VerificationError("SCP03 R-MAC does not verify (§6.2.5)")
        if self._level & R_ENCRYPTION and body:
            icv = _response_icv(ciphers.enc, self._counter)
            # The R-MAC has verified the ciphertext, so lenient unpadding is no oracle; it
            # accepts cards that pad beyond one block (seen in the Samsung OpenSCP transcripts).
            plain = ciphers.enc.cbc_decrypt(icv, body)
            body = iso9797_m2_unpad(plain, strict=False)
        return body + reply.sw.to_bytes(2, "big")

    def key_component(self, key: bytes) -> bytes:
        """A PUT KEY AES key data block for ``key``, encrypted under this session's Key-DEK."""
        self._require_open()
        if self._static is None:
            raise SecureChannelError(SW.CONDITIONS_NOT_SATISFIED, "no open SCP03 session")
        encrypted = encrypt_key_component(self._static.dek, key)
        return aes_key_component(encrypted, len(key), aes_kcv(key))

    def _require_open(self) -> _SessionCiphers:
        if not self._open or self._ciphers is None:
            raise SecureChannelError(SW.CONDITIONS_NOT_SATISFIED, "no open SCP03 session")
        return self._ciphers


# --- card side ----------------------------------------------------------------------------------


def _fresh_static_ciphers(keys: StaticKeys) -> tuple[AesKey, AesKey, AesKey]:
    return AesKey(keys.enc), AesKey(keys.mac), AesKey(keys.dek)


class CardChannel:
    """The card's side of SCP03 for one security domain (one logical channel).

    ``keys`` maps KVN to key set; ``sequence_counter`` is the pseudo-random challenge counter,
    read back and persisted by the caller (reset it to 0 when the key set is replaced, §6.2.2.1).
    The security domain routes INITIALIZE UPDATE (INS 50) and EXTERNAL AUTHENTICATE (INS 82) to
    the methods of the same names, passes every other command through :meth:`unwrap_command`
    and every response data field through :meth:`wrap_response`, and calls :meth:`close` on
    SELECT and on reset. Every failure raises ``SecureChannelError(sw, reason)`` after closing or
    aborting the session.
    """

    def __init__(
        self,
        keys: Mapping[int, StaticKeys],
        kdd: bytes,
        *,
        aid: bytes,
        sequence_counter: int,
        pseudo_random_challenge: bool = True,
        s16: bool = False,
        random: Callable[[int], bytes] = os.urandom,
        static_ciphers: Callable[[StaticKeys], tuple[AesKey, AesKey, AesKey]] | None = None,
    ) -> None:
        if len(kdd) != _KDD_LENGTH:
            raise ConfigError(f"key diversification data has {_KDD_LENGTH} bytes")
        if not 5 <= len(aid) <= 16:
            raise ConfigError("an AID has 5 to 16 bytes")
        if not 0 <= sequence_counter <= _SEQUENCE_COUNTER_MAX:
            raise ConfigError("the sequence counter has 3 bytes")
        self.keys: Mapping[int, StaticKeys] = keys
        self.kdd = kdd
        self.aid = aid
        self.sequence_counter = sequence_counter
        self.pseudo_random_challenge = pseudo_random_challenge
        self.s16 = s16
        self._random = random
        # Key-ENC, Key-MAC and Key-DEK of a key set set up (KDF, PUT KEY data); a card that
        # keeps its channel's key sets passes its own cache, so that their contexts outlive one
        # session.
        self._static_ciphers = static_ciphers or _fresh_static_ciphers
        self._n = 16 if s16 else 8
        self._reset()
        self._aborted = False

    def _reset(self) -> None:
        self._dek: AesKey | None = None  # the session key set's Key-DEK (PUT KEY data)
        self._session: SessionKeys | None = None
        self._ciphers: _SessionCiphers | None = None
        self._kvn: int | None = None
        self._context = b""
        self._pending = False
        self._authenticated = False
        self._level = 0
        self._chain = _ZERO_CHAIN
        self._counter = 0
        self._after_external_authenticate = False

    @property
    def level(self) -> int:
        """The current security level; 0 when no session is authenticated."""
        return self._level if self._authenticated else 0

    @property
    def authenticated(self) -> bool:
        return self._authenticated

    @property
    def key_version(self) -> int | None:
        """The KVN of the key set the current session was opened with."""
        return self._kvn if self._authenticated else None

    @property
    def i_parameter(self) -> int:
        """Table 5-1: R-MAC and R-ENCRYPTION supported, challenge kind, S8/S16."""
        i = _I_R_MAC | _I_R_ENC
        if self.pseudo_random_challenge:
            i |= _I_PSEUDO_RANDOM
        if self.s16:
            i |= _I_S16
        return i

    def close(self) -> None:
        """Terminate the session (SELECT, reset, explicit close); clears an abort too."""
        self._reset()
        self._aborted = False

    def _fail(self, sw: int, reason: str, *, abort: bool = False) -> SecureChannelError:
        """Drop the session; ``abort`` keeps refusing commands until it is terminated (§5.6)."""
        was_authenticated = self._authenticated
        self._reset()
        self._aborted = self._aborted or (abort and was_authenticated)
        return SecureChannelError(sw, reason)

    def initialize_update(self, apdu: CommandApdu) -> bytes:
        """Answer INITIALIZE UPDATE (§7.1.1); returns the response data field, without SW."""
        self.close()  # §5.6: a new INITIALIZE UPDATE terminates the current session
        if not (0x80 <= apdu.cla <= 0x83 or 0xC0 <= apdu.cla <= 0xCF):
            raise self._fail(SW.CLA_NOT_SUPPORTED, f"CLA {apdu.cla:02X} for INITIALIZE UPDATE")
        if apdu.p2 != 0x00:
            raise self._fail(SW.INCORRECT_P1P2, "INITIALIZE UPDATE P2 must be 00 (§7.1.1.4)")
        if len(apdu.data) != self._n:
            raise self._fail(SW.WRONG_LENGTH, f"host challenge of {len(apdu.data)} bytes")
        kvn = apdu.p1 or (min(self.keys) if self.keys else 0)
        keys = self.keys.get(kvn)
        if keys is None:
            raise self._fail(SW.REFERENCED_DATA_NOT_FOUND, f"no key set with KVN {kvn:02X}")
        counter = b""
        key_enc, key_mac, key_dek = self._static_ciphers(keys)  # challenge and S-ENC: Key-ENC
        if self.pseudo_random_challenge:
            if self.sequence_counter >= _SEQUENCE_COUNTER_MAX:
                raise self._fail(SW.CONDITIONS_NOT_SATISFIED, "sequence counter exhausted")
            # §6.2.2.1: increment, then use the new value.
            self.sequence_counter += 1
            card_challenge = _card_challenge(key_enc, self.sequence_counter, self.aid, self.s16)
            counter = self.sequence_counter.to_bytes(_SEQUENCE_COUNTER_LENGTH, "big")
        else:
            card_challenge = self._random(self._n)
        self._context = apdu.data + card_challenge
        session = _derive(key_enc, key_mac, self._context, keys.key_length * 8)
        self._ciphers = ciphers = _SessionCiphers.of(session)
        cryptogram = _cryptogram(ciphers.mac, _DC_CARD_CRYPTOGRAM, self._context, self._n)
        self._dek, self._session, self._kvn, self._pending = key_dek, session, kvn, True
        return (
            self.kdd
            + bytes((kvn, SCP03_ID, self.i_parameter))
            + card_challenge
            + cryptogram
            + counter
        )

    def external_authenticate(self, apdu: CommandApdu) -> None:
        """Verify the host cryptogram and C-MAC and open the session at P1 (§7.1.2)."""
        if not self._pending or self._session is None or self._ciphers is None:
            raise self._fail(SW.CONDITIONS_NOT_SATISFIED, "no INITIALIZE UPDATE before")
        if not _has_secure_messaging(apdu.cla):
            raise self._fail(SW.SECURITY_STATUS_NOT_SATISFIED, "EXTERNAL AUTHENTICATE not MACed")
        if apdu.p1 not in SECURITY_LEVELS or apdu.p2 != 0x00:
            raise self._fail(SW.INCORRECT_P1P2, f"security level {apdu.p1:02X} is undefined")
        if len(apdu.data) != 2 * self._n:
            raise self._fail(SW.WRONG_LENGTH, f"EXTERNAL AUTHENTICATE data of {len(apdu.data)}")
        host_cryptogram, mac = apdu.data[: self._n], apdu.data[self._n :]
        expected = _cryptogram(self._ciphers.mac, _DC_HOST_CRYPTOGRAM, self._context, self._n)
        if not bytes_equal(expected, host_cryptogram):
            raise self._fail(SW.VERIFICATION_FAILED, "host cryptogram does not verify")
        nc = len(apdu.data)
        full = _c_mac(
            self._ciphers.mac, _ZERO_CHAIN, apdu.cla, apdu, nc, apdu.extended, host_cryptogram
        )
        if not bytes_equal(full[: self._n], mac):
            raise self._fail(SW.SECURITY_STATUS_NOT_SATISFIED, "EXTERNAL AUTHENTICATE C-MAC")
        self._pending = False
        self._authenticated = True
        self._level = apdu.p1
        self._chain = full
        self._counter = 0
        self._after_external_authenticate = True

    def unwrap_command(self, apdu: CommandApdu) -> CommandApdu:
        """Check the command against the session level; returns it plain (CLA without SM)."""
        self._after_external_authenticate = False
        sm = _has_secure_messaging(apdu.cla)
        if self._aborted:
            raise SecureChannelError(SW.SECURITY_STATUS_NOT_SATISFIED, "secure channel aborted")
        ciphers = self._ciphers
        if not self._authenticated or ciphers is None:
            if sm:
                raise SecureChannelError(SW.CONDITIONS_NOT_SATISFIED, "no secure channel session")
            return apdu
        if not sm:
            if self._level & C_MAC:
                raise self._fail(
                    SW.SECURITY_STATUS_NOT_SATISFIED,
                    "plain command below the session level",
                    abort=True,
                )
            return apdu
        if len(apdu.data) < self._n:
            raise self._fail(SW.SM_DATA_OBJECTS_INCORRECT, "C-MAC missing or truncated", abort=True)
        body, mac = apdu.data[: -self._n], apdu.data[-self._n :]
        full = _c_mac(ciphers.mac, self._chain, apdu.cla, apdu, len(apdu.data), apdu.extended, body)
        if not bytes_equal(full[: self._n], mac):
            raise self._fail(SW.SECURITY_STATUS_NOT_SATISFIED, "C-MAC does not verify", abort=True)
        self._chain = full
        self._counter += 1
        if self._level & C_DECRYPTION and body:
            icv = _command_icv(ciphers.enc, self._counter)
            try:
                body = iso9797_m2_unpad(ciphers.enc.cbc_decrypt(icv, body))
            except EncodingError as exc:
                raise self._fail(SW.SM_DATA_OBJECTS_INCORRECT, str(exc), abort=True) from exc
        return CommandApdu(
            _without_secure_messaging(apdu.cla),
            apdu.ins,
            apdu.p1,
            apdu.p2,
            body,
            apdu.ne,
            apdu.extended and (len(body) > SHORT_MAX_NC or (apdu.ne or 0) > SHORT_MAX_NE),
        )

    def wrap_response(self, data: bytes, sw: int) -> bytes:
        """The protected response data field: R-ENCRYPTION, then R-MAC (§6.2.5, §6.2.7)."""
        if self._after_external_authenticate:
            self._after_external_authenticate = False
            return data  # §6.2.5: EXTERNAL AUTHENTICATE has no R-MAC
        ciphers = self._ciphers
        if not self._authenticated or ciphers is None or not self._level & R_MAC:
            return data
        if not _is_success(sw):
            return b""  # §6.2.5: an error status word travels alone, unprotected
        body = data
        if self._level & R_ENCRYPTION and data:
            icv = _response_icv(ciphers.enc, self._counter)
            body = ciphers.enc.cbc_encrypt(icv, iso9797_m2_pad(data))
        return body + _r_mac(ciphers.rmac, self._chain, body, sw)[: self._n]

    def decrypt_sensitive(self, block: bytes) -> bytes:
        """Decrypt key data under the session key set's static Key-DEK, zero ICV (§6.2.8)."""
        if not self._authenticated or self._dek is None:
            raise self._fail(SW.SECURITY_STATUS_NOT_SATISFIED, "no authenticated session")
        if not block or len(block) % AES_BLOCK:
            raise self._fail(SW.INCORRECT_DATA, f"key data of {len(block)} bytes", abort=True)
        return self._dek.cbc_decrypt(bytes(AES_BLOCK), block)
