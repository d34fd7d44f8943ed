"""The card's side of SCP03 (GP Card Spec v2.3 Amendment D v1.2), inside the tamper boundary.

:class:`CardChannel` is what the emulated security domain calls: it answers INITIALIZE UPDATE,
verifies EXTERNAL AUTHENTICATE, unwraps incoming commands and wraps outgoing responses. Host code
never imports it (an import-linter contract says so); the arithmetic it shares with the host is
in ``fleetid.se.scp03.secure_messaging``. The choices where the spec leaves room are listed in
``fleetid.se.scp03``.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping

from fleetid.crypto.symmetric import (
    AES_BLOCK,
    AesKey,
    bytes_equal,
    iso9797_m2_pad,
    iso9797_m2_unpad,
)
from fleetid.errors import ConfigError, EncodingError, SecureChannelError
from fleetid.formats.apdu import SHORT_MAX_NC, SHORT_MAX_NE, SW, CommandApdu
from fleetid.se.scp03.secure_messaging import (
    C_DECRYPTION,
    C_MAC,
    DC_CARD_CRYPTOGRAM,
    DC_HOST_CRYPTOGRAM,
    I_PSEUDO_RANDOM,
    I_R_ENC,
    I_R_MAC,
    I_S16,
    KDD_LENGTH,
    R_ENCRYPTION,
    R_MAC,
    SCP03_ID,
    SECURITY_LEVELS,
    SEQUENCE_COUNTER_LENGTH,
    SEQUENCE_COUNTER_MAX,
    ZERO_CHAIN,
    SessionCiphers,
    SessionKeys,
    StaticKeys,
    c_mac_of,
    card_challenge_of,
    command_icv,
    cryptogram_of,
    derive,
    has_secure_messaging,
    is_success,
    r_mac_of,
    response_icv,
    without_secure_messaging,
)

__all__ = ["CardChannel"]


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
        if len(kdd) != KDD_LENGTH:
            raise ConfigError(f"key diversification data has {KDD_LENGTH} bytes")
        if not 5 <= len(aid) <= 16:
            raise ConfigError("an AID has 5 to 16 bytes")
        if not 0 <= sequence_counter <= SEQUENCE_COUNTER_MAX:
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
        self._ciphers: SessionCiphers | None = None
        self._kvn: int | None = None
        self._context = b""
        self._pending = False
        self._authenticated = False
        self._level = 0
        self._chain = ZERO_CHAIN
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
        i = I_R_MAC | I_R_ENC
        if self.pseudo_random_challenge:
            i |= I_PSEUDO_RANDOM
        if self.s16:
            i |= I_S16
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
            if self.sequence_counter >= SEQUENCE_COUNTER_MAX:
                raise self._fail(SW.CONDITIONS_NOT_SATISFIED, "sequence counter exhausted")
            # §6.2.2.1: increment, then use the new value.
            self.sequence_counter += 1
            card_challenge = card_challenge_of(key_enc, self.sequence_counter, self.aid, self.s16)
            counter = self.sequence_counter.to_bytes(SEQUENCE_COUNTER_LENGTH, "big")
        else:
            card_challenge = self._random(self._n)
        self._context = apdu.data + card_challenge
        session = derive(key_enc, key_mac, self._context, keys.key_length * 8)
        self._ciphers = ciphers = SessionCiphers.of(session)
        cryptogram = cryptogram_of(ciphers.mac, DC_CARD_CRYPTOGRAM, self._context, self._n)
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
        if not has_secure_messaging(apdu.cla):
            raise self._fail(SW.SECURITY_STATUS_NOT_SATISFIED, "EXTERNAL AUTHENTICATE not MACed")
        if apdu.p1 not in SECURITY_LEVELS or apdu.p2 != 0x00:
            raise self._fail(SW.INCORRECT_P1P2, f"security level {apdu.p1:02X} is undefined")
        if len(apdu.data) != 2 * self._n:
            raise self._fail(SW.WRONG_LENGTH, f"EXTERNAL AUTHENTICATE data of {len(apdu.data)}")
        host_cryptogram, mac = apdu.data[: self._n], apdu.data[self._n :]
        expected = cryptogram_of(self._ciphers.mac, DC_HOST_CRYPTOGRAM, self._context, self._n)
        if not bytes_equal(expected, host_cryptogram):
            raise self._fail(SW.VERIFICATION_FAILED, "host cryptogram does not verify")
        nc = len(apdu.data)
        full = c_mac_of(
            self._ciphers.mac, ZERO_CHAIN, apdu.cla, apdu, nc, apdu.extended, host_cryptogram
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
        sm = has_secure_messaging(apdu.cla)
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
        full = c_mac_of(
            ciphers.mac, self._chain, apdu.cla, apdu, len(apdu.data), apdu.extended, body
        )
        if not bytes_equal(full[: self._n], mac):
            raise self._fail(SW.SECURITY_STATUS_NOT_SATISFIED, "C-MAC does not verify", abort=True)
        self._chain = full
        self._counter += 1
        if self._level & C_DECRYPTION and body:
            icv = command_icv(ciphers.enc, self._counter)
            try:
                body = iso9797_m2_unpad(ciphers.enc.cbc_decrypt(icv, body))
            except EncodingError as exc:
                raise self._fail(SW.SM_DATA_OBJECTS_INCORRECT, str(exc), abort=True) from exc
        return CommandApdu(
            without_secure_messaging(apdu.cla),
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
        if not is_success(sw):
            return b""  # §6.2.5: an error status word travels alone, unprotected
        body = data
        if self._level & R_ENCRYPTION and data:
            icv = response_icv(ciphers.enc, self._counter)
            body = ciphers.enc.cbc_encrypt(icv, iso9797_m2_pad(data))
        return body + r_mac_of(ciphers.rmac, self._chain, body, sw)[: self._n]

    def decrypt_sensitive(self, block: bytes) -> bytes:
        """Decrypt key data under the session key set's static Key-DEK, zero ICV (§6.2.8)."""
        if not self._authenticated or self._dek is None:
            raise self._fail(SW.SECURITY_STATUS_NOT_SATISFIED, "no authenticated session")
        if not block or len(block) % AES_BLOCK:
            raise self._fail(SW.INCORRECT_DATA, f"key data of {len(block)} bytes", abort=True)
        return self._dek.cbc_decrypt(bytes(AES_BLOCK), block)
