"""MCUboot signed images, built and parsed byte for byte as ``imgtool`` 2.5.0 writes them.

An image is four parts, all little-endian (MCUboot ``bootutil/image.h``; imgtool ``image.py``)::

    header (32 bytes, then fill up to hdr_size) ‖ payload (img_size bytes)
    ‖ protected TLV area   (info magic 0x6908, present when protected_tlv_size != 0)
    ‖ unprotected TLV area (info magic 0x6907)

A TLV info is ``<u16 magic><u16 total>``; ``total`` counts the info itself. Each TLV is
``<u16 type><u16 len> value``. imgtool packs predefined types as ``<u8 type><u8 0>``, which is the
same bytes as a little-endian u16. Big-endian images (``imgtool --endian big``) are not supported:
their magic reads wrong here and they are refused.

What is signed: header ‖ fill ‖ payload ‖ protected TLV area (the "hash region"). The unprotected
area holds the hash of that region (``SHA256``, or ``SHA384`` for P-384 keys), the key's identity
(``KEYHASH``: the same hash over the DER SubjectPublicKeyInfo, or ``PUBKEY``: that DER itself) and
``ECDSASIG``: a DER ECDSA signature over the hash region with the curve's hash (ECDSA-SHA256 for
P-256, ECDSA-SHA384 for P-384). The security counter (``SEC_CNT``, u32) lives in the protected
area, so it is signed.

Parsing fails closed: sizes must add up exactly, the image must end where the unprotected TLV area
ends (no trailing bytes, unless the caller passes ``slot=True`` for the content of a whole flash
slot, as ``imgtool sign --pad`` writes it: MCUboot then ignores what follows the TLVs), hash,
key and signature TLVs are allowed only in the unprotected area and ``SEC_CNT`` only in the
protected one, nothing but ``DEPENDENCY`` may repeat, and encrypted or compressed images are
refused. Every malformed image raises :class:`MalformedImageError`, which is both an
``EncodingError`` and a ``VerificationError``: callers who check "does this image verify" catch
``VerificationError`` and see every failure, bad bytes included.
"""

from __future__ import annotations

import hashlib
import re
import struct
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from enum import IntEnum, IntFlag

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from fleetid.crypto.signer import Signer, verify_signature
from fleetid.errors import ConfigError, MalformedImageError, VerificationError

__all__ = [
    "HEADER_SIZE",
    "IMAGE_MAGIC",
    "TLV_INFO_MAGIC",
    "TLV_PROT_INFO_MAGIC",
    "ImageFlag",
    "ImageHeader",
    "ImageVersion",
    "MalformedImageError",
    "ParsedImage",
    "Tlv",
    "TlvType",
    "build_image",
    "key_hash",
    "parse_image",
    "security_counter_from_version",
    "verify_image",
]

IMAGE_MAGIC = 0x96F3B83D
HEADER_SIZE = 32
TLV_INFO_MAGIC = 0x6907
TLV_PROT_INFO_MAGIC = 0x6908
_TLV_HEADER = struct.Struct("<HH")
# magic, load_addr, hdr_size, protected_tlv_size, img_size, flags, version (BBHI), pad
_IMAGE_HEADER = struct.Struct("<IIHHIIBBHII")
assert _IMAGE_HEADER.size == HEADER_SIZE  # noqa: S101 - a layout fact checked at import


class TlvType(IntEnum):
    """TLV types (imgtool ``TLV_VALUES``; MCUboot ``bootutil/image.h`` ``IMAGE_TLV_*``)."""

    KEYHASH = 0x01
    PUBKEY = 0x02
    SHA256 = 0x10
    SHA384 = 0x11
    SHA512 = 0x12
    RSA2048 = 0x20
    ECDSASIG = 0x22
    RSA3072 = 0x23
    ED25519 = 0x24
    SIG_PURE = 0x25
    ENCRSA2048 = 0x30
    ENCKW = 0x31
    ENCEC256 = 0x32
    ENCX25519 = 0x33
    ENCX25519_SHA512 = 0x34
    DEPENDENCY = 0x40
    SEC_CNT = 0x50
    BOOT_RECORD = 0x60
    DECOMP_SIZE = 0x70
    DECOMP_SHA = 0x71
    DECOMP_SIGNATURE = 0x72
    COMP_DEC_SIZE = 0x73
    UUID_VID = 0x74
    UUID_CID = 0x75


# imgtool accepts custom (vendor) TLVs in 0x00a0..0xfffe, protected area only.
_VENDOR_TLV_MIN = 0x00A0
_VENDOR_TLV_MAX = 0xFFFE

# The unprotected area may carry only what cannot be signed: the hash, the key identity and the
# signature (MCUboot's allow-list of unprotected TLVs has the same intent). Everything else must be
# covered by the hash.
_UNPROTECTED_ALLOWED = frozenset(
    {
        TlvType.KEYHASH,
        TlvType.PUBKEY,
        TlvType.SHA256,
        TlvType.SHA384,
        TlvType.SHA512,
        TlvType.ECDSASIG,
    }
)
_PROTECTED_ALLOWED = frozenset(
    {TlvType.SEC_CNT, TlvType.BOOT_RECORD, TlvType.DEPENDENCY, TlvType.UUID_VID, TlvType.UUID_CID}
)
_HASH_TLVS = {TlvType.SHA256: "sha256", TlvType.SHA384: "sha384", TlvType.SHA512: "sha512"}


class ImageFlag(IntFlag):
    """Header flags (imgtool ``IMAGE_F``)."""

    PIC = 0x0000001
    ENCRYPTED_AES128 = 0x0000004
    ENCRYPTED_AES256 = 0x0000008
    NON_BOOTABLE = 0x0000010
    RAM_LOAD = 0x0000020
    ROM_FIXED = 0x0000100
    COMPRESSED_LZMA1 = 0x0000200
    COMPRESSED_LZMA2 = 0x0000400
    COMPRESSED_ARM_THUMB = 0x0000800


# We verify plaintext, uncompressed images only; the hash of an encrypted or compressed image
# covers bytes this codec would hand out as "payload" without being the code that runs.
_UNSUPPORTED_FLAGS = (
    ImageFlag.ENCRYPTED_AES128
    | ImageFlag.ENCRYPTED_AES256
    | ImageFlag.COMPRESSED_LZMA1
    | ImageFlag.COMPRESSED_LZMA2
    | ImageFlag.COMPRESSED_ARM_THUMB
)

_VERSION_RE = re.compile(r"(\d+)(?:\.(\d+)(?:\.(\d+))?)?(?:\+(\d+))?")


@dataclass(frozen=True, kw_only=True, slots=True, order=True)
class ImageVersion:
    """``major.minor.revision+build`` (u8, u8, u16, u32), ordered field by field."""

    major: int
    minor: int = 0
    revision: int = 0
    build: int = 0

    def __post_init__(self) -> None:
        for name, bits in (("major", 8), ("minor", 8), ("revision", 16), ("build", 32)):
            value = getattr(self, name)
            if not 0 <= value < 1 << bits:
                raise ConfigError(f"version {name} {value} does not fit in {bits} bits")

    @classmethod
    def parse(cls, text: str) -> ImageVersion:
        """Parse imgtool's ``--version`` syntax, e.g. ``1.2.3+4`` or ``1.2``."""
        match = _VERSION_RE.fullmatch(text.strip())
        if match is None:
            raise ConfigError(
                f"invalid image version {text!r}; expected major.minor.revision+build"
            )
        major, minor, revision, build = (int(g) if g else 0 for g in match.groups())
        return cls(major=major, minor=minor, revision=revision, build=build)

    def __str__(self) -> str:
        return f"{self.major}.{self.minor}.{self.revision}+{self.build}"


def security_counter_from_version(version: ImageVersion) -> int:
    """imgtool's ``--security-counter auto``: ``major << 24 | minor << 16 | revision``."""
    return (version.major << 24) + (version.minor << 16) + version.revision


@dataclass(frozen=True, kw_only=True, slots=True)
class ImageHeader:
    """The 32-byte image header (MCUboot ``struct image_header``)."""

    load_addr: int
    header_size: int
    protected_tlv_size: int
    image_size: int
    flags: ImageFlag
    version: ImageVersion

    def encode(self) -> bytes:
        v = self.version
        return _IMAGE_HEADER.pack(
            IMAGE_MAGIC,
            self.load_addr,
            self.header_size,
            self.protected_tlv_size,
            self.image_size,
            int(self.flags),
            v.major,
            v.minor,
            v.revision,
            v.build,
            0,
        )


@dataclass(frozen=True, kw_only=True, slots=True)
class Tlv:
    """One type-length-value record."""

    type: int
    value: bytes

    def encode(self) -> bytes:
        return _TLV_HEADER.pack(self.type, len(self.value)) + self.value


@dataclass(frozen=True, kw_only=True, slots=True)
class ParsedImage:
    """A parsed image. ``payload`` is the firmware itself (after the header fill)."""

    header: ImageHeader
    payload: bytes
    protected_tlvs: tuple[Tlv, ...]
    unprotected_tlvs: tuple[Tlv, ...]
    hash_region_size: int

    @property
    def version(self) -> ImageVersion:
        return self.header.version

    @property
    def security_counter(self) -> int | None:
        """The signed ``SEC_CNT`` value, or None when the image has none."""
        value = self._find(self.protected_tlvs, TlvType.SEC_CNT)
        return None if value is None else int.from_bytes(value, "little")

    @property
    def hash_type(self) -> TlvType:
        for tlv in self.unprotected_tlvs:
            if tlv.type in _HASH_TLVS:
                return TlvType(tlv.type)
        raise MalformedImageError("image has no hash TLV")  # parse_image guarantees one

    @property
    def digest(self) -> bytes:
        """The image hash (value of the SHA256/SHA384 TLV): the boot measurement."""
        value = self._find(self.unprotected_tlvs, self.hash_type)
        assert value is not None  # noqa: S101 - hash_type found it
        return value

    @property
    def key_hash(self) -> bytes | None:
        return self._find(self.unprotected_tlvs, TlvType.KEYHASH)

    @property
    def public_key_der(self) -> bytes | None:
        return self._find(self.unprotected_tlvs, TlvType.PUBKEY)

    @property
    def signature(self) -> bytes | None:
        return self._find(self.unprotected_tlvs, TlvType.ECDSASIG)

    @staticmethod
    def _find(tlvs: Iterable[Tlv], kind: int) -> bytes | None:
        return next((t.value for t in tlvs if t.type == kind), None)


def _curve_hash(public_key: ec.EllipticCurvePublicKey) -> TlvType:
    # imgtool ALLOWED_KEY_SHA: ECDSA P-256 keys sign with SHA-256, P-384 keys with SHA-384; the
    # hash TLV, KEYHASH and the ECDSA hash all use that one algorithm.
    if isinstance(public_key.curve, ec.SECP256R1):
        return TlvType.SHA256
    if isinstance(public_key.curve, ec.SECP384R1):
        return TlvType.SHA384
    raise VerificationError(f"MCUboot ECDSA keys are P-256 or P-384, not {public_key.curve.name}")


def _spki(public_key: ec.EllipticCurvePublicKey) -> bytes:
    return public_key.public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)


def key_hash(public_key: ec.EllipticCurvePublicKey) -> bytes:
    """The KEYHASH TLV value for a key: the curve's hash over its DER SubjectPublicKeyInfo."""
    return hashlib.new(_HASH_TLVS[_curve_hash(public_key)], _spki(public_key)).digest()


def _parse_tlv_area(image: bytes, offset: int, magic: int, what: str) -> tuple[int, list[Tlv]]:
    """Parse the TLV area at ``offset``; return its end and its TLVs."""
    if offset + _TLV_HEADER.size > len(image):
        raise MalformedImageError(f"image truncated before the {what} TLV info")
    found, total = _TLV_HEADER.unpack_from(image, offset)
    if found != magic:
        raise MalformedImageError(f"{what} TLV info magic is {found:#06x}, expected {magic:#06x}")
    end = offset + total
    if total < _TLV_HEADER.size or end > len(image):
        raise MalformedImageError(f"{what} TLV area of {total} bytes runs past the image end")
    tlvs: list[Tlv] = []
    pos = offset + _TLV_HEADER.size
    while pos < end:
        if pos + _TLV_HEADER.size > end:
            raise MalformedImageError(f"{what} TLV header crosses the area end")
        kind, length = _TLV_HEADER.unpack_from(image, pos)
        pos += _TLV_HEADER.size
        if pos + length > end:
            raise MalformedImageError(f"{what} TLV {kind:#06x} crosses the area end")
        tlvs.append(Tlv(type=kind, value=bytes(image[pos : pos + length])))
        pos += length
    return end, tlvs


def _check_tlvs(tlvs: Sequence[Tlv], allowed: frozenset[TlvType], what: str) -> None:
    seen: set[int] = set()
    for tlv in tlvs:
        vendor = _VENDOR_TLV_MIN <= tlv.type <= _VENDOR_TLV_MAX
        if tlv.type not in allowed and not (vendor and what == "protected"):
            raise MalformedImageError(f"TLV {tlv.type:#06x} is not allowed in the {what} area")
        if tlv.type in seen and tlv.type != TlvType.DEPENDENCY:
            raise MalformedImageError(f"duplicate TLV {tlv.type:#06x} in the {what} area")
        seen.add(tlv.type)


def parse_image(image: bytes, *, slot: bool = False) -> ParsedImage:
    """Parse an image's structure without checking hash, key or signature.

    ``slot=True``: ``image`` is a whole flash slot; bytes after the TLV area (erased flash and the
    swap trailer) are ignored, as MCUboot ignores them. By default they are refused.

    Raises :class:`MalformedImageError` (an ``EncodingError`` and a ``VerificationError``) on a
    bad magic, inconsistent sizes, a truncated or over-long image, or TLVs out of place.
    """
    image = bytes(image)
    if len(image) < HEADER_SIZE:
        raise MalformedImageError(f"image of {len(image)} bytes is shorter than its header")
    (magic, load_addr, hdr_size, prot_size, img_size, flags, major, minor, revision, build, _) = (
        _IMAGE_HEADER.unpack_from(image)
    )
    if magic != IMAGE_MAGIC:
        raise MalformedImageError(f"image magic is {magic:#010x}, expected {IMAGE_MAGIC:#010x}")
    if hdr_size < HEADER_SIZE:
        raise MalformedImageError(
            f"hdr_size {hdr_size} is smaller than the {HEADER_SIZE}-byte header"
        )
    if flags & _UNSUPPORTED_FLAGS:
        raise MalformedImageError(
            f"encrypted or compressed images are not supported (flags {flags:#x})"
        )
    header = ImageHeader(
        load_addr=load_addr,
        header_size=hdr_size,
        protected_tlv_size=prot_size,
        image_size=img_size,
        flags=ImageFlag(flags),
        version=ImageVersion(major=major, minor=minor, revision=revision, build=build),
    )
    payload_end = hdr_size + img_size
    if payload_end > len(image):
        raise MalformedImageError("image truncated inside its payload")
    protected: list[Tlv] = []
    hash_region_size = payload_end
    if prot_size:
        # MCUboot: the protected area's own TLV info total must equal the header's
        # protected_tlv_size, which is how much the hash covers past the payload.
        hash_region_size, protected = _parse_tlv_area(
            image, payload_end, TLV_PROT_INFO_MAGIC, "protected"
        )
        if hash_region_size - payload_end != prot_size:
            raise MalformedImageError("protected TLV area size disagrees with the header")
    _check_tlvs(protected, _PROTECTED_ALLOWED, "protected")
    for tlv in protected:
        if tlv.type == TlvType.SEC_CNT and len(tlv.value) != 4:
            raise MalformedImageError("SEC_CNT TLV must be a 4-byte counter")
    end, unprotected = _parse_tlv_area(image, hash_region_size, TLV_INFO_MAGIC, "unprotected")
    if end != len(image) and not slot:
        raise MalformedImageError(f"{len(image) - end} bytes follow the unprotected TLV area")
    _check_tlvs(unprotected, _UNPROTECTED_ALLOWED, "unprotected")
    if sum(t.type in _HASH_TLVS for t in unprotected) != 1:
        raise MalformedImageError("image must carry exactly one hash TLV")
    return ParsedImage(
        header=header,
        payload=image[hdr_size:payload_end],
        protected_tlvs=tuple(protected),
        unprotected_tlvs=tuple(unprotected),
        hash_region_size=hash_region_size,
    )


def _strip_signature_padding(signature: bytes) -> bytes:
    # ``imgtool sign --pad-sig`` (for MCUboot < 1.5) appends zero bytes to reach 72 (P-256) or
    # 103 (P-384) bytes. A DER ECDSA-Sig-Value of these curves has a one-byte length, so the
    # encoding ends at signature[1] + 2; anything after it must be that zero padding.
    if len(signature) < 2 or signature[0] != 0x30 or signature[1] >= 0x80:
        raise VerificationError("ECDSASIG TLV is not a DER SEQUENCE")
    der, padding = signature[: signature[1] + 2], signature[signature[1] + 2 :]
    if any(padding):
        raise VerificationError("ECDSASIG TLV has non-zero bytes after the DER signature")
    return der


def verify_image(
    image: bytes, public_key: ec.EllipticCurvePublicKey, *, slot: bool = False
) -> ParsedImage:
    """Parse ``image`` and verify it against ``public_key``; return the parsed image.

    Checks in MCUboot's order (``bootutil_img_validate``): magic and sizes, TLV info magics, the
    hash TLV over header ‖ payload ‖ protected TLVs, KEYHASH (or PUBKEY) naming ``public_key``,
    then the ECDSA signature. Raises ``VerificationError`` on any mismatch or malformed byte.
    The security counter is returned, not judged: anti-rollback is the caller's state.
    ``slot``: as for :func:`parse_image`.
    """
    if not isinstance(public_key, ec.EllipticCurvePublicKey):
        raise VerificationError("MCUboot image keys here are ECDSA P-256 or P-384 public keys")
    expected_hash = _curve_hash(public_key)
    parsed = parse_image(image, slot=slot)
    if parsed.hash_type != expected_hash:
        raise VerificationError(
            f"image hash TLV is {parsed.hash_type.name}; a {public_key.curve.name} key needs "
            f"{expected_hash.name}"
        )
    region = bytes(image[: parsed.hash_region_size])
    if hashlib.new(_HASH_TLVS[expected_hash], region).digest() != parsed.digest:
        raise VerificationError("image hash does not match header ‖ payload ‖ protected TLVs")
    if parsed.key_hash is not None and parsed.public_key_der is not None:
        raise VerificationError("image carries both KEYHASH and PUBKEY")
    if parsed.key_hash is not None:
        if parsed.key_hash != key_hash(public_key):
            raise VerificationError("image KEYHASH names another key")
    elif parsed.public_key_der is not None:
        if parsed.public_key_der != _spki(public_key):
            raise VerificationError("image PUBKEY is another key")
    else:
        raise VerificationError("image names no signing key (no KEYHASH or PUBKEY TLV)")
    if parsed.signature is None:
        raise VerificationError("image is not signed (no ECDSASIG TLV)")
    verify_signature(
        public_key,
        _strip_signature_padding(parsed.signature),
        region,
        _hash_algorithm(expected_hash),
    )
    return parsed


def _hash_algorithm(kind: TlvType) -> hashes.HashAlgorithm:
    return hashes.SHA384() if kind == TlvType.SHA384 else hashes.SHA256()


def build_image(
    payload: bytes,
    signer: Signer,
    *,
    version: ImageVersion | str,
    security_counter: int | None = None,
    header_size: int = HEADER_SIZE,
    header_fill: int = 0xFF,
    load_addr: int = 0,
    rom_fixed: int | None = None,
    non_bootable: bool = False,
    public_key_format: str = "hash",
    custom_tlvs: Sequence[Tlv] = (),
) -> bytes:
    """Build and sign an image as ``imgtool sign`` does, the key staying inside ``signer``.

    The arguments mirror imgtool's options: ``--version``, ``--security-counter``,
    ``--header-size`` with ``--pad-header`` (the fill after the 32-byte header is imgtool's
    erased value, 0xff by default; 0x00 matches an input file that starts with zeros and no
    ``--pad-header``), ``--load-addr`` (sets RAM_LOAD), ``--rom-fixed`` (sets ROM_FIXED),
    ``--non-bootable``, ``--public-key-format hash|full`` and ``--custom-tlv`` (vendor types
    0x00a0..0xfffe, placed after SEC_CNT in the protected area). With the same inputs the output
    equals imgtool's byte for byte; only the ECDSA signature differs, because ECDSA is randomized.
    """
    if isinstance(version, str):
        version = ImageVersion.parse(version)
    public_key = signer.public_key()
    hash_type = _curve_hash(public_key)
    if signer.hash_algorithm.name != hash_type.name.lower():
        raise ConfigError(
            f"signer hashes with {signer.hash_algorithm.name}; MCUboot needs {hash_type.name}"
        )
    if not HEADER_SIZE <= header_size <= 0xFFFF:
        raise ConfigError(f"header_size {header_size} must be 32..65535")
    if load_addr and rom_fixed:
        raise ConfigError("load_addr and rom_fixed are mutually exclusive")
    if public_key_format not in ("hash", "full"):
        raise ConfigError("public_key_format is 'hash' or 'full'")

    protected = []
    if security_counter is not None:
        if not 0 <= security_counter <= 0xFFFFFFFF:
            raise ConfigError(f"security counter {security_counter} does not fit in 32 bits")
        protected.append(Tlv(type=TlvType.SEC_CNT, value=security_counter.to_bytes(4, "little")))
    for tlv in custom_tlvs:
        if not _VENDOR_TLV_MIN <= tlv.type <= _VENDOR_TLV_MAX:
            raise ConfigError(f"custom TLV type {tlv.type:#06x} is not in the vendor range")
        protected.append(tlv)
    if len({t.type for t in custom_tlvs}) != len(custom_tlvs):
        raise ConfigError("custom TLV types must be distinct")
    protected_area = _tlv_area(TLV_PROT_INFO_MAGIC, protected) if protected else b""

    flags = ImageFlag(0)
    if load_addr:
        flags |= ImageFlag.RAM_LOAD
    if rom_fixed:
        flags |= ImageFlag.ROM_FIXED
    if non_bootable:
        flags |= ImageFlag.NON_BOOTABLE
    header = ImageHeader(
        load_addr=rom_fixed or load_addr,
        header_size=header_size,
        protected_tlv_size=len(protected_area),
        image_size=len(payload),
        flags=flags,
        version=version,
    )
    fill = bytes([header_fill]) * (header_size - HEADER_SIZE)
    region = header.encode() + fill + bytes(payload) + protected_area

    # imgtool's unprotected order: hash, KEYHASH or PUBKEY, signature.
    spki = _spki(public_key)
    unprotected = [
        Tlv(type=hash_type, value=hashlib.new(_HASH_TLVS[hash_type], region).digest()),
        Tlv(type=TlvType.KEYHASH, value=key_hash(public_key))
        if public_key_format == "hash"
        else Tlv(type=TlvType.PUBKEY, value=spki),
        Tlv(type=TlvType.ECDSASIG, value=signer.sign(region)),
    ]
    image = region + _tlv_area(TLV_INFO_MAGIC, unprotected)
    # Fail closed on a signer (HSM, SE) that returned something that does not verify.
    verify_image(image, public_key)
    return image


def _tlv_area(magic: int, tlvs: Sequence[Tlv]) -> bytes:
    body = b"".join(t.encode() for t in tlvs)
    total = _TLV_HEADER.size + len(body)
    if total > 0xFFFF:
        raise ConfigError(f"TLV area of {total} bytes exceeds 65535")
    return _TLV_HEADER.pack(magic, total) + body
