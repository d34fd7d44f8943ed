"""The signed binary format of an offline revocation filter (full or delta), parsed strictly.

Layout, all integers big-endian (``docs/revocation-filter.md`` has the field table)::

    header   magic "FIDF" | version 1 | kind | flags | reserved 0
             watermark u64 | coverage_until i64 (POSIX seconds)
             base_watermark u64 | full_digest[32] | base_digest[32] | signer_key_id[32]
             revoked_count u64 | valid_count u64
             level_count u8 | level_count x (w u16 | k u8 | reserved 0 | m u32 | seed u64)
             body_length u32
    body     body_length bytes: the ribbon solution bits, level after level, column after
             column, least significant bit first; unused bits of the last byte are zero
    trailer  signature_length u16 | DER ECDSA signature over every byte before the trailer

Parsing rejects anything that is not exactly one canonical encoding: a wrong magic or version,
unknown flag bits, non-zero reserved bytes, levels that break the construction's rules, a body
whose length disagrees with the level parameters, non-zero padding bits, or trailing bytes all
raise ``EncodingError``. The signature itself is checked by the verifier, not here.

The keys a filter is over are 16-byte certificate identifiers (:func:`certificate_id`), the one
definition the registry, the builder and the device share.
"""

from __future__ import annotations

import enum
import hashlib
import struct
from dataclasses import dataclass
from datetime import UTC, datetime

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from fleetid.errors import EncodingError

__all__ = [
    "CERT_ID_SIZE",
    "DIGEST_SIZE",
    "FORMAT_VERSION",
    "MAGIC",
    "MAX_FINGERPRINT_BITS",
    "MAX_RIBBON_WIDTH",
    "FilterHeader",
    "FilterKind",
    "LevelParams",
    "SignedFilter",
    "append_signature",
    "artefact_digest",
    "certificate_id",
    "encode_unsigned",
    "key_id",
    "parse_filter",
]

MAGIC = b"FIDF"
FORMAT_VERSION = 1
DIGEST_SIZE = 32
MAX_RIBBON_WIDTH = 256
MAX_FINGERPRINT_BITS = 32
CERT_ID_SIZE = 16
_SERIAL_OCTETS = 20  # RFC 5280 §4.1.2.2

_FLAG_INVERTED = 0x01
_ZERO_DIGEST = bytes(DIGEST_SIZE)

# magic, version, kind, flags, reserved, watermark, coverage, base watermark,
# full digest, base digest, signer key id, revoked count, valid count, level count
_FIXED = struct.Struct(">4sBBBBQqQ32s32s32sQQB")
_LEVEL = struct.Struct(">HBBIQ")
_U32 = struct.Struct(">I")
_U16 = struct.Struct(">H")


class FilterKind(enum.IntEnum):
    """Whether a filter stands alone or extends an earlier one."""

    FULL = 1
    DELTA = 2


@dataclass(frozen=True, kw_only=True)
class LevelParams:
    """One ribbon level: ``m`` slots, rows ``w`` bits wide, ``k`` solution bits per slot.

    With two levels the first is the fingerprint filter (``k`` bits compared to a hash of the
    key) and the second is the exact 1-bit function; a single level is the exact one.
    """

    width: int
    value_bits: int
    slots: int
    seed: int

    @property
    def bits(self) -> int:
        """How many body bits this level takes."""
        return self.value_bits * self.slots


@dataclass(frozen=True, kw_only=True)
class FilterHeader:
    """Everything a filter says about itself before its body."""

    kind: FilterKind
    inverted: bool
    watermark: int
    coverage_until: datetime
    base_watermark: int
    full_digest: bytes
    base_digest: bytes
    signer_key_id: bytes
    revoked_count: int
    valid_count: int
    levels: tuple[LevelParams, ...]

    @property
    def body_bits(self) -> int:
        return sum(level.bits for level in self.levels)


@dataclass(frozen=True, kw_only=True)
class SignedFilter:
    """A parsed filter: its header, body, the signed bytes and the signature over them."""

    header: FilterHeader
    body: bytes
    signed_bytes: bytes
    signature: bytes
    digest: bytes


def key_id(public_key: ec.EllipticCurvePublicKey) -> bytes:
    """SHA-256 of the key's DER SubjectPublicKeyInfo: how a filter names the key that signed it."""
    spki = public_key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return hashlib.sha256(spki).digest()


def certificate_id(issuer_key_id: bytes, serial_number: int) -> bytes:
    """The 16-byte key a filter uses for a certificate: SHA-256(issuer key id ‖ serial)[:16].

    ``issuer_key_id`` is the issuing CA's subjectKeyIdentifier (what the authority's ``ca_keys``
    table records, and what its end-entity certificates carry as authorityKeyIdentifier);
    ``serial_number`` is written as 20 big-endian octets, the RFC 5280 §4.1.2.2 maximum.
    """
    if not issuer_key_id:
        raise ValueError("issuer key id is empty")
    if not 0 < serial_number < 1 << (8 * _SERIAL_OCTETS):
        raise ValueError("serial number must be positive and at most 20 octets (RFC 5280)")
    digest = hashlib.sha256(issuer_key_id + serial_number.to_bytes(_SERIAL_OCTETS, "big"))
    return digest.digest()[:CERT_ID_SIZE]


def artefact_digest(data: bytes) -> bytes:
    """SHA-256 over a whole signed filter: the name a delta uses for the filter it follows."""
    return hashlib.sha256(data).digest()


def _check_header(header: FilterHeader) -> None:
    """The construction's rules on a header; ``EncodingError`` names the first one broken."""
    if header.kind is FilterKind.FULL:
        if header.base_watermark or header.full_digest != _ZERO_DIGEST:
            raise EncodingError("full filter carries a base")
        if header.base_digest != _ZERO_DIGEST:
            raise EncodingError("full filter carries a base digest")
    elif header.watermark < header.base_watermark:
        raise EncodingError("delta watermark is below its base watermark")
    for name, digest in (
        ("full_digest", header.full_digest),
        ("base_digest", header.base_digest),
        ("signer_key_id", header.signer_key_id),
    ):
        if len(digest) != DIGEST_SIZE:
            raise EncodingError(f"{name} is not {DIGEST_SIZE} bytes")
    if header.inverted != (header.revoked_count > header.valid_count):
        raise EncodingError("inversion flag disagrees with the counts")
    encoded = min(header.revoked_count, header.valid_count)
    levels = header.levels
    if (encoded == 0) != (len(levels) == 0) or len(levels) > 2:
        raise EncodingError("level count does not fit the population")
    for index, level in enumerate(levels):
        exact = index == len(levels) - 1
        if not 1 <= level.width <= MAX_RIBBON_WIDTH or level.slots < level.width:
            raise EncodingError("ribbon width out of range")
        if level.slots >= 1 << 32 or not 0 <= level.seed < 1 << 64:
            raise EncodingError("level parameters out of range")
        if exact and level.value_bits != 1:
            raise EncodingError("the exact level must hold 1 bit per slot")
        if not exact and not 1 <= level.value_bits <= MAX_FINGERPRINT_BITS:
            raise EncodingError("fingerprint width out of range")


def encode_unsigned(header: FilterHeader, body: bytes) -> bytes:
    """Header and body: the bytes the signature covers."""
    _check_header(header)
    if len(body) != (header.body_bits + 7) // 8:
        raise ValueError("body length does not match the level parameters")
    coverage = int(header.coverage_until.timestamp())
    fixed = _FIXED.pack(
        MAGIC,
        FORMAT_VERSION,
        header.kind,
        _FLAG_INVERTED if header.inverted else 0,
        0,
        header.watermark,
        coverage,
        header.base_watermark,
        header.full_digest,
        header.base_digest,
        header.signer_key_id,
        header.revoked_count,
        header.valid_count,
        len(header.levels),
    )
    levels = b"".join(
        _LEVEL.pack(level.width, level.value_bits, 0, level.slots, level.seed)
        for level in header.levels
    )
    return fixed + levels + _U32.pack(len(body)) + body


def append_signature(unsigned: bytes, signature: bytes) -> bytes:
    """The complete filter: the signed bytes followed by the signature trailer."""
    if not 0 < len(signature) < 1 << 16:
        raise ValueError("signature length out of range")
    return unsigned + _U16.pack(len(signature)) + signature


def _take(data: bytes, offset: int, size: int, what: str) -> bytes:
    if offset + size > len(data):
        raise EncodingError(f"filter truncated in {what}")
    return data[offset : offset + size]


def parse_filter(data: bytes) -> SignedFilter:
    """Parse a signed filter strictly; raise ``EncodingError`` on any deviation.

    The signature is *not* checked here: ``FilterVerifier.load`` does that.
    """
    data = bytes(data)
    (
        magic,
        version,
        kind,
        flags,
        reserved,
        watermark,
        coverage,
        base_watermark,
        full_digest,
        base_digest,
        signer_key_id,
        revoked_count,
        valid_count,
        level_count,
    ) = _FIXED.unpack(_take(data, 0, _FIXED.size, "header"))
    if magic != MAGIC:
        raise EncodingError("not a fleetid revocation filter (bad magic)")
    if version != FORMAT_VERSION:
        raise EncodingError(f"unsupported filter format version {version}")
    if kind not in (FilterKind.FULL, FilterKind.DELTA):
        raise EncodingError(f"unknown filter kind {kind}")
    if flags & ~_FLAG_INVERTED or reserved:
        raise EncodingError("unknown flags or non-zero reserved byte")
    offset = _FIXED.size
    levels = []
    for _ in range(level_count):
        width, value_bits, level_reserved, slots, seed = _LEVEL.unpack(
            _take(data, offset, _LEVEL.size, "level parameters")
        )
        if level_reserved:
            raise EncodingError("non-zero reserved byte in level parameters")
        levels.append(LevelParams(width=width, value_bits=value_bits, slots=slots, seed=seed))
        offset += _LEVEL.size
    try:
        coverage_until = datetime.fromtimestamp(coverage, tz=UTC)
    except (OverflowError, OSError, ValueError) as exc:
        raise EncodingError("coverage time out of range") from exc
    header = FilterHeader(
        kind=FilterKind(kind),
        inverted=bool(flags & _FLAG_INVERTED),
        watermark=watermark,
        coverage_until=coverage_until,
        base_watermark=base_watermark,
        full_digest=full_digest,
        base_digest=base_digest,
        signer_key_id=signer_key_id,
        revoked_count=revoked_count,
        valid_count=valid_count,
        levels=tuple(levels),
    )
    _check_header(header)
    (body_length,) = _U32.unpack(_take(data, offset, _U32.size, "body length"))
    offset += _U32.size
    if body_length != (header.body_bits + 7) // 8:
        raise EncodingError("body length does not match the level parameters")
    body = _take(data, offset, body_length, "body")
    offset += body_length
    spare = -header.body_bits % 8
    if spare and body[-1] >> (8 - spare):
        raise EncodingError("non-zero padding bits after the body")
    signed_end = offset
    (signature_length,) = _U16.unpack(_take(data, offset, _U16.size, "signature length"))
    offset += _U16.size
    signature = _take(data, offset, signature_length, "signature")
    offset += signature_length
    if offset != len(data):
        raise EncodingError(f"{len(data) - offset} trailing bytes after the signature")
    if not signature:
        raise EncodingError("empty signature")
    return SignedFilter(
        header=header,
        body=body,
        signed_bytes=data[:signed_end],
        signature=signature,
        digest=artefact_digest(data),
    )
