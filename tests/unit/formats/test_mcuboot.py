"""MCUboot image codec: layout facts, round trips and every way an image must fail to verify.

Interop with imgtool itself (both directions, byte identity) is in
``tests/integration/test_imgtool_interop.py``.
"""

from __future__ import annotations

import hashlib
import struct

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from hypothesis import given
from hypothesis import strategies as st

from fleetid.crypto.signer import SoftwareSigner
from fleetid.errors import ConfigError, EncodingError, VerificationError
from fleetid.formats import mcuboot
from fleetid.formats.mcuboot import (
    ImageFlag,
    ImageVersion,
    MalformedImageError,
    Tlv,
    TlvType,
    build_image,
    parse_image,
    verify_image,
)

# Keys are made once per module: ECDSA key generation is the slow part of these tests.
P256 = ec.generate_private_key(ec.SECP256R1())
P384 = ec.generate_private_key(ec.SECP384R1())
OTHER_P256 = ec.generate_private_key(ec.SECP256R1())
PAYLOAD = bytes(range(256)) * 3


def _image(key: ec.EllipticCurvePrivateKey = P256, **kwargs: object) -> bytes:
    options: dict[str, object] = {"version": "1.2.3+4", "security_counter": 7}
    options.update(kwargs)
    return build_image(PAYLOAD, SoftwareSigner(key), **options)  # type: ignore[arg-type]


def _tlv_offset(image: bytes, kind: int) -> int:
    """Offset of a TLV's value in the unprotected area (test helper, independent of the codec)."""
    _, _, hdr, prot, size = struct.unpack_from("<IIHHI", image)
    pos = hdr + size + prot
    magic, total = struct.unpack_from("<HH", image, pos)
    assert magic == 0x6907
    end, pos = pos + total, pos + 4
    while pos < end:
        t, n = struct.unpack_from("<HH", image, pos)
        if t == kind:
            return pos + 4
        pos += 4 + n
    raise AssertionError(f"no TLV {kind:#x}")


def _flip(image: bytes, offset: int, bit: int = 0) -> bytes:
    out = bytearray(image)
    out[offset] ^= 1 << bit
    return bytes(out)


# --- layout facts (MCUboot bootutil/image.h; secure-element.md §6.1) -------------------------


def test_header_layout_is_little_endian_struct_image_header() -> None:
    image = _image(header_size=0x200)
    magic, load, hdr, prot, size, flags, ma, mi, rev, build, pad = struct.unpack_from(
        "<IIHHIIBBHII", image
    )
    assert (magic, load, hdr, size, flags, pad) == (0x96F3B83D, 0, 0x200, len(PAYLOAD), 0, 0)
    assert (ma, mi, rev, build) == (1, 2, 3, 4)
    # protected area: info (4) + SEC_CNT TLV (4 + 4)
    assert prot == 12
    assert image[32:0x200] == b"\xff" * (0x200 - 32)  # imgtool --pad-header erased fill
    assert image[0x200 : 0x200 + len(PAYLOAD)] == PAYLOAD
    protected = image[0x200 + len(PAYLOAD) : 0x200 + len(PAYLOAD) + 12]
    assert protected == bytes.fromhex("0869 0c00 5000 0400 07000000".replace(" ", ""))


def test_hash_keyhash_and_signature_cover_what_mcuboot_signs() -> None:
    image = _image()
    parsed = parse_image(image)
    region = image[: parsed.hash_region_size]
    assert parsed.hash_region_size == 32 + len(PAYLOAD) + 12
    assert parsed.digest == hashlib.sha256(region).digest()
    spki = P256.public_key().public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
    assert parsed.key_hash == hashlib.sha256(spki).digest()
    assert parsed.signature is not None
    P256.public_key().verify(parsed.signature, region, ec.ECDSA(hashes.SHA256()))
    assert [t.type for t in parsed.unprotected_tlvs] == [0x10, 0x01, 0x22]


def test_p384_uses_sha384_for_hash_keyhash_and_signature() -> None:
    image = _image(P384)
    parsed = verify_image(image, P384.public_key())
    region = image[: parsed.hash_region_size]
    assert parsed.hash_type is TlvType.SHA384
    assert parsed.digest == hashlib.sha384(region).digest()
    spki = P384.public_key().public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
    assert parsed.key_hash == hashlib.sha384(spki).digest()
    assert [t.type for t in parsed.unprotected_tlvs] == [0x11, 0x01, 0x22]
    assert parsed.signature is not None
    P384.public_key().verify(parsed.signature, region, ec.ECDSA(hashes.SHA384()))


@pytest.mark.parametrize("key", [P256, P384], ids=["p256", "p384"])
def test_round_trip_fields(key: ec.EllipticCurvePrivateKey) -> None:
    parsed = verify_image(
        _image(key, version="9.8.7+65536", security_counter=0x01020304), key.public_key()
    )
    assert parsed.version == ImageVersion(major=9, minor=8, revision=7, build=65536)
    assert parsed.security_counter == 0x01020304
    assert parsed.payload == PAYLOAD
    assert parsed.header.flags == ImageFlag(0)


def test_options_load_addr_rom_fixed_non_bootable_full_pubkey_custom_tlv() -> None:
    parsed = verify_image(
        _image(
            load_addr=0x20000000,
            non_bootable=True,
            public_key_format="full",
            custom_tlvs=[Tlv(type=0xA0, value=b"fleet")],
        ),
        P256.public_key(),
    )
    assert parsed.header.load_addr == 0x20000000
    assert parsed.header.flags == ImageFlag.RAM_LOAD | ImageFlag.NON_BOOTABLE
    assert parsed.key_hash is None
    assert parsed.public_key_der == P256.public_key().public_bytes(
        Encoding.DER, PublicFormat.SubjectPublicKeyInfo
    )
    assert parsed.protected_tlvs[-1] == Tlv(type=0xA0, value=b"fleet")
    fixed = parse_image(_image(rom_fixed=0x8000))
    assert fixed.header.flags == ImageFlag.ROM_FIXED and fixed.header.load_addr == 0x8000


def test_image_without_security_counter_has_no_protected_area() -> None:
    parsed = verify_image(_image(security_counter=None), P256.public_key())
    assert parsed.security_counter is None
    assert parsed.header.protected_tlv_size == 0
    assert parsed.protected_tlvs == ()


def test_version_parsing_and_auto_security_counter() -> None:
    assert ImageVersion.parse("1.2.3+4") == ImageVersion(major=1, minor=2, revision=3, build=4)
    assert ImageVersion.parse("2") == ImageVersion(major=2)
    assert str(ImageVersion.parse("0.1")) == "0.1.0+0"
    assert ImageVersion.parse("1.2.3") < ImageVersion.parse("1.10.0")
    assert mcuboot.security_counter_from_version(ImageVersion.parse("1.2.3")) == 0x01020003
    for bad in ("", "1.2.3.4", "256.0.0", "1.-1", "v1"):
        with pytest.raises(ConfigError):
            ImageVersion.parse(bad)


@given(
    payload=st.binary(max_size=300),
    version=st.tuples(
        st.integers(0, 255), st.integers(0, 255), st.integers(0, 0xFFFF), st.integers(0, 0xFFFFFFFF)
    ),
    counter=st.none() | st.integers(0, 0xFFFFFFFF),
    header_size=st.integers(32, 0x400),
)
def test_property_build_parse_round_trip(
    payload: bytes, version: tuple[int, int, int, int], counter: int | None, header_size: int
) -> None:
    v = ImageVersion(major=version[0], minor=version[1], revision=version[2], build=version[3])
    image = build_image(
        payload, SoftwareSigner(P256), version=v, security_counter=counter, header_size=header_size
    )
    parsed = verify_image(image, P256.public_key())
    assert (parsed.payload, parsed.version, parsed.security_counter) == (payload, v, counter)
    assert parsed.header.header_size == header_size


def _rebuild_unprotected(image: bytes, tlvs: list[Tlv]) -> bytes:
    end = parse_image(image).hash_region_size
    body = b"".join(struct.pack("<HH", t.type, len(t.value)) + t.value for t in tlvs)
    return image[:end] + struct.pack("<HH", 0x6907, 4 + len(body)) + body


# --- negative cases ---------------------------------------------------------------------------


def test_malformed_is_both_encoding_and_verification_error() -> None:
    assert issubclass(MalformedImageError, EncodingError)
    assert issubclass(MalformedImageError, VerificationError)


@pytest.mark.parametrize(
    ("where", "offset"),
    [
        ("magic", 0),
        ("load_addr", 4),
        ("hdr_size", 8),
        ("protected_tlv_size", 10),
        ("img_size", 12),
        ("flags", 16),
        ("version", 20),
        ("build", 24),
        ("header pad", 28),
        ("payload first byte", 32),
        ("payload last byte", 32 + len(PAYLOAD) - 1),
        ("protected info magic", 32 + len(PAYLOAD)),
        ("protected SEC_CNT value", 32 + len(PAYLOAD) + 8),
    ],
)
def test_one_bit_flip_in_signed_bytes_is_refused(where: str, offset: int) -> None:
    image = _image()
    verify_image(image, P256.public_key())
    with pytest.raises(VerificationError):
        verify_image(_flip(image, offset), P256.public_key())


def test_every_single_bit_flip_anywhere_is_refused() -> None:
    """Exhaustive: no bit of a small image (signed or not) can change and still verify."""
    image = build_image(b"boot", SoftwareSigner(P256), version="1", security_counter=1)
    verify_image(image, P256.public_key())
    for offset in range(len(image)):
        for bit in range(8):
            with pytest.raises(VerificationError):
                verify_image(_flip(image, offset, bit), P256.public_key())


@pytest.mark.parametrize("kind", [TlvType.SHA256, TlvType.KEYHASH, TlvType.ECDSASIG])
def test_bit_flip_in_unprotected_tlvs_is_refused(kind: TlvType) -> None:
    image = _image()
    with pytest.raises(VerificationError):
        verify_image(_flip(image, _tlv_offset(image, kind) + 5), P256.public_key())


def test_wrong_key_is_refused() -> None:
    with pytest.raises(VerificationError, match="KEYHASH"):
        verify_image(_image(), OTHER_P256.public_key())


def test_wrong_curve_key_is_refused() -> None:
    with pytest.raises(VerificationError, match="SHA256"):
        verify_image(_image(P256), P384.public_key())


def test_keyhash_of_another_key_is_refused_even_with_a_valid_signature() -> None:
    # KEYHASH sits in the unprotected area, so swapping it leaves hash and signature valid:
    # only the KEYHASH check can catch it.
    image = bytearray(_image())
    at = _tlv_offset(bytes(image), TlvType.KEYHASH)
    image[at : at + 32] = mcuboot.key_hash(OTHER_P256.public_key())
    with pytest.raises(VerificationError, match="KEYHASH names another key"):
        verify_image(bytes(image), P256.public_key())


def test_signature_by_another_key_with_our_keyhash_is_refused() -> None:
    image = _image()
    tlvs = list(parse_image(image).unprotected_tlvs)
    other_sig = parse_image(_image(OTHER_P256)).signature  # same header, payload and TLVs
    assert other_sig is not None
    forged = _rebuild_unprotected(image, [*tlvs[:2], Tlv(type=0x22, value=other_sig)])
    with pytest.raises(VerificationError, match="signature does not verify"):
        verify_image(forged, P256.public_key())


def test_every_truncation_is_refused() -> None:
    image = _image()
    for length in range(len(image)):
        with pytest.raises(VerificationError):
            verify_image(image[:length], P256.public_key())


def test_trailing_bytes_are_refused() -> None:
    with pytest.raises(MalformedImageError, match="follow"):
        verify_image(_image() + b"\xff", P256.public_key())


def test_bad_magic_is_refused() -> None:
    image = bytearray(_image())
    image[0:4] = struct.pack("<I", 0x96F3B83C)
    with pytest.raises(MalformedImageError, match="magic"):
        parse_image(bytes(image))
    with pytest.raises(VerificationError):
        verify_image(bytes(image), P256.public_key())


def test_big_endian_magic_is_refused() -> None:
    image = bytearray(_image())
    image[0:4] = struct.pack(">I", 0x96F3B83D)
    with pytest.raises(MalformedImageError, match="magic"):
        parse_image(bytes(image))


def test_missing_signature_keyhash_or_hash_is_refused() -> None:
    image = _image()
    tlvs = list(parse_image(image).unprotected_tlvs)
    with pytest.raises(VerificationError, match="not signed"):
        verify_image(_rebuild_unprotected(image, tlvs[:2]), P256.public_key())
    with pytest.raises(VerificationError, match="names no signing key"):
        verify_image(_rebuild_unprotected(image, [tlvs[0], tlvs[2]]), P256.public_key())
    with pytest.raises(MalformedImageError, match="exactly one hash"):
        verify_image(_rebuild_unprotected(image, tlvs[1:]), P256.public_key())


def test_duplicate_and_misplaced_tlvs_are_refused() -> None:
    image = _image()
    tlvs = list(parse_image(image).unprotected_tlvs)
    with pytest.raises(MalformedImageError, match="duplicate"):
        parse_image(_rebuild_unprotected(image, [*tlvs, tlvs[2]]))
    with pytest.raises(MalformedImageError, match="not allowed in the unprotected"):
        parse_image(_rebuild_unprotected(image, [*tlvs, Tlv(type=0x50, value=b"\xff" * 4)]))
    with pytest.raises(MalformedImageError, match="not allowed in the unprotected"):
        parse_image(_rebuild_unprotected(image, [*tlvs, Tlv(type=0xA0, value=b"x")]))


def test_header_protected_size_disagreeing_with_area_is_refused() -> None:
    image = bytearray(_image(security_counter=None))
    image[10:12] = struct.pack("<H", 12)  # header claims a protected area that is not there
    with pytest.raises(MalformedImageError):
        parse_image(bytes(image))


def test_encrypted_flag_is_refused() -> None:
    image = bytearray(_image())
    image[16:20] = struct.pack("<I", ImageFlag.ENCRYPTED_AES128)
    with pytest.raises(MalformedImageError, match="encrypted"):
        parse_image(bytes(image))


def test_signature_padding_only_zeros() -> None:
    image = _image()
    tlvs = list(parse_image(image).unprotected_tlvs)
    sig = tlvs[2].value
    padded = _rebuild_unprotected(
        image, [*tlvs[:2], Tlv(type=0x22, value=sig + bytes(72 - len(sig)))]
    )
    verify_image(padded, P256.public_key())  # imgtool --pad-sig
    garbage = _rebuild_unprotected(image, [*tlvs[:2], Tlv(type=0x22, value=sig + b"\x01")])
    with pytest.raises(VerificationError, match="non-zero"):
        verify_image(garbage, P256.public_key())


def test_build_refuses_a_signer_whose_signature_does_not_verify() -> None:
    class LyingSigner(SoftwareSigner):
        def public_key(self) -> ec.EllipticCurvePublicKey:
            return P256.public_key()

    with pytest.raises(VerificationError):
        build_image(PAYLOAD, LyingSigner(OTHER_P256), version="1")


def test_build_refuses_bad_options() -> None:
    signer = SoftwareSigner(P256)
    with pytest.raises(ConfigError):
        build_image(PAYLOAD, signer, version="1", security_counter=1 << 32)
    with pytest.raises(ConfigError):
        build_image(PAYLOAD, signer, version="1", header_size=31)
    with pytest.raises(ConfigError):
        build_image(PAYLOAD, signer, version="1", load_addr=1, rom_fixed=2)
    with pytest.raises(ConfigError):
        build_image(PAYLOAD, signer, version="1", custom_tlvs=[Tlv(type=0x50, value=b"")])
    with pytest.raises(VerificationError):
        build_image(PAYLOAD, SoftwareSigner(ec.generate_private_key(ec.SECP521R1())), version="1")
