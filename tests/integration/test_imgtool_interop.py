"""Interop with MCUboot's own ``imgtool`` (PyPI, Apache-2.0), driven through its CLI.

Both directions, P-256 and P-384: images imgtool signs verify with ``verify_image`` and parse to
the fields imgtool's ``dumpinfo`` reports; images ``build_image`` makes pass ``imgtool verify``.
Byte identity: with the same inputs our image equals imgtool's in every byte but the signature,
and equals it entirely when imgtool is handed our signature (``--fix-sig``).
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
    PublicFormat,
)
from tests.optional import require_module

from fleetid.crypto.signer import SoftwareSigner
from fleetid.errors import VerificationError
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

require_module("imgtool", install="pip install -r requirements/test.txt")

CURVES = {"p256": ec.SECP256R1(), "p384": ec.SECP384R1()}


def imgtool(*args: str | Path, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "imgtool.main", *map(str, args)],
        capture_output=True,
        text=True,
        check=check,
    )


@pytest.fixture(params=sorted(CURVES))
def key(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[ec.EllipticCurvePrivateKey, Path]:
    private = ec.generate_private_key(CURVES[request.param])
    path = tmp_path / f"{request.param}.pem"
    path.write_bytes(private.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption()))
    return private, path


@pytest.fixture
def firmware(tmp_path: Path) -> tuple[bytes, Path]:
    data = os.urandom(3001)
    path = tmp_path / "fw.bin"
    path.write_bytes(data)
    return data, path


def _dumpinfo(image: Path) -> dict[str, object]:
    out = imgtool("dumpinfo", "-f", "json", "-s", "-o", image.with_suffix(".json"), image)
    assert out.returncode == 0
    loaded: dict[str, object] = json.loads(image.with_suffix(".json").read_text())
    return loaded


# --- imgtool signs, we verify ----------------------------------------------------------------


@pytest.mark.parametrize(
    "options",
    [
        ["--header-size", "0x200", "--pad-header", "--align", "8", "--security-counter", "7"],
        ["--header-size", "0x20", "--pad-header", "--security-counter", "auto"],
        ["--header-size", "0x100", "--pad-header", "--public-key-format", "full"],
        [
            "--header-size",
            "0x80",
            "--pad-header",
            "--load-addr",
            "0x20000000",
            "--custom-tlv",
            "0xa0",
            "0x0102",
            "--security-counter",
            "4294967295",
        ],
        ["--header-size", "0x40", "--pad-header", "--rom-fixed", "0x8000", "--non-bootable"],
        ["--header-size", "0x20", "--pad-header", "--pad-sig", "--security-counter", "1"],
    ],
    ids=["hdr512-sc7", "sc-auto", "full-pubkey", "ramload-custom-sc-max", "rom-fixed", "pad-sig"],
)
def test_imgtool_signed_images_verify_and_parse_to_the_same_fields(
    key: tuple[ec.EllipticCurvePrivateKey, Path],
    firmware: tuple[bytes, Path],
    tmp_path: Path,
    options: list[str],
) -> None:
    private, key_file = key
    data, fw = firmware
    out = tmp_path / "signed.bin"
    imgtool(
        "sign", "-k", key_file, "--version", "1.2.3+4", "--slot-size", "0x100000", *options, fw, out
    )
    image = out.read_bytes()
    parsed = verify_image(image, private.public_key())

    info = _dumpinfo(out)
    header = info["header"]
    assert isinstance(header, dict)
    assert parsed.header.header_size == header["hdr_size"]
    assert parsed.header.protected_tlv_size == header["protected_tlv_size"]
    assert parsed.header.image_size == header["img_size"] == len(data)
    assert int(parsed.header.flags) == header["flags"]
    assert parsed.header.load_addr == header["load_addr"]
    assert str(parsed.version) == header["version"] == "1.2.3+4"
    assert parsed.payload == data
    tlv_area = info["tlv_area"]
    assert isinstance(tlv_area, dict)
    theirs = [(t["type"], bytes.fromhex(t["data"])) for t in tlv_area["tlvs"]]
    assert [(t.type, t.value) for t in parsed.unprotected_tlvs] == theirs
    theirs_prot = [(t["type"], bytes.fromhex(t["data"])) for t in tlv_area.get("tlvs_prot", [])]
    assert [(t.type, t.value) for t in parsed.protected_tlvs] == theirs_prot

    if "auto" in options:
        assert parsed.security_counter == (1 << 24) + (2 << 16) + 3
    elif "--security-counter" in options:
        assert parsed.security_counter == int(options[options.index("--security-counter") + 1])
    else:
        assert parsed.security_counter is None
    if "--load-addr" in options:
        assert parsed.header.flags == ImageFlag.RAM_LOAD
        assert parsed.protected_tlvs[-1] == Tlv(type=0xA0, value=b"\x01\x02")
    if "--rom-fixed" in options:
        assert parsed.header.flags == ImageFlag.ROM_FIXED | ImageFlag.NON_BOOTABLE
    expected_hash = TlvType.SHA384 if private.curve.key_size == 384 else TlvType.SHA256
    assert parsed.hash_type is expected_hash


def test_imgtool_image_with_zero_header_input_and_no_pad_header(
    key: tuple[ec.EllipticCurvePrivateKey, Path], tmp_path: Path
) -> None:
    private, key_file = key
    fw = tmp_path / "zeros.bin"
    fw.write_bytes(bytes(0x20) + b"firmware body")
    out = tmp_path / "signed.bin"
    imgtool("sign", "-k", key_file, "--version", "0.0.1", "-H", "0x20", "-S", "0x10000", fw, out)
    parsed = verify_image(out.read_bytes(), private.public_key())
    assert parsed.payload == b"firmware body"


def test_imgtool_images_fail_with_the_wrong_key_or_a_flipped_bit(
    key: tuple[ec.EllipticCurvePrivateKey, Path], firmware: tuple[bytes, Path], tmp_path: Path
) -> None:
    private, key_file = key
    _, fw = firmware
    out = tmp_path / "signed.bin"
    imgtool(
        "sign",
        "-k",
        key_file,
        "--version",
        "1.0.0",
        "-H",
        "0x200",
        "--pad-header",
        "-S",
        "0x100000",
        "--security-counter",
        "3",
        fw,
        out,
    )
    image = out.read_bytes()
    other = ec.generate_private_key(private.curve)
    with pytest.raises(VerificationError):
        verify_image(image, other.public_key())
    for offset in (0, 12, 20, 0x200, 0x200 + 3000, len(image) - 1):
        flipped = bytearray(image)
        flipped[offset] ^= 0x80
        with pytest.raises(VerificationError):
            verify_image(bytes(flipped), private.public_key())
    with pytest.raises(VerificationError):
        verify_image(image[:-1], private.public_key())


# --- we sign, imgtool verifies ---------------------------------------------------------------


def test_our_images_pass_imgtool_verify(
    key: tuple[ec.EllipticCurvePrivateKey, Path], firmware: tuple[bytes, Path], tmp_path: Path
) -> None:
    private, key_file = key
    data, _ = firmware
    image = build_image(
        data, SoftwareSigner(private), version="3.1.4+159", security_counter=42, header_size=0x200
    )
    out = tmp_path / "ours.bin"
    out.write_bytes(image)
    result = imgtool("verify", "-k", key_file, out)
    assert "Image was correctly validated" in result.stdout
    assert "Image version: 3.1.4+159" in result.stdout
    assert f"Image digest: {parse_image(image).digest.hex()}" in result.stdout


def test_imgtool_verify_rejects_our_image_tampered_or_under_another_key(
    key: tuple[ec.EllipticCurvePrivateKey, Path], firmware: tuple[bytes, Path], tmp_path: Path
) -> None:
    private, key_file = key
    data, _ = firmware
    image = bytearray(build_image(data, SoftwareSigner(private), version="1", header_size=0x40))
    image[0x40 + 10] ^= 1
    out = tmp_path / "tampered.bin"
    out.write_bytes(bytes(image))
    result = imgtool("verify", "-k", key_file, out, check=False)
    assert result.returncode != 0 and "invalid hash" in result.stdout

    other = ec.generate_private_key(private.curve)
    out.write_bytes(build_image(data, SoftwareSigner(other), version="1", header_size=0x40))
    result = imgtool("verify", "-k", key_file, out, check=False)
    assert result.returncode != 0


# --- byte identity ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("ours", "theirs"),
    [
        (
            {"header_size": 0x200, "security_counter": 7},
            ["-H", "0x200", "--pad-header", "--security-counter", "7"],
        ),
        ({"header_size": 0x20}, ["-H", "0x20", "--pad-header"]),
        (
            {
                "header_size": 0x80,
                "load_addr": 0x20000000,
                "public_key_format": "full",
                "custom_tlvs": [Tlv(type=0x1234, value=b"fleetid")],
                "security_counter": 0,
            },
            [
                "-H",
                "0x80",
                "--pad-header",
                "-L",
                "0x20000000",
                "--public-key-format",
                "full",
                "--custom-tlv",
                "0x1234",
                "fleetid",
                "--security-counter",
                "0",
            ],
        ),
        (
            {"header_size": 0x40, "rom_fixed": 0x10000, "non_bootable": True, "header_fill": 0},
            ["-H", "0x40", "--pad-header", "-F", "0x10000", "--non-bootable", "-R", "0"],
        ),
    ],
    ids=["sc7-hdr512", "plain", "ram-full-custom", "rom-fixed-erased0"],
)
def test_byte_identical_to_imgtool_except_the_signature(
    key: tuple[ec.EllipticCurvePrivateKey, Path],
    firmware: tuple[bytes, Path],
    tmp_path: Path,
    ours: dict[str, object],
    theirs: list[str],
) -> None:
    private, key_file = key
    data, fw = firmware
    image = build_image(data, SoftwareSigner(private), version="2.7.1+8", **ours)  # type: ignore[arg-type]
    out = tmp_path / "imgtool.bin"
    imgtool("sign", "-k", key_file, "--version", "2.7.1+8", "-S", "0x100000", *theirs, fw, out)
    reference = out.read_bytes()

    mine, ref = parse_image(image), parse_image(reference)
    # Everything that is hashed, and every unprotected TLV but the signature, is identical.
    assert image[: mine.hash_region_size] == reference[: ref.hash_region_size]
    assert mine.unprotected_tlvs[:-1] == ref.unprotected_tlvs[:-1]
    assert [t.type for t in mine.unprotected_tlvs] == [t.type for t in ref.unprotected_tlvs]

    # And with our signature handed to imgtool (--fix-sig), the whole image is identical.
    assert mine.signature is not None
    sig_file, pub_file = tmp_path / "sig.b64", tmp_path / "pub.pem"
    sig_file.write_bytes(base64.b64encode(mine.signature))
    pub_file.write_bytes(
        private.public_key().public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo)
    )
    fixed = tmp_path / "fixed.bin"
    imgtool(
        "sign",
        "--fix-sig",
        sig_file,
        "--fix-sig-pubkey",
        pub_file,
        "--version",
        "2.7.1+8",
        "-S",
        "0x100000",
        *theirs,
        fw,
        fixed,
    )
    assert fixed.read_bytes() == image


def test_version_string_forms_match_imgtool(tmp_path: Path, firmware: tuple[bytes, Path]) -> None:
    _, fw = firmware
    for text in ("1", "1.2", "1.2.3", "1.2.3+4", "255.255.65535+4294967295"):
        out = tmp_path / "v.bin"
        imgtool("sign", "--version", text, "-H", "0x20", "--pad-header", "-S", "0x100000", fw, out)
        assert parse_image(out.read_bytes()).version == ImageVersion.parse(text)


def test_padded_slot_image_verifies_only_as_a_slot(
    key: tuple[ec.EllipticCurvePrivateKey, Path], firmware: tuple[bytes, Path], tmp_path: Path
) -> None:
    private, key_file = key
    data, fw = firmware
    out = tmp_path / "slot.bin"
    imgtool(
        "sign",
        "-k",
        key_file,
        "--version",
        "1.0.0",
        "-H",
        "0x200",
        "--pad-header",
        "-S",
        "0x10000",
        "--pad",
        "--confirm",
        "--security-counter",
        "2",
        fw,
        out,
    )
    slot = out.read_bytes()
    assert len(slot) == 0x10000
    parsed = verify_image(slot, private.public_key(), slot=True)
    assert parsed.payload == data and parsed.security_counter == 2
    with pytest.raises(MalformedImageError, match="follow the unprotected TLV area"):
        verify_image(slot, private.public_key())
    flipped = bytearray(slot)
    flipped[0x200 + 7] ^= 0x04
    with pytest.raises(VerificationError):
        verify_image(bytes(flipped), private.public_key(), slot=True)
