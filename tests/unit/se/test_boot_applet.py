"""The signed-boot applet and the host boot routine.

The applet is driven through its ``Applet.process`` interface with a ``CommandContext`` (what the
card hands it after APDU parsing, chaining assembly and secure messaging); the boot routine is
driven against a stand-in client that calls the applet the way ``fleetid.se.client`` does.
"""

from __future__ import annotations

import os
import struct

import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from fleetid.crypto.signer import SoftwareSigner
from fleetid.device.boot import boot
from fleetid.errors import (
    BootRefusedError,
    ConditionsNotSatisfiedError,
    SecureElementError,
    SecurityStatusError,
)
from fleetid.formats.apdu import SW, CommandApdu, parse_response
from fleetid.formats.mcuboot import build_image, key_hash, parse_image
from fleetid.se.applets.base import CommandContext
from fleetid.se.applets.boot import MAX_IMAGE_SIZE, BootApplet
from fleetid.se.card import SecureElement, TamperEvent
from fleetid.se.client import SecureElementClient
from fleetid.se.keystore import SealedFlash, Silicon
from fleetid.se.scp03 import StaticKeys
from fleetid.se.state import CardState, Cplc
from fleetid.se.wire import (
    BOOT_AID,
    INS_GET_BOOT_STATE,
    INS_VERIFY_IMAGE,
    decode_boot_state,
    verify_image_commands,
)

FIRMWARE_KEY = ec.generate_private_key(ec.SECP256R1())
ROGUE_KEY = ec.generate_private_key(ec.SECP256R1())
FIRMWARE = b"\x00\xf0\x9f\x9a\x80 fleetid firmware " * 40


def _spki(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.public_key().public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)


def _image(counter: int | None = 5, key: ec.EllipticCurvePrivateKey = FIRMWARE_KEY) -> bytes:
    return build_image(
        FIRMWARE,
        SoftwareSigner(key),
        version="1.4.0+9",
        security_counter=counter,
        header_size=0x200,
    )


class Card:
    """One chip's boot applet with its flash state, counting persists."""

    def __init__(self, firmware_key: ec.EllipticCurvePrivateKey | None = FIRMWARE_KEY) -> None:
        self.state = CardState(cplc=Cplc(ic_serial=b"\x01\x02\x03\x04"))
        self.persisted = 0
        self.applet = BootApplet()
        self.applet.select(self.state)
        if firmware_key is not None:
            self.state.boot.verification_key = _spki(firmware_key)

    def _persist(self) -> None:
        self.persisted += 1

    def send(self, apdu: CommandApdu) -> bytes:
        ctx = CommandContext(state=self.state, persist=self._persist, proprietary=True)
        return self.applet.process(ctx, apdu).data

    def verify_image(self, image: bytes, *, confirm: bool = True) -> bytes:
        """What ``fleetid.se.client`` does: the card assembles chains, so send them joined."""
        commands = verify_image_commands(image, confirm=confirm, chaining=False)
        out = b""
        for command in commands:
            out = self.send(command)
        return out

    def sw_of(self, image: bytes, *, confirm: bool = True) -> int:
        with pytest.raises(SecureElementError) as caught:
            self.verify_image(image, confirm=confirm)
        return caught.value.sw

    def boot_state(self) -> tuple[int, bytes | None, bytes | None]:
        status = decode_boot_state(self.send(CommandApdu(0x80, INS_GET_BOOT_STATE, 0, 0, ne=256)))
        return status.security_counter, status.key_hash, status.measurement


def _flip(image: bytes, offset: int) -> bytes:
    out = bytearray(image)
    out[offset] ^= 0x01
    return bytes(out)


def _protected_offset(image: bytes) -> int:
    _, _, hdr, _, size = struct.unpack_from("<IIHHI", image)
    return hdr + size


# --- accepted images -------------------------------------------------------------------------


def test_verify_returns_the_measurement_and_confirm_raises_the_counter() -> None:
    card, image = Card(), _image(counter=5)
    assert card.verify_image(image, confirm=False) == _digest(image)
    assert card.boot_state() == (0, key_hash(FIRMWARE_KEY.public_key()), None)
    assert card.persisted == 0
    assert card.verify_image(image) == _digest(image)
    assert card.boot_state() == (5, key_hash(FIRMWARE_KEY.public_key()), _digest(image))
    assert card.state.boot.image_version == "1.4.0+9"
    assert card.persisted == 1


def _digest(image: bytes) -> bytes:
    return parse_image(image).digest


def test_equal_and_higher_counters_boot() -> None:
    card = Card()
    card.verify_image(_image(counter=5))
    card.verify_image(_image(counter=5))
    card.verify_image(_image(counter=9))
    assert card.boot_state()[0] == 9


def test_p384_firmware_key() -> None:
    key = ec.generate_private_key(ec.SECP384R1())
    card = Card(key)
    image = build_image(FIRMWARE, SoftwareSigner(key), version="2", security_counter=1)
    assert len(card.verify_image(image)) == 48


def test_chained_apdus_carry_cla_b5_and_multiblock_carries_p2() -> None:
    image = _image()
    chain = verify_image_commands(image, confirm=True)
    assert [c.cla for c in chain] == [0x90] * (len(chain) - 1) + [0x80]
    assert {c.p2 for c in chain} == {0x00}
    assert b"".join(c.data for c in chain) == image
    assert chain[-1].ne == 256 and all(c.ne is None for c in chain[:-1])
    blocks = verify_image_commands(image, confirm=False, chaining=False)
    assert [c.p2 for c in blocks] == [0x80] * (len(blocks) - 1) + [0x00]
    assert {(c.cla, c.ins, c.p1) for c in blocks} == {(0x80, INS_VERIFY_IMAGE, 0x00)}


def test_card_assembled_chain_is_one_command() -> None:
    card, image = Card(), _image()
    assert card.applet.accepts_chaining(INS_VERIFY_IMAGE)
    assert not card.applet.accepts_chaining(INS_GET_BOOT_STATE)
    whole = CommandApdu(0x80, INS_VERIFY_IMAGE, 0x01, 0x00, image, ne=256)
    assert card.send(whole) == _digest(image)


# --- refused images: status words and untouched state ------------------------------------------


@pytest.mark.parametrize(
    ("name", "mutate", "sw"),
    [
        ("payload bit", lambda i: _flip(i, 0x200 + 17), SW.SECURITY_STATUS_NOT_SATISFIED),
        ("header version bit", lambda i: _flip(i, 20), SW.SECURITY_STATUS_NOT_SATISFIED),
        ("header fill bit", lambda i: _flip(i, 100), SW.SECURITY_STATUS_NOT_SATISFIED),
        (
            "SEC_CNT bit",
            lambda i: _flip(i, _protected_offset(i) + 8),
            SW.SECURITY_STATUS_NOT_SATISFIED,
        ),
        ("signature bit", lambda i: _flip(i, len(i) - 3), SW.SECURITY_STATUS_NOT_SATISFIED),
        ("bad magic", lambda i: _flip(i, 0), SW.INCORRECT_DATA),
        ("truncated", lambda i: i[:-1], SW.INCORRECT_DATA),
        ("trailing byte", lambda i: i + b"\x00", SW.INCORRECT_DATA),
    ],
)
def test_tampered_images_are_refused_without_changing_state(
    name: str, mutate: object, sw: int
) -> None:
    card, image = Card(), _image(counter=5)
    card.verify_image(_image(counter=3))
    before = card.boot_state()
    assert callable(mutate)
    assert card.sw_of(mutate(image)) == sw
    assert card.boot_state() == before
    assert card.persisted == 1


def test_image_signed_by_another_key_is_refused() -> None:
    card = Card()
    assert card.sw_of(_image(key=ROGUE_KEY)) == SW.SECURITY_STATUS_NOT_SATISFIED
    assert card.boot_state()[0] == 0


def test_lower_security_counter_is_refused() -> None:
    card = Card()
    card.verify_image(_image(counter=7))
    assert card.sw_of(_image(counter=6)) == SW.CONDITIONS_NOT_SATISFIED
    assert card.sw_of(_image(counter=0), confirm=False) == SW.CONDITIONS_NOT_SATISFIED
    assert card.boot_state()[0] == 7


def test_check_only_never_raises_the_counter() -> None:
    card = Card()
    card.verify_image(_image(counter=9), confirm=False)
    card.verify_image(_image(counter=1))  # still accepted: the check above changed nothing
    assert card.boot_state()[0] == 1


def test_image_without_security_counter_is_refused() -> None:
    assert Card().sw_of(_image(counter=None)) == SW.CONDITIONS_NOT_SATISFIED


def test_no_firmware_key_installed_is_refused() -> None:
    assert Card(firmware_key=None).sw_of(_image()) == SW.REFERENCED_DATA_NOT_FOUND


def test_bad_p1_p2_and_empty_data() -> None:
    card = Card()
    for p1, p2 in ((0x02, 0x00), (0x00, 0x01), (0x01, 0x40)):
        with pytest.raises(SecureElementError) as caught:
            card.send(CommandApdu(0x80, INS_VERIFY_IMAGE, p1, p2, b"x"))
        assert caught.value.sw == SW.INCORRECT_P1P2
    with pytest.raises(SecureElementError) as caught:
        card.send(CommandApdu(0x80, INS_VERIFY_IMAGE, 0x01, 0x00))
    assert caught.value.sw == SW.WRONG_LENGTH
    with pytest.raises(SecureElementError) as caught:
        card.send(CommandApdu(0x80, 0x40, 0x00, 0x00))
    assert caught.value.sw == SW.INS_NOT_SUPPORTED


def test_multiblock_interrupted_or_switching_p1_is_dropped() -> None:
    card, image = Card(), _image()
    first, *rest = verify_image_commands(image, confirm=True, chaining=False)
    card.send(first)
    card.send(CommandApdu(0x80, INS_GET_BOOT_STATE, 0, 0, ne=256))  # interrupts the image
    with pytest.raises(SecureElementError) as caught:
        for command in rest:
            card.send(command)
    assert caught.value.sw == SW.INCORRECT_DATA  # the tail alone is not an image
    card.send(first)
    with pytest.raises(SecureElementError) as caught:
        card.send(CommandApdu(0x80, INS_VERIFY_IMAGE, 0x00, 0x00, rest[0].data))
    assert caught.value.sw == SW.INCORRECT_P1P2
    card.applet.zeroise()
    assert card.verify_image(image) == _digest(image)  # and a clean retry works


def test_multiblock_over_the_ram_budget_is_refused() -> None:
    card = Card()
    block = CommandApdu(0x80, INS_VERIFY_IMAGE, 0x01, 0x80, bytes(65535))
    with pytest.raises(SecureElementError) as caught:
        for _ in range(MAX_IMAGE_SIZE // 65535 + 2):
            card.send(block)
    assert caught.value.sw == SW.NOT_ENOUGH_MEMORY


def test_boot_aid_is_proprietary() -> None:
    assert BOOT_AID[0] == 0xF0 and 5 <= len(BOOT_AID) <= 16


# --- the host boot routine ------------------------------------------------------------------


def test_boot_starts_a_verified_image() -> None:
    card, image = Card(), _image(counter=5)
    booted = boot(card, image)
    assert booted.payload == FIRMWARE
    assert str(booted.version) == "1.4.0+9"
    assert booted.security_counter == 5
    assert booted.measurement == _digest(image)
    assert card.boot_state()[0] == 5


def test_boot_refuses_an_image_signed_by_an_untrusted_key() -> None:
    card = Card()
    with pytest.raises(BootRefusedError) as caught:
        boot(card, _image(key=ROGUE_KEY))
    assert caught.value.sw == SW.SECURITY_STATUS_NOT_SATISFIED


def test_boot_refuses_tampered_and_rolled_back_images() -> None:
    card = Card()
    boot(card, _image(counter=4))
    with pytest.raises(BootRefusedError) as caught:
        boot(card, _flip(_image(counter=4), 0x200 + 1))
    assert caught.value.sw == SW.SECURITY_STATUS_NOT_SATISFIED
    with pytest.raises(BootRefusedError) as caught:
        boot(card, _image(counter=3))
    assert caught.value.sw == SW.CONDITIONS_NOT_SATISFIED


def test_boot_refuses_when_the_card_measured_other_bytes() -> None:
    class LyingCard(Card):
        def verify_image(self, image: bytes, *, confirm: bool = True) -> bytes:
            super().verify_image(image, confirm=confirm)
            return bytes(32)

    with pytest.raises(BootRefusedError, match="measured other bytes"):
        boot(LyingCard(), _image())


def test_boot_refuses_non_bootable_images() -> None:
    image = build_image(
        FIRMWARE, SoftwareSigner(FIRMWARE_KEY), version="1", security_counter=5, non_bootable=True
    )
    with pytest.raises(BootRefusedError, match="NON_BOOTABLE"):
        boot(Card(), image)


# --- through the card's one way in: SELECT, chaining, extended length, flash -----------------


def _chip(firmware_key: ec.EllipticCurvePrivateKey = FIRMWARE_KEY) -> tuple[Silicon, SealedFlash]:
    """A chip whose flash already holds a personalised firmware key (as the line leaves it)."""
    silicon, flash = Silicon.fabricate(), SealedFlash()
    state = CardState(cplc=Cplc(ic_serial=b"\x0b\x00\x07\x01"))
    state.boot.verification_key = _spki(firmware_key)
    flash.write(silicon, state.to_bytes())
    return silicon, flash


def _rapdu(se: SecureElement, command: CommandApdu) -> tuple[bytes, int]:
    response = parse_response(se.transmit(command.encode()))
    return response.data, response.sw


def _select_boot(se: SecureElement) -> None:
    assert _rapdu(se, CommandApdu(0x00, 0xA4, 0x04, 0x00, BOOT_AID))[1] == SW.OK


def _send_all(se: SecureElement, commands: list[CommandApdu]) -> tuple[bytes, int]:
    for command in commands[:-1]:
        assert _rapdu(se, command) == (b"", SW.OK)
    return _rapdu(se, commands[-1])


def test_card_verifies_an_iso_chained_image_and_keeps_the_counter_across_power_cycles() -> None:
    silicon, flash = _chip()
    se = SecureElement(silicon, flash)
    _select_boot(se)
    image = _image(counter=6)
    chain = verify_image_commands(image, confirm=True)
    assert len(chain) > 2
    assert _send_all(se, chain) == (_digest(image), SW.OK)
    assert _send_all(se, verify_image_commands(_image(counter=5), confirm=True))[1] == 0x6985

    rebooted = SecureElement(silicon, flash)  # power cycle: state comes back from sealed flash
    _select_boot(rebooted)
    data, sw = _rapdu(rebooted, CommandApdu(0x80, INS_GET_BOOT_STATE, 0, 0, ne=256))
    assert sw == SW.OK
    assert decode_boot_state(data).security_counter == 6
    assert decode_boot_state(data).measurement == _digest(image)
    assert _digest(image).hex().encode() not in flash.dump()  # sealed: no plaintext state


def test_card_refuses_tampered_and_foreign_images_over_apdus() -> None:
    se = SecureElement(*_chip())
    _select_boot(se)
    tampered = _flip(_image(), 0x200 + 5)
    assert _send_all(se, verify_image_commands(tampered, confirm=True))[1] == 0x6982
    foreign = _image(key=ROGUE_KEY)
    assert _send_all(se, verify_image_commands(foreign, confirm=True))[1] == 0x6982
    assert _send_all(se, verify_image_commands(b"\x00" * 40, confirm=True))[1] == 0x6A80


def test_card_verifies_extended_length_and_multiblock_images_beyond_64k() -> None:
    se = SecureElement(*_chip())
    _select_boot(se)
    image = _image()
    assert _rapdu(se, CommandApdu(0x80, INS_VERIFY_IMAGE, 1, 0, image, ne=256, extended=True)) == (
        _digest(image),
        SW.OK,
    )
    big = build_image(
        bytes(range(256)) * 400, SoftwareSigner(FIRMWARE_KEY), version="2", security_counter=8
    )
    assert len(big) > 0xFFFF
    blocks = verify_image_commands(big, confirm=True, chaining=False, block_size=0xFFFF)
    assert _send_all(se, blocks) == (_digest(big), SW.OK)


def test_chain_interrupted_by_another_command_is_refused() -> None:
    se = SecureElement(*_chip())
    _select_boot(se)
    chain = verify_image_commands(_image(), confirm=True)
    assert _rapdu(se, chain[0]) == (b"", SW.OK)
    assert _rapdu(se, CommandApdu(0x80, INS_GET_BOOT_STATE, 0, 0, ne=256))[1] == 0x6883


def test_tampered_chip_refuses_to_boot_anything() -> None:
    se = SecureElement(*_chip())
    se.tamper(TamperEvent.GLITCH)
    assert _rapdu(se, CommandApdu(0x00, 0xA4, 0x04, 0x00, BOOT_AID))[1] != SW.OK
    assert _send_all(se, verify_image_commands(_image(), confirm=True)[-1:])[1] != SW.OK


# --- end to end: line personalises the key over SCP03, device host boots through the client ----

TRANSPORT_KEYS = StaticKeys(bytes(range(16)), bytes(range(16, 32)), bytes(range(32, 48)))


def _personalised_client(
    firmware_key: ec.EllipticCurvePrivateKey = FIRMWARE_KEY,
) -> SecureElementClient:
    client = SecureElementClient(SecureElement.fabricate(keysets={0x30: TRANSPORT_KEYS}))
    client.select_isd()
    client.open_secure_channel(TRANSPORT_KEYS, 0x33, key_version=0x30)
    client.install_firmware_key(firmware_key.public_key())  # STORE DATA DGI 0F03
    client.close_secure_channel()
    return client


def test_client_boot_end_to_end_and_refusals() -> None:
    client = _personalised_client()
    assert client.boot_state().key_hash == key_hash(FIRMWARE_KEY.public_key())
    image = _image(counter=3)
    booted = boot(client, image)
    assert booted.payload == FIRMWARE and booted.measurement == _digest(image)
    assert client.boot_state().security_counter == 3

    with pytest.raises(BootRefusedError) as caught:
        boot(client, _image(key=ROGUE_KEY))  # signed, but by a key the card does not trust
    assert caught.value.sw == 0x6982
    with pytest.raises(BootRefusedError) as caught:
        boot(client, _flip(image, 0x200 + len(FIRMWARE) // 2))
    assert caught.value.sw == 0x6982
    with pytest.raises(BootRefusedError) as caught:
        boot(client, _image(counter=2))
    assert caught.value.sw == 0x6985
    with pytest.raises(BootRefusedError) as caught:
        boot(client, image[:100])
    assert caught.value.sw == 0x6A80
    assert client.boot_state().security_counter == 3


def test_client_refusals_are_typed_errors() -> None:
    client = _personalised_client()
    with pytest.raises(SecurityStatusError):
        client.verify_image(_image(key=ROGUE_KEY))
    client.verify_image(_image(counter=9))
    with pytest.raises(ConditionsNotSatisfiedError):
        client.verify_image(_image(counter=8), confirm=False)


def test_client_boots_an_image_larger_than_one_extended_apdu() -> None:
    client = _personalised_client()
    big = build_image(
        os.urandom(70_000), SoftwareSigner(FIRMWARE_KEY), version="3", security_counter=4
    )
    assert boot(client, big).security_counter == 4


def test_card_without_a_firmware_key_boots_nothing() -> None:
    client = SecureElementClient(SecureElement.fabricate())
    with pytest.raises(BootRefusedError) as caught:
        boot(client, _image())
    assert caught.value.sw == 0x6A88
