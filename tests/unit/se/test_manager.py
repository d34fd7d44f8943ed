"""The card manager (GP ISD): GET DATA, GET STATUS, PUT KEY, STORE DATA, SET STATUS, life cycle."""

from __future__ import annotations

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from fleetid.errors import (
    ConditionsNotSatisfiedError,
    IncorrectDataError,
    IncorrectParametersError,
    ReferencedDataNotFoundError,
    SecureElementError,
    SecurityStatusError,
)
from fleetid.formats.apdu import CommandApdu
from fleetid.formats.tlv import Tlv, decode_tlv, decode_tlvs, encode_dgi, encode_tlv
from fleetid.se.card import SecureElement
from fleetid.se.client import SecureElementClient
from fleetid.se.scp03 import HostSession, StaticKeys, aes_key_component, encrypt_key_component
from fleetid.se.state import CardLifeCycle
from fleetid.se.wire import PersonalisationObject
from fleetid.sim.test_card import ManufacturedCard, manufacture_test_card

KEYS = StaticKeys(bytes(range(16)), bytes(range(16, 32)), bytes(range(32, 48)))
NEW_KEYS = StaticKeys(b"\xa1" * 16, b"\xb2" * 16, b"\xc3" * 16)
L = CardLifeCycle


@pytest.fixture
def fresh() -> ManufacturedCard:
    """Personalised (attestation key and chain installed), still in OP_READY."""
    return manufacture_test_card(keys=KEYS, ic_serial=bytes.fromhex("0102A0B0"), secure=False)


@pytest.fixture
def isd(fresh: ManufacturedCard) -> SecureElementClient:
    client = SecureElementClient(fresh.card)
    client.select_isd()
    client.open_secure_channel(KEYS, 0x33)
    return client


# --- GET DATA / GET STATUS ------------------------------------------------------------------


def test_cplc_carries_the_chip_serial(fresh: ManufacturedCard) -> None:
    client = SecureElementClient(fresh.card)
    cplc = client.cplc()
    assert cplc.ic_serial == bytes.fromhex("0102A0B0")
    assert client.chip_serial() == cplc.kdd and cplc.kdd.endswith(cplc.ic_serial)
    raw = fresh.card.transmit(bytes.fromhex("80CA9F7F00"))
    assert raw[:3] == bytes.fromhex("9F7F2A") and raw[3 + 12 : 3 + 16] == bytes.fromhex("0102A0B0")


def test_chip_serials_differ_between_cards() -> None:
    serials = {manufacture_test_card(secure=False).card.chip_serial for _ in range(8)}
    assert len(serials) == 8


def test_key_information_template(fresh: ManufacturedCard) -> None:
    client = SecureElementClient(fresh.card)
    assert client.key_information() == [
        (1, 0x30, 0x88, 16),
        (2, 0x30, 0x88, 16),
        (3, 0x30, 0x88, 16),
    ]


def test_get_data_unknown_tag_is_6a88(fresh: ManufacturedCard) -> None:
    assert fresh.card.transmit(bytes.fromhex("80CA00FF00")) == bytes.fromhex("6A88")


def test_get_status_reports_life_cycle(isd: SecureElementClient) -> None:
    assert isd.life_cycle() is L.OP_READY
    isd.set_status(L.INITIALIZED)
    assert isd.life_cycle() is L.INITIALIZED


@pytest.mark.parametrize(("p1", "p2"), [(0x08, 0x02), (0x80, 0x00), (0x10, 0x01)])
def test_get_status_unknown_scopes_are_6a86(fresh: ManufacturedCard, p1: int, p2: int) -> None:
    raw = CommandApdu(0x80, 0xF2, p1, p2, b"\x4f\x00", 256).encode()
    assert fresh.card.transmit(raw) == bytes.fromhex("6A86")


# --- SET STATUS and the life cycle ------------------------------------------------------------


def test_life_cycle_forward_only(isd: SecureElementClient) -> None:
    with pytest.raises(ConditionsNotSatisfiedError):
        isd.set_status(L.SECURED)  # OP_READY cannot skip INITIALIZED
    isd.set_status(L.INITIALIZED)
    with pytest.raises(ConditionsNotSatisfiedError):
        isd.set_status(L.OP_READY)
    isd.set_status(L.SECURED)
    with pytest.raises(ConditionsNotSatisfiedError):
        isd.set_status(L.INITIALIZED)
    isd.set_status(L.CARD_LOCKED)
    isd.set_status(L.SECURED)  # GPCS §5.1.1.4: the ISD may unlock
    assert isd.life_cycle() is L.SECURED


def test_set_status_without_session_is_6982(fresh: ManufacturedCard) -> None:
    client = SecureElementClient(fresh.card)
    client.select_isd()
    with pytest.raises(SecurityStatusError):
        client.set_status(L.INITIALIZED)


def test_set_status_undefined_state_is_6a80(isd: SecureElementClient) -> None:
    with pytest.raises(IncorrectDataError):
        isd.send(CommandApdu(0x80, 0xF0, 0x80, 0x03))


def test_set_status_application_scope_is_6a86(isd: SecureElementClient) -> None:
    with pytest.raises(IncorrectParametersError):
        isd.send(CommandApdu(0x80, 0xF0, 0x40, 0x07, bytes.fromhex("F0464C45455449440101")))


def test_card_locked_lets_only_the_isd_be_selected(isd: SecureElementClient) -> None:
    isd.set_status(L.INITIALIZED)
    isd.set_status(L.SECURED)
    isd.set_status(L.CARD_LOCKED)
    with pytest.raises(ReferencedDataNotFoundError):
        isd.select_identity()
    isd.select_isd()


def test_terminated_card_answers_6a82_and_6985(fresh: ManufacturedCard) -> None:
    client = SecureElementClient(fresh.card)
    client.select_isd()
    client.open_secure_channel(KEYS, 0x33)
    client.set_status(L.TERMINATED)
    card = fresh.card
    assert card.life_cycle is L.TERMINATED
    for aid in ("A000000151000000", "F0464C45455449440101"):
        assert card.transmit(bytes.fromhex("00A4040008") + bytes.fromhex(aid)[:8]) == bytes.fromhex(
            "6A82"
        )
    for raw in ("80CA9F7F00", "8050300008" + "00" * 8 + "00", "80480001" + "20" + "00" * 32):
        assert card.transmit(bytes.fromhex(raw)) == bytes.fromhex("6985")


# --- PUT KEY ------------------------------------------------------------------------------------


def test_put_key_adds_a_key_set_that_then_opens_a_session(isd: SecureElementClient) -> None:
    isd.put_key(0x31, NEW_KEYS)
    kvns = {kvn for _, kvn, _, _ in isd.key_information()}
    assert kvns == {0x30, 0x31}
    isd.open_secure_channel(NEW_KEYS, 0x33, key_version=0x31)
    assert isd.life_cycle() is L.OP_READY


def test_put_key_replaces_a_key_set(isd: SecureElementClient) -> None:
    isd.put_key(0x31, NEW_KEYS, replace_kvn=0x30)
    assert {kvn for _, kvn, _, _ in isd.key_information()} == {0x31}
    with pytest.raises(SecureElementError):
        isd.open_secure_channel(KEYS, 0x33, key_version=0x30)
    isd.open_secure_channel(NEW_KEYS, 0x13, key_version=0x31)


def test_put_key_aes256(isd: SecureElementClient) -> None:
    keys = StaticKeys(b"\x01" * 32, b"\x02" * 32, b"\x03" * 32)
    isd.put_key(0x32, keys)
    isd.open_secure_channel(keys, 0x33, key_version=0x32)


def test_put_key_without_session_is_6982(fresh: ManufacturedCard) -> None:
    component = aes_key_component(
        encrypt_key_component(KEYS.dek, NEW_KEYS.enc), 16, NEW_KEYS.kcvs()[0]
    )
    raw = CommandApdu(0x80, 0xD8, 0x00, 0x81, b"\x31" + component * 3, 256).encode()
    assert fresh.card.transmit(raw) == bytes.fromhex("6982")


def test_put_key_with_bad_kcv_is_6a80(isd: SecureElementClient) -> None:
    session = isd.session
    assert session is not None
    good = [session.key_component(k) for k in (NEW_KEYS.enc, NEW_KEYS.mac, NEW_KEYS.dek)]
    bad = good[1][:-1] + bytes((good[1][-1] ^ 1,))
    with pytest.raises(IncorrectDataError):
        isd.put_key_components(0x31, [good[0], bad, good[2]])
    assert {kvn for _, kvn, _, _ in isd.key_information()} == {0x30}


@pytest.mark.parametrize(
    ("old", "new", "error"),
    [
        (0x00, 0x30, IncorrectDataError),  # create a KVN that exists
        (0x44, 0x31, ReferencedDataNotFoundError),  # replace a KVN that does not exist
        (0x00, 0x80, IncorrectDataError),  # KVN out of range
    ],
)
def test_put_key_kvn_rules(
    isd: SecureElementClient, old: int, new: int, error: type[SecureElementError]
) -> None:
    with pytest.raises(error):
        isd.put_key(new, NEW_KEYS, replace_kvn=old)


def test_put_key_non_aes_type_is_6a80(isd: SecureElementClient) -> None:
    session = isd.session
    assert session is not None
    block = bytearray(session.key_component(NEW_KEYS.enc))
    block[0] = 0x80  # DES
    with pytest.raises(IncorrectDataError):
        isd.put_key_components(0x31, [bytes(block)] * 3)


def test_put_key_single_key_p2_is_6a86(isd: SecureElementClient) -> None:
    session = isd.session
    assert session is not None
    with pytest.raises(IncorrectParametersError):
        isd.put_key_components(0x31, [session.key_component(NEW_KEYS.enc)])


def test_put_key_after_secured_replaces_keys(isd: SecureElementClient) -> None:
    isd.set_status(L.INITIALIZED)
    isd.set_status(L.SECURED)
    isd.put_key(0x31, NEW_KEYS, replace_kvn=0x30)  # key rotation stays possible
    isd.open_secure_channel(NEW_KEYS, 0x33, key_version=0x31)


# --- STORE DATA ---------------------------------------------------------------------------------


def test_store_data_firmware_key_and_read_back(fresh: ManufacturedCard) -> None:
    client = SecureElementClient(fresh.card)
    client.select_identity()
    client.open_secure_channel(KEYS, 0x33)
    key = ec.generate_private_key(ec.SECP256R1()).public_key()
    client.install_firmware_key(key)
    client.install_trust_anchors([fresh.manufacturer.root_certificate])
    assert client.trust_anchors() == [fresh.manufacturer.root_certificate]


def test_store_data_ber_tlv_structure(isd: SecureElementClient, fresh: ManufacturedCard) -> None:
    from cryptography.hazmat.primitives.serialization import Encoding

    der = fresh.manufacturer.root_certificate.public_bytes(Encoding.DER)
    payload = encode_tlv(0xDF02, der)
    blocks = [payload[i : i + 200] for i in range(0, len(payload), 200)]
    for n, block in enumerate(blocks):
        p1 = 0x10 | (0x80 if n == len(blocks) - 1 else 0)
        isd.send(CommandApdu(0x80, 0xE2, p1, n, block))
    isd.select_identity()
    assert isd.trust_anchors() == [fresh.manufacturer.root_certificate]


def test_store_data_without_session_is_6982(fresh: ManufacturedCard) -> None:
    raw = CommandApdu(0x80, 0xE2, 0x88, 0x00, encode_dgi(0x0F02, b"\x30\x00")).encode()
    assert fresh.card.transmit(raw) == bytes.fromhex("6982")


def test_store_data_blocks_out_of_order_are_6a86(isd: SecureElementClient) -> None:
    isd.send(CommandApdu(0x80, 0xE2, 0x08, 0x00, b"\x0f\x02"))
    with pytest.raises(IncorrectParametersError):
        isd.send(CommandApdu(0x80, 0xE2, 0x88, 0x02, b"\x01\x00"))
    with pytest.raises(IncorrectParametersError):
        isd.send(CommandApdu(0x80, 0xE2, 0x88, 0x01, b"\x01\x00"))  # sequence was dropped


@pytest.mark.parametrize("p1", [0x88 | 0x60, 0x88 | 0x20, 0x80, 0x98, 0x8A])
def test_store_data_unsupported_p1_is_6a86(isd: SecureElementClient, p1: int) -> None:
    with pytest.raises(IncorrectParametersError):
        isd.send(CommandApdu(0x80, 0xE2, p1, 0x00, encode_dgi(0x0F02, b"")))


@pytest.mark.parametrize(
    ("payload", "error"),
    [
        (encode_dgi(0x0F02, b"\x30\x03\x02\x01\x01"), IncorrectDataError),  # not a certificate
        (encode_dgi(0x0F03, b"\x30\x00"), IncorrectDataError),  # not an SPKI
        (encode_dgi(0x0A0A, b"\x00"), ReferencedDataNotFoundError),  # unknown object
        (b"\x0f\x02\x05\x00", IncorrectDataError),  # DGI runs past the end
        (encode_dgi(0x0F04, b"\x05" + b"\x30\x00"), IncorrectDataError),  # bad cert for slot 5
    ],
)
def test_store_data_bad_content(
    isd: SecureElementClient, payload: bytes, error: type[SecureElementError]
) -> None:
    with pytest.raises(error):
        isd.send(CommandApdu(0x80, 0xE2, 0x88, 0x00, payload))


def test_store_data_non_ecdsa_firmware_key_is_6a80(isd: SecureElementClient) -> None:
    from cryptography.hazmat.primitives.asymmetric import ed25519

    key = ed25519.Ed25519PrivateKey.generate().public_key()

    spki = key.public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
    with pytest.raises(IncorrectDataError):
        isd.store_data([(0x0F03, spki)])


def test_attestation_chain_must_certify_the_card_key(
    isd: SecureElementClient, fresh: ManufacturedCard
) -> None:
    other = manufacture_test_card(secure=False)
    with pytest.raises(IncorrectDataError):
        isd.install_attestation_chain(other.chain)
    isd.install_attestation_chain(fresh.chain)  # the right one still goes in


def _with_compressed_point(certificate: x509.Certificate) -> bytes:
    """The certificate's DER with its EC point in compressed form (RFC 5480 §2.2 allows it);
    the signature no longer covers it, which STORE DATA does not check."""
    der = certificate.public_bytes(Encoding.DER)
    outer = decode_tlvs(decode_tlv(der)[0].value)
    fields = decode_tlvs(outer[0].value)
    key = certificate.public_key()
    assert isinstance(key, ec.EllipticCurvePublicKey)
    algorithm = decode_tlvs(fields[6].value)[0]
    point = key.public_bytes(Encoding.X962, PublicFormat.CompressedPoint)
    fields[6] = Tlv(tag=0x30, value=algorithm.encode() + encode_tlv(0x03, b"\x00" + point))
    tbs = encode_tlv(0x30, b"".join(f.encode() for f in fields))
    return encode_tlv(0x30, tbs + outer[1].encode() + outer[2].encode())


def test_attestation_chain_may_write_the_card_key_compressed(
    isd: SecureElementClient, fresh: ManufacturedCard
) -> None:
    other = manufacture_test_card(secure=False)
    with pytest.raises(IncorrectDataError):  # compressed, and another card's key
        isd.store_data(
            [(PersonalisationObject.ATTESTATION_CHAIN[0], _with_compressed_point(other.chain[0]))]
        )
    leaf = _with_compressed_point(fresh.attestation_certificate)
    rest = fresh.manufacturer.ca_certificate.public_bytes(Encoding.DER)
    isd.store_data([(PersonalisationObject.ATTESTATION_CHAIN[0], leaf + rest)])
    isd.select_identity()
    assert [c.public_bytes(Encoding.DER) for c in isd.attestation_chain()] == [leaf, rest]


def test_personalisation_after_secured_is_6985(
    isd: SecureElementClient, fresh: ManufacturedCard
) -> None:
    isd.set_status(L.INITIALIZED)
    isd.set_status(L.SECURED)
    with pytest.raises(ConditionsNotSatisfiedError):
        isd.install_attestation_chain(fresh.chain)
    with pytest.raises(ConditionsNotSatisfiedError):
        isd.install_firmware_key(ec.generate_private_key(ec.SECP256R1()).public_key())
    isd.select_identity()
    isd.open_secure_channel(KEYS, 0x33)
    with pytest.raises(ConditionsNotSatisfiedError):
        isd.generate_attestation_key()


def test_initialize_update_unknown_kvn_is_6a88(fresh: ManufacturedCard) -> None:
    host = HostSession(KEYS, 0x33)
    assert fresh.card.transmit(host.initialize_update(0x55)) == bytes.fromhex("6A88")


def test_fabricated_card_starts_in_op_ready() -> None:
    card = SecureElement.fabricate(keysets={0x30: KEYS})
    client = SecureElementClient(card)
    assert client.life_cycle() is L.OP_READY
