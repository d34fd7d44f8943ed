"""Property tests of the ISO 7816-4 APDU codec: every command round-trips, every case told apart."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fleetid.formats.apdu import (
    CommandApdu,
    MalformedApduError,
    ResponseApdu,
    parse_command,
    parse_response,
)

byte = st.integers(0, 255)
commands = st.builds(
    CommandApdu,
    cla=byte,
    ins=byte,
    p1=byte,
    p2=byte,
    data=st.one_of(st.just(b""), st.binary(min_size=1, max_size=300)),
    ne=st.one_of(st.none(), st.integers(1, 65536)),
    extended=st.booleans(),
)


@given(commands)
def test_command_round_trips(cmd: CommandApdu) -> None:
    decoded = parse_command(cmd.encode())
    assert (decoded.cla, decoded.ins, decoded.p1, decoded.p2) == (cmd.cla, cmd.ins, cmd.p1, cmd.p2)
    assert decoded.data == cmd.data
    assert decoded.ne == cmd.ne
    assert decoded.case == cmd.case
    assert decoded.encode() == cmd.encode()


@given(commands)
def test_truncated_or_padded_commands_are_refused_or_reinterpreted(cmd: CommandApdu) -> None:
    raw = cmd.encode()
    for cut in (raw[:-1], raw + b"\x00\x00\x00"):
        try:
            other = parse_command(cut)
        except MalformedApduError as exc:
            assert exc.sw == 0x6700
        else:
            # A few cut/padded strings are valid APDUs of another case; never the same command.
            assert other.encode() != raw


@given(st.binary(max_size=600))
def test_arbitrary_bytes_parse_or_raise_malformed(raw: bytes) -> None:
    try:
        cmd = parse_command(raw)
    except MalformedApduError:
        return
    assert cmd.encode() == raw


@given(st.binary(max_size=300), st.integers(0, 0xFFFF))
def test_response_round_trips(data: bytes, sw: int) -> None:
    resp = parse_response(ResponseApdu(data, sw).encode())
    assert resp == ResponseApdu(data, sw)


@pytest.mark.parametrize(
    ("raw", "case", "nc", "ne"),
    [
        ("00A40400", 1, 0, None),
        ("00B0000000", 2, 0, 256),
        ("00B0000010", 2, 0, 16),
        ("00B00000000000", 2, 0, 65536),
        ("00B00000000100", 2, 0, 256),
        ("00D6000002AABB", 3, 2, None),
        ("00D60000000002AABB", 3, 2, None),
        ("0088000002AABB00", 4, 2, 256),
        ("00880000000002AABB0000", 4, 2, 65536),
    ],
)
def test_known_encodings(raw: str, case: int, nc: int, ne: int | None) -> None:
    cmd = parse_command(bytes.fromhex(raw))
    assert (cmd.case, len(cmd.data), cmd.ne) == (case, nc, ne)
    assert cmd.encode().hex().upper() == raw


@pytest.mark.parametrize(
    "raw",
    [
        "",
        "00A404",
        "00D6000003AABB",  # Lc says 3, two bytes follow
        "00D6000001AABBCC",  # Lc says 1, three bytes follow
        "000000000000",  # 6 bytes: neither 2S nor 2E
        "00D600000000AABB",  # extended Lc of 0
        "00D60000000003AABB",  # extended Lc 3, two bytes
    ],
)
def test_malformed_commands_raise(raw: str) -> None:
    with pytest.raises(MalformedApduError):
        parse_command(bytes.fromhex(raw))


def test_response_needs_status_word() -> None:
    with pytest.raises(MalformedApduError):
        parse_response(b"\x90")


@pytest.mark.parametrize("field", ["cla", "ins", "p1", "p2"])
@pytest.mark.parametrize("value", [-1, 0x100, 0x1FF])
def test_header_fields_outside_a_byte_are_refused(field: str, value: int) -> None:
    header = {"cla": 0x80, "ins": 0xCA, "p1": 0x9F, "p2": 0x7F, field: value}
    with pytest.raises(MalformedApduError, match=f"{field} {value} is not a byte"):
        CommandApdu(**header)
