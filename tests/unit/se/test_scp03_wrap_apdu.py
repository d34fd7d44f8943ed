"""HostSession.wrap_apdu gives the bytes of wrap(apdu.encode()), command after command."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fleetid.errors import EncodingError, SecureChannelError
from fleetid.formats.apdu import CommandApdu, parse_command
from fleetid.se.scp03 import SECURITY_LEVELS, HostSession, StaticKeys
from fleetid.se.scp03.card import CardChannel

_KEYS = StaticKeys(enc=bytes(range(16)), mac=bytes(range(16, 32)), dek=bytes(range(32, 48)))
_AID = bytes.fromhex("A000000151000000")

_commands = st.builds(
    CommandApdu,
    cla=st.sampled_from((0x00, 0x80, 0x81, 0x40, 0xC0, 0x90)),
    ins=st.integers(0, 0xFF),
    p1=st.integers(0, 0xFF),
    p2=st.integers(0, 0xFF),
    data=st.one_of(st.binary(max_size=40), st.binary(min_size=230, max_size=300)),
    ne=st.one_of(st.none(), st.integers(1, 300), st.just(65536)),
    extended=st.booleans(),
)


def _open_pair(level: int, s16: bool) -> tuple[HostSession, HostSession, CardChannel]:
    """Two host sessions with the same challenge, both authenticated to one card session."""
    n = 16 if s16 else 8
    card = CardChannel({0x30: _KEYS}, bytes(10), aid=_AID, sequence_counter=5, s16=s16)
    first = HostSession(_KEYS, level, host_challenge=bytes(n), s16=s16)
    second = HostSession(_KEYS, level, host_challenge=bytes(n), s16=s16)
    response = card.initialize_update(parse_command(first.initialize_update(0x30)))
    second.initialize_update(0x30)
    external_authenticate = first.external_authenticate(response)
    assert second.external_authenticate(response) == external_authenticate
    card.external_authenticate(parse_command(external_authenticate))
    return first, second, card


@given(
    level=st.sampled_from(sorted(SECURITY_LEVELS)),
    s16=st.booleans(),
    commands=st.lists(_commands, min_size=1, max_size=6),
)
def test_wrap_apdu_equals_wrap_of_the_encoding(
    level: int, s16: bool, commands: list[CommandApdu]
) -> None:
    by_bytes, by_apdu, card = _open_pair(level, s16)
    for apdu in commands:
        wrapped = by_bytes.wrap(apdu.encode())
        assert by_apdu.wrap_apdu(apdu) == wrapped
        plain = card.unwrap_command(parse_command(wrapped))  # the card accepts it
        assert (plain.ins, plain.p1, plain.p2, plain.data) == (
            apdu.ins,
            apdu.p1,
            apdu.p2,
            apdu.data,
        )
        card.wrap_response(b"", 0x9000)


def test_forced_extended_without_body_stays_short_as_its_encoding() -> None:
    by_bytes, by_apdu, _ = _open_pair(0x01, False)
    case1 = CommandApdu(0x80, 0xF2, 0x20, 0x02, extended=True)  # encodes as 4 bytes
    wrapped = by_bytes.wrap(case1.encode())
    assert by_apdu.wrap_apdu(case1) == wrapped
    assert wrapped[4] == 8  # short Lc: the C-MAC alone
    case2 = CommandApdu(0x80, 0xCA, 0x00, 0x66, ne=5, extended=True)  # encodes extended
    wrapped = by_bytes.wrap(case2.encode())
    assert by_apdu.wrap_apdu(case2) == wrapped
    assert wrapped[4:7] == b"\x00\x00\x08"  # extended Lc


def test_wrap_apdu_refuses_secure_messaging_and_closed_sessions() -> None:
    _, host, _ = _open_pair(0x33, False)
    with pytest.raises(EncodingError, match="already indicates secure messaging"):
        host.wrap_apdu(CommandApdu(0x84, 0xF2, 0x80, 0x02, b"\x4f\x00"))
    host.close()
    with pytest.raises(SecureChannelError):
        host.wrap_apdu(CommandApdu(0x80, 0xF2, 0x80, 0x02, b"\x4f\x00"))


def test_level_00_sends_the_plain_encoding() -> None:
    _, host, _ = _open_pair(0x00, False)
    apdu = CommandApdu(0x80, 0xCA, 0x00, 0x66, ne=256)
    assert host.wrap_apdu(apdu) == apdu.encode() == bytes.fromhex("80CA006600")
