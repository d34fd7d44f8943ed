"""The card's transport rules: parsing, class byte, SELECT, GET RESPONSE, chaining, SCP03 gating."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.serialization import Encoding
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fleetid.formats.apdu import CommandApdu, MalformedApduError, parse_command, parse_response
from fleetid.se.applets.base import Applet, CommandContext, Reply
from fleetid.se.applets.manager import ManagerApplet
from fleetid.se.card import SecureElement
from fleetid.se.client import SecureElementClient
from fleetid.se.scp03 import HostSession, StaticKeys
from fleetid.se.wire import IDENTITY_AID, ISD_AID
from fleetid.sim.test_card import ManufacturedCard, manufacture_test_card

KEYS = StaticKeys(bytes(range(16)), bytes(range(16, 32)), bytes(range(32, 48)))


def sw_of(response: bytes) -> int:
    return parse_response(response).sw


@pytest.fixture
def made() -> ManufacturedCard:
    return manufacture_test_card(keys=KEYS, ic_serial=bytes.fromhex("C0FFEE01"))


@pytest.fixture
def card(made: ManufacturedCard) -> SecureElement:
    return made.card


def select(card: SecureElement, aid: bytes) -> bytes:
    return card.transmit(CommandApdu(0x00, 0xA4, 0x04, 0x00, aid, 256).encode())


# --- parsing and class byte -------------------------------------------------------------------


@pytest.mark.parametrize(
    "raw",
    [
        "",
        "00",
        "00A404",
        "80CA9F7F0201",
        "80CA9F7F05AABB",
        "00A40400000002AA",
        "80CA9F7F0000050102",
    ],
)
def test_malformed_apdu_is_6700(card: SecureElement, raw: str) -> None:
    with pytest.raises(MalformedApduError):
        parse_command(bytes.fromhex(raw))
    assert card.transmit(bytes.fromhex(raw)) == bytes.fromhex("6700")


@pytest.mark.parametrize("cla", [0xFF, 0x20, 0x3F, 0xA0, 0xB0])
def test_invalid_class_is_6e00(card: SecureElement, cla: int) -> None:
    assert sw_of(card.transmit(bytes((cla, 0xCA, 0x9F, 0x7F, 0x00)))) == 0x6E00


@pytest.mark.parametrize("cla", [0x01, 0x02, 0x03, 0x81, 0x83, 0x40, 0x41, 0xC1, 0x4F])
def test_logical_channels_other_than_0_are_6881(card: SecureElement, cla: int) -> None:
    assert sw_of(card.transmit(bytes((cla, 0xCA, 0x9F, 0x7F, 0x00)))) == 0x6881


@pytest.mark.parametrize("cla", [0x08, 0x0C, 0x88, 0x8C])
def test_iso_secure_messaging_is_6882(card: SecureElement, cla: int) -> None:
    assert sw_of(card.transmit(bytes((cla, 0xCA, 0x9F, 0x7F, 0x00)))) == 0x6882


@pytest.mark.parametrize("ins", [0x00, 0x10, 0x20, 0x44, 0xB0, 0xD6, 0xE0, 0xFE])
def test_unknown_ins_is_6d00(card: SecureElement, ins: int) -> None:
    assert sw_of(card.transmit(bytes((0x80, ins, 0x00, 0x00)))) == 0x6D00
    select(card, IDENTITY_AID)
    assert sw_of(card.transmit(bytes((0x80, ins, 0x00, 0x00)))) == 0x6D00


def test_gp_command_in_interindustry_class_is_6e00(card: SecureElement) -> None:
    assert sw_of(card.transmit(bytes.fromhex("00F0800F"))) == 0x6E00  # SET STATUS with CLA 00
    assert sw_of(card.transmit(bytes.fromhex("00CA9F7F00"))) == 0x9000  # GET DATA takes 00 too


# --- SELECT -----------------------------------------------------------------------------------


def test_select_returns_fci_with_the_aid(card: SecureElement) -> None:
    response = select(card, ISD_AID)
    assert sw_of(response) == 0x9000
    assert response.startswith(bytes.fromhex("6F")) and ISD_AID in response
    response = select(card, IDENTITY_AID)
    assert sw_of(response) == 0x9000 and IDENTITY_AID in response


def test_select_p2_0c_returns_no_fci(card: SecureElement) -> None:
    assert card.transmit(CommandApdu(0x00, 0xA4, 0x04, 0x0C, ISD_AID).encode()) == b"\x90\x00"


def test_select_unknown_aid_is_6a82_and_keeps_selection(card: SecureElement) -> None:
    select(card, IDENTITY_AID)
    assert sw_of(select(card, bytes.fromhex("A0000000030000"))) == 0x6A82
    # The identity applet is still selected: its LIST KEYS answers.
    assert sw_of(card.transmit(bytes.fromhex("805C000000"))) == 0x9000


@pytest.mark.parametrize(("p1", "p2"), [(0x00, 0x00), (0x02, 0x00), (0x04, 0x01), (0x04, 0x04)])
def test_select_bad_p1p2_is_6a86(card: SecureElement, p1: int, p2: int) -> None:
    raw = CommandApdu(0x00, 0xA4, p1, p2, ISD_AID, 256).encode()
    assert sw_of(card.transmit(raw)) == 0x6A86


def test_select_with_a_short_aid_is_6700(card: SecureElement) -> None:
    assert sw_of(card.transmit(CommandApdu(0x00, 0xA4, 0x04, 0x00, b"\xa0\x00").encode())) == 0x6700


# --- GET RESPONSE ---------------------------------------------------------------------------


def test_long_response_comes_with_61xx_and_get_response(made: ManufacturedCard) -> None:
    card = made.card
    select(card, IDENTITY_AID)
    first = card.transmit(bytes.fromhex("80CADF0100"))  # attestation chain, > 256 bytes
    assert first[-2] == 0x61 and len(first) == 258
    collected = first[:-2]
    sw = sw_of(first)
    while sw >> 8 == 0x61:
        le = sw & 0xFF
        response = card.transmit(bytes((0x00, 0xC0, 0x00, 0x00, le)))
        assert len(response) - 2 <= (le or 256)
        collected += response[:-2]
        sw = sw_of(response)
    assert sw == 0x9000
    assert collected == b"".join(c.public_bytes(Encoding.DER) for c in made.chain)


def test_extended_le_returns_everything_at_once(made: ManufacturedCard) -> None:
    card = made.card
    select(card, IDENTITY_AID)
    response = card.transmit(bytes.fromhex("80CADF01000000"))  # extended Le 0000: Ne = 65536
    assert sw_of(response) == 0x9000 and len(response) > 300


def test_short_le_is_honoured(card: SecureElement) -> None:
    response = card.transmit(bytes.fromhex("80CA9F7F10"))  # CPLC is 45 bytes, Le asks 16
    assert len(response) == 18 and response[-2:] == bytes.fromhex("611D")
    rest = card.transmit(bytes.fromhex("00C000001D"))
    assert sw_of(rest) == 0x9000 and len(rest) == 0x1D + 2


def test_case3_command_with_response_data_says_61xx(card: SecureElement) -> None:
    response = card.transmit(bytes.fromhex("80CA9F7F"))  # no Le at all
    assert response == bytes.fromhex("612D")


def test_get_response_without_pending_data_is_6985(card: SecureElement) -> None:
    assert sw_of(card.transmit(bytes.fromhex("00C0000000"))) == 0x6985


def test_get_response_bad_p1p2_is_6a86(card: SecureElement) -> None:
    card.transmit(bytes.fromhex("80CA9F7F10"))
    assert sw_of(card.transmit(bytes.fromhex("00C0010000"))) == 0x6A86


def test_another_command_drops_pending_data(card: SecureElement) -> None:
    card.transmit(bytes.fromhex("80CA9F7F10"))
    card.transmit(bytes.fromhex("80CA00E000"))
    assert sw_of(card.transmit(bytes.fromhex("00C0000000"))) == 0x6985


# --- chaining -----------------------------------------------------------------------------------


class _EchoApplet(Applet):
    aid = bytes.fromhex("F000000001")

    def accepts_chaining(self, ins: int) -> bool:
        return ins == 0x10

    def process(self, ctx: CommandContext, apdu: CommandApdu) -> Reply:
        if apdu.ins == 0x66:
            raise RuntimeError("secret key material 0123456789abcdef")  # must not be logged
        return Reply(data=apdu.data)


@pytest.fixture
def echo_card() -> SecureElement:
    return SecureElement.fabricate(keysets={0x30: KEYS}, applets=[ManagerApplet(), _EchoApplet()])


def test_chaining_is_assembled_for_applets_that_accept_it(echo_card: SecureElement) -> None:
    select(echo_card, _EchoApplet.aid)
    assert echo_card.transmit(bytes.fromhex("90100000") + b"\x02AB") == b"\x90\x00"
    assert echo_card.transmit(bytes.fromhex("90100000") + b"\x02CD") == b"\x90\x00"
    assert echo_card.transmit(bytes.fromhex("80100000") + b"\x02EF\x00") == b"ABCDEF\x90\x00"


def test_chaining_not_accepted_is_6884(echo_card: SecureElement, card: SecureElement) -> None:
    select(echo_card, _EchoApplet.aid)
    assert sw_of(echo_card.transmit(bytes.fromhex("90110000") + b"\x02AB")) == 0x6884
    assert sw_of(card.transmit(bytes.fromhex("90CA9F7F00"))) == 0x6884


def test_chain_longer_than_extended_length_is_6700(echo_card: SecureElement) -> None:
    select(echo_card, _EchoApplet.aid)
    for size in (0x8000, 0x7FFF):  # 65535 bytes so far: still fits
        block = CommandApdu(0x90, 0x10, 0x00, 0x00, bytes(size)).encode()
        assert echo_card.transmit(block) == b"\x90\x00"
    last = CommandApdu(0x80, 0x10, 0x00, 0x00, bytes(2)).encode()
    assert echo_card.transmit(last) == bytes.fromhex("6700")


def test_interrupted_chain_is_6883(echo_card: SecureElement) -> None:
    select(echo_card, _EchoApplet.aid)
    echo_card.transmit(bytes.fromhex("90100000") + b"\x02AB")
    assert sw_of(echo_card.transmit(bytes.fromhex("80110000") + b"\x02CD")) == 0x6883


def test_internal_error_is_6f00_and_logs_no_detail(
    echo_card: SecureElement, caplog: pytest.LogCaptureFixture
) -> None:
    select(echo_card, _EchoApplet.aid)
    with caplog.at_level(logging.DEBUG):
        assert echo_card.transmit(bytes.fromhex("80660000")) == bytes.fromhex("6F00")
    assert "RuntimeError" in caplog.text
    assert "0123456789abcdef" not in caplog.text
    # The card still works afterwards.
    assert echo_card.transmit(bytes.fromhex("8001000001AA00")) == b"\xaa\x90\x00"


# --- the secure channel at the card boundary -----------------------------------------------------


def open_session(card: SecureElement, level: int = 0x33) -> HostSession:
    host = HostSession(KEYS, level)
    response = card.transmit(host.initialize_update(0x30))
    assert sw_of(response) == 0x9000
    assert card.transmit(host.external_authenticate(response)) == b"\x90\x00"
    return host


def test_secure_messaging_without_session_is_refused(card: SecureElement) -> None:
    assert sw_of(card.transmit(bytes.fromhex("84CA9F7F08") + bytes(8))) == 0x6985


@pytest.mark.parametrize("level", [0x01, 0x03, 0x11, 0x13, 0x33])
def test_plain_command_inside_a_session_is_6982_and_aborts(card: SecureElement, level: int) -> None:
    host = open_session(card, level)
    assert sw_of(card.transmit(bytes.fromhex("80CA9F7F00"))) == 0x6982
    # The session is aborted: even a correctly wrapped command is refused now.
    assert sw_of(card.transmit(host.wrap(bytes.fromhex("80CA9F7F00")))) == 0x6982


def test_wrapped_commands_work_at_every_level(card: SecureElement) -> None:
    for level in (0x00, 0x01, 0x03, 0x11, 0x13, 0x33):
        host = open_session(card, level)
        response = host.unwrap(card.transmit(host.wrap(bytes.fromhex("80CA9F7F00"))))
        assert response[:3] == bytes.fromhex("9F7F2A") and response[-2:] == b"\x90\x00"


def test_select_closes_the_session(card: SecureElement) -> None:
    host = open_session(card)
    select(card, IDENTITY_AID)
    assert sw_of(card.transmit(host.wrap(bytes.fromhex("805C000000")))) == 0x6985
    # Plain commands are fine again: there is no session any more.
    assert sw_of(card.transmit(bytes.fromhex("805C000000"))) == 0x9000


def test_identity_applet_takes_initialize_update_itself(card: SecureElement) -> None:
    select(card, IDENTITY_AID)
    host = open_session(card)
    response = host.unwrap(card.transmit(host.wrap(bytes.fromhex("805C000000"))))
    assert response[-2:] == b"\x90\x00"


def test_pseudo_random_challenge_uses_the_selected_aid(card: SecureElement) -> None:
    from fleetid.se.scp03 import pseudo_random_card_challenge

    select(card, IDENTITY_AID)
    host = HostSession(KEYS, 0x33)
    response = card.transmit(host.initialize_update(0x30))
    counter = int.from_bytes(response[29:32], "big")
    assert response[13:21] == pseudo_random_card_challenge(KEYS.enc, counter, IDENTITY_AID)


def test_sequence_counter_persists_across_power_cycles(tmp_path: Path) -> None:
    chip, flash = tmp_path / "chip.fuse", tmp_path / "card.flash"
    card = manufacture_test_card(keys=KEYS, silicon_path=chip, flash_path=flash).card
    counters = []
    for _ in range(2):
        host = HostSession(KEYS, 0x33)
        counters.append(int.from_bytes(card.transmit(host.initialize_update())[29:32], "big"))
    again = SecureElement.open(chip, flash)
    host = HostSession(KEYS, 0x33)
    counters.append(int.from_bytes(again.transmit(host.initialize_update())[29:32], "big"))
    assert counters[1] == counters[0] + 1 and counters[2] == counters[1] + 1


def test_wrong_host_cryptogram_is_6300(card: SecureElement) -> None:
    response = card.transmit(HostSession(KEYS, 0x33).initialize_update())
    assert sw_of(response) == 0x9000
    forged = bytes.fromhex("8482330010") + bytes(16)
    assert sw_of(card.transmit(forged)) == 0x6300


def test_reset_closes_session_and_selects_isd(card: SecureElement) -> None:
    select(card, IDENTITY_AID)
    host = open_session(card)
    card.reset()
    assert sw_of(card.transmit(host.wrap(bytes.fromhex("80CA9F7F00")))) == 0x6985
    assert sw_of(card.transmit(bytes.fromhex("80CA00E000"))) == 0x9000  # ISD-only data object


def test_client_through_a_session_is_transparent(made: ManufacturedCard) -> None:
    client = SecureElementClient(made.card)
    client.select_identity()
    client.open_secure_channel(KEYS, 0x33, key_version=0x30)
    chain = client.attestation_chain()  # long, encrypted, R-MACed, fetched with GET RESPONSE
    assert [c.subject for c in chain] == [c.subject for c in made.chain]


# --- nothing crosses the boundary ----------------------------------------------------------------

_FUZZ_CARD = manufacture_test_card(keys=KEYS)


@settings(deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    aid=st.sampled_from([ISD_AID, IDENTITY_AID]),
    commands=st.lists(
        st.one_of(
            st.binary(max_size=300),
            st.tuples(
                st.sampled_from([0x00, 0x80, 0x84, 0x90]), st.binary(min_size=3, max_size=80)
            ).map(lambda t: bytes((t[0],)) + t[1]),
        ),
        max_size=10,
    ),
)
def test_any_bytes_get_a_status_word_and_never_an_internal_error(
    aid: bytes, commands: list[bytes]
) -> None:
    card = _FUZZ_CARD.card
    card.reset()
    select(card, aid)
    for raw in commands:
        response = card.transmit(raw)
        assert len(response) >= 2
        assert sw_of(response) != 0x6F00, raw.hex()
