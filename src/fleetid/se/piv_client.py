"""The host side of the PIV card edge: typed calls over any ``Transport`` (in process, PC/SC).

Builds the SP 800-73-4 Part 2 command APDUs (docs/se-apdu.md, PIV section), follows ``61xx``
with GET RESPONSE, and raises the typed ``SecureElementError`` of a status word. ``PivSigner``
is a ``fleetid.crypto.signer.Signer`` whose private key stays in a PIV slot: the host hashes,
the card signs with GENERAL AUTHENTICATE.
"""

from __future__ import annotations

import os
from collections.abc import Callable

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from fleetid.crypto.symmetric import bytes_equal
from fleetid.errors import EncodingError, TlvError, VerificationError
from fleetid.formats.apdu import SW, CommandApdu, parse_response
from fleetid.formats.tlv import Tlv, decode_tlv, decode_tlvs, encode_tlv, find_tlv
from fleetid.se.client import Transport, error_for_sw
from fleetid.se.piv_wire import (
    ALGORITHM_OF_CURVE,
    CURVE_OF_ALGORITHM,
    INS_CHANGE_REFERENCE,
    INS_GENERAL_AUTHENTICATE,
    INS_GENERATE,
    INS_GET_DATA,
    INS_GET_METADATA,
    INS_PUT_DATA,
    INS_RESET_RETRY,
    INS_SET_MANAGEMENT_KEY,
    INS_VERIFY,
    MANAGEMENT_KEY,
    OBJECT_OF_SLOT,
    PIN_REFERENCE,
    PIV_AID,
    PUK_REFERENCE,
    administration_cipher,
    block_size,
    pad_reference_data,
)
from fleetid.se.wire import Curve

__all__ = ["PivClient", "PivSigner"]

_GET_RESPONSE = 0xC0
_CURVES: dict[Curve, ec.EllipticCurve] = {Curve.P256: ec.SECP256R1(), Curve.P384: ec.SECP384R1()}


class PivClient:
    """PIV commands to a card behind ``transport``."""

    def __init__(
        self, transport: Transport, *, random: Callable[[int], bytes] = os.urandom
    ) -> None:
        self._transport = transport
        self._random = random

    def _send(self, ins: int, p1: int, p2: int, data: bytes = b"", *, le: bool = True) -> bytes:
        return self._checked(self._raw(ins, p1, p2, data, le=le), ins)

    def _raw(
        self, ins: int, p1: int, p2: int, data: bytes, *, le: bool = True
    ) -> tuple[bytes, int]:
        extended = len(data) > 255
        ne = (65536 if extended else 256) if le else None
        apdu = CommandApdu(0x00, ins, p1, p2, data, ne, extended)
        response = self._transport.transmit(apdu.encode())
        collected = bytearray()
        while len(response) >= 2 and response[-2] == 0x61:
            collected += response[:-2]
            response = self._transport.transmit(bytes((0, _GET_RESPONSE, 0, 0, response[-1])))
        reply = parse_response(bytes(collected) + response)
        return reply.data, reply.sw

    @staticmethod
    def _checked(answer: tuple[bytes, int], ins: int) -> bytes:
        data, sw = answer
        if sw != SW.OK:
            raise error_for_sw(sw, f"PIV INS {ins:02X}")
        return data

    # --- selection, PIN, PUK -------------------------------------------------------------------

    def select(self) -> bytes:
        """SELECT the PIV application; returns its application property template."""
        apdu = CommandApdu(0x00, 0xA4, 0x04, 0x00, PIV_AID, 256)
        reply = parse_response(self._transport.transmit(apdu.encode()))
        if reply.sw != SW.OK:
            raise error_for_sw(reply.sw, "SELECT PIV")
        return reply.data

    def pin_retries(self) -> int:
        """Retries left (VERIFY without data: 63CX); 0 when blocked, -1 when already verified."""
        _, sw = self._raw(INS_VERIFY, 0x00, PIN_REFERENCE, b"", le=False)
        if sw == SW.OK:
            return -1
        if sw == SW.AUTH_METHOD_BLOCKED:
            return 0
        if sw & 0xFFF0 == 0x63C0:
            return sw & 0x0F
        raise error_for_sw(sw, "VERIFY")

    def verify_pin(self, pin: str) -> None:
        self._send(INS_VERIFY, 0x00, PIN_REFERENCE, pad_reference_data(pin.encode()), le=False)

    def change_pin(self, old: str, new: str) -> None:
        data = pad_reference_data(old.encode()) + pad_reference_data(new.encode())
        self._send(INS_CHANGE_REFERENCE, 0x00, PIN_REFERENCE, data, le=False)

    def change_puk(self, old: str, new: str) -> None:
        data = pad_reference_data(old.encode()) + pad_reference_data(new.encode())
        self._send(INS_CHANGE_REFERENCE, 0x00, PUK_REFERENCE, data, le=False)

    def unblock_pin(self, puk: str, new_pin: str) -> None:
        data = pad_reference_data(puk.encode()) + pad_reference_data(new_pin.encode())
        self._send(INS_RESET_RETRY, 0x00, PIN_REFERENCE, data, le=False)

    # --- administration key (SP 800-73-4 Part 2 Appendix A.1.3) -------------------------------

    def authenticate(self, key: bytes, algorithm: int = 0x0A) -> None:
        """Mutual authentication with the administration key; raises ``VerificationError`` when
        the card's answer shows it does not hold the same key."""
        cipher = administration_cipher(algorithm, key)
        block = block_size(algorithm)
        step1 = self._send(INS_GENERAL_AUTHENTICATE, algorithm, MANAGEMENT_KEY, b"\x7c\x02\x80\x00")
        encrypted = _inner(step1, 0x80)
        if len(encrypted) != block:
            raise EncodingError("the card's witness is not one block")
        decryptor = cipher.decryptor()
        witness = decryptor.update(encrypted) + decryptor.finalize()
        challenge = self._random(block)
        body = encode_tlv(0x80, witness) + encode_tlv(0x81, challenge)
        step2 = self._send(
            INS_GENERAL_AUTHENTICATE, algorithm, MANAGEMENT_KEY, encode_tlv(0x7C, body)
        )
        encryptor = cipher.encryptor()
        expected = encryptor.update(challenge) + encryptor.finalize()
        if not bytes_equal(_inner(step2, 0x82), expected):
            raise VerificationError("the card does not hold this administration key")

    def set_management_key(self, key: bytes, algorithm: int) -> None:
        """Yubico SET MANAGEMENT KEY (after ``authenticate``)."""
        administration_cipher(algorithm, key)  # checks the length
        data = bytes((algorithm, MANAGEMENT_KEY, len(key))) + key
        self._send(INS_SET_MANAGEMENT_KEY, 0xFF, 0xFF, data, le=False)

    # --- keys ----------------------------------------------------------------------------------

    def generate(self, slot: int, curve: Curve = Curve.P256) -> ec.EllipticCurvePublicKey:
        """GENERATE ASYMMETRIC KEY PAIR in ``slot`` (after ``authenticate``)."""
        template = encode_tlv(0xAC, encode_tlv(0x80, bytes((ALGORITHM_OF_CURVE[curve],))))
        answer = self._send(INS_GENERATE, 0x00, slot, template)
        return _public_key(answer, curve)

    def public_key(self, slot: int) -> tuple[Curve, ec.EllipticCurvePublicKey]:
        """The key in ``slot``, from Yubico GET METADATA (algorithm ``01``, public key ``04``)."""
        objects = _tlvs(self._send(INS_GET_METADATA, 0x00, slot))
        algorithm, point = find_tlv(objects, 0x01), find_tlv(objects, 0x04)
        if algorithm is None or point is None or len(algorithm.value) != 1:
            raise EncodingError("GET METADATA did not describe a key")
        curve = CURVE_OF_ALGORITHM.get(algorithm.value[0])
        if curve is None:
            raise EncodingError(f"algorithm {algorithm.value.hex()} is not an ECC key")
        return curve, _public_key(encode_tlv(0x7F49, point.value), curve)

    def sign(self, slot: int, curve: Curve, digest: bytes) -> bytes:
        """A DER ECDSA signature over ``digest`` by the key in ``slot`` (PIN verified first)."""
        body = encode_tlv(0x82, b"") + encode_tlv(0x81, digest)
        answer = self._send(
            INS_GENERAL_AUTHENTICATE, ALGORITHM_OF_CURVE[curve], slot, encode_tlv(0x7C, body)
        )
        return _inner(answer, 0x82)

    def ecdh(self, slot: int, curve: Curve, peer: ec.EllipticCurvePublicKey) -> bytes:
        """The ECDH shared secret (x coordinate) of the key in ``slot`` and ``peer``."""
        point = peer.public_bytes(
            serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
        )
        body = encode_tlv(0x82, b"") + encode_tlv(0x85, point)
        answer = self._send(
            INS_GENERAL_AUTHENTICATE, ALGORITHM_OF_CURVE[curve], slot, encode_tlv(0x7C, body)
        )
        return _inner(answer, 0x82)

    # --- data objects --------------------------------------------------------------------------

    def get_object(self, tag: int) -> bytes:
        """GET DATA: the complete TLV the card answers (``53 …`` or ``7E …``)."""
        tag_bytes = tag.to_bytes((tag.bit_length() + 7) // 8, "big")
        return self._send(INS_GET_DATA, 0x3F, 0xFF, encode_tlv(0x5C, tag_bytes))

    def put_object(self, tag: int, value: bytes) -> None:
        """PUT DATA of ``53 value`` under ``tag`` (after ``authenticate``)."""
        tag_bytes = tag.to_bytes((tag.bit_length() + 7) // 8, "big")
        data = encode_tlv(0x5C, tag_bytes) + encode_tlv(0x53, value)
        self._send(INS_PUT_DATA, 0x3F, 0xFF, data, le=False)

    def write_certificate(self, slot: int, certificate: x509.Certificate) -> None:
        """The slot's certificate object: ``70`` DER certificate, ``71`` 00 (not compressed),
        ``FE`` error detection code (SP 800-73-4 Part 1 Table 10)."""
        der = certificate.public_bytes(serialization.Encoding.DER)
        value = encode_tlv(0x70, der) + encode_tlv(0x71, b"\x00") + encode_tlv(0xFE, b"")
        self.put_object(OBJECT_OF_SLOT[slot], value)

    def read_certificate(self, slot: int) -> x509.Certificate:
        container = _tlvs(_inner_object(self.get_object(OBJECT_OF_SLOT[slot]), 0x53))
        certificate = find_tlv(container, 0x70)
        if certificate is None:
            raise EncodingError("the certificate object holds no certificate (70)")
        return x509.load_der_x509_certificate(certificate.value)


class PivSigner:
    """A ``Signer`` whose private key is a PIV slot's: the host hashes, the card signs."""

    def __init__(self, client: PivClient, slot: int) -> None:
        self._client = client
        self._slot = slot
        self._curve, self._public = client.public_key(slot)

    def public_key(self) -> ec.EllipticCurvePublicKey:
        return self._public

    @property
    def hash_algorithm(self) -> hashes.HashAlgorithm:
        return hashes.SHA256() if self._curve is Curve.P256 else hashes.SHA384()

    def sign(self, data: bytes) -> bytes:
        digest = hashes.Hash(self.hash_algorithm)
        digest.update(data)
        return self._client.sign(self._slot, self._curve, digest.finalize())


def _tlvs(data: bytes) -> list[Tlv]:
    try:
        return decode_tlvs(data)
    except TlvError as exc:
        raise EncodingError(f"the card's answer is not BER-TLV: {exc}") from None


def _inner_object(data: bytes, tag: int) -> bytes:
    try:
        outer, end = decode_tlv(data)
    except TlvError as exc:
        raise EncodingError(f"the card's answer is not BER-TLV: {exc}") from None
    if outer.tag != tag or end != len(data):
        raise EncodingError(f"expected one {tag:X} object")
    return outer.value


def _inner(answer: bytes, tag: int) -> bytes:
    """The ``tag`` object inside a ``7C`` dynamic authentication template."""
    found = find_tlv(_tlvs(_inner_object(answer, 0x7C)), tag)
    if found is None:
        raise EncodingError(f"the card's answer has no {tag:02X}")
    return found.value


def _public_key(answer: bytes, curve: Curve) -> ec.EllipticCurvePublicKey:
    found = find_tlv(_tlvs(_inner_object(answer, 0x7F49)), 0x86)
    if found is None:
        raise EncodingError("the public key template has no point (86)")
    try:
        return ec.EllipticCurvePublicKey.from_encoded_point(_CURVES[curve], found.value)
    except ValueError:
        raise EncodingError("the card's public point is not on the curve") from None
