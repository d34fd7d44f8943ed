"""The PIV applet: the NIST SP 800-73-4 card edge, so that stock PIV middleware uses the card.

AID ``A0 00 00 03 08 00 00 10 00 01 00`` (selected by it or by the truncated ``A0 00 00 03 08``,
ISO 7816-4 §5.3.1.1), class ``00`` (``10`` for command chaining). Commands (the reference with
status words is docs/se-apdu.md):

======================== ==== ===== ===== ============================ ========================
command                  INS  P1    P2    data                         access
======================== ==== ===== ===== ============================ ========================
GET DATA                 CB   3F    FF    ``5C`` tag list              always (PIN for the
                                                                       biometric / printed info)
PUT DATA                 DB   3F    FF    ``5C`` tag, ``53``/``7E``    administration key
VERIFY                   20   00/FF 80    PIN (8, FF-padded) or none   —
CHANGE REFERENCE DATA    24   00    80/81 old ‖ new (8 + 8)            the old value
RESET RETRY COUNTER      2C   00    80    PUK ‖ new PIN (8 + 8)        the PUK
GENERATE ASYMMETRIC KEY  47   00    slot  ``AC`` {80 alg, AA, AB}      administration key
GENERAL AUTHENTICATE     87   alg   ref   ``7C`` template              per slot / 9B exchange
GET METADATA (Yubico)    F7   00    ref   —                            always
GET SERIAL (Yubico)      F8   00    00    —                            always
GET VERSION (Yubico)     FD   00    00    —                            always
SET MANAGEMENT KEY (Y.)  FF   FF    FF    alg ‖ 9B ‖ len ‖ key         administration key
======================== ==== ===== ===== ============================ ========================

Keys (ECC P-256 ``11`` and P-384 ``14``, SP 800-78-4 Table 6-2) are generated on the card in
slot ``9A`` (PIV authentication), ``9C`` (digital signature: PIN before every use), ``9D`` (key
management) or ``9E`` (card authentication: no PIN) and used by slot; there is no import and
no export. The administration key (``9B``) is AES and is proven by the SP 800-73-4 Part 2
Appendix A.1 exchanges: the mutual one (witness ``80``, then witness and challenge ``81``,
answered with the encrypted challenge ``82``) or the external one (challenge ``81``, answered
with its encryption ``82``). The security status (PIN verified, administration key proven) is
volatile: reselection or reset clears it.
"""

from __future__ import annotations

import hashlib

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import Prehashed

from fleetid.crypto.symmetric import bytes_equal
from fleetid.errors import TlvError
from fleetid.formats.apdu import SW, CommandApdu
from fleetid.formats.tlv import Tlv, decode_tlv, decode_tlvs, encode_tlv, find_tlv
from fleetid.se.applets.base import Applet, CommandContext, Reply, refuse
from fleetid.se.applets.manager import derived_key, pyca_curve
from fleetid.se.piv_state import PinPolicy, PivKey, PivState, ReferenceData
from fleetid.se.piv_wire import (
    ALGORITHM_OF_CURVE,
    CURVE_OF_ALGORITHM,
    INS_CHANGE_REFERENCE,
    INS_GENERAL_AUTHENTICATE,
    INS_GENERATE,
    INS_GET_DATA,
    INS_GET_METADATA,
    INS_GET_SERIAL,
    INS_GET_VERSION,
    INS_PUT_DATA,
    INS_RESET_RETRY,
    INS_SET_MANAGEMENT_KEY,
    INS_VERIFY,
    KEY_SLOTS,
    MANAGEMENT_ALGORITHMS,
    MANAGEMENT_KEY,
    PIN_REFERENCE,
    PIV_AID,
    PUK_REFERENCE,
    SLOT_CARD_AUTHENTICATION,
    SLOT_SIGNATURE,
    TAG_CCC,
    TAG_CHUID,
    TAG_DISCOVERY,
    administration_cipher,
    block_size,
    pad_reference_data,
)
from fleetid.se.state import CardState

__all__ = ["PivApplet"]

#: The version GET VERSION reports: the YubiKey firmware whose PIV command set (AES
#: administration keys, GET METADATA) this applet implements.
_VERSION = bytes((5, 4, 3))
_SW_RETRIES = 0x63C0  # SP 800-73-4 Part 2 §3.2.1: 63CX, X = retries left
_MAX_OBJECT = 3072  # bytes of one data object's TLV (a certificate container)
_PIN_ALPHABET = frozenset(b"0123456789")
#: Data objects only a verified PIN reads (SP 800-73-4 Part 1 Table 3 access rules).
_PIN_PROTECTED = frozenset({0x5FC103, 0x5FC108, 0x5FC109, 0x5FC121})
#: Every data object PUT DATA writes: Table 3 (5FC101-5FC123, discovery, BIT group template).
_WRITABLE = frozenset(range(0x5FC101, 0x5FC124)) | {TAG_DISCOVERY, 0x7F61}
_DEFAULT_PIN_POLICY = {SLOT_SIGNATURE: PinPolicy.ALWAYS, SLOT_CARD_AUTHENTICATION: PinPolicy.NEVER}
#: A FASC-N for a card outside the federal agency code space (SP 800-73-4 Part 1 §3.1.2,
#: agency code 9999), as commercial PIV-compatible cards carry.
_FASC_N = bytes.fromhex("D4E739DA739CED39CE739D836858210842108421C84210C3EB")


def _valid_pin(padded: bytes) -> bool:
    """6 to 8 digits, padded with ``FF`` to 8 bytes (SP 800-73-4 Part 2 §2.4.3)."""
    value = _unpad(padded)
    return (
        6 <= len(value) <= 8 and set(value) <= _PIN_ALPHABET and pad_reference_data(value) == padded
    )


def _unpad(value: bytes) -> bytes:
    return value.rstrip(b"\xff")


class PivApplet(Applet):
    """PIV: PIN-guarded keys by slot, data objects, and the Yubico extensions."""

    aid = PIV_AID

    def implied_ne(self, apdu: CommandApdu) -> int | None:
        """PIV middleware sends SELECT and GENERAL AUTHENTICATE without Le and expects the data
        with 9000 (SP 800-73-4 Part 2 §3.1.1, §3.2.4): answered as if Le were 00."""
        return 256

    def __init__(self) -> None:
        self._pin_verified = False
        self._administrator = False
        self._witness: bytes | None = None  # sent encrypted in step 1 of mutual authentication
        self._challenge: bytes | None = None  # sent in step 1 of external authentication
        self._cache: dict[int, tuple[PivKey, ec.EllipticCurvePrivateKey]] = {}

    # --- life ---------------------------------------------------------------------------------

    def select(self, state: CardState) -> bytes:
        self.deselect()
        return _application_property_template()

    def deselect(self) -> None:
        self._pin_verified = False
        self._administrator = False
        self._witness = self._challenge = None

    def zeroise(self) -> None:
        self.deselect()
        self._cache.clear()

    def accepts_chaining(self, ins: int) -> bool:
        return ins in (INS_PUT_DATA, INS_GENERAL_AUTHENTICATE)

    def process(self, ctx: CommandContext, apdu: CommandApdu) -> Reply:
        if ctx.proprietary:
            raise refuse(SW.CLA_NOT_SUPPORTED, "PIV commands use class 00")
        handler = {
            INS_GET_DATA: self._get_data,
            INS_PUT_DATA: self._put_data,
            INS_VERIFY: self._verify,
            INS_CHANGE_REFERENCE: self._change_reference,
            INS_RESET_RETRY: self._reset_retry,
            INS_GENERATE: self._generate,
            INS_GENERAL_AUTHENTICATE: self._general_authenticate,
            INS_GET_METADATA: self._get_metadata,
            INS_GET_SERIAL: self._get_serial,
            INS_GET_VERSION: self._get_version,
            INS_SET_MANAGEMENT_KEY: self._set_management_key,
        }.get(apdu.ins)
        if handler is None:
            raise refuse(SW.INS_NOT_SUPPORTED, f"INS {apdu.ins:02X}")
        if apdu.ins != INS_GENERAL_AUTHENTICATE:
            self._witness = self._challenge = None  # an exchange is two consecutive commands
        return handler(ctx, apdu)

    # --- helpers ------------------------------------------------------------------------------

    def _require_administrator(self) -> None:
        if not self._administrator:
            raise refuse(SW.SECURITY_STATUS_NOT_SATISFIED, "administration key not proven")

    def _key(self, piv: PivState, slot: int) -> tuple[PivKey, ec.EllipticCurvePrivateKey]:
        key = piv.keys.get(slot)
        if key is None:
            raise refuse(SW.REFERENCED_DATA_NOT_FOUND, f"no key in slot {slot:02X}")
        return key, derived_key(self._cache, slot, key, key.private_value, key.curve)

    @staticmethod
    def _template(data: bytes, tag: int) -> list[Tlv]:
        """The nested objects of the one TLV ``tag`` that fills ``data`` (6A80 otherwise)."""
        try:
            outer, end = decode_tlv(data)
            if outer.tag != tag or end != len(data):
                raise refuse(SW.INCORRECT_DATA, f"expected one {tag:X} template")
            return decode_tlvs(outer.value)
        except TlvError:
            raise refuse(SW.INCORRECT_DATA, "malformed BER-TLV") from None

    # --- data objects (SP 800-73-4 Part 2 §3.1.2, §3.3.2) ---------------------------------------

    def _get_data(self, ctx: CommandContext, apdu: CommandApdu) -> Reply:
        if (apdu.p1, apdu.p2) != (0x3F, 0xFF):
            raise refuse(SW.INCORRECT_P1P2, "GET DATA takes P1 P2 3F FF")
        tag = _tag_list(apdu.data)
        if tag in _PIN_PROTECTED and not self._pin_verified:
            raise refuse(SW.SECURITY_STATUS_NOT_SATISFIED, "PIN required for this object")
        piv = ctx.state.piv
        stored = piv.objects.get(tag)
        if stored is None:
            stored = _default_object(ctx.state, tag)
        if stored is None:
            raise refuse(SW.FILE_NOT_FOUND, f"no data object {tag:X}")
        return Reply(data=stored)

    def _put_data(self, ctx: CommandContext, apdu: CommandApdu) -> Reply:
        if (apdu.p1, apdu.p2) != (0x3F, 0xFF):
            raise refuse(SW.INCORRECT_P1P2, "PUT DATA takes P1 P2 3F FF")
        self._require_administrator()
        try:
            if apdu.data[:1] == bytes((TAG_DISCOVERY,)) or apdu.data[:2] == b"\x7f\x61":
                # The discovery object and the BIT group template are sent without a tag list
                # (SP 800-73-4 Part 2 §3.3.2).
                value, end = decode_tlv(apdu.data)
                tag, body = value.tag, apdu.data
            else:
                listed, start = decode_tlv(apdu.data)
                if listed.tag != 0x5C:
                    raise refuse(SW.INCORRECT_DATA, "PUT DATA starts with a 5C tag list")
                tag = _tag_value(listed.value)
                value, end = decode_tlv(apdu.data, start)
                if value.tag != 0x53:
                    raise refuse(SW.INCORRECT_DATA, "the object's value is a 53 TLV")
                body = apdu.data[start:]
        except TlvError:
            raise refuse(SW.INCORRECT_DATA, "malformed BER-TLV") from None
        if end != len(apdu.data):
            raise refuse(SW.INCORRECT_DATA, "bytes after the data object")
        if tag not in _WRITABLE:
            raise refuse(SW.INCORRECT_DATA, f"no data object {tag:X}")
        if len(body) > _MAX_OBJECT:
            raise refuse(SW.NOT_ENOUGH_MEMORY, "data object too large")
        objects = ctx.state.piv.objects
        if value.value:
            objects[tag] = bytes(body)
        else:
            objects.pop(tag, None)  # an empty value deletes the object
        ctx.persist()
        return Reply()

    # --- PIN and PUK (SP 800-73-4 Part 2 §3.2.1, §3.2.2, §3.2.3) --------------------------------

    def _verify(self, ctx: CommandContext, apdu: CommandApdu) -> Reply:
        if apdu.p2 != PIN_REFERENCE:
            raise refuse(SW.REFERENCED_DATA_NOT_FOUND, f"key reference {apdu.p2:02X}")
        piv = ctx.state.piv
        if apdu.p1 == 0xFF:
            if apdu.data:
                raise refuse(SW.WRONG_LENGTH, "VERIFY P1 FF takes no data")
            self._pin_verified = False
            return Reply()
        if apdu.p1 != 0x00:
            raise refuse(SW.INCORRECT_P1P2, "VERIFY P1 is 00 or FF")
        if not apdu.data:
            if self._pin_verified:
                return Reply()
            if piv.pin.left == 0:
                raise refuse(SW.AUTH_METHOD_BLOCKED, "PIN blocked")
            return Reply(sw=_SW_RETRIES | piv.pin.left)
        if len(apdu.data) != 8:
            raise refuse(SW.INCORRECT_DATA, "a PIN is 8 bytes, FF-padded")
        self._pin_verified = False
        self._check(ctx, piv.pin, apdu.data)
        self._pin_verified = True
        return Reply()

    @staticmethod
    def _check(ctx: CommandContext, reference: ReferenceData, offered: bytes) -> None:
        """Compare ``offered`` with the PIN or PUK: a miss costs a try (63CX, SP 800-73-4
        Part 2 §3.2.1), none left is 6983, a match restores the counter."""
        if reference.left == 0:
            raise refuse(SW.AUTH_METHOD_BLOCKED, "blocked")
        if not bytes_equal(offered, reference.value):
            reference.left -= 1
            ctx.persist()
            raise refuse(_SW_RETRIES | reference.left, "wrong reference data")
        if reference.left != reference.retries:
            reference.left = reference.retries
            ctx.persist()

    def _change_reference(self, ctx: CommandContext, apdu: CommandApdu) -> Reply:
        if apdu.p1 != 0x00 or apdu.p2 not in (PIN_REFERENCE, PUK_REFERENCE):
            raise refuse(SW.REFERENCED_DATA_NOT_FOUND, f"key reference {apdu.p2:02X}")
        if len(apdu.data) != 16:
            raise refuse(SW.INCORRECT_DATA, "old and new values, 8 bytes each")
        old, new = apdu.data[:8], apdu.data[8:]
        piv = ctx.state.piv
        if apdu.p2 == PIN_REFERENCE:
            if not _valid_pin(new):
                raise refuse(SW.INCORRECT_DATA, "a PIN has 6 to 8 digits")
            self._pin_verified = False
            self._check(ctx, piv.pin, old)
            piv.pin.value = new
            self._pin_verified = True
        else:
            if len(_unpad(new)) < 6 or pad_reference_data(_unpad(new)) != new:
                raise refuse(SW.INCORRECT_DATA, "a PUK has 6 to 8 bytes")
            self._check(ctx, piv.puk, old)
            piv.puk.value = new
        ctx.persist()
        return Reply()

    def _reset_retry(self, ctx: CommandContext, apdu: CommandApdu) -> Reply:
        if apdu.p1 != 0x00 or apdu.p2 != PIN_REFERENCE:
            raise refuse(SW.REFERENCED_DATA_NOT_FOUND, f"key reference {apdu.p2:02X}")
        if len(apdu.data) != 16:
            raise refuse(SW.INCORRECT_DATA, "PUK and new PIN, 8 bytes each")
        puk, new = apdu.data[:8], apdu.data[8:]
        if not _valid_pin(new):
            raise refuse(SW.INCORRECT_DATA, "a PIN has 6 to 8 digits")
        piv = ctx.state.piv
        self._check(ctx, piv.puk, puk)
        piv.pin.value = new
        piv.pin.left = piv.pin.retries
        self._pin_verified = False
        ctx.persist()
        return Reply()

    # --- keys (SP 800-73-4 Part 2 §3.3.2 GENERATE, §3.2.4 GENERAL AUTHENTICATE) ---------------

    def _generate(self, ctx: CommandContext, apdu: CommandApdu) -> Reply:
        if apdu.p1 != 0x00 or apdu.p2 not in KEY_SLOTS:
            raise refuse(SW.INCORRECT_P1P2, f"key reference {apdu.p2:02X}")
        self._require_administrator()
        objects = self._template(apdu.data, 0xAC)
        algorithm = find_tlv(objects, 0x80)
        if algorithm is None or len(algorithm.value) != 1:
            raise refuse(SW.INCORRECT_DATA, "GENERATE needs one algorithm (80)")
        curve = CURVE_OF_ALGORITHM.get(algorithm.value[0])
        if curve is None:
            raise refuse(SW.INCORRECT_DATA, f"algorithm {algorithm.value.hex()} not supported")
        policy = _DEFAULT_PIN_POLICY.get(apdu.p2, PinPolicy.ONCE)
        pin_policy = find_tlv(objects, 0xAA)
        if pin_policy is not None:
            try:
                if len(pin_policy.value) != 1:
                    raise ValueError
                if pin_policy.value[0]:  # 00: the slot's default
                    policy = PinPolicy(pin_policy.value[0])
            except ValueError:
                raise refuse(SW.INCORRECT_DATA, "PIN policy") from None
        touch = find_tlv(objects, 0xAB)
        if touch is not None and touch.value not in (b"\x00", b"\x01"):
            # The emulated card has no touch sensor: only "default" and "never" are true.
            raise refuse(SW.INCORRECT_DATA, "touch policy not supported")
        private = ec.generate_private_key(pyca_curve(curve))
        key = PivKey(
            curve=curve, private_value=private.private_numbers().private_value, pin_policy=policy
        )
        ctx.state.piv.keys[apdu.p2] = key
        self._cache[apdu.p2] = (key, private)
        ctx.persist()
        return Reply(data=_public_key_template(private.public_key()))

    def _general_authenticate(self, ctx: CommandContext, apdu: CommandApdu) -> Reply:
        exchange = self._witness, self._challenge
        self._witness = self._challenge = None
        objects = self._template(apdu.data, 0x7C)
        if apdu.p2 == MANAGEMENT_KEY:
            return self._authenticate_administrator(ctx, apdu, objects, exchange)
        if apdu.p2 not in KEY_SLOTS:
            raise refuse(SW.INCORRECT_P1P2, f"key reference {apdu.p2:02X}")
        piv = ctx.state.piv
        key, private = self._key(piv, apdu.p2)
        if CURVE_OF_ALGORITHM.get(apdu.p1) is not key.curve:
            raise refuse(SW.INCORRECT_P1P2, f"algorithm {apdu.p1:02X} is not the slot's key")
        response = find_tlv(objects, 0x82)
        challenge = find_tlv(objects, 0x81)
        exponentiation = find_tlv(objects, 0x85)
        if response is None or response.value or (challenge is None) == (exponentiation is None):
            raise refuse(SW.INCORRECT_DATA, "expected 82 00 and one of 81 or 85")
        if key.pin_policy is not PinPolicy.NEVER:
            if not self._pin_verified:
                raise refuse(SW.SECURITY_STATUS_NOT_SATISFIED, "PIN not verified")
            if key.pin_policy is PinPolicy.ALWAYS:
                self._pin_verified = False  # one use per VERIFY
        size = key.curve.coordinate_size
        if challenge is not None:
            # ECDSA over a digest the host computed; a shorter one is left-padded with zeros,
            # which leaves its integer value e (FIPS 186-5 §6.4.1 step 3) unchanged.
            if not challenge.value or len(challenge.value) > size:
                raise refuse(SW.INCORRECT_DATA, f"a digest of at most {size} bytes")
            digest = challenge.value.rjust(size, b"\x00")
            hash_algorithm = hashes.SHA256() if size == 32 else hashes.SHA384()
            signature = private.sign(digest, ec.ECDSA(Prehashed(hash_algorithm)))
            return Reply(data=encode_tlv(0x7C, encode_tlv(0x82, signature)))
        assert exponentiation is not None  # noqa: S101 - exactly one of the two, checked above
        point = exponentiation.value
        if len(point) != 1 + 2 * size or point[0] != 0x04:
            raise refuse(SW.INCORRECT_DATA, "peer point is not an uncompressed point")
        try:
            peer = ec.EllipticCurvePublicKey.from_encoded_point(private.curve, point)
        except ValueError:
            raise refuse(SW.INCORRECT_DATA, "peer point is not on the curve") from None
        shared = private.exchange(ec.ECDH(), peer)
        return Reply(data=encode_tlv(0x7C, encode_tlv(0x82, shared)))

    def _authenticate_administrator(
        self,
        ctx: CommandContext,
        apdu: CommandApdu,
        objects: list[Tlv],
        exchange: tuple[bytes | None, bytes | None],
    ) -> Reply:
        """SP 800-73-4 Part 2 Appendix A.1 (A.1.2 external, A.1.3 mutual authentication)."""
        piv = ctx.state.piv
        if apdu.p1 != piv.management_algorithm:
            raise refuse(
                SW.INCORRECT_P1P2, f"the administration key is not algorithm {apdu.p1:02X}"
            )
        self._administrator = False
        witness, challenge = exchange
        by_tag = {o.tag: o.value for o in objects}
        block = block_size(piv.management_algorithm)
        if by_tag == {0x80: b""}:
            self._witness = ctx.random(block)
            encrypted = _encrypt_block(piv, self._witness)
            return Reply(data=encode_tlv(0x7C, encode_tlv(0x80, encrypted)))
        if by_tag == {0x81: b""}:
            self._challenge = ctx.random(block)
            return Reply(data=encode_tlv(0x7C, encode_tlv(0x81, self._challenge)))
        if set(by_tag) == {0x80, 0x81} and witness is not None:
            if len(by_tag[0x81]) != block or not bytes_equal(by_tag[0x80], witness):
                raise refuse(SW.SECURITY_STATUS_NOT_SATISFIED, "wrong witness")
            self._administrator = True
            answer = _encrypt_block(piv, by_tag[0x81])
            return Reply(data=encode_tlv(0x7C, encode_tlv(0x82, answer)))
        if set(by_tag) == {0x82} and challenge is not None:
            expected = _encrypt_block(piv, challenge)
            if not bytes_equal(by_tag[0x82], expected):
                raise refuse(SW.SECURITY_STATUS_NOT_SATISFIED, "wrong cryptogram")
            self._administrator = True
            return Reply()
        raise refuse(SW.INCORRECT_DATA, "not a step of an administration key exchange")

    # --- Yubico extensions ---------------------------------------------------------------------

    def _get_version(self, ctx: CommandContext, apdu: CommandApdu) -> Reply:
        return Reply(data=_VERSION)

    def _get_serial(self, ctx: CommandContext, apdu: CommandApdu) -> Reply:
        # A positive 31-bit number: ykpiv prints the serial as a signed integer.
        serial = int.from_bytes(ctx.state.cplc.ic_serial, "big") & 0x7FFFFFFF
        return Reply(data=serial.to_bytes(4, "big"))

    def _set_management_key(self, ctx: CommandContext, apdu: CommandApdu) -> Reply:
        if apdu.p1 != 0xFF or apdu.p2 != 0xFF:
            raise refuse(SW.INCORRECT_P1P2, "SET MANAGEMENT KEY takes P1 P2 FF FF (no touch)")
        self._require_administrator()
        data = apdu.data
        if len(data) < 3 or data[1] != MANAGEMENT_KEY:
            raise refuse(SW.INCORRECT_DATA, "algorithm ‖ 9B ‖ length ‖ key")
        length = MANAGEMENT_ALGORITHMS.get(data[0])
        if length is None or data[2] != length or len(data) != 3 + length:
            raise refuse(SW.INCORRECT_DATA, "an AES-128, -192 or -256 administration key")
        piv = ctx.state.piv
        piv.management_algorithm, piv.management_key = data[0], bytes(data[3:])
        ctx.persist()
        return Reply()

    def _get_metadata(self, ctx: CommandContext, apdu: CommandApdu) -> Reply:
        piv = ctx.state.piv
        ref = apdu.p2
        if ref == MANAGEMENT_KEY:
            default = piv.management_key == PivState().management_key
            body = (
                encode_tlv(0x01, bytes((piv.management_algorithm,)))
                + encode_tlv(0x02, b"\x00\x01")  # PIN policy default, touch never
                + encode_tlv(0x05, bytes((default,)))
            )
            return Reply(data=body)
        if ref in (PIN_REFERENCE, PUK_REFERENCE):
            fresh = PivState()
            reference, factory = (
                (piv.pin, fresh.pin) if ref == PIN_REFERENCE else (piv.puk, fresh.puk)
            )
            body = (
                encode_tlv(0x01, b"\xff")
                + encode_tlv(0x05, bytes((reference.value == factory.value,)))
                + encode_tlv(0x06, bytes((reference.retries, reference.left)))
            )
            return Reply(data=body)
        if ref not in KEY_SLOTS:
            raise refuse(SW.INCORRECT_P1P2, f"key reference {ref:02X}")
        key, private = self._key(piv, ref)
        body = (
            encode_tlv(0x01, bytes((ALGORITHM_OF_CURVE[key.curve],)))
            + encode_tlv(0x02, bytes((int(key.pin_policy), 0x01)))
            + encode_tlv(0x03, b"\x01")  # origin: generated on the card
            + encode_tlv(0x04, _public_key_template(private.public_key())[3:])
        )
        return Reply(data=body)


def _encrypt_block(piv: PivState, block: bytes) -> bytes:
    """One block enciphered under the administration key (the Appendix A.1 cryptograms)."""
    encryptor = administration_cipher(piv.management_algorithm, piv.management_key).encryptor()
    return encryptor.update(block) + encryptor.finalize()


def _public_key_template(public: ec.EllipticCurvePublicKey) -> bytes:
    """SP 800-73-4 Part 2 §3.3.2 Table 10: ``7F49 { 86 point }`` (the 7F49 header is 3 bytes
    as long as the point is under 128 bytes, true of P-256 and P-384)."""
    point = public.public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
    )
    return encode_tlv(0x7F49, encode_tlv(0x86, point))


def _tag_value(value: bytes) -> int:
    if not 1 <= len(value) <= 3:
        raise refuse(SW.INCORRECT_DATA, "a data object tag has 1 to 3 bytes")
    return int.from_bytes(value, "big")


def _tag_list(data: bytes) -> int:
    """The one tag of a GET DATA tag list ``5C len tag`` (SP 800-73-4 Part 2 §3.1.2)."""
    try:
        listed, end = decode_tlv(data)
    except TlvError:
        raise refuse(SW.INCORRECT_DATA, "malformed BER-TLV") from None
    if listed.tag != 0x5C or end != len(data):
        raise refuse(SW.INCORRECT_DATA, "GET DATA takes one 5C tag list")
    return _tag_value(listed.value)


def _card_unique(state: CardState, label: bytes, size: int) -> bytes:
    """Bytes unique to this chip, derived from its public CPLC identity (no secret involved)."""
    return hashlib.sha256(label + state.chip_serial).digest()[:size]


def _default_object(state: CardState, tag: int) -> bytes | None:
    """The objects every PIV card has before the issuer writes its own (SP 800-73-4 Part 1)."""
    if tag == TAG_DISCOVERY:
        # Part 1 §3.3.2: the PIV AID, and PIN usage policy 40 00 (the PIV Card Application PIN
        # only; no global PIN, no pairing code).
        return encode_tlv(
            TAG_DISCOVERY, encode_tlv(0x4F, PIV_AID) + encode_tlv(0x5F2F, b"\x40\x00")
        )
    if tag == TAG_CHUID:
        # Part 1 §3.1.2 (SP 800-73-4 Table 9): FASC-N, GUID, expiration date, an empty issuer
        # signature and error detection code.
        return encode_tlv(
            0x53,
            encode_tlv(0x30, _FASC_N)
            + encode_tlv(0x34, _card_unique(state, b"piv guid", 16))
            + encode_tlv(0x35, b"20991231")
            + encode_tlv(0x3E, b"")
            + encode_tlv(0xFE, b""),
        )
    if tag == TAG_CCC:
        # Part 1 §3.1.1 (Table 8): card identifier (GSC-RID A000000116, manufacturer FF, card
        # type 02 = Java Card, 14 unique bytes), versions 21, and the empty optional fields.
        identifier = bytes.fromhex("A000000116FF02") + _card_unique(state, b"piv ccc", 14)
        return encode_tlv(
            0x53,
            encode_tlv(0xF0, identifier)
            + encode_tlv(0xF1, b"\x21")
            + encode_tlv(0xF2, b"\x21")
            + encode_tlv(0xF3, b"")
            + encode_tlv(0xF4, b"\x00")
            + encode_tlv(0xF5, b"\x10")
            + encode_tlv(0xF6, b"")
            + encode_tlv(0xF7, b"")
            + encode_tlv(0xFA, b"")
            + encode_tlv(0xFB, b"")
            + encode_tlv(0xFC, b"")
            + encode_tlv(0xFD, b"")
            + encode_tlv(0xFE, b""),
        )
    return None


def _application_property_template() -> bytes:
    """SP 800-73-4 Part 2 §3.1.1 Table 3: the answer to SELECT."""
    algorithms = b"".join(
        encode_tlv(0x80, bytes((a,)))
        for a in (*sorted(CURVE_OF_ALGORITHM), *sorted(MANAGEMENT_ALGORITHMS))
    )
    return encode_tlv(
        0x61,
        encode_tlv(0x4F, PIV_AID[5:])
        + encode_tlv(0x79, encode_tlv(0x4F, PIV_AID[:5]))
        + encode_tlv(0x50, b"fleetid PIV")
        + encode_tlv(0xAC, algorithms + encode_tlv(0x06, b"\x00")),
    )
