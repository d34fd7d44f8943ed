"""The PIV applet in process: SP 800-73-4 commands, their status words, and every refusal.

Signatures and shared secrets are checked with pyca (OpenSSL), the administration key
cryptograms with pyca's AES and Triple DES, not with the card's own code; stock middleware
(OpenSC, yubico-piv-tool) drives the same applet in tests/integration/test_piv_pcsc.py.
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.decrepit.ciphers.algorithms import TripleDES
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, utils
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.x509.oid import NameOID

from fleetid.errors import SecureElementError, VerificationError
from fleetid.formats.tlv import decode_tlv, decode_tlvs, encode_tlv, find_tlv
from fleetid.se.card import SecureElement, TamperEvent
from fleetid.se.keystore import SealedFlash, Silicon
from fleetid.se.piv_client import PivClient, PivSigner
from fleetid.se.piv_wire import DEFAULT_MANAGEMENT_KEY, PIV_AID
from fleetid.se.state import CardState
from fleetid.se.wire import Curve

ADMIN = DEFAULT_MANAGEMENT_KEY
PIN = "123456"
PUK = "12345678"


@pytest.fixture
def card() -> SecureElement:
    return SecureElement.fabricate()


@pytest.fixture
def piv(card: SecureElement) -> PivClient:
    client = PivClient(card)
    client.select()
    return client


def sw_of(response: bytes) -> int:
    return int.from_bytes(response[-2:], "big")


def send(card: SecureElement, hex_apdu: str, data: bytes = b"") -> bytes:
    header = bytes.fromhex(hex_apdu)
    if data:
        header += bytes((len(data),)) + data
    return card.transmit(header)


def refused(sw: int) -> Any:
    return pytest.raises(SecureElementError, match=f"SW {sw:04X}")


def ecb_encrypt(key: bytes, block: bytes, algorithm: int = 0x0A) -> bytes:
    cipher = TripleDES(key) if algorithm == 0x03 else algorithms.AES(key)
    encryptor = Cipher(cipher, modes.ECB()).encryptor()  # noqa: S305 - the spec's one block
    return encryptor.update(block) + encryptor.finalize()


def verify(public: ec.EllipticCurvePublicKey, signature: bytes, digest: bytes) -> None:
    algorithm = hashes.SHA256() if len(digest) == 32 else hashes.SHA384()
    public.verify(signature, digest, ec.ECDSA(utils.Prehashed(algorithm)))


# --- SELECT and the default data objects ------------------------------------------------------


@pytest.mark.parametrize("aid", [PIV_AID, PIV_AID[:5], PIV_AID[:9]])
def test_select_by_full_or_truncated_aid_answers_the_apt(card: SecureElement, aid: bytes) -> None:
    response = card.transmit(bytes.fromhex("00A40400") + bytes((len(aid),)) + aid)
    assert sw_of(response) == 0x9000  # with no Le: PIV middleware sends it so
    apt, end = decode_tlv(response[:-2])
    assert apt.tag == 0x61 and end == len(response) - 2
    objects = decode_tlvs(apt.value)
    assert find_tlv(objects, 0x4F).value == bytes.fromhex("000010000100")  # type: ignore[union-attr]
    authority = find_tlv(objects, 0x79)
    assert authority is not None and decode_tlvs(authority.value)[0].value == PIV_AID[:5]
    algorithms = find_tlv(objects, 0xAC)
    assert algorithms is not None
    offered = {t.value for t in decode_tlvs(algorithms.value) if t.tag == 0x80}
    assert {b"\x11", b"\x14", b"\x0a"} <= offered


def test_default_objects_are_well_formed_and_per_card(piv: PivClient) -> None:
    discovery = piv.get_object(0x7E)
    assert discovery == bytes.fromhex("7E124F0BA0000003080000100001005F2F024000")
    chuid = decode_tlvs(decode_tlv(piv.get_object(0x5FC102))[0].value)
    assert [t.tag for t in chuid] == [0x30, 0x34, 0x35, 0x3E, 0xFE]
    assert len(chuid[0].value) == 25 and len(chuid[1].value) == 16
    other = PivClient(SecureElement.fabricate())
    other.select()
    assert other.get_object(0x5FC102) != piv.get_object(0x5FC102)  # the GUID is per chip
    ccc = decode_tlvs(decode_tlv(piv.get_object(0x5FC107))[0].value)
    assert ccc[0].tag == 0xF0 and ccc[0].value.startswith(bytes.fromhex("A000000116"))


def test_absent_object_is_6a82_and_pin_protected_objects_need_the_pin(
    piv: PivClient, card: SecureElement
) -> None:
    with refused(0x6A82):
        piv.get_object(0x5FC105)  # no 9A certificate yet
    piv.authenticate(ADMIN)
    piv.put_object(0x5FC109, encode_tlv(0x01, b"printed"))
    piv.select()
    with refused(0x6982):
        piv.get_object(0x5FC109)
    piv.verify_pin(PIN)
    assert b"printed" in piv.get_object(0x5FC109)


# --- PIN and PUK --------------------------------------------------------------------------------


def test_verify_without_data_reports_retries_then_9000_once_verified(
    piv: PivClient, card: SecureElement
) -> None:
    assert piv.pin_retries() == 3
    piv.verify_pin(PIN)
    assert piv.pin_retries() == -1  # 9000: verified
    # VERIFY P1 FF clears the security status (SP 800-73-4 Part 2 §3.2.1).
    assert send(card, "0020FF80") == bytes.fromhex("9000")
    assert piv.pin_retries() == 3


def test_wrong_pin_to_blocking_then_puk_unblocks(piv: PivClient, card: SecureElement) -> None:
    for left in (2, 1, 0):
        with refused(0x63C0 | left):
            piv.verify_pin("654321")
    with refused(0x6983):
        piv.verify_pin(PIN)  # the right PIN no longer helps
    assert sw_of(send(card, "00200080")) == 0x6983
    with refused(0x6983):
        piv.change_pin(PIN, "111111")
    with refused(0x63C2):
        piv.unblock_pin("87654321", "222222")  # wrong PUK costs a PUK try
    piv.unblock_pin(PUK, "222222")
    assert piv.pin_retries() == 3
    with refused(0x63C2):
        piv.verify_pin(PIN)  # the old PIN is gone
    piv.verify_pin("222222")


def test_wrong_puk_to_blocking(piv: PivClient) -> None:
    for left in (2, 1, 0):
        with refused(0x63C0 | left):
            piv.unblock_pin("00000000", "333333")
    with refused(0x6983):
        piv.unblock_pin(PUK, "333333")
    with refused(0x6983):
        piv.change_puk(PUK, "11111111")
    piv.verify_pin(PIN)  # the PIN itself is untouched


def test_a_good_pin_resets_the_counter(piv: PivClient) -> None:
    with refused(0x63C2):
        piv.verify_pin("000000")
    piv.verify_pin(PIN)
    piv.select()
    assert piv.pin_retries() == 3


def test_change_pin_and_puk(piv: PivClient) -> None:
    piv.change_pin(PIN, "24681357")
    piv.select()
    piv.verify_pin("24681357")
    piv.change_puk(PUK, "99887766")
    for left in (2, 1, 0):
        with refused(0x63C0 | left):
            piv.verify_pin(PIN)
    piv.unblock_pin("99887766", PIN)
    piv.verify_pin(PIN)


@pytest.mark.parametrize("bad", ["12345", "123456789", "12a456", ""])
def test_malformed_new_pin_is_6a80_and_costs_no_try(piv: PivClient, bad: str) -> None:
    with pytest.raises((SecureElementError, ValueError)):
        piv.change_pin(PIN, bad)
    assert piv.pin_retries() == 3


def test_pin_commands_refuse_bad_references_and_lengths(card: SecureElement) -> None:
    PivClient(card).select()
    assert sw_of(send(card, "00200000", b"123456\xff\xff")) == 0x6A88  # global PIN: none
    assert sw_of(send(card, "00200081", b"12345678")) == 0x6A88  # PUK is not VERIFYed
    assert sw_of(send(card, "00200080", b"123456")) == 0x6A80  # not padded to 8
    assert sw_of(send(card, "00201080", b"123456\xff\xff")) == 0x6A86
    assert sw_of(send(card, "0020FF80", b"1")) == 0x6700
    assert sw_of(send(card, "00240080", b"123456\xff\xff")) == 0x6A80
    assert sw_of(send(card, "002C0081", bytes(16))) == 0x6A88


# --- the administration key ---------------------------------------------------------------------


def test_mutual_authentication_against_pycas_aes(card: SecureElement) -> None:
    PivClient(card).select()
    step1 = send(card, "0087 0A 9B".replace(" ", ""), bytes.fromhex("7C028000"))
    assert sw_of(step1) == 0x9000
    encrypted = decode_tlvs(decode_tlv(step1[:-2])[0].value)[0].value
    decryptor = Cipher(algorithms.AES(ADMIN), modes.ECB()).decryptor()  # noqa: S305
    witness = decryptor.update(encrypted) + decryptor.finalize()
    challenge = bytes(range(16))
    body = encode_tlv(0x7C, encode_tlv(0x80, witness) + encode_tlv(0x81, challenge))
    step2 = send(card, "00870A9B", body)
    assert sw_of(step2) == 0x9000
    answer = decode_tlvs(decode_tlv(step2[:-2])[0].value)[0]
    assert answer.tag == 0x82 and answer.value == ecb_encrypt(ADMIN, challenge)
    # Now GENERATE is allowed; replaying step 2 is not a step of any exchange.
    assert sw_of(send(card, "0047009A", bytes.fromhex("AC03800111"))) == 0x9000
    assert sw_of(send(card, "00870A9B", body)) == 0x6A80


def test_external_authentication(card: SecureElement) -> None:
    PivClient(card).select()
    step1 = send(card, "00870A9B", bytes.fromhex("7C028100"))
    challenge = decode_tlvs(decode_tlv(step1[:-2])[0].value)[0].value
    wrong = encode_tlv(0x7C, encode_tlv(0x82, ecb_encrypt(bytes(24), challenge)))
    assert sw_of(send(card, "00870A9B", wrong)) == 0x6982
    step1 = send(card, "00870A9B", bytes.fromhex("7C028100"))
    challenge = decode_tlvs(decode_tlv(step1[:-2])[0].value)[0].value
    right = encode_tlv(0x7C, encode_tlv(0x82, ecb_encrypt(ADMIN, challenge)))
    assert send(card, "00870A9B", right) == bytes.fromhex("9000")
    assert sw_of(send(card, "0047009E", bytes.fromhex("AC03800111"))) == 0x9000


def test_wrong_management_key_is_refused_and_grants_nothing(
    piv: PivClient, card: SecureElement
) -> None:
    with refused(0x6982):
        piv.authenticate(bytes(24))  # the witness decrypts to garbage: the card says 6982
    assert sw_of(send(card, "0047009A", bytes.fromhex("AC03800111"))) == 0x6982
    assert sw_of(send(card, "00DB3FFF", bytes.fromhex("5C035FC1055300"))) == 0x6982
    assert sw_of(send(card, "00FFFFFF", bytes((0x08, 0x9B, 16)) + bytes(16))) == 0x6982
    with refused(0x6A86):
        piv.authenticate(bytes(16), 0x08)  # not the key's algorithm
    assert sw_of(send(card, "00870A9B", bytes.fromhex("7C028200"))) == 0x6A80  # no step 1


def test_a_card_with_another_key_is_detected_by_the_host(card: SecureElement) -> None:
    piv = PivClient(card)
    piv.select()
    piv.authenticate(ADMIN)
    new_key = bytes(range(32))
    piv.set_management_key(new_key, 0x0C)
    piv.select()
    with refused(0x6A86):
        piv.authenticate(ADMIN, 0x0A)
    piv.authenticate(new_key, 0x0C)


def test_host_refuses_a_card_that_answers_the_wrong_challenge(card: SecureElement) -> None:
    class Tampering:
        def transmit(self, command: bytes) -> bytes:
            response = card.transmit(command)
            if command[1] == 0x87 and b"\x81\x10" in command:
                return response[:-3] + bytes((response[-3] ^ 1,)) + response[-2:]
            return response

    piv = PivClient(Tampering())
    piv.select()
    with pytest.raises(VerificationError):
        piv.authenticate(ADMIN)


@pytest.mark.parametrize(("algorithm", "length"), [(0x08, 16), (0x0A, 24), (0x0C, 32), (0x03, 24)])
def test_set_management_key(card: SecureElement, algorithm: int, length: int) -> None:
    piv = PivClient(card)
    piv.select()
    piv.authenticate(ADMIN)
    key = bytes(range(1, length + 1))
    piv.set_management_key(key, algorithm)
    piv.select()
    piv.authenticate(key, algorithm)
    piv.generate(0x9D)


def test_set_management_key_refuses_bad_keys(piv: PivClient, card: SecureElement) -> None:
    piv.authenticate(ADMIN)
    for data in ("089B10" + "00" * 15, "099B10" + "00" * 16, "089A10" + "00" * 16, "08"):
        assert sw_of(send(card, "00FFFFFF", bytes.fromhex(data))) == 0x6A80
    assert sw_of(send(card, "00FFFFFE", bytes.fromhex("089B10" + "00" * 16))) == 0x6A86
    piv.select()
    piv.authenticate(ADMIN)  # unchanged


def test_reselecting_clears_pin_and_administrator(piv: PivClient, card: SecureElement) -> None:
    piv.authenticate(ADMIN)
    piv.generate(0x9A)
    piv.verify_pin(PIN)
    piv.select()
    with refused(0x6982):
        piv.generate(0x9A)
    with refused(0x6982):
        piv.sign(0x9A, Curve.P256, bytes(32))
    card.reset()
    piv.select()
    assert piv.pin_retries() == 3


# --- keys ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("curve", [Curve.P256, Curve.P384])
@pytest.mark.parametrize("slot", [0x9A, 0x9C, 0x9D, 0x9E])
def test_generate_and_sign_by_slot(piv: PivClient, curve: Curve, slot: int) -> None:
    piv.authenticate(ADMIN)
    public = piv.generate(slot, curve)
    assert piv.public_key(slot) == (curve, public)
    piv.verify_pin(PIN)
    digest = hashlib.sha384(b"by slot").digest()[: curve.coordinate_size]
    signature = piv.sign(slot, curve, digest)
    verify(public, signature, digest)
    with pytest.raises(InvalidSignature):
        verify(public, signature, bytes(len(digest)))


def test_a_short_digest_signs_as_ecdsa_truncation_defines(piv: PivClient) -> None:
    piv.authenticate(ADMIN)
    public = piv.generate(0x9A, Curve.P384)
    piv.verify_pin(PIN)
    digest = hashlib.sha256(b"sha-256 with p-384").digest()
    signature = piv.sign(0x9A, Curve.P384, digest)
    public.verify(signature, digest, ec.ECDSA(utils.Prehashed(hashes.SHA256())))  # OpenSSL


def test_pin_policies_by_slot(piv: PivClient) -> None:
    piv.authenticate(ADMIN)
    for slot in (0x9A, 0x9C, 0x9E):
        piv.generate(slot)
    digest = bytes(32)
    piv.sign(0x9E, Curve.P256, digest)  # card authentication: no PIN
    with refused(0x6982):
        piv.sign(0x9A, Curve.P256, digest)  # signing without PIN
    piv.verify_pin(PIN)
    piv.sign(0x9A, Curve.P256, digest)
    piv.sign(0x9A, Curve.P256, digest)  # PIN once
    piv.sign(0x9C, Curve.P256, digest)
    with refused(0x6982):
        piv.sign(0x9C, Curve.P256, digest)  # digital signature: PIN before every use
    piv.verify_pin(PIN)
    piv.sign(0x9C, Curve.P256, digest)


def test_ecdh_matches_pyca(piv: PivClient, card: SecureElement) -> None:
    piv.authenticate(ADMIN)
    public = piv.generate(0x9D, Curve.P384)
    piv.verify_pin(PIN)
    peer = ec.generate_private_key(ec.SECP384R1())
    assert piv.ecdh(0x9D, Curve.P384, peer.public_key()) == peer.exchange(ec.ECDH(), public)
    other = ec.generate_private_key(ec.SECP256R1())
    with refused(0x6A86):
        piv.ecdh(0x9D, Curve.P256, other.public_key())  # a P-256 exchange on a P-384 key
    point = bytearray(
        peer.public_key().public_bytes(
            serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
        )
    )
    point[-1] ^= 1  # off the curve
    body = encode_tlv(0x7C, encode_tlv(0x82, b"") + encode_tlv(0x85, bytes(point)))
    assert sw_of(send(card, "0087149D", body)) == 0x6A80


def test_curve_mismatch_and_unknown_slots(piv: PivClient, card: SecureElement) -> None:
    piv.authenticate(ADMIN)
    piv.generate(0x9E, Curve.P256)
    with refused(0x6A86):
        piv.sign(0x9E, Curve.P384, bytes(48))  # P1 14 names P-384: not this key
    body = encode_tlv(0x7C, encode_tlv(0x82, b"") + encode_tlv(0x81, bytes(48)))
    assert sw_of(send(card, "0087119E", body)) == 0x6A80  # a P-384 digest to a P-256 key
    assert sw_of(send(card, "0087119A", body)) == 0x6A88  # empty slot
    assert sw_of(send(card, "00871155", body)) == 0x6A86  # no such key reference
    assert sw_of(send(card, "00470055", bytes.fromhex("AC03800111"))) == 0x6A86
    assert sw_of(send(card, "00470095", bytes.fromhex("AC03800111"))) == 0x6A86
    assert sw_of(send(card, "0047009A", bytes.fromhex("AC03800107"))) == 0x6A80  # RSA 2048
    assert sw_of(send(card, "00F70055")) == 0x6A86
    assert sw_of(send(card, "00F7009C")) == 0x6A88


@pytest.mark.parametrize(
    ("header", "data"),
    [
        ("0087119E", "7C"),  # truncated template
        ("0087119E", "7C05820081"),  # inner length runs past the end
        ("0087119E", "7D028200"),  # not a 7C template
        ("0087119E", "7C028200"),  # neither 81 nor 85
        ("0087119E", "7C0682008100850100"),  # both 81 and 85
        ("0087119E", "7C0282007C00"),  # bytes after the template
        ("0047009E", "AC"),
        ("0047009E", "AB03800111"),
        ("0047009E", "AC03810111"),  # no algorithm (80)
        ("0047009E", "AC068001110AA0104"),
        ("0047009E", "AC06800111AB0102"),  # touch "always": no sensor here
        ("00CB3FFF", "5C"),
        ("00CB3FFF", "5C035FC1"),
        ("00CB3FFF", "5D035FC105"),
        ("00CB3FFF", "5C00"),
        ("00CB3FFF", "5C045F5FC105"),
        ("00DB3FFF", "5C035FC105"),
        ("00DB3FFF", "5C035FC1055301"),
        ("00DB3FFF", "5C035FC105540100"),
        ("00DB3FFF", "5C035FC10553010000"),  # a byte after the object
        ("00DB3FFF", "5C03123456530100"),  # not a PIV object
    ],
)
def test_malformed_tlv_is_6a80(piv: PivClient, card: SecureElement, header: str, data: str) -> None:
    piv.authenticate(ADMIN)
    piv.generate(0x9E)
    raw = bytes.fromhex(data) if len(data) % 2 == 0 else bytes.fromhex(data + "0")
    assert sw_of(send(card, header, raw)) == 0x6A80
    assert card.transmit(bytes.fromhex("00A4040005") + PIV_AID[:5])[-2:] == b"\x90\x00"


def test_instructions_outside_the_card_edge(piv: PivClient, card: SecureElement) -> None:
    assert sw_of(send(card, "80CB3FFF", bytes.fromhex("5C017E"))) == 0x6E00
    assert sw_of(send(card, "00FE0000")) == 0x6D00  # no IMPORT: keys are born on the card
    assert sw_of(send(card, "00CB0000", bytes.fromhex("5C017E"))) == 0x6A86
    assert sw_of(send(card, "00DB0000", bytes.fromhex("5C017E"))) == 0x6A86


# --- data objects -------------------------------------------------------------------------------


def _certificate(public: ec.EllipticCurvePublicKey) -> x509.Certificate:
    issuer = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "piv test")])
    now = datetime(2026, 1, 1, tzinfo=UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(public)
        .serial_number(7)
        .not_valid_before(now)
        .not_valid_after(now + timedelta(days=1))
        .sign(issuer, hashes.SHA256())
    )


def test_certificate_object_round_trip_chained_and_deleted(
    piv: PivClient, card: SecureElement
) -> None:
    piv.authenticate(ADMIN)
    certificate = _certificate(piv.generate(0x9A))
    piv.write_certificate(0x9A, certificate)
    assert piv.read_certificate(0x9A) == certificate
    # The same object sent as a short-APDU command chain (CLA 10), as yubico-piv-tool does.
    der = certificate.public_bytes(serialization.Encoding.DER)
    value = encode_tlv(0x70, der) + encode_tlv(0x71, b"\x00") + encode_tlv(0xFE, b"")
    data = bytes.fromhex("5C035FC10B") + encode_tlv(0x53, value)
    for start in range(0, len(data), 200):
        block = data[start : start + 200]
        cla = 0x10 if start + 200 < len(data) else 0x00
        assert sw_of(card.transmit(bytes((cla, 0xDB, 0x3F, 0xFF, len(block))) + block)) == 0x9000
    assert piv.read_certificate(0x9D) == certificate
    # GET DATA with short Le: the rest comes by GET RESPONSE (61xx).
    first = card.transmit(bytes.fromhex("00CB3FFF055C035FC10B00"))
    assert len(first) == 258 and first[-2] == 0x61
    piv.put_object(0x5FC105, b"")
    with refused(0x6A82):
        piv.read_certificate(0x9A)


def test_discovery_object_is_written_without_a_tag_list(
    piv: PivClient, card: SecureElement
) -> None:
    piv.authenticate(ADMIN)
    new = encode_tlv(0x7E, encode_tlv(0x4F, PIV_AID) + encode_tlv(0x5F2F, b"\x40\x10"))
    assert send(card, "00DB3FFF", new) == bytes.fromhex("9000")
    assert piv.get_object(0x7E) == new


def test_an_oversized_object_is_6a84(piv: PivClient) -> None:
    piv.authenticate(ADMIN)
    with refused(0x6A84):
        piv.put_object(0x5FC105, bytes(4000))


# --- the Yubico extensions ----------------------------------------------------------------------


def test_version_serial_and_metadata(piv: PivClient, card: SecureElement) -> None:
    assert send(card, "00FD0000") == bytes((5, 4, 3)) + b"\x90\x00"
    serial = send(card, "00F80000")
    assert sw_of(serial) == 0x9000 and len(serial) == 6 and serial[0] < 0x80
    admin = decode_tlvs(send(card, "00F7009B")[:-2])
    assert (admin[0].tag, admin[0].value) == (0x01, b"\x0a")
    assert find_tlv(admin, 0x05).value == b"\x01"  # type: ignore[union-attr] # still the default
    pin = decode_tlvs(send(card, "00F70080")[:-2])
    assert find_tlv(pin, 0x06).value == b"\x03\x03"  # type: ignore[union-attr]


# --- flash --------------------------------------------------------------------------------------


def test_piv_state_survives_power_cycles(tmp_path: Path) -> None:
    silicon = Silicon.fabricate()
    silicon.save(tmp_path / "chip")
    card = SecureElement.fabricate(silicon=silicon, flash=SealedFlash(tmp_path / "flash"))
    piv = PivClient(card)
    piv.select()
    piv.authenticate(ADMIN)
    public = piv.generate(0x9A, Curve.P384)
    with refused(0x63C2):
        piv.verify_pin("000000")
    again = PivClient(SecureElement.open(tmp_path / "chip", tmp_path / "flash"))
    again.select()
    assert again.pin_retries() == 2
    again.verify_pin(PIN)
    signer = PivSigner(again, 0x9A)
    signature = signer.sign(b"after a restart")
    public.verify(signature, b"after a restart", ec.ECDSA(hashes.SHA384()))
    assert b"after a restart" not in (tmp_path / "flash").read_bytes()


def test_a_state_written_before_the_piv_applet_reads_as_factory_fresh() -> None:
    silicon = Silicon.fabricate()
    card = SecureElement.fabricate(silicon=silicon)
    doc = json.loads(card.flash.read(silicon))
    del doc["piv"]
    fresh = CardState.from_bytes(json.dumps(doc).encode())
    assert fresh.piv.pin.left == 3 and not fresh.piv.keys
    assert CardState.from_bytes(fresh.to_bytes()).piv.to_doc() == fresh.piv.to_doc()


def test_tamper_forgets_the_piv_keys() -> None:
    silicon = Silicon.fabricate()
    card = SecureElement.fabricate(silicon=silicon)
    piv = PivClient(card)
    piv.select()
    piv.authenticate(ADMIN)
    piv.generate(0x9A)
    assert CardState.from_bytes(card.flash.read(silicon)).piv.keys
    card.tamper(TamperEvent.MESH)
    state = CardState.from_bytes(card.flash.read(silicon))
    assert not state.piv.keys and state.piv.pin.left == 0
