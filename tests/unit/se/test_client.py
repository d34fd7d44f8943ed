"""The host-side client: typed errors, GET RESPONSE / 6Cxx handling, S16 sessions, transports."""

from __future__ import annotations

import hashlib

import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from fleetid.errors import (
    ConditionsNotSatisfiedError,
    EncodingError,
    IncorrectDataError,
    IncorrectParametersError,
    ReferencedDataNotFoundError,
    SecureChannelError,
    SecureElementError,
    SecurityStatusError,
    UnsupportedCommandError,
    VerificationError,
    WrongLengthError,
)
from fleetid.formats.apdu import CommandApdu
from fleetid.formats.attestation import KeyUsage
from fleetid.se.card import SecureElement
from fleetid.se.client import SecureElementClient, Transport, error_for_sw
from fleetid.se.scp03 import StaticKeys
from fleetid.sim.test_card import manufacture_test_card

KEYS = StaticKeys(b"\x10" * 16, b"\x20" * 16, b"\x30" * 16)


@pytest.mark.parametrize(
    ("sw", "kind"),
    [
        (0x6700, WrongLengthError),
        (0x6982, SecurityStatusError),
        (0x6985, ConditionsNotSatisfiedError),
        (0x6A80, IncorrectDataError),
        (0x6A82, ReferencedDataNotFoundError),
        (0x6A88, ReferencedDataNotFoundError),
        (0x6A86, IncorrectParametersError),
        (0x6D00, UnsupportedCommandError),
        (0x6E00, UnsupportedCommandError),
        (0x6881, UnsupportedCommandError),
        (0x6300, SecureChannelError),
        (0x6F00, SecureElementError),
    ],
)
def test_status_words_map_to_typed_errors(sw: int, kind: type[SecureElementError]) -> None:
    error = error_for_sw(sw)
    assert type(error) is kind and error.sw == sw and isinstance(error, SecureElementError)


class _Scripted:
    """A transport that answers from a script and records what it was sent."""

    def __init__(self, *responses: str) -> None:
        self.responses = [bytes.fromhex(r) for r in responses]
        self.sent: list[bytes] = []

    def transmit(self, command: bytes) -> bytes:
        self.sent.append(command)
        return self.responses.pop(0)


def test_61xx_is_followed_with_get_response() -> None:
    transport = _Scripted("0102 6103", "030405 9000")
    assert isinstance(transport, Transport)
    client = SecureElementClient(transport)
    assert client.send(
        __import__("fleetid.formats.apdu", fromlist=["x"]).CommandApdu(0x80, 0xCA, 0x00, 0x01, ne=2)
    ) == bytes.fromhex("0102030405")
    assert transport.sent[1] == bytes.fromhex("00C0000003")


def test_6cxx_resends_with_the_right_le() -> None:
    transport = _Scripted("6C05", "0102030405 9000")
    client = SecureElementClient(transport)
    assert client.send(CommandApdu(0x80, 0xCA, 0x00, 0x01, ne=256)) == bytes.fromhex("0102030405")
    assert transport.sent[1] == bytes.fromhex("80CA000105")


def test_truncated_response_is_an_encoding_error() -> None:
    client = SecureElementClient(_Scripted("90"))
    with pytest.raises(EncodingError):
        client.send(CommandApdu(0x80, 0xCA, 0x00, 0x01))


@pytest.mark.parametrize("level", [0x01, 0x03, 0x11, 0x13, 0x33])
def test_s16_sessions(level: int) -> None:
    card = SecureElement.fabricate(keysets={0x30: KEYS}, s16=True)
    client = SecureElementClient(card)
    client.open_secure_channel(KEYS, level, s16=True)
    assert client.chip_serial() == card.chip_serial
    client.select_identity()
    client.open_secure_channel(KEYS, level, s16=True)
    info = client.generate_key(ec.SECP384R1(), KeyUsage.SIGN, require_session=True)
    digest = hashlib.sha384(b"s16").digest()
    signature = client.sign(info.handle, digest)
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric.utils import Prehashed

    info.public_key.verify(signature, digest, ec.ECDSA(Prehashed(hashes.SHA384())))


def test_s8_host_against_s16_card_fails_cleanly() -> None:
    card = SecureElement.fabricate(keysets={0x30: KEYS}, s16=True)
    with pytest.raises(SecureElementError):
        SecureElementClient(card).open_secure_channel(KEYS, 0x33)


def test_wrong_static_keys_do_not_open_a_session() -> None:
    made = manufacture_test_card(keys=KEYS)
    client = SecureElementClient(made.card)
    # The cryptograms come from Key-MAC (Amd D §6.2.2): a wrong Key-MAC fails at once.
    with pytest.raises(VerificationError, match="cryptogram"):
        client.open_secure_channel(StaticKeys(b"\x10" * 16, b"\x21" * 16, b"\x30" * 16), 0x33)
    assert client.session is None
    # A wrong Key-ENC authenticates, but the first encrypted command does not decrypt. The card
    # sees random data under its own S-ENC, whose ISO 9797-1 padding is valid about once in 256
    # sessions: a fixed host challenge (with the card's pseudo-random challenge) makes this one
    # session, whose data does not unpad.
    client.open_secure_channel(
        StaticKeys(b"\x11" * 16, b"\x20" * 16, b"\x30" * 16), 0x33, host_challenge=bytes(8)
    )
    with pytest.raises(SecureElementError):
        client.send(CommandApdu(0x80, 0xF2, 0x80, 0x02, b"\x4f\x00", 256))
    assert client.session is None


def test_client_forgets_the_session_after_the_card_aborts_it() -> None:
    made = manufacture_test_card(keys=KEYS)
    card = made.card
    client = SecureElementClient(card)
    client.select_identity()
    client.open_secure_channel(KEYS, 0x33)
    card.transmit(bytes.fromhex("805C000000"))  # a plain command: the card aborts the session
    with pytest.raises(SecurityStatusError):
        client.list_keys()
    assert client.session is None
    with pytest.raises(SecurityStatusError):
        client.list_keys()  # Amd D §5.6: still aborted, even for plain commands
    client.select_identity()  # a SELECT terminates the aborted session
    assert [h for h, _, _ in client.list_keys()] == [0xF0]  # the attestation key


def test_per_card_keys_through_a_key_provider() -> None:
    made = manufacture_test_card(keys=KEYS)
    seen: list[tuple[bytes, int]] = []

    def provider(kdd: bytes, kvn: int) -> StaticKeys:
        seen.append((kdd, kvn))
        return KEYS

    client = SecureElementClient(made.card)
    client.open_secure_channel(provider, 0x33)
    assert seen and seen[0][0].endswith(made.card.chip_serial) and seen[0][1] == 0x30
