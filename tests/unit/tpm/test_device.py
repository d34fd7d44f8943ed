"""A TPM 2.0 through tpm2-pytss (Debian's swtpm, a fresh TPM per test): the keys the device
profile needs, credential activation, TPM2_Certify and TPM2_Sign, and their refusals."""

from __future__ import annotations

import hashlib
import secrets
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import hashes
from tests.tpm_fixtures import (
    require_tpm,
    tpm_fixture,  # noqa: F401 - the "tpm" fixture
    tpm_line_fixture,  # noqa: F401 - the "tpm_line" fixture
    two_tpms_fixture,  # noqa: F401 - the "other_tpm" fixture
)

from fleetid.crypto.signer import Signer, verify_signature
from fleetid.errors import TpmError, VerificationError
from fleetid.sim.demo_tpm import SoftwareTpmLine
from fleetid.tpm.credential import make_credential
from fleetid.tpm.device import TpmDevice
from fleetid.tpm.evidence import object_attributes, object_name, public_key_of, read_certify
from fleetid.tpm.swtpm import Swtpm


def test_the_ak_is_a_restricted_signing_key_bound_to_the_tpm(tpm: TpmDevice) -> None:
    attributes = object_attributes(tpm.attestation_public())
    assert attributes.restricted and attributes.sign and not attributes.decrypt
    assert attributes.fixed_tpm and attributes.fixed_parent and attributes.sensitive_data_origin


def test_the_ek_is_a_decrypt_key_and_the_same_after_a_reconnect(tpm: TpmDevice) -> None:
    attributes = object_attributes(tpm.endorsement_public())
    assert attributes.restricted and attributes.decrypt and not attributes.sign
    assert tpm.endorsement_public() == tpm.endorsement_public()


def test_credential_activation_returns_the_secret_for_the_ak_beside_the_ek(
    tpm: TpmDevice,
) -> None:
    secret = secrets.token_bytes(32)
    challenge = make_credential(
        tpm.endorsement_public(), object_name(tpm.attestation_public()), secret
    )
    assert tpm.activate_credential(challenge.credential_blob, challenge.encrypted_secret) == secret


def test_credential_activation_fails_for_an_ak_of_another_tpm(
    tpm: TpmDevice, other_tpm: TpmDevice
) -> None:
    """The secret is sealed to this EK and another TPM's AK Name: this TPM holds no object of
    that Name, so the integrity check fails inside it."""
    challenge = make_credential(
        tpm.endorsement_public(), object_name(other_tpm.attestation_public()), b"s" * 32
    )
    with pytest.raises(TpmError, match="activating the credential"):
        tpm.activate_credential(challenge.credential_blob, challenge.encrypted_secret)


def test_credential_activation_fails_on_another_tpms_ek(
    tpm: TpmDevice, other_tpm: TpmDevice
) -> None:
    challenge = make_credential(
        other_tpm.endorsement_public(), object_name(tpm.attestation_public()), b"s" * 32
    )
    with pytest.raises(TpmError):
        tpm.activate_credential(challenge.credential_blob, challenge.encrypted_secret)


def test_a_certify_binds_the_qualifying_data_and_the_keys_name(tpm: TpmDevice) -> None:
    handle = tpm.create_key()
    nonce = secrets.token_bytes(32)
    certified = read_certify(tpm.certify(handle, nonce))
    assert certified.generated_by_tpm and certified.is_certify
    assert certified.extra_data == nonce
    # TPM 2.0 Part 1 §16: Name = nameAlg (TPM_ALG_SHA256 = 0x000B) || SHA-256(TPMT_PUBLIC).
    expected = b"\x00\x0b" + hashlib.sha256(tpm.key_public(handle)).digest()
    assert certified.certified_name == certified.key_name == expected
    assert certified.public_key == tpm.public_key(handle)
    assert certified.attributes.fixed_tpm and not certified.attributes.restricted


def test_a_duplicable_key_says_so(tpm: TpmDevice) -> None:
    attributes = read_certify(tpm.certify(tpm.create_key(duplicable=True), b"n")).attributes
    assert not attributes.fixed_tpm and not attributes.fixed_parent


def test_a_tpm_signer_signs_as_a_signer(tpm: TpmDevice) -> None:
    signer = tpm.signer(tpm.create_key())
    assert isinstance(signer, Signer)
    assert isinstance(signer.hash_algorithm, hashes.SHA256)
    verify_signature(signer.public_key(), signer.sign(b"message"), b"message")
    with pytest.raises(VerificationError):
        verify_signature(signer.public_key(), signer.sign(b"message"), b"another")


def test_a_deleted_key_signs_no_more(tpm: TpmDevice) -> None:
    handle = tpm.create_key()
    signer = tpm.signer(handle)
    tpm.delete_key(handle)
    with pytest.raises(TpmError, match="no TPM key"):
        signer.sign(b"message")


def test_a_tpm_the_line_has_not_provisioned_has_no_identity(tpm: TpmDevice) -> None:
    with pytest.raises(TpmError, match="not provisioned"):
        tpm.identity()


def test_the_line_stores_the_certificates_in_nv(tpm: TpmDevice, tpm_line: SoftwareTpmLine) -> None:
    identity = tpm_line.provision(tpm)
    assert tpm.ek_certificate() == identity.ek_certificate
    assert tpm.attestation_chain() == [identity.ak_certificate, tpm_line.line_ca]
    assert tpm.device_serial() == identity.serial
    assert public_key_of(tpm.attestation_public()) == identity.ak_certificate.public_key()


def test_keys_in_a_key_dir_survive_a_restart_and_a_deletion_stays(tmp_path: Path) -> None:
    """A device that restarts keeps its keys and handles: the wrapped blobs are on disk."""
    require_tpm()
    keys = tmp_path / "keys"
    with Swtpm() as swtpm:
        with TpmDevice(swtpm.tcti, key_dir=keys) as before:
            kept, dropped = before.create_key(), before.create_key()
            public = before.public_key(kept)
            before.delete_key(dropped)
        with TpmDevice(swtpm.tcti, key_dir=keys) as after:
            signature = after.signer(kept).sign(b"after a restart")
            verify_signature(public, signature, b"after a restart")
            with pytest.raises(TpmError, match="no TPM key"):
                after.signer(dropped)
            assert after.create_key() not in (kept, dropped)


def test_a_key_file_that_is_not_a_wrapped_key_is_refused(tmp_path: Path) -> None:
    require_tpm()
    keys = tmp_path / "keys"
    keys.mkdir()
    (keys / "1.key").write_bytes(b"\x00\x05abc")
    with Swtpm() as swtpm, pytest.raises(TpmError, match="not a wrapped TPM key"):
        TpmDevice(swtpm.tcti, key_dir=keys)


def test_another_tpm_cannot_use_the_key_files(tmp_path: Path) -> None:
    """The blobs are wrapped by this TPM's SRK: copied next to another TPM, they do not load."""
    require_tpm()
    keys = tmp_path / "keys"
    with Swtpm() as swtpm, TpmDevice(swtpm.tcti, key_dir=keys) as first:
        handle = first.create_key()
    with (
        Swtpm() as other,
        TpmDevice(other.tcti, key_dir=keys) as second,
        pytest.raises(TpmError),
    ):
        second.signer(handle).sign(b"copied")
