"""The FIDO2 authenticator applet: CTAP 2.1 over ISO 7816-4, as NFC and PC/SC clients speak it.

AID ``A0 00 00 06 47 2F 00 01`` (CTAP 2.1 §11.3.3). SELECT answers ``U2F_V2``: CTAP1/U2F raw
messages (class ``00``, ``fido_u2f``) are answered beside CTAP2. The framing (§11.3.4-11.3.5;
full reference with status words in docs/se-apdu.md):

================== ==== ====== == ======================= ===================================
command            CLA  INS    P1 data                    response
================== ==== ====== == ======================= ===================================
NFCCTAP_MSG        80   10     00 CTAP command byte ‖     CTAP status byte ‖ CBOR, 9000
                                  /80 CBOR parameters
NFCCTAP_GETRESP.   80   11     00 —                       6985: the card never answers 9100
GET RESPONSE       00   C0     00 —                       the rest after 61xx (the card does it)
STORE DATA         84   E2     .. DGI FD01 attestation    9000 (in a C-MAC+C-DEC session, once,
                                  key, FD02 chain         before the card is SECURED)
================== ==== ====== == ======================= ===================================

NFCCTAP_MSG takes short APDUs chained with CLA ``90`` (ISO 7816-4 §5.1.1.1, assembled by the
card) or one extended APDU; a response longer than Ne comes back with 61xx and GET RESPONSE.
A CTAP error is a one-byte response with 9000 (§8.2); ISO status words are for framing faults.

CTAP2 commands: authenticatorMakeCredential (01), GetAssertion (02), GetInfo (04), ClientPIN
(06, protocol 2 only, ``fido_pin``), Reset (07), GetNextAssertion (08), Selection (0B). ES256 only.

Credential IDs (``fido_credentials``): the private scalar sealed with AES-256-GCM under a key
generated in the card that no command returns, bound to the RP ID hash, so a credential of
another RP does not open. Discoverable credentials
are also kept in flash (``FidoState.credentials``) to be found without an allowList. One
signature counter serves all credentials (§6.1.1: "global").

User presence is a host hook (``user_presence(rp_id) -> bool``): the emulator's touch sensor.
"""

from __future__ import annotations

import hashlib
import os
import struct
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any, ClassVar

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from fido2 import cbor
from fido2.ctap import CtapError

from fleetid.errors import TlvError
from fleetid.formats.apdu import SW, CommandApdu
from fleetid.formats.tlv import decode_tlv
from fleetid.formats.webauthn import FIDO_AAGUID_OID, FLAG_AT, FLAG_UP, FLAG_UV
from fleetid.se.applets.base import Applet, CommandContext, Reply, SecurityLevel, refuse
from fleetid.se.applets.fido_credentials import next_count, unwrap, wrap
from fleetid.se.applets.fido_pin import (
    MAX_PIN_RETRIES,
    PERMISSION_GA,
    PERMISSION_MC,
    PinProtocolTwo,
    ctap_error,
)
from fleetid.se.applets.fido_u2f import u2f_command
from fleetid.se.applets.manager import StoreDataBuffer
from fleetid.se.state import CardLifeCycle, CardState, FidoCredential, FidoState
from fleetid.se.wire import (
    FIDO_AID,
    FIDO_ATTESTATION_CHAIN_DGI,
    FIDO_ATTESTATION_KEY_DGI,
    INS_NFCCTAP_GETRESPONSE,
    INS_NFCCTAP_MSG,
    INS_STORE_DATA,
)

__all__ = ["FidoApplet", "UserPresence"]

ERR = CtapError.ERR
UserPresence = Callable[[str], bool]
"""Asked for each user presence test with the RP ID ("" for Reset and Selection)."""

_ES256 = -7
_MAX_RESIDENT = 50
_MAX_MSG_SIZE = 4096

# CTAP command bytes (§6).
_MAKE_CREDENTIAL, _GET_ASSERTION, _GET_INFO, _CLIENT_PIN = 0x01, 0x02, 0x04, 0x06
_RESET, _GET_NEXT_ASSERTION, _SELECTION = 0x07, 0x08, 0x0B
# ClientPIN subcommands (§6.5.5).
_GET_RETRIES, _GET_KEY_AGREEMENT, _SET_PIN, _CHANGE_PIN = 0x01, 0x02, 0x03, 0x04
_GET_PIN_TOKEN, _GET_TOKEN_WITH_PERMISSIONS = 0x05, 0x09


def _always_present(rp_id: str) -> bool:
    return True


@dataclass(kw_only=True)
class _PendingAssertions:
    """What GetNextAssertion continues (§6.3): the remaining credentials of one GetAssertion."""

    rp_id_hash: bytes
    client_data_hash: bytes
    flags: int
    credentials: list[FidoCredential]


class FidoApplet(Applet):
    """CTAP 2.1 authenticator (see the module docstring)."""

    aid = FIDO_AID
    secure_channel = True  # personalisation (STORE DATA) only; CTAP needs no session
    _CHAINED: ClassVar[frozenset[int]] = frozenset({INS_NFCCTAP_MSG})

    def __init__(
        self,
        *,
        user_presence: UserPresence = _always_present,
        random: Callable[[int], bytes] = os.urandom,
    ) -> None:
        self.user_presence = user_presence
        self._pin = PinProtocolTwo(random)
        self._store = StoreDataBuffer()
        self._pending: _PendingAssertions | None = None

    # --- ISO 7816-4 side ------------------------------------------------------------------------

    def select(self, state: CardState) -> bytes:
        self._store.reset()
        return b"U2F_V2"  # CTAP 2.1 §11.3.3: CTAP1/U2F is spoken too (CTAP2 is found by GetInfo)

    def deselect(self) -> None:
        self._store.reset()
        self._pending = None
        self._pin.power_cycle()

    def zeroise(self) -> None:
        self.deselect()

    def accepts_chaining(self, ins: int) -> bool:
        return ins in self._CHAINED

    def implied_ne(self, apdu: CommandApdu) -> int | None:
        """python-fido2's extended NFCCTAP_MSG carries no Le and expects the whole response in
        one extended response APDU (as CTAP 2.1 §11.3 clients do): Ne 65536 for it."""
        if apdu.ins == INS_NFCCTAP_MSG and apdu.extended:
            return 65536
        return None

    def process(self, ctx: CommandContext, apdu: CommandApdu) -> Reply:
        if apdu.ins != INS_STORE_DATA:
            self._store.reset()
        if apdu.ins == INS_STORE_DATA:
            ctx.require_proprietary()
            return self._store_data(ctx, apdu)
        if apdu.ins == INS_NFCCTAP_MSG:
            ctx.require_proprietary()
            if apdu.p1 not in (0x00, 0x80) or apdu.p2 != 0x00:
                raise refuse(SW.INCORRECT_P1P2, "NFCCTAP_MSG P1/P2")
            return Reply(data=self._ctap(ctx, apdu.data))
        if apdu.ins == INS_NFCCTAP_GETRESPONSE:
            ctx.require_proprietary()
            raise refuse(SW.CONDITIONS_NOT_SATISFIED, "no CTAP response in progress")
        if apdu.cla != 0x00:  # U2F raw messages are class 00 (CTAP 2.1 §11.2.4)
            raise refuse(SW.CLA_NOT_SUPPORTED, f"CLA {apdu.cla:02X} for INS {apdu.ins:02X}")
        return u2f_command(ctx, apdu, self.user_presence)

    def _store_data(self, ctx: CommandContext, apdu: CommandApdu) -> Reply:
        """The line's injection of the attestation key and its chain (leaf first)."""
        ctx.require_session(SecurityLevel.C_MAC | SecurityLevel.C_DECRYPTION)
        ctx.require_before(CardLifeCycle.SECURED)
        objects = self._store.feed(apdu)
        if objects is None:
            return Reply()
        values = dict(objects)
        if set(values) != {FIDO_ATTESTATION_KEY_DGI, FIDO_ATTESTATION_CHAIN_DGI}:
            raise refuse(SW.REFERENCED_DATA_NOT_FOUND, "attestation key and chain expected")
        fido = ctx.state.fido
        if fido.attestation_key is not None:
            raise refuse(SW.CONDITIONS_NOT_SATISFIED, "attestation key already injected")
        raw_key, chain_der = values[FIDO_ATTESTATION_KEY_DGI], values[FIDO_ATTESTATION_CHAIN_DGI]
        chain, aaguid = _checked_chain(chain_der)
        if len(raw_key) != 32:
            raise refuse(SW.INCORRECT_DATA, "attestation key is a 32-byte P-256 scalar")
        try:
            key = ec.derive_private_key(int.from_bytes(raw_key, "big"), ec.SECP256R1())
        except ValueError:
            raise refuse(SW.INCORRECT_DATA, "attestation key out of range") from None
        if _spki(key.public_key()) != _spki(chain[0].public_key()):
            raise refuse(SW.INCORRECT_DATA, "the certificate is not the attestation key's")
        fido.attestation_key = key.private_numbers().private_value
        fido.attestation_chain = [c.public_bytes(serialization.Encoding.DER) for c in chain]
        fido.aaguid = aaguid
        ctx.persist()
        return Reply()

    # --- CTAP side ------------------------------------------------------------------------------

    def _ctap(self, ctx: CommandContext, message: bytes) -> bytes:
        """One CTAP command: status byte ‖ CBOR response, errors as their status byte."""
        if not message:
            return bytes([ERR.INVALID_LENGTH])
        command, pending = message[0], self._pending
        self._pending = None
        try:
            if command == _GET_NEXT_ASSERTION:
                if len(message) != 1:
                    raise ctap_error(ERR.INVALID_LENGTH)
                return b"\x00" + cbor.encode(self._get_next_assertion(ctx, pending))
            handler = self._COMMANDS.get(command)
            if handler is None:
                raise ctap_error(ERR.INVALID_COMMAND)
            response = handler(self, ctx, _params(message[1:]))
        except CtapError as exc:
            return bytes([exc.code])
        return b"\x00" + (cbor.encode(response) if response is not None else b"")

    def _get_info(self, ctx: CommandContext, params: Mapping[int, Any]) -> dict[int, Any]:
        """authenticatorGetInfo (§6.4)."""
        fido = ctx.state.fido
        return {
            0x01: ["U2F_V2", "FIDO_2_0", "FIDO_2_1"],
            0x03: fido.aaguid,
            0x04: {
                "rk": True,
                "up": True,
                "clientPin": fido.pin_hash is not None,
                "pinUvAuthToken": True,
            },
            0x05: _MAX_MSG_SIZE,
            0x06: [2],
            0x07: 8,  # maxCredentialCountInList
            0x08: 96,  # maxCredentialIdLength
            0x09: ["nfc"],
            0x0A: [{"type": "public-key", "alg": _ES256}],
            0x0D: 4,  # minPINLength
        }

    def _make_credential(self, ctx: CommandContext, params: Mapping[int, Any]) -> dict[int, Any]:
        """authenticatorMakeCredential (§6.1.2)."""
        client_data_hash = _bytes(params, 0x01, length=32)
        rp, user = _map(params, 0x02), _map(params, 0x03)
        rp_id = _text(rp, "id")
        user_id = _bytes(user, "id")
        if not 1 <= len(user_id) <= 64:
            raise ctap_error(ERR.INVALID_LENGTH)
        algorithms = params.get(0x04)
        if not isinstance(algorithms, list) or not algorithms:
            raise ctap_error(ERR.MISSING_PARAMETER)
        if not any(
            isinstance(a, dict) and a.get("type") == "public-key" and a.get("alg") == _ES256
            for a in algorithms
        ):
            raise ctap_error(ERR.UNSUPPORTED_ALGORITHM)
        options = _options(params.get(0x07))
        if options.get("up") is False or options.get("uv"):
            raise ctap_error(ERR.INVALID_OPTION)
        resident = bool(options.get("rk", False))
        rp_id_hash = hashlib.sha256(rp_id.encode()).digest()
        fido = ctx.state.fido
        flags = self._pin_uv(ctx, params, 0x08, 0x09, client_data_hash, rp_id, PERMISSION_MC)
        exclude = params.get(0x05, [])
        if not isinstance(exclude, list):
            raise ctap_error(ERR.CBOR_UNEXPECTED_TYPE)
        if any(unwrap(fido, _descriptor_id(d), rp_id_hash) is not None for d in exclude):
            self._presence(rp_id)
            raise ctap_error(ERR.CREDENTIAL_EXCLUDED)
        self._presence(rp_id)
        flags |= FLAG_UP
        # A resident credential replaces the one of the same RP and user (§6.1.2 step 17).
        kept = [c for c in fido.credentials if (c.rp_id, c.user_id) != (rp_id, user_id)]
        if resident and len(kept) >= _MAX_RESIDENT:
            raise ctap_error(ERR.KEY_STORE_FULL)
        key = ec.generate_private_key(ec.SECP256R1())
        d = key.private_numbers().private_value
        credential_id = wrap(ctx, d, rp_id_hash)
        count = next_count(fido)
        if resident:
            fido.credentials = kept
            fido.credentials.append(
                FidoCredential(
                    rp_id=rp_id,
                    user_id=user_id,
                    user_name=_optional_text(user, "name"),
                    display_name=_optional_text(user, "displayName"),
                    credential_id=credential_id,
                    private_value=d,
                    created=count,
                )
            )
        ctx.persist()
        auth_data = (
            rp_id_hash
            + struct.pack(">BI", flags | FLAG_AT, count)
            + fido.aaguid
            + struct.pack(">H", len(credential_id))
            + credential_id
            + cbor.encode(_cose_key(key.public_key()))
        )
        return {
            0x01: "packed",
            0x02: auth_data,
            0x03: self._statement(fido, key, auth_data, client_data_hash),
        }

    def _get_assertion(self, ctx: CommandContext, params: Mapping[int, Any]) -> dict[int, Any]:
        """authenticatorGetAssertion (§6.2.2)."""
        rp_id = _text(params, 0x01)
        client_data_hash = _bytes(params, 0x02, length=32)
        rp_id_hash = hashlib.sha256(rp_id.encode()).digest()
        options = _options(params.get(0x05))
        if options.get("uv") or "rk" in options:
            raise ctap_error(ERR.INVALID_OPTION if options.get("uv") else ERR.UNSUPPORTED_OPTION)
        fido = ctx.state.fido
        flags = self._pin_uv(ctx, params, 0x06, 0x07, client_data_hash, rp_id, PERMISSION_GA)
        allow = params.get(0x03)
        if allow is not None:
            if not isinstance(allow, list):
                raise ctap_error(ERR.CBOR_UNEXPECTED_TYPE)
            found = [
                c
                for c in (unwrap(fido, _descriptor_id(d), rp_id_hash) for d in allow)
                if c is not None
            ][:1]
        else:
            found = sorted(
                (c for c in fido.credentials if c.rp_id == rp_id),
                key=lambda c: c.created,
                reverse=True,
            )
        if not found:
            raise ctap_error(ERR.NO_CREDENTIALS)
        if options.get("up", True):
            self._presence(rp_id)
            flags |= FLAG_UP
        first, rest = found[0], found[1:]
        response = self._assertion(ctx, first, rp_id_hash, client_data_hash, flags, allow is None)
        if rest:
            response[0x05] = len(found)
            self._pending = _PendingAssertions(
                rp_id_hash=rp_id_hash,
                client_data_hash=client_data_hash,
                flags=flags,
                credentials=rest,
            )
        return response

    def _get_next_assertion(
        self, ctx: CommandContext, pending: _PendingAssertions | None
    ) -> dict[int, Any]:
        """authenticatorGetNextAssertion (§6.3): only right after GetAssertion or itself."""
        if pending is None or not pending.credentials:
            raise ctap_error(ERR.NOT_ALLOWED)
        credential, rest = pending.credentials[0], pending.credentials[1:]
        response = self._assertion(
            ctx, credential, pending.rp_id_hash, pending.client_data_hash, pending.flags, True
        )
        if rest:
            self._pending = replace(pending, credentials=rest)
        return response

    def _assertion(
        self,
        ctx: CommandContext,
        credential: FidoCredential,
        rp_id_hash: bytes,
        client_data_hash: bytes,
        flags: int,
        discoverable: bool,
    ) -> dict[int, Any]:
        fido = ctx.state.fido
        count = next_count(fido)
        ctx.persist()
        auth_data = rp_id_hash + struct.pack(">BI", flags, count)
        key = ec.derive_private_key(credential.private_value, ec.SECP256R1())
        response: dict[int, Any] = {
            0x01: {"id": credential.credential_id, "type": "public-key"},
            0x02: auth_data,
            0x03: key.sign(auth_data + client_data_hash, ec.ECDSA(hashes.SHA256())),
        }
        if discoverable and credential.user_id:
            user: dict[str, Any] = {"id": credential.user_id}
            if flags & FLAG_UV:
                user.update(
                    {
                        k: v
                        for k, v in (
                            ("name", credential.user_name),
                            ("displayName", credential.display_name),
                        )
                        if v
                    }
                )
            response[0x04] = user
        return response

    def _client_pin(self, ctx: CommandContext, params: Mapping[int, Any]) -> dict[int, Any] | None:
        """authenticatorClientPIN (§6.5.5), protocol 2."""
        fido = ctx.state.fido
        sub = params.get(0x02)
        if not isinstance(sub, int):
            raise ctap_error(ERR.MISSING_PARAMETER)
        protocol = params.get(0x01)
        if sub != _GET_RETRIES:
            if protocol is None:
                raise ctap_error(ERR.MISSING_PARAMETER)
            if protocol != 2:
                raise ctap_error(ERR.INVALID_PARAMETER)
        pin = self._pin
        if sub == _GET_RETRIES:
            return {0x03: fido.pin_retries, 0x04: False}
        if sub == _GET_KEY_AGREEMENT:
            return {0x01: pin.key_agreement()}

        def set_retries(value: int) -> None:
            fido.pin_retries = value
            ctx.persist()

        if sub == _SET_PIN:
            if fido.pin_hash is not None:
                raise ctap_error(ERR.NOT_ALLOWED)
            shared = pin.shared(params.get(0x03))
            new_pin_enc = params.get(0x05)
            pin.verify(
                shared.hmac_key,
                new_pin_enc if isinstance(new_pin_enc, bytes) else b"",
                params.get(0x04),
            )
            fido.pin_hash = pin.new_pin_hash(shared, new_pin_enc)
            fido.pin_retries = MAX_PIN_RETRIES
            ctx.persist()
            return None
        if sub == _CHANGE_PIN:
            stored = self._stored_pin(fido)
            shared = pin.shared(params.get(0x03))
            new_pin_enc, pin_hash_enc = params.get(0x05), params.get(0x06)
            if not isinstance(new_pin_enc, bytes) or not isinstance(pin_hash_enc, bytes):
                raise ctap_error(ERR.MISSING_PARAMETER)
            pin.verify(shared.hmac_key, new_pin_enc + pin_hash_enc, params.get(0x04))
            pin.check_pin_hash(
                shared,
                pin_hash_enc,
                stored=stored,
                retries=fido.pin_retries,
                set_retries=set_retries,
            )
            fido.pin_hash = pin.new_pin_hash(shared, new_pin_enc)
            pin.token = None
            ctx.persist()
            return None
        if sub in (_GET_PIN_TOKEN, _GET_TOKEN_WITH_PERMISSIONS):
            stored = self._stored_pin(fido)
            if sub == _GET_PIN_TOKEN:
                if 0x09 in params or 0x0A in params:
                    raise ctap_error(ERR.INVALID_PARAMETER)
                permissions, rp_id = PERMISSION_MC | PERMISSION_GA, None
            else:
                requested = params.get(0x09)
                rp_value = params.get(0x0A)
                if not isinstance(requested, int):
                    raise ctap_error(ERR.MISSING_PARAMETER)
                permissions = requested
                if rp_value is not None and not isinstance(rp_value, str):
                    raise ctap_error(ERR.CBOR_UNEXPECTED_TYPE)
                rp_id = rp_value
            shared = pin.shared(params.get(0x03))
            pin.check_pin_hash(
                shared,
                params.get(0x06),
                stored=stored,
                retries=fido.pin_retries,
                set_retries=set_retries,
            )
            token = pin.issue_token(permissions, rp_id)
            return {0x02: pin.encrypt(shared, token)}
        raise ctap_error(ERR.INVALID_SUBCOMMAND)

    @staticmethod
    def _stored_pin(fido: FidoState) -> bytes:
        if fido.pin_hash is None:
            raise ctap_error(ERR.PIN_NOT_SET)
        if fido.pin_retries <= 0:
            raise ctap_error(ERR.PIN_BLOCKED)
        return fido.pin_hash

    def _reset(self, ctx: CommandContext, params: Mapping[int, Any]) -> None:
        """authenticatorReset (§6.6): every credential and the PIN go; the line's attestation
        key stays (it is the model's, not the user's)."""
        self._presence("")
        fido = ctx.state.fido
        fido.credentials = []
        fido.wrap_key = None  # every non-resident credential ID stops opening
        fido.pin_hash = None
        fido.pin_retries = MAX_PIN_RETRIES
        self._pin.power_cycle()
        ctx.persist()

    def _selection(self, ctx: CommandContext, params: Mapping[int, Any]) -> None:
        """authenticatorSelection (§6.9)."""
        self._presence("")

    _COMMANDS: ClassVar[dict[int, Callable[[FidoApplet, CommandContext, Mapping[int, Any]], Any]]]

    # --- pieces ---------------------------------------------------------------------------------

    def _pin_uv(
        self,
        ctx: CommandContext,
        params: Mapping[int, Any],
        param_key: int,
        protocol_key: int,
        client_data_hash: bytes,
        rp_id: str,
        permission: int,
    ) -> int:
        """The pinUvAuthParam checks of §6.1.2 steps 1-2 and 11 (§6.2.2 likewise): the UV flag
        it earns, or an error. Without one, a card with a PIN refuses MakeCredential."""
        param = params.get(param_key)
        fido = ctx.state.fido
        if param is None:
            if permission == PERMISSION_MC and fido.pin_hash is not None:
                raise ctap_error(ERR.PUAT_REQUIRED)
            return 0
        if not isinstance(param, bytes):
            raise ctap_error(ERR.CBOR_UNEXPECTED_TYPE)
        if not param:  # §6.1.2 step 1: a platform asking for a touch to pick an authenticator
            self._presence(rp_id)
            raise ctap_error(ERR.PIN_INVALID if fido.pin_hash is not None else ERR.PIN_NOT_SET)
        protocol = params.get(protocol_key)
        if protocol is None:
            raise ctap_error(ERR.MISSING_PARAMETER)
        if protocol != 2:
            raise ctap_error(ERR.INVALID_PARAMETER)
        token = self._pin.token
        if token is None:
            raise ctap_error(ERR.PIN_AUTH_INVALID)
        self._pin.verify(token.token, client_data_hash, param)
        if not token.allows(permission, rp_id):
            raise ctap_error(ERR.PIN_AUTH_INVALID)
        return FLAG_UV

    def _presence(self, rp_id: str) -> None:
        if not self.user_presence(rp_id):
            raise ctap_error(ERR.OPERATION_DENIED)

    @staticmethod
    def _statement(
        fido: FidoState,
        credential_key: ec.EllipticCurvePrivateKey,
        auth_data: bytes,
        client_data_hash: bytes,
    ) -> dict[str, Any]:
        """Packed attestation (WebAuthn §8.2): by the line's attestation key with its chain, or
        self attestation before the line injected one."""
        message = auth_data + client_data_hash
        if fido.attestation_key is None:
            signature = credential_key.sign(message, ec.ECDSA(hashes.SHA256()))
            return {"alg": _ES256, "sig": signature}
        key = ec.derive_private_key(fido.attestation_key, ec.SECP256R1())
        signature = key.sign(message, ec.ECDSA(hashes.SHA256()))
        return {"alg": _ES256, "sig": signature, "x5c": list(fido.attestation_chain)}


FidoApplet._COMMANDS = {
    _MAKE_CREDENTIAL: FidoApplet._make_credential,
    _GET_ASSERTION: FidoApplet._get_assertion,
    _GET_INFO: FidoApplet._get_info,
    _CLIENT_PIN: FidoApplet._client_pin,
    _RESET: FidoApplet._reset,
    _SELECTION: FidoApplet._selection,
}


# --- CBOR parameter checks (§8: CTAP2 canonical CBOR, integer-keyed parameter maps) -----------


def _params(raw: bytes) -> Mapping[int, Any]:
    if not raw:
        return {}
    try:
        value = cbor.decode(raw)
    except Exception:
        raise ctap_error(ERR.INVALID_CBOR) from None
    if not isinstance(value, dict) or not all(isinstance(k, int) for k in value):
        raise ctap_error(ERR.INVALID_CBOR)
    if cbor.encode(value) != raw:
        raise ctap_error(ERR.INVALID_CBOR)  # not the canonical encoding (§8)
    return value


def _map(params: Mapping[Any, Any], key: Any) -> Mapping[Any, Any]:
    value = params.get(key)
    if value is None:
        raise ctap_error(ERR.MISSING_PARAMETER)
    if not isinstance(value, dict):
        raise ctap_error(ERR.CBOR_UNEXPECTED_TYPE)
    return value


def _bytes(params: Mapping[Any, Any], key: Any, length: int | None = None) -> bytes:
    value = params.get(key)
    if value is None:
        raise ctap_error(ERR.MISSING_PARAMETER)
    if not isinstance(value, bytes):
        raise ctap_error(ERR.CBOR_UNEXPECTED_TYPE)
    if length is not None and len(value) != length:
        raise ctap_error(ERR.INVALID_LENGTH)
    return value


def _text(params: Mapping[Any, Any], key: Any) -> str:
    value = params.get(key)
    if value is None:
        raise ctap_error(ERR.MISSING_PARAMETER)
    if not isinstance(value, str):
        raise ctap_error(ERR.CBOR_UNEXPECTED_TYPE)
    return value


def _optional_text(params: Mapping[Any, Any], key: str) -> str | None:
    value = params.get(key)
    if value is not None and not isinstance(value, str):
        raise ctap_error(ERR.CBOR_UNEXPECTED_TYPE)
    return value


def _options(value: object) -> dict[str, bool]:
    if value is None:
        return {}
    if not isinstance(value, dict) or not all(
        isinstance(k, str) and isinstance(v, bool) for k, v in value.items()
    ):
        raise ctap_error(ERR.CBOR_UNEXPECTED_TYPE)
    return value


def _descriptor_id(descriptor: object) -> bytes:
    if not isinstance(descriptor, dict):
        raise ctap_error(ERR.CBOR_UNEXPECTED_TYPE)
    credential_id = descriptor.get("id")
    if not isinstance(credential_id, bytes) or not isinstance(descriptor.get("type"), str):
        raise ctap_error(ERR.CBOR_UNEXPECTED_TYPE)
    return credential_id


def _cose_key(key: ec.EllipticCurvePublicKey) -> dict[int, Any]:
    """The credential public key as a COSE_Key (RFC 9052 §7, RFC 9053 §7.1.1): EC2, ES256."""
    numbers = key.public_numbers()
    return {
        1: 2,
        3: _ES256,
        -1: 1,
        -2: numbers.x.to_bytes(32, "big"),
        -3: numbers.y.to_bytes(32, "big"),
    }


def _spki(key: object) -> bytes:
    if not isinstance(key, ec.EllipticCurvePublicKey):
        return b""
    return key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def _checked_chain(der: bytes) -> tuple[list[x509.Certificate], bytes]:
    """The injected chain (leaf first) and the AAGUID its leaf names (WebAuthn §8.2.1)."""
    chain: list[x509.Certificate] = []
    offset = 0
    try:
        while offset < len(der):
            _, end = decode_tlv(der, offset)
            chain.append(x509.load_der_x509_certificate(der[offset:end]))
            offset = end
        extension = chain[0].extensions.get_extension_for_oid(FIDO_AAGUID_OID) if chain else None
    except (TlvError, ValueError, x509.ExtensionNotFound):
        raise refuse(SW.INCORRECT_DATA, "attestation chain or its AAGUID extension") from None
    value = extension.value if extension is not None else None
    raw = value.value if isinstance(value, x509.UnrecognizedExtension) else b""
    if len(raw) != 18 or raw[:2] != b"\x04\x10":
        raise refuse(SW.INCORRECT_DATA, "the AAGUID extension is an OCTET STRING of 16 bytes")
    return chain, raw[2:]
