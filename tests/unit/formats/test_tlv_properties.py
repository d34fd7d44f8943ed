"""BER-TLV and DGI codecs: round trips (hypothesis) and malformed inputs."""

from __future__ import annotations

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from fleetid.formats import tlv as tlv_module
from fleetid.formats.tlv import (
    Tlv,
    TlvError,
    decode_dgis,
    decode_tlv,
    decode_tlvs,
    encode_dgi,
    encode_length,
    encode_tag,
    encode_tlv,
    find_tlv,
)

one_byte_tags = st.integers(0, 0xFF).filter(lambda t: t & 0x1F != 0x1F)
two_byte_tags = st.builds(
    lambda a, b: (a << 8) | b,
    st.integers(0, 0xFF).map(lambda a: a | 0x1F),
    st.integers(0x1F, 0x7F),
)
three_byte_tags = st.builds(
    lambda a, b, c: (a << 16) | (b << 8) | c,
    st.integers(0, 0xFF).map(lambda a: a | 0x1F),
    st.integers(0x81, 0xFF),
    st.integers(0, 0x7F),
)
tags = st.one_of(one_byte_tags, two_byte_tags, three_byte_tags)
values = st.binary(max_size=600)


@given(tag=tags, value=values)
def test_tlv_round_trip(tag: int, value: bytes) -> None:
    raw = encode_tlv(tag, value)
    tlv, end = decode_tlv(raw)
    assert end == len(raw)
    assert tlv == Tlv(tag=tag, value=value)
    assert tlv.encode() == raw


@given(st.lists(st.tuples(tags, values), max_size=6))
def test_tlv_sequence_round_trip(items: list[tuple[int, bytes]]) -> None:
    raw = b"".join(encode_tlv(t, v) for t, v in items)
    assert [(t.tag, t.value) for t in decode_tlvs(raw)] == items


@given(st.integers(0, 0xFFFFFF))
def test_length_is_shortest_form(n: int) -> None:
    raw = encode_length(n)
    assert len(raw) == (1 if n < 0x80 else 2 if n < 0x100 else 3 if n < 0x10000 else 4)


@given(st.lists(st.tuples(st.integers(0, 0xFFFF), st.binary(max_size=400)), max_size=5))
def test_dgi_round_trip(items: list[tuple[int, bytes]]) -> None:
    raw = b"".join(encode_dgi(d, v) for d, v in items)
    assert [(d.dgi, d.value) for d in decode_dgis(raw)] == items


@given(tag=tags, value=st.binary(min_size=1, max_size=300), cut=st.integers(1, 400))
def test_truncated_tlv_is_refused(tag: int, value: bytes, cut: int) -> None:
    raw = encode_tlv(tag, value)
    with pytest.raises(TlvError):
        decode_tlvs(raw[: max(0, len(raw) - cut)] or b"\x9f")


def test_known_encodings() -> None:
    # GP CPLC data object as a card returns it: 9F7F 2A <42 bytes>.
    assert encode_tlv(0x9F7F, bytes(42))[:3] == bytes.fromhex("9F7F2A")
    assert encode_tlv(0xC0, bytes(200))[:3] == bytes.fromhex("C081C8")
    assert encode_tlv(0xDF01, bytes(0x1234))[:5] == bytes.fromhex("DF01821234")
    assert encode_dgi(0x0F01, bytes(3)) == bytes.fromhex("0F0103000000")
    assert encode_dgi(0x0F01, bytes(300))[:5] == bytes.fromhex("0F01FF012C")


def test_empty_input_is_no_objects() -> None:
    assert decode_tlvs(b"") == []
    assert decode_dgis(b"") == []


def test_constructed_children() -> None:
    inner = encode_tlv(0xC0, b"\x01\x30\x88\x10") + encode_tlv(0xC0, b"\x02\x30\x88\x10")
    outer, _ = decode_tlv(encode_tlv(0xE0, inner))
    assert outer.constructed
    kids = outer.children()
    assert [k.value for k in kids] == [b"\x01\x30\x88\x10", b"\x02\x30\x88\x10"]
    assert find_tlv(kids, 0xC0) == kids[0]
    assert find_tlv(kids, 0xC1) is None
    with pytest.raises(TlvError):
        kids[0].children()


@pytest.mark.parametrize(
    "raw",
    [
        "9F",  # multi-byte tag cut short
        "9F80 01 00",  # subsequent tag byte 80 (X.690 §8.1.2.4.2)
        "C0 80",  # indefinite length
        "C0 81 05 0000000000",  # 81 form for a length below 128
        "C0 82 0080" + "00" * 128,  # two length bytes where one does
        "C0 84 00000001 00",  # four length bytes
        "C0 05 0000",  # value runs past the end
        "9F FF FF 01 00",  # tag longer than three bytes
    ],
)
def test_malformed_tlv_is_refused(raw: str) -> None:
    with pytest.raises(TlvError):
        decode_tlvs(bytes.fromhex(raw.replace(" ", "")))


@pytest.mark.parametrize("raw", ["0F", "0F01", "0F01 05 00", "0F01 FF 00", "0F01 FF 0005 00"])
def test_malformed_dgi_is_refused(raw: str) -> None:
    with pytest.raises(TlvError):
        decode_dgis(bytes.fromhex(raw.replace(" ", "")))


@pytest.mark.parametrize("tag", [-1, 0x1F, 0x9F80, 0x9F8001, 0x1F81, 0x0101, 0x1F818101])
def test_bad_tags_are_refused_on_encode(tag: int) -> None:
    with pytest.raises(TlvError):
        encode_tag(tag)


def test_bad_lengths_are_refused_on_encode() -> None:
    with pytest.raises(TlvError):
        encode_length(-1)
    with pytest.raises(TlvError):
        encode_length(1 << 24)
    with pytest.raises(TlvError):
        encode_dgi(0x10000, b"")


def _checked_decode(data: bytes, offset: int) -> tuple[int, bytes, int]:
    """decode_tlv's checking path alone (no fast path), as the reference."""
    tag, at = tlv_module._read_tag(data, offset)
    length, at = tlv_module._read_length(data, at)
    if at + length > len(data):
        raise TlvError("value runs past the end")
    return tag, data[at : at + length], at + length


@given(data=st.binary(max_size=40), offset=st.integers(0, 42))
def test_fast_path_accepts_and_refuses_exactly_as_the_checking_path(
    data: bytes, offset: int
) -> None:
    """Random bytes at random offsets: the same object and end, or TlvError from both."""
    try:
        expected: tuple[int, bytes, int] | None = _checked_decode(data, offset)
    except TlvError:
        expected = None
    if expected is None:
        with pytest.raises(TlvError):
            decode_tlv(data, offset)
    else:
        got, end = decode_tlv(data, offset)
        assert (got.tag, got.value, end) == expected


@given(
    tag=one_byte_tags,
    length_form=st.sampled_from(["81", "82"]),
    length=st.integers(0, 0x1FF),
)
def test_fast_path_refuses_non_minimal_long_lengths(
    tag: int, length_form: str, length: int
) -> None:
    """81 xx below 80 and 82 00 xx are not DER (X.690 §10.1); the fast path must not take them."""
    size = 1 if length_form == "81" else 2
    assume(length < 1 << (8 * size))
    raw = bytes((tag,)) + bytes.fromhex(length_form) + length.to_bytes(size, "big") + bytes(length)
    minimal = length >= 0x80 if size == 1 else length >= 0x100
    if minimal:
        assert decode_tlv(raw)[0].value == bytes(length)
    else:
        with pytest.raises(TlvError):
            decode_tlv(raw)
