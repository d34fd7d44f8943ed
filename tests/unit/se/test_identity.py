"""The identity applet: generate, sign, ECDH, public key, delete, attest; and the SE signer."""

from __future__ import annotations

import hashlib
import subprocess
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import Prehashed
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from tests.optional import require_tool

from fleetid.crypto.signer import Signer, verify_signature
from fleetid.errors import (
    ConditionsNotSatisfiedError,
    IncorrectDataError,
    IncorrectParametersError,
    ReferencedDataNotFoundError,
    SecureElementError,
    SecurityStatusError,
    VerificationError,
    WrongLengthError,
)
from fleetid.formats.apdu import CommandApdu
from fleetid.formats.attestation import (
    KEY_PROPERTIES_OID,
    OID_SHA256,
    TCG_DICE_TCB_INFO_OID,
    KeyUsage,
    decode_key_properties,
    decode_tcb_info,
)
from fleetid.se.client import SecureElementClient, SecureElementSigner
from fleetid.se.scp03 import StaticKeys
from fleetid.se.state import ATTESTATION_HANDLE, Curve
from fleetid.sim.test_card import ManufacturedCard, manufacture_test_card

KEYS = StaticKeys(bytes(range(16)), bytes(range(16, 32)), bytes(range(32, 48)))
SERIAL = bytes.fromhex("5EC0DE01")
SIGN = KeyUsage.SIGN
KA = KeyUsage.KEY_AGREEMENT


@pytest.fixture(scope="module")
def made() -> ManufacturedCard:
    return manufacture_test_card(keys=KEYS, ic_serial=SERIAL)


@pytest.fixture
def client(made: ManufacturedCard) -> SecureElementClient:
    made.card.reset()
    c = SecureElementClient(made.card)
    c.select_identity()
    for handle, _, _ in c.list_keys():
        if handle != ATTESTATION_HANDLE:
            try:
                c.delete_key(handle)
            except SecurityStatusError:
                c.open_secure_channel(KEYS, 0x33)
                c.delete_key(handle)
                c.select_identity()
    return c


# --- GENERATE KEY / GET PUBLIC KEY / LIST / DELETE --------------------------------------------


@pytest.mark.parametrize("curve", [ec.SECP256R1(), ec.SECP384R1()])
def test_generate_and_get_public_key(client: SecureElementClient, curve: ec.EllipticCurve) -> None:
    info = client.generate_key(curve, SIGN | KA)
    assert info.handle == 1
    assert isinstance(info.public_key.curve, type(curve))
    again = client.get_public_key(info.handle)
    assert again.public_key == info.public_key
    assert again.generated_on_card and again.usage == SIGN | KA and not again.requires_session
    assert (1, Curve.P256 if curve.key_size == 256 else Curve.P384, 0x03) in client.list_keys()


def test_generate_into_a_chosen_handle_and_first_free(client: SecureElementClient) -> None:
    assert client.generate_key(ec.SECP256R1(), SIGN, handle=5).handle == 5
    assert client.generate_key(ec.SECP256R1(), SIGN).handle == 1
    assert client.generate_key(ec.SECP256R1(), SIGN).handle == 2


def test_generate_into_an_occupied_handle_is_6a89(client: SecureElementClient) -> None:
    client.generate_key(ec.SECP256R1(), SIGN, handle=7)
    with pytest.raises(SecureElementError) as info:
        client.generate_key(ec.SECP256R1(), SIGN, handle=7)
    assert info.value.sw == 0x6A89


@pytest.mark.parametrize(
    ("p1", "p2", "data", "error"),
    [
        (0x05, 0x01, b"\x01", IncorrectParametersError),  # unknown curve
        (0x00, 0x01, b"\x01", IncorrectParametersError),
        (0x01, 0x80, b"\x01", IncorrectParametersError),  # handle out of range
        (0x01, 0x01, b"\x00", IncorrectDataError),  # no usage
        (0x01, 0x01, b"\x04", IncorrectDataError),  # attest usage on a user key
        (0x01, 0x01, b"\x08", IncorrectDataError),  # undefined bit
        (0x01, 0x01, b"", WrongLengthError),
        (0x01, 0x01, b"\x01\x01", WrongLengthError),
    ],
)
def test_generate_key_refusals(
    client: SecureElementClient, p1: int, p2: int, data: bytes, error: type[Exception]
) -> None:
    with pytest.raises(error):
        client.send(CommandApdu(0x80, 0x46, p1, p2, data, 256))


def test_attestation_key_generation_needs_a_session(client: SecureElementClient) -> None:
    with pytest.raises(SecurityStatusError):
        client.generate_attestation_key()


def test_delete_key(client: SecureElementClient) -> None:
    h = client.generate_key(ec.SECP256R1(), SIGN).handle
    client.delete_key(h)
    with pytest.raises(ReferencedDataNotFoundError):
        client.get_public_key(h)
    with pytest.raises(ReferencedDataNotFoundError):
        client.delete_key(h)


def test_attestation_key_cannot_be_deleted_or_used_to_sign(client: SecureElementClient) -> None:
    with pytest.raises(ConditionsNotSatisfiedError):
        client.delete_key(ATTESTATION_HANDLE)
    with pytest.raises(ConditionsNotSatisfiedError):
        client.sign(ATTESTATION_HANDLE, bytes(32))
    assert client.get_public_key(ATTESTATION_HANDLE).usage == KeyUsage.ATTEST


# --- SIGN -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("curve", "algorithm"),
    [
        (ec.SECP256R1(), hashes.SHA256()),
        (ec.SECP384R1(), hashes.SHA384()),
        (ec.SECP256R1(), hashes.SHA512()),
    ],
)
def test_sign_verifies_with_pyca(
    client: SecureElementClient, curve: ec.EllipticCurve, algorithm: hashes.HashAlgorithm
) -> None:
    info = client.generate_key(curve, SIGN)
    digest = hashlib.new(algorithm.name, b"message").digest()
    signature = client.sign(info.handle, digest)
    info.public_key.verify(signature, digest, ec.ECDSA(Prehashed(algorithm)))
    with pytest.raises(InvalidSignature):
        info.public_key.verify(signature, digest[::-1], ec.ECDSA(Prehashed(algorithm)))


def test_sign_with_key_agreement_only_key_is_6985(client: SecureElementClient) -> None:
    h = client.generate_key(ec.SECP256R1(), KA).handle
    with pytest.raises(ConditionsNotSatisfiedError):
        client.sign(h, bytes(32))


def test_sign_unknown_handle_is_6a88(client: SecureElementClient) -> None:
    with pytest.raises(ReferencedDataNotFoundError) as info:
        client.sign(0x33, bytes(32))
    assert info.value.sw == 0x6A88


@pytest.mark.parametrize("size", [0, 20, 31, 33, 65])
def test_sign_digest_of_wrong_size_is_6700(client: SecureElementClient, size: int) -> None:
    h = client.generate_key(ec.SECP256R1(), SIGN).handle
    with pytest.raises(WrongLengthError):
        client.sign(h, bytes(size))


def test_sign_bad_p1_is_6a86(client: SecureElementClient) -> None:
    h = client.generate_key(ec.SECP256R1(), SIGN).handle
    with pytest.raises(IncorrectParametersError):
        client.send(CommandApdu(0x80, 0x48, 0x01, h, bytes(32), 256))


def test_key_that_requires_a_session(client: SecureElementClient) -> None:
    h = client.generate_key(ec.SECP256R1(), SIGN, require_session=True).handle
    with pytest.raises(SecurityStatusError):
        client.sign(h, bytes(32))
    with pytest.raises(SecurityStatusError):
        client.delete_key(h)
    client.open_secure_channel(KEYS, 0x33)
    signature = client.sign(h, hashlib.sha256(b"m").digest())
    pub = client.get_public_key(h)
    assert pub.requires_session
    pub.public_key.verify(signature, b"m", ec.ECDSA(hashes.SHA256()))


def test_se_signer_is_a_signer(client: SecureElementClient) -> None:
    h = client.generate_key(ec.SECP384R1(), SIGN).handle
    signer = SecureElementSigner(client, h)
    assert isinstance(signer, Signer)
    assert isinstance(signer.hash_algorithm, hashes.SHA384)
    signature = signer.sign(b"firmware manifest")
    verify_signature(signer.public_key(), signature, b"firmware manifest")
    with pytest.raises(VerificationError):
        verify_signature(signer.public_key(), signature, b"firmware manifesT")


def test_se_signer_inside_a_session(client: SecureElementClient) -> None:
    h = client.generate_key(ec.SECP256R1(), SIGN, require_session=True).handle
    client.open_secure_channel(KEYS, 0x13)
    signer = SecureElementSigner(client, h)
    verify_signature(signer.public_key(), signer.sign(b"x"), b"x")


# --- ECDH ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("curve", [ec.SECP256R1(), ec.SECP384R1()])
def test_ecdh_matches_pyca(client: SecureElementClient, curve: ec.EllipticCurve) -> None:
    info = client.generate_key(curve, KA)
    peer = ec.generate_private_key(curve)
    shared = client.ecdh(info.handle, peer.public_key())
    assert shared == peer.exchange(ec.ECDH(), info.public_key)


def test_ecdh_with_sign_only_key_is_6985(client: SecureElementClient) -> None:
    h = client.generate_key(ec.SECP256R1(), SIGN).handle
    with pytest.raises(ConditionsNotSatisfiedError):
        client.ecdh(h, ec.generate_private_key(ec.SECP256R1()).public_key())


def test_ecdh_off_curve_point_is_6a80(client: SecureElementClient) -> None:
    h = client.generate_key(ec.SECP256R1(), KA).handle
    peer = ec.generate_private_key(ec.SECP256R1()).public_key()
    point = bytearray(peer.public_bytes(Encoding.X962, PublicFormat.UncompressedPoint))
    point[-1] ^= 0x01  # y no longer matches x
    with pytest.raises(IncorrectDataError):
        client.send(CommandApdu(0x80, 0x4A, 0x00, h, bytes(point), 256))


def test_ecdh_wrong_curve_is_6a80(client: SecureElementClient) -> None:
    h = client.generate_key(ec.SECP256R1(), KA).handle
    with pytest.raises(IncorrectDataError):
        client.ecdh(h, ec.generate_private_key(ec.SECP384R1()).public_key())


@pytest.mark.parametrize("data", ["", "00", "02" + "11" * 32, "04" + "00" * 64])
def test_ecdh_malformed_points_are_6a80(client: SecureElementClient, data: str) -> None:
    h = client.generate_key(ec.SECP256R1(), KA).handle
    with pytest.raises(IncorrectDataError):
        client.send(CommandApdu(0x80, 0x4A, 0x00, h, bytes.fromhex(data), 256))


# --- ATTEST ---------------------------------------------------------------------------------------


def test_attestation_certificate_contents(
    client: SecureElementClient, made: ManufacturedCard
) -> None:
    info = client.generate_key(ec.SECP256R1(), SIGN | KA)
    cert = client.attest(info.handle, b"authority-challenge-1")
    # Signed by the card's attestation key, whose certificate the manufacturer issued.
    cert.verify_directly_issued_by(made.attestation_certificate)
    made.attestation_certificate.verify_directly_issued_by(made.manufacturer.ca_certificate)
    assert cert.public_key() == info.public_key
    assert cert.issuer == made.attestation_certificate.subject
    props_ext = cert.extensions.get_extension_for_oid(x509.ObjectIdentifier(KEY_PROPERTIES_OID))
    assert not props_ext.critical
    assert isinstance(props_ext.value, x509.UnrecognizedExtension)
    props = decode_key_properties(props_ext.value.value)
    assert len(props.chip_serial) == 10 and props.chip_serial.endswith(SERIAL)
    assert props.origin == "generatedOnCard" and props.exportable is False
    assert props.usage == SIGN | KA
    assert props.challenge == b"authority-challenge-1"
    assert props.key_handle == info.handle and props.curve_oid == "1.2.840.10045.3.1.7"
    tcb_ext = cert.extensions.get_extension_for_oid(x509.ObjectIdentifier(TCG_DICE_TCB_INFO_OID))
    assert isinstance(tcb_ext.value, x509.UnrecognizedExtension)
    tcb = decode_tcb_info(tcb_ext.value.value)
    assert tcb.vendor == "fleetid" and tcb.svn == 0
    ku = cert.extensions.get_extension_for_class(x509.KeyUsage).value
    assert ku.digital_signature and ku.key_agreement and not ku.key_cert_sign
    assert not cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca


def test_attestation_reports_firmware_measurement(tmp_path: Path) -> None:
    from fleetid.se.card import SecureElement

    chip, flash = tmp_path / "chip", tmp_path / "flash"
    manufacture_test_card(keys=KEYS, silicon_path=chip, flash_path=flash)
    # The boot applet records what it verified; emulate that record through the state module.
    from fleetid.se.keystore import SealedFlash, Silicon
    from fleetid.se.state import CardState

    silicon, sealed = Silicon.load(chip), SealedFlash(flash)
    state = CardState.from_bytes(sealed.read(silicon))
    state.boot.measurement = hashlib.sha256(b"image").digest()
    state.boot.security_counter = 7
    state.boot.image_version = "1.2.3+4"
    sealed.write(silicon, state.to_bytes())
    client = SecureElementClient(SecureElement.open(chip, flash))
    client.select_identity()
    cert = client.attest(client.generate_key(ec.SECP256R1(), SIGN).handle, b"c")
    ext = cert.extensions.get_extension_for_oid(x509.ObjectIdentifier(TCG_DICE_TCB_INFO_OID))
    assert isinstance(ext.value, x509.UnrecognizedExtension)
    tcb = decode_tcb_info(ext.value.value)
    assert tcb.svn == 7 and tcb.version == "1.2.3+4"
    assert [(f.hash_alg, f.digest) for f in tcb.fwids] == [
        (OID_SHA256, hashlib.sha256(b"image").digest())
    ]


def test_attest_unknown_handle_is_6a88(client: SecureElementClient) -> None:
    with pytest.raises(ReferencedDataNotFoundError) as info:
        client.attest(0x42, b"c")
    assert info.value.sw == 0x6A88


def test_attest_the_attestation_slot_is_6985(client: SecureElementClient) -> None:
    with pytest.raises(ConditionsNotSatisfiedError):
        client.attest(ATTESTATION_HANDLE, b"c")


def test_attest_with_too_long_challenge_is_6700(client: SecureElementClient) -> None:
    h = client.generate_key(ec.SECP256R1(), SIGN).handle
    with pytest.raises(WrongLengthError):
        client.attest(h, bytes(65))


def test_attest_before_the_chain_is_installed_is_6985() -> None:
    from fleetid.se.card import SecureElement

    client = SecureElementClient(SecureElement.fabricate(keysets={0x30: KEYS}))
    client.select_identity()
    h = client.generate_key(ec.SECP256R1(), SIGN).handle
    with pytest.raises(ConditionsNotSatisfiedError):
        client.attest(h, b"c")


def test_each_attestation_is_fresh(client: SecureElementClient) -> None:
    h = client.generate_key(ec.SECP256R1(), SIGN).handle
    a, b = client.attest(h, b"one"), client.attest(h, b"two")
    assert a.serial_number != b.serial_number


def test_openssl_accepts_the_attestation_chain(
    client: SecureElementClient, made: ManufacturedCard, tmp_path: Path
) -> None:
    h = client.generate_key(ec.SECP384R1(), SIGN).handle
    leaf = client.attest(h, b"openssl")
    chain = client.attestation_chain()
    (tmp_path / "leaf.pem").write_bytes(leaf.public_bytes(Encoding.PEM))
    (tmp_path / "chain.pem").write_bytes(b"".join(c.public_bytes(Encoding.PEM) for c in chain))
    (tmp_path / "root.pem").write_bytes(
        made.manufacturer.root_certificate.public_bytes(Encoding.PEM)
    )
    (tmp_path / "device.pem").write_bytes(chain[0].public_bytes(Encoding.PEM))

    tool = require_tool("openssl")

    def openssl(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([tool, *args], capture_output=True, text=True, check=False)

    full = openssl(
        "verify",
        "-CAfile",
        str(tmp_path / "root.pem"),
        "-untrusted",
        str(tmp_path / "chain.pem"),
        str(tmp_path / "leaf.pem"),
    )
    assert full.returncode == 0, full.stderr
    partial = openssl(
        "verify",
        "-partial_chain",
        "-CAfile",
        str(tmp_path / "device.pem"),
        str(tmp_path / "leaf.pem"),
    )
    assert partial.returncode == 0, partial.stderr
    text = openssl("x509", "-in", str(tmp_path / "leaf.pem"), "-noout", "-text").stdout
    assert KEY_PROPERTIES_OID in text and TCG_DICE_TCB_INFO_OID in text
    # Negative twin: a leaf from another card does not verify under this card's chain.
    other = manufacture_test_card(manufacturer=made.manufacturer)
    oc = SecureElementClient(other.card)
    oc.select_identity()
    foreign = oc.attest(oc.generate_key(ec.SECP256R1(), SIGN).handle, b"x")
    (tmp_path / "foreign.pem").write_bytes(foreign.public_bytes(Encoding.PEM))
    bad = openssl(
        "verify",
        "-partial_chain",
        "-CAfile",
        str(tmp_path / "device.pem"),
        str(tmp_path / "foreign.pem"),
    )
    assert bad.returncode != 0
