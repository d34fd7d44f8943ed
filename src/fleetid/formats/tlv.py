"""BER-TLV (ISO/IEC 7816-4 §5.2, ITU-T X.690 §8.1) and GlobalPlatform DGI codecs, pure.

BER-TLV as smart cards use it:

* tag: one byte, or up to three when the low five bits of the first byte are all 1 (``1F``); every
  following byte has b8 set except the last (X.690 §8.1.2.4). Bit 6 (``20``) of the first byte marks
  a constructed object, whose value is itself a sequence of BER-TLV objects. Tags are carried here
  as the integer of their bytes (``9F7F``, ``E0``, ``DF01``).
* length: ``00``-``7F`` in one byte, else ``81 xx``, ``82 xxxx``, ``83 xxxxxx`` (ISO 7816-4 §5.2
  allows up to five bytes; three suffice for any APDU). The indefinite form ``80`` is not allowed
  in card data.

DGI (GP Card Spec §11.11.2.2, "Data Grouping Identifier" from the EMV CPS): a two-byte identifier,
then a length of one byte (``00``-``FE``) or ``FF`` followed by two bytes, then the value.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass

# TlvError is re-exported: the codec raises it and its callers name it here (errors.py holds it).
from fleetid.errors import TlvError
from fleetid.formats.frozen import slot_setter

__all__ = [
    "Dgi",
    "Tlv",
    "TlvError",
    "decode_dgis",
    "decode_tlv",
    "decode_tlvs",
    "encode_dgi",
    "encode_length",
    "encode_tag",
    "encode_tlv",
    "find_tlv",
]

_MAX_LENGTH_BYTES = 3
_MAX_TAG_BYTES = 3


def encode_tag(tag: int) -> bytes:
    """The tag bytes of ``tag`` (given as the integer of its bytes), checked for well-formedness."""
    one = _ONE_BYTE_TAGS.get(tag)
    if one is not None:
        return one
    if tag < 0:
        raise TlvError(f"tag {tag} is negative")
    raw = tag.to_bytes(max(1, (tag.bit_length() + 7) // 8), "big")
    if len(raw) > _MAX_TAG_BYTES:
        raise TlvError(f"tag {tag:X} is longer than {_MAX_TAG_BYTES} bytes (ISO 7816-4 §5.2.2.1)")
    if len(raw) > 1:
        if raw[0] & 0x1F != 0x1F:
            raise TlvError(f"tag {tag:X}: a multi-byte tag has 1F in its first byte's low bits")
        for i, b in enumerate(raw[1:], start=1):
            last = i == len(raw) - 1
            if bool(b & 0x80) == last:
                raise TlvError(f"tag {tag:X}: bad continuation bit in subsequent byte {i}")
        if raw[1] == 0x80:
            raise TlvError(f"tag {tag:X}: subsequent tag bytes must not start with 80 (X.690)")
    elif raw[0] & 0x1F == 0x1F:
        raise TlvError(f"tag {tag:X}: 1F in the low bits announces more tag bytes")
    return raw


def encode_length(length: int) -> bytes:
    """The definite length field for ``length`` in its shortest form."""
    if 0 <= length < 0x80:
        return _SHORT_LENGTHS[length]
    if length < 0:
        raise TlvError(f"length {length} is negative")
    raw = length.to_bytes((length.bit_length() + 7) // 8, "big")
    if len(raw) > _MAX_LENGTH_BYTES:
        raise TlvError(f"length {length} needs more than {_MAX_LENGTH_BYTES} length bytes")
    return bytes((0x80 | len(raw),)) + raw


def encode_tlv(tag: int, value: bytes) -> bytes:
    """One BER-TLV data object."""
    n = len(value)
    return (
        (_ONE_BYTE_TAGS.get(tag) or encode_tag(tag))
        + (_SHORT_LENGTHS[n] if n < 0x80 else encode_length(n))
        + value
    )


# Single-byte tags (low five bits not all set, ISO 7816-4 §5.2.2.1) and short-form lengths
# (X.690 §8.1.3.4), encoded once: most objects a card or a certificate holds use both.
_ONE_BYTE_TAGS = {t: bytes((t,)) for t in range(0x100) if t & 0x1F != 0x1F}
_SHORT_LENGTHS = [bytes((n,)) for n in range(0x80)]


@dataclass(frozen=True, slots=True, init=False)
class Tlv:
    """One decoded BER-TLV data object."""

    tag: int
    value: bytes

    def __init__(self, *, tag: int, value: bytes) -> None:
        # Frozen: set through the slots, past the frozen __setattr__ (a certificate or an APDU
        # decodes into dozens of these).
        _set_tag(self, tag)
        _set_value(self, value)

    @property
    def constructed(self) -> bool:
        """Bit 6 of the first tag byte: the value is a sequence of BER-TLV objects."""
        first = self.tag >> (8 * (max(1, (self.tag.bit_length() + 7) // 8) - 1))
        return bool(first & 0x20)

    def children(self) -> list[Tlv]:
        """The nested objects of a constructed object."""
        if not self.constructed:
            raise TlvError(f"tag {self.tag:X} is primitive, it has no nested objects")
        return decode_tlvs(self.value)

    def encode(self) -> bytes:
        return encode_tlv(self.tag, self.value)


_set_tag = slot_setter(Tlv, "tag")
_set_value = slot_setter(Tlv, "value")


def _read_tag(data: bytes, offset: int) -> tuple[int, int]:
    if offset >= len(data):
        raise TlvError("truncated: tag expected")
    start = offset
    first = data[offset]
    offset += 1
    if first & 0x1F == 0x1F:
        while True:
            if offset >= len(data):
                raise TlvError("truncated multi-byte tag")
            b = data[offset]
            if offset == start + 1 and b == 0x80:
                raise TlvError("subsequent tag bytes must not start with 80 (X.690)")
            offset += 1
            if offset - start > _MAX_TAG_BYTES:
                raise TlvError(f"tag longer than {_MAX_TAG_BYTES} bytes (ISO 7816-4 §5.2.2.1)")
            if not b & 0x80:
                break
    return int.from_bytes(data[start:offset], "big"), offset


def _read_length(data: bytes, offset: int) -> tuple[int, int]:
    if offset >= len(data):
        raise TlvError("truncated: length expected")
    first = data[offset]
    offset += 1
    if first < 0x80:
        return first, offset
    count = first & 0x7F
    if count == 0:
        raise TlvError("indefinite length (80) is not allowed")
    if count > _MAX_LENGTH_BYTES:
        raise TlvError(f"length field of {count} bytes is not supported")
    if offset + count > len(data):
        raise TlvError("truncated length field")
    length = int.from_bytes(data[offset : offset + count], "big")
    if length < 0x80 or length.bit_length() <= 8 * (count - 1):
        # DER-style minimal lengths; cards and GP tools never produce longer forms.
        raise TlvError(f"length {length} is not in its shortest form")
    return length, offset + count


def decode_tlv(data: bytes, offset: int = 0) -> tuple[Tlv, int]:
    """Decode one object at ``offset``; return it and the offset just after it."""
    n = len(data)
    if offset >= 0 and offset + 2 <= n and data[offset] & 0x1F != 0x1F:
        # The common cases first: a single-byte tag with a minimal length of one to three bytes
        # (X.690 §8.1.3), all present; anything else takes the checking path below.
        tag, length, start = data[offset], data[offset + 1], offset + 2
        if length >= 0x80:
            if length == 0x81 and start < n and data[start] >= 0x80:
                length, start = data[start], start + 1
            elif length == 0x82 and start + 1 < n and data[start]:
                length, start = (data[start] << 8) | data[start + 1], start + 2
            else:
                start = -1
        if start >= 0 and start + length <= n:
            return Tlv(tag=tag, value=bytes(data[start : start + length])), start + length
    tag, offset = _read_tag(data, offset)
    length, offset = _read_length(data, offset)
    end = offset + length
    if end > len(data):
        raise TlvError(f"tag {tag:X}: value of {length} bytes runs past the end")
    return Tlv(tag=tag, value=bytes(data[offset:end])), end


def decode_tlvs(data: bytes) -> list[Tlv]:
    """Decode a concatenation of BER-TLV objects that fills ``data`` exactly."""
    out: list[Tlv] = []
    offset = 0
    while offset < len(data):
        tlv, offset = decode_tlv(data, offset)
        out.append(tlv)
    return out


def find_tlv(objects: Iterable[Tlv], tag: int) -> Tlv | None:
    """The first object with ``tag``, or None."""
    return next((t for t in objects if t.tag == tag), None)


@dataclass(frozen=True, slots=True, kw_only=True)
class Dgi:
    """One GlobalPlatform DGI record (GP Card Spec §11.11.2.2)."""

    dgi: int
    value: bytes


def encode_dgi(dgi: int, value: bytes) -> bytes:
    """One DGI record: two-byte identifier, length ``00``-``FE`` or ``FF hi lo``, value."""
    if not 0 <= dgi <= 0xFFFF:
        raise TlvError(f"DGI {dgi} is not two bytes")
    n = len(value)
    if n > 0xFFFF:
        raise TlvError(f"DGI value of {n} bytes is too long")
    length = bytes((n,)) if n < 0xFF else b"\xff" + n.to_bytes(2, "big")
    return dgi.to_bytes(2, "big") + length + value


def _iter_dgis(data: bytes) -> Iterator[Dgi]:
    offset = 0
    while offset < len(data):
        if offset + 3 > len(data):
            raise TlvError("truncated DGI header")
        dgi = int.from_bytes(data[offset : offset + 2], "big")
        n = data[offset + 2]
        offset += 3
        if n == 0xFF:
            if offset + 2 > len(data):
                raise TlvError("truncated DGI length")
            n = int.from_bytes(data[offset : offset + 2], "big")
            offset += 2
        if offset + n > len(data):
            raise TlvError(f"DGI {dgi:04X}: value of {n} bytes runs past the end")
        yield Dgi(dgi=dgi, value=bytes(data[offset : offset + n]))
        offset += n


def decode_dgis(data: bytes) -> list[Dgi]:
    """Decode a concatenation of DGI records that fills ``data`` exactly."""
    return list(_iter_dgis(data))
