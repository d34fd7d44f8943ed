"""The client sizes its commands to the card: the ISD FCI '9F65' limit (GPCS §11.9.3.1), extended
STORE DATA in one command, Le on R-MAC'd commands (no 61xx / GET RESPONSE), extended Le on ATTEST.

Every check reads back what the card stored (GET DATA), so a short-APDU client and an extended
one are shown to leave the same objects on the card, and the wire is recorded to count APDUs.
"""

from __future__ import annotations

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from fleetid.errors import ReferencedDataNotFoundError, SecureElementError, SecurityStatusError
from fleetid.formats.apdu import parse_command
from fleetid.formats.attestation import KeyUsage
from fleetid.formats.tlv import encode_tlv
from fleetid.se.card import SecureElement
from fleetid.se.client import SecureElementClient, _max_command_data
from fleetid.se.scp03 import StaticKeys
from fleetid.se.state import CardLifeCycle, Curve
from fleetid.se.wire import ISD_AID, PersonalisationObject
from fleetid.sim.test_card import DemoManufacturer

KEYS = StaticKeys(b"\x10" * 16, b"\x20" * 16, b"\x30" * 16)
KVN = 0x30


class _Recorder:
    """Passes APDUs to a card and records the commands."""

    def __init__(self, card: SecureElement) -> None:
        self.card = card
        self.sent: list[bytes] = []

    def transmit(self, command: bytes) -> bytes:
        self.sent.append(command)
        return self.card.transmit(command)

    def ins(self) -> list[int]:
        return [c[1] for c in self.sent]


@pytest.fixture(scope="module")
def manufacturer() -> DemoManufacturer:
    return DemoManufacturer.create()


def _card() -> SecureElement:
    return SecureElement.fabricate(keysets={KVN: KEYS})


def _der(certificates: list[x509.Certificate]) -> bytes:
    return b"".join(c.public_bytes(serialization.Encoding.DER) for c in certificates)


def _personalise(
    client: SecureElementClient,
    manufacturer: DemoManufacturer,
    anchors: list[x509.Certificate] | None = None,
) -> tuple[list[x509.Certificate], list[x509.Certificate]]:
    """As the line does: attestation key on card, then STORE DATA chain, anchors, firmware key.
    Returns (chain, anchors); the default anchors make the payload need many short blocks."""
    client.select_identity()
    client.open_secure_channel(KEYS, 0x33, key_version=KVN)
    public_key = client.generate_attestation_key(Curve.P256)
    device = manufacturer.certify_attestation_key(public_key, b"\x01" * 10)
    chain = [device, manufacturer.ca_certificate, manufacturer.root_certificate]
    anchors = anchors or [manufacturer.root_certificate, manufacturer.ca_certificate] * 2
    firmware = ec.generate_private_key(ec.SECP256R1()).public_key()
    client.select_isd()
    client.open_secure_channel(KEYS, 0x33, key_version=KVN)
    client.store_data(
        [
            (PersonalisationObject.ATTESTATION_CHAIN[0], _der(chain)),
            (PersonalisationObject.TRUST_ANCHORS[0], _der(anchors)),
            (
                PersonalisationObject.FIRMWARE_KEY[0],
                firmware.public_bytes(
                    serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
                ),
            ),
        ]
    )
    return chain, anchors


# --- the FCI limit ---


def test_the_isd_fci_says_extended_and_the_client_learns_it() -> None:
    client = SecureElementClient(_card())
    assert client.max_command_data == 255 and not client.extended_length
    fci = client.select_isd()
    assert _max_command_data(fci) == 0xFFFF
    assert client.max_command_data == 0xFFFF and client.extended_length


def test_a_fixed_limit_is_not_overridden_by_the_fci() -> None:
    client = SecureElementClient(_card(), max_command_data=255)
    client.select_isd()
    assert client.max_command_data == 255 and not client.extended_length


@pytest.mark.parametrize(
    ("fci", "limit"),
    [
        (
            encode_tlv(
                0x6F, encode_tlv(0x84, ISD_AID) + encode_tlv(0xA5, bytes.fromhex("9F6501FF"))
            ),
            255,
        ),
        (encode_tlv(0x6F, encode_tlv(0xA5, bytes.fromhex("9F65020400"))), 1024),
        # No proprietary template, no 9F65, a 3-byte value, not an FCI, not TLV at all: unknown.
        (encode_tlv(0x6F, encode_tlv(0x84, ISD_AID)), None),
        (encode_tlv(0x6F, encode_tlv(0xA5, bytes.fromhex("9F6E0100"))), None),
        (encode_tlv(0x6F, encode_tlv(0xA5, bytes.fromhex("9F6503010000"))), None),
        (encode_tlv(0x62, encode_tlv(0xA5, bytes.fromhex("9F6501FF"))), None),
        (b"\x6f\x05\xa5", None),
        (b"", None),
    ],
)
def test_fci_limit_parsing(fci: bytes, limit: int | None) -> None:
    assert _max_command_data(fci) == limit


def test_an_fci_without_a_limit_keeps_the_short_default() -> None:
    class _ShortCard:
        """A card whose ISD FCI has no '9F65': the client must stay with short APDUs."""

        def transmit(self, command: bytes) -> bytes:
            assert parse_command(command).ins == 0xA4
            return encode_tlv(0x6F, encode_tlv(0x84, ISD_AID)) + b"\x90\x00"

    client = SecureElementClient(_ShortCard())
    client.select_isd()
    assert not client.extended_length


# --- STORE DATA ---


def test_extended_store_data_is_one_command_and_stores_what_short_blocks_store(
    manufacturer: DemoManufacturer,
) -> None:
    results = {}
    for limit in (None, 255):
        recorder = _Recorder(_card())
        client = SecureElementClient(recorder, max_command_data=limit)
        chain, anchors = _personalise(client, manufacturer)
        store = [parse_command(c) for c in recorder.sent if c[1] == 0xE2]
        # P1: DGI format (b5-b4 = 01), b8 only on the last block; P2 numbers the blocks.
        assert [c.p2 for c in store] == list(range(len(store)))
        assert [c.p1 for c in store] == [0x08] * (len(store) - 1) + [0x88]
        assert 0xC0 not in recorder.ins()  # no GET RESPONSE: Le asked for the R-MAC
        client.select_identity()
        assert client.attestation_chain() == chain
        assert client.trust_anchors() == anchors
        results[limit] = (len(store), store[0].extended)
    assert results[None] == (1, True)
    blocks, extended = results[255]
    assert blocks > 8 and not extended


def test_short_blocks_fit_a_short_apdu_after_secure_messaging(
    manufacturer: DemoManufacturer,
) -> None:
    recorder = _Recorder(_card())
    _personalise(SecureElementClient(recorder, max_command_data=255), manufacturer)
    assert all(len(c) <= 5 + 255 + 1 for c in recorder.sent)


def test_extended_store_data_past_the_card_buffer_is_refused(
    manufacturer: DemoManufacturer,
) -> None:
    """The card's STORE DATA sequence limit (32 KB) still holds for one big command: 6A84."""
    card = _card()
    client = SecureElementClient(card)
    anchors = [manufacturer.root_certificate, manufacturer.ca_certificate] * 40
    assert len(_der(anchors)) > 32 * 1024
    with pytest.raises(SecureElementError) as caught:
        _personalise(client, manufacturer, anchors)
    assert caught.value.sw == 0x6A84
    client.select_identity()
    # all or nothing: neither anchors nor chain were stored
    with pytest.raises(ReferencedDataNotFoundError):
        client.trust_anchors()
    with pytest.raises(ReferencedDataNotFoundError):
        client.attestation_chain()


# --- Le under R-MAC ---


def test_set_status_under_r_mac_asks_le_and_needs_no_get_response() -> None:
    recorder = _Recorder(_card())
    client = SecureElementClient(recorder)
    client.select_isd()
    client.open_secure_channel(KEYS, 0x33, key_version=KVN)
    client.set_status(CardLifeCycle.INITIALIZED)
    command = parse_command(recorder.sent[-1])
    assert command.ins == 0xF0 and command.ne == 256
    assert 0xC0 not in recorder.ins()
    assert recorder.card.life_cycle is CardLifeCycle.INITIALIZED


def test_without_r_mac_no_le_is_added() -> None:
    """Level 03 (C-MAC, C-DEC, no R-MAC): the case-1 SET STATUS stays without Le."""
    recorder = _Recorder(_card())
    client = SecureElementClient(recorder)
    client.select_isd()
    client.open_secure_channel(KEYS, 0x03, key_version=KVN)
    client.set_status(CardLifeCycle.INITIALIZED)
    assert parse_command(recorder.sent[-1]).ne is None
    assert recorder.card.life_cycle is CardLifeCycle.INITIALIZED


def test_outside_a_session_no_le_is_added() -> None:
    """No session, so no R-MAC: SET STATUS goes as the plain case-1 command (and is refused)."""
    recorder = _Recorder(_card())
    client = SecureElementClient(recorder)
    client.select_isd()
    with pytest.raises(SecurityStatusError):
        client.set_status(CardLifeCycle.INITIALIZED)
    assert recorder.sent[-1] == bytes.fromhex("80F08007")
    assert recorder.card.life_cycle is CardLifeCycle.OP_READY


# --- ATTEST ---


def test_attest_comes_back_in_one_response_on_an_extended_card(
    manufacturer: DemoManufacturer,
) -> None:
    for limit, exchanges in ((None, 1), (255, 3)):
        recorder = _Recorder(_card())
        client = SecureElementClient(recorder, max_command_data=limit)
        _personalise(client, manufacturer)
        client.select_identity()
        client.open_secure_channel(KEYS, 0x33, key_version=KVN)
        info = client.generate_key(Curve.P256, KeyUsage.SIGN)
        before = len(recorder.sent)
        certificate = client.attest(info.handle, b"\x42" * 32)
        assert len(recorder.sent) - before == exchanges
        assert certificate.public_key() == info.public_key
