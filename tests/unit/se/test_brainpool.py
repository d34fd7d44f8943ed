"""brainpoolP256r1 / brainpoolP384r1 keys in the identity applet (RFC 5639; ETSI TS 103 097 §5).

GENERATE KEY, SIGN, ECDH, GET PUBLIC KEY, LIST KEYS and ATTEST on the brainpool curves, checked
against pyca and the OpenSSL CLI, and the refusals: a peer point of another curve of the same
size, an off-curve point, a point of the other brainpool size.
"""

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
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
    PublicFormat,
)
from tests.optional import require_tool

from fleetid.crypto.signer import verify_signature
from fleetid.errors import (
    ConditionsNotSatisfiedError,
    EncodingError,
    IncorrectDataError,
    IncorrectParametersError,
    VerificationError,
)
from fleetid.formats.apdu import CommandApdu
from fleetid.formats.attestation import KEY_PROPERTIES_OID, KeyUsage, decode_key_properties
from fleetid.se.client import SecureElementClient, SecureElementSigner
from fleetid.se.scp03 import StaticKeys
from fleetid.se.state import ATTESTATION_HANDLE, Curve
from fleetid.sim.test_card import ManufacturedCard, manufacture_test_card

KEYS = StaticKeys(bytes(range(16)), bytes(range(16, 32)), bytes(range(32, 48)))
SIGN = KeyUsage.SIGN
KA = KeyUsage.KEY_AGREEMENT
BP256, BP384 = ec.BrainpoolP256R1(), ec.BrainpoolP384R1()
CASES = [
    (BP256, Curve.BRAINPOOL_P256, hashes.SHA256(), "1.3.36.3.3.2.8.1.1.7"),
    (BP384, Curve.BRAINPOOL_P384, hashes.SHA384(), "1.3.36.3.3.2.8.1.1.11"),
]
IDS = ["brainpoolP256r1", "brainpoolP384r1"]


@pytest.fixture(scope="module")
def made() -> ManufacturedCard:
    return manufacture_test_card(keys=KEYS)


@pytest.fixture
def client(made: ManufacturedCard) -> SecureElementClient:
    made.card.reset()
    c = SecureElementClient(made.card)
    c.select_identity()
    for handle, _, _ in c.list_keys():
        if handle != ATTESTATION_HANDLE:
            c.delete_key(handle)
    return c


def _point(key: ec.EllipticCurvePublicKey) -> bytes:
    return key.public_bytes(Encoding.X962, PublicFormat.UncompressedPoint)


@pytest.mark.parametrize(("curve", "ref", "algorithm", "oid"), CASES, ids=IDS)
def test_generate_get_and_list(
    client: SecureElementClient,
    curve: ec.EllipticCurve,
    ref: Curve,
    algorithm: hashes.HashAlgorithm,
    oid: str,
) -> None:
    info = client.generate_key(curve, SIGN)
    assert info.curve is ref and info.public_key.curve.name == curve.name
    again = client.get_public_key(info.handle)
    assert again.curve is ref and again.public_key == info.public_key
    assert (info.handle, ref, int(SIGN)) in client.list_keys()
    assert ref.oid == oid and ref.coordinate_size == (curve.key_size + 7) // 8


@pytest.mark.parametrize(("curve", "ref", "algorithm", "oid"), CASES, ids=IDS)
def test_sign_verifies_with_pyca(
    client: SecureElementClient,
    curve: ec.EllipticCurve,
    ref: Curve,
    algorithm: hashes.HashAlgorithm,
    oid: str,
) -> None:
    info = client.generate_key(ref, SIGN)
    digest = hashlib.new(algorithm.name, b"V2X message").digest()
    signature = client.sign(info.handle, digest)
    info.public_key.verify(signature, digest, ec.ECDSA(Prehashed(algorithm)))
    with pytest.raises(InvalidSignature):
        info.public_key.verify(signature, digest[::-1], ec.ECDSA(Prehashed(algorithm)))
    signer = SecureElementSigner(client, info.handle)
    assert signer.hash_algorithm.name == algorithm.name
    verify_signature(signer.public_key(), signer.sign(b"cam"), b"cam")
    with pytest.raises(VerificationError):
        verify_signature(signer.public_key(), signer.sign(b"cam"), b"cAm")


@pytest.mark.parametrize(("curve", "ref", "algorithm", "oid"), CASES, ids=IDS)
def test_ecdh_matches_pyca(
    client: SecureElementClient,
    curve: ec.EllipticCurve,
    ref: Curve,
    algorithm: hashes.HashAlgorithm,
    oid: str,
) -> None:
    info = client.generate_key(curve, KA)
    peer = ec.generate_private_key(curve)
    assert client.ecdh(info.handle, peer.public_key()) == peer.exchange(ec.ECDH(), info.public_key)


def test_ecdh_with_a_p256_point_on_a_brainpool_key_is_6a80(client: SecureElementClient) -> None:
    # Same length as a brainpoolP256r1 point; the card must check the point is on its own curve.
    h = client.generate_key(BP256, KA).handle
    with pytest.raises(IncorrectDataError):
        client.ecdh(h, ec.generate_private_key(ec.SECP256R1()).public_key())


def test_ecdh_with_a_brainpool_point_on_a_p256_key_is_6a80(client: SecureElementClient) -> None:
    h = client.generate_key(ec.SECP256R1(), KA).handle
    with pytest.raises(IncorrectDataError):
        client.ecdh(h, ec.generate_private_key(BP256).public_key())


def test_ecdh_with_the_other_brainpool_size_is_6a80(client: SecureElementClient) -> None:
    h = client.generate_key(BP256, KA).handle
    with pytest.raises(IncorrectDataError):
        client.ecdh(h, ec.generate_private_key(BP384).public_key())


@pytest.mark.parametrize("curve", [BP256, BP384], ids=IDS)
def test_ecdh_off_curve_point_is_6a80(client: SecureElementClient, curve: ec.EllipticCurve) -> None:
    h = client.generate_key(curve, KA).handle
    point = bytearray(_point(ec.generate_private_key(curve).public_key()))
    point[-1] ^= 0x01  # y no longer matches x
    with pytest.raises(IncorrectDataError):
        client.send(CommandApdu(0x80, 0x4A, 0x00, h, bytes(point), 256))


def test_brainpool_sign_only_key_refuses_ecdh(client: SecureElementClient) -> None:
    h = client.generate_key(BP256, SIGN).handle
    with pytest.raises(ConditionsNotSatisfiedError):
        client.ecdh(h, ec.generate_private_key(BP256).public_key())


def test_unknown_curve_reference_is_6a86(client: SecureElementClient) -> None:
    with pytest.raises(IncorrectParametersError):
        client.send(CommandApdu(0x80, 0x46, 0x05, 0x01, b"\x01", 256))
    with pytest.raises(EncodingError, match="no curve"):
        client.generate_key(ec.SECP521R1(), SIGN)


@pytest.mark.parametrize(("curve", "ref", "algorithm", "oid"), CASES, ids=IDS)
def test_attest_a_brainpool_key(
    client: SecureElementClient,
    made: ManufacturedCard,
    curve: ec.EllipticCurve,
    ref: Curve,
    algorithm: hashes.HashAlgorithm,
    oid: str,
) -> None:
    info = client.generate_key(curve, SIGN)
    cert = client.attest(info.handle, b"ea-challenge")
    cert.verify_directly_issued_by(made.attestation_certificate)
    assert cert.public_key() == info.public_key
    ext = cert.extensions.get_extension_for_oid(x509.ObjectIdentifier(KEY_PROPERTIES_OID))
    assert isinstance(ext.value, x509.UnrecognizedExtension)
    props = decode_key_properties(ext.value.value)
    assert props.curve_oid == oid and props.challenge == b"ea-challenge"
    assert props.origin == "generatedOnCard" and props.exportable is False


def test_brainpool_keys_survive_a_power_cycle(tmp_path: Path) -> None:
    from fleetid.se.card import SecureElement

    chip, flash = tmp_path / "chip", tmp_path / "flash"
    manufacture_test_card(keys=KEYS, silicon_path=chip, flash_path=flash)
    first = SecureElementClient(SecureElement.open(chip, flash))
    first.select_identity()
    info = first.generate_key(BP384, KA, handle=9)
    again = SecureElementClient(SecureElement.open(chip, flash))
    again.select_identity()
    kept = again.get_public_key(9)
    assert kept.curve is Curve.BRAINPOOL_P384 and kept.public_key == info.public_key
    peer = ec.generate_private_key(BP384)
    assert again.ecdh(9, peer.public_key()) == peer.exchange(ec.ECDH(), info.public_key)


@pytest.mark.parametrize(("curve", "ref", "algorithm", "oid"), CASES, ids=IDS)
def test_openssl_verifies_and_derives(
    client: SecureElementClient,
    tmp_path: Path,
    curve: ec.EllipticCurve,
    ref: Curve,
    algorithm: hashes.HashAlgorithm,
    oid: str,
) -> None:
    """The OpenSSL CLI, not pyca, checks a card signature and the card's ECDH secret."""
    signing = client.generate_key(curve, SIGN)
    message = b"brainpool CAM"
    signature = SecureElementSigner(client, signing.handle).sign(message)
    (tmp_path / "msg").write_bytes(message)
    (tmp_path / "sig").write_bytes(signature)
    (tmp_path / "pub.pem").write_bytes(
        signing.public_key.public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo)
    )

    tool = require_tool("openssl")

    def openssl(*args: str) -> subprocess.CompletedProcess[bytes]:
        return subprocess.run([tool, *args], capture_output=True, check=False)

    dgst = f"-{algorithm.name}"
    ok = openssl(
        "dgst",
        dgst,
        "-verify",
        str(tmp_path / "pub.pem"),
        "-signature",
        str(tmp_path / "sig"),
        str(tmp_path / "msg"),
    )
    assert ok.returncode == 0, ok.stderr
    (tmp_path / "msg").write_bytes(message + b"!")
    bad = openssl(
        "dgst",
        dgst,
        "-verify",
        str(tmp_path / "pub.pem"),
        "-signature",
        str(tmp_path / "sig"),
        str(tmp_path / "msg"),
    )
    assert bad.returncode != 0

    agreement = client.generate_key(curve, KA)
    (tmp_path / "peer.pem").write_bytes(
        agreement.public_key.public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo)
    )
    mine = ec.generate_private_key(curve)  # the host's own key, for the CLI's side of ECDH
    (tmp_path / "mine.pem").write_bytes(
        mine.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption())
    )
    derived = openssl(
        "pkeyutl",
        "-derive",
        "-inkey",
        str(tmp_path / "mine.pem"),
        "-peerkey",
        str(tmp_path / "peer.pem"),
    )
    assert derived.returncode == 0, derived.stderr
    assert derived.stdout == client.ecdh(agreement.handle, mine.public_key())
