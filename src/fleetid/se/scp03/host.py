"""The off-card entity of SCP03 (GP Card Spec v2.3 Amendment D v1.2): sans-I/O, no card inside.

:class:`HostSession` builds the INITIALIZE UPDATE and EXTERNAL AUTHENTICATE APDUs, then wraps
command APDUs and unwraps response APDUs as bytes; the PUT KEY helpers build the key data blocks
of a new key set. Importing this module loads no part of the card: the arithmetic both ends share
is in ``fleetid.se.scp03.secure_messaging``, the instruction bytes in ``fleetid.se.wire``.
Section numbers are those of Amendment D v1.2 unless marked GPCS (Card Specification v2.3.1);
the protocol summary and the choices where the spec leaves room are in ``fleetid.se.scp03``.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from typing import Protocol, runtime_checkable

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
from fleetid.se.scp03.secure_messaging import (
    AES_KEY_TYPE,
    C_DECRYPTION,
    C_MAC,
    DC_CARD_CRYPTOGRAM,
    DC_HOST_CRYPTOGRAM,
    I_PSEUDO_RANDOM,
    I_R_ENC,
    I_R_MAC,
    I_S16,
    KCV_LENGTH,
    KDD_LENGTH,
    R_ENCRYPTION,
    R_MAC,
    SCP03_ID,
    SECURITY_LEVELS,
    SEQUENCE_COUNTER_LENGTH,
    ZERO_CHAIN,
    SessionCiphers,
    SessionKeys,
    StaticKeys,
    c_mac_of,
    command_icv,
    cryptogram_of,
    derive_session_keys,
    has_secure_messaging,
    is_success,
    r_mac_of,
    response_icv,
    with_secure_messaging,
)
from fleetid.se.wire import CLA_GP, INS_EXTERNAL_AUTHENTICATE, INS_INITIALIZE_UPDATE, INS_PUT_KEY

__all__ = [
    "HostSession",
    "KeyProvider",
    "SessionKeySource",
    "aes_key_component",
    "encrypt_key_component",
    "put_key_command",
]


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
    if len(kcv) != KCV_LENGTH:
        raise EncodingError(f"an AES KCV has {KCV_LENGTH} bytes, got {len(kcv)}")
    return (
        bytes((AES_KEY_TYPE, 1 + len(encrypted_key), key_length))
        + encrypted_key
        + bytes((KCV_LENGTH,))
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
    return CommandApdu(CLA_GP, INS_PUT_KEY, old_kvn, p2, data, ne=SHORT_MAX_NE).encode()


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
        self._ciphers: SessionCiphers | None = None
        self._chain = ZERO_CHAIN
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
        self._chain = ZERO_CHAIN
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
            CLA_GP, INS_INITIALIZE_UPDATE, key_version, 0x00, self._host_challenge, SHORT_MAX_NE
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
        kdd, kvn, scp, i = data[:KDD_LENGTH], data[10], data[11], data[12]
        card_challenge, card_cryptogram = data[13 : 13 + n], data[13 + n : 13 + 2 * n]
        counter = data[13 + 2 * n :]
        if scp != SCP03_ID:
            raise EncodingError(f"the card answered for SCP {scp:02X}, not SCP03")
        if bool(i & I_S16) != self._s16:
            raise EncodingError(f"the card's i={i:02X} is not in {'S16' if self._s16 else 'S8'}")
        if bool(i & I_PSEUDO_RANDOM) != bool(counter):
            raise EncodingError(
                "the sequence counter is present iff the challenge is pseudo-random"
            )
        if self._requested_kvn and kvn != self._requested_kvn:
            raise EncodingError(f"asked for KVN {self._requested_kvn:02X}, card used {kvn:02X}")
        if self._level & R_MAC and not i & I_R_MAC:
            raise ConfigError(f"the card (i={i:02X}) does not support R-MAC")
        if self._level & R_ENCRYPTION and not i & I_R_ENC:
            raise ConfigError(f"the card (i={i:02X}) does not support R-ENCRYPTION")

        keys = self._keys(kdd, kvn) if callable(self._keys) else self._keys
        if isinstance(keys, StaticKeys):
            session = derive_session_keys(keys, self._host_challenge, card_challenge)
        else:
            session = keys.session_keys(self._host_challenge, card_challenge)
        context = self._host_challenge + card_challenge
        ciphers = SessionCiphers.of(session)
        expected = cryptogram_of(ciphers.mac, DC_CARD_CRYPTOGRAM, context, n)
        if not bytes_equal(expected, card_cryptogram):
            raise VerificationError("SCP03 card cryptogram does not verify (§6.2.2.2)")
        host_cryptogram = cryptogram_of(ciphers.mac, DC_HOST_CRYPTOGRAM, context, n)

        self.key_diversification_data = kdd
        self.key_version = kvn
        self.sequence_counter = int.from_bytes(counter, "big") if counter else None
        self._static = keys if isinstance(keys, StaticKeys) else None
        self._ciphers = ciphers
        # §6.2.3: EXTERNAL AUTHENTICATE is always MACed, from a zero chaining value, never
        # encrypted; the encryption counter then starts at 1 with the next command (§6.2.6).
        apdu = self._mac_command(
            ciphers.mac,
            CommandApdu(0x84, INS_EXTERNAL_AUTHENTICATE, self._level, 0x00, host_cryptogram),
            host_cryptogram,
            ZERO_CHAIN,
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
        base = KDD_LENGTH + 3 + 2 * self._n
        data_lengths = (base, base + SEQUENCE_COUNTER_LENGTH)
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
        cla = with_secure_messaging(apdu.cla)
        nc = len(data) + self._n
        extended = extended or nc > SHORT_MAX_NC or (apdu.ne is not None and apdu.ne > SHORT_MAX_NE)
        ne = None if apdu.ne is None else (EXTENDED_MAX_NE if extended else SHORT_MAX_NE)
        full = c_mac_of(s_mac, chain, cla, apdu, nc, extended, data)
        wrapped = CommandApdu(
            cla, apdu.ins, apdu.p1, apdu.p2, data + full[: self._n], ne, extended=extended
        )
        self._chain = full
        return wrapped.encode()

    def wrap(self, command: bytes) -> bytes:
        """Protect a plain C-APDU at the session's level: C-DECRYPTION, then C-MAC (§6.2.4-6)."""
        ciphers = self._require_open()
        apdu = parse_command(command)
        if has_secure_messaging(apdu.cla):
            raise EncodingError("the command already indicates secure messaging")
        if not self._level & C_MAC:
            return command  # level 00: authenticated only, no secure messaging expected
        return self._protect(ciphers, apdu, extended=apdu.extended)

    def wrap_apdu(self, apdu: CommandApdu) -> bytes:
        """:meth:`wrap` for a command already built: the bytes of ``wrap(apdu.encode())``,
        without encoding the plain command and parsing it back."""
        ciphers = self._require_open()
        if has_secure_messaging(apdu.cla):
            raise EncodingError("the command already indicates secure messaging")
        if not self._level & C_MAC:
            return apdu.encode()
        # apdu.encode() takes the extended form when forced or needed, unless case 1 (no body).
        return self._protect(ciphers, apdu, extended=apdu.extended and apdu.case != 1)

    def _protect(self, ciphers: SessionCiphers, apdu: CommandApdu, *, extended: bool) -> bytes:
        self._counter += 1  # §6.2.6: every command counts, with data or without
        data = apdu.data
        if self._level & C_DECRYPTION and data:
            icv = command_icv(ciphers.enc, self._counter)
            data = ciphers.enc.cbc_encrypt(icv, iso9797_m2_pad(data))
        return self._mac_command(ciphers.mac, apdu, data, self._chain, extended=extended)

    def unwrap(self, response: bytes) -> bytes:
        """Check the R-MAC and decrypt R-ENCRYPTION; returns the plain data ‖ SW1SW2 (§6.2.5-7).

        Raises ``VerificationError`` (and closes the session) when the R-MAC is missing or wrong.
        """
        ciphers = self._require_open()
        reply = parse_response(response)
        if not self._level & R_MAC or not is_success(reply.sw):
            return response  # §6.2.5: no R-MAC on error status words
        if len(reply.data) < self._n:
            self.close()
            raise VerificationError(f"response of {len(reply.data)} bytes has no R-MAC")
        body, r_mac = reply.data[: -self._n], reply.data[-self._n :]
        expected = r_mac_of(ciphers.rmac, self._chain, body, reply.sw)[: self._n]
        if not bytes_equal(expected, r_mac):
            self.close()
            raise VerificationError("SCP03 R-MAC does not verify (§6.2.5)")
        if self._level & R_ENCRYPTION and body:
            icv = response_icv(ciphers.enc, self._counter)
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

    def _require_open(self) -> SessionCiphers:
        if not self._open or self._ciphers is None:
            raise SecureChannelError(SW.CONDITIONS_NOT_SATISFIED, "no open SCP03 session")
        return self._ciphers
