"""The HSM interface on both backends: the software HSM and PKCS#11 on SoftHSM2.

Every behavioural test runs on both (``backend`` fixture). Expected derived keys, wraps and MACs are
computed here independently with pyca/cryptography from known key material that was imported
wrapped under the KEK; certificates are checked by pyca and by the OpenSSL CLI.
"""

from __future__ import annotations

import datetime
import json
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.cmac import CMAC
from cryptography.hazmat.primitives.keywrap import aes_key_wrap_with_padding
from cryptography.x509.oid import NameOID
from tests.hsm_fixtures import (
    KEK,
    PKCS11_EXTRA,
    SO_PIN,
    Backend,
    backend_for,
    make_softhsm,
    require_module,
    require_tool,
    softhsm_session,
)

from fleetid.crypto.signer import SoftwareSigner
from fleetid.errors import HsmError, HsmNotActivatedError, VerificationError
from fleetid.formats.x509_sign import sign_certificate, sign_crl
from fleetid.hsm import (
    AesKeyRole,
    DerivedKey,
    Hsm,
    KeyKind,
    SoftwareHsm,
    aes_kcv,
    diversification_data,
)
from fleetid.hsm.software import STORE_FILE

# Test-only key material (never used outside tests), imported wrapped under KEK (RFC 5649).
MASTER_128 = bytes.fromhex("404142434445464748494a4b4c4d4e4f")
MASTER_256 = bytes.fromhex("8c72b4a3c1e2f5d6071829304a5b6c7d8e9fa0b1c2d3e4f50617283940a1b2c3")
TRANSPORT_DEK = bytes.fromhex("505152535455565758595a5b5c5d5e5f")
KDD = bytes.fromhex("d9b1de5d0362dedce4fb")
OTHER_KEK = bytes.fromhex("ffeeddccbbaa99887766554433221100")


def _ecb(key: bytes, data: bytes) -> bytes:
    encryptor = Cipher(algorithms.AES(key), modes.ECB()).encryptor()  # noqa: S305 - test oracle
    return encryptor.update(data) + encryptor.finalize()


def _cbc_decrypt(key: bytes, data: bytes) -> bytes:
    decryptor = Cipher(algorithms.AES(key), modes.CBC(bytes(16))).decryptor()
    return decryptor.update(data) + decryptor.finalize()


def expected_key(master: bytes, kdd: bytes, role: AesKeyRole, length: int) -> bytes:
    """The documented diversification, written out independently of fleetid.hsm.base."""
    blocks = [bytes([i, 0, 0, 0, role, 0]) + kdd for i in range(1, length // 16 + 1)]
    return _ecb(master, b"".join(blocks))


@pytest.fixture(scope="session")
def softhsm_conf(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    yield from softhsm_session(tmp_path_factory)


@pytest.fixture(params=["software", pytest.param("softhsm", marks=pytest.mark.softhsm)])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    yield from backend_for(request.param, request, tmp_path)


@pytest.fixture
def hsm(backend: Backend) -> Hsm:
    return backend.create(KEK)


def _with_keys(hsm: Hsm) -> Hsm:
    hsm.generate_ec_key("root-ca", "P-384")
    hsm.unwrap_aes_key("line-master", aes_key_wrap_with_padding(KEK, MASTER_128), KeyKind.MASTER)
    hsm.unwrap_aes_key(
        "transport-dek", aes_key_wrap_with_padding(KEK, TRANSPORT_DEK), KeyKind.TRANSPORT
    )
    return hsm


# -- ECDSA ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("curve", "hash_type", "order_bits"),
    [("P-256", hashes.SHA256, 256), ("P-384", hashes.SHA384, 384)],
)
def test_sign_returns_der_that_pyca_verifies(
    hsm: Hsm, curve: str, hash_type: type[hashes.HashAlgorithm], order_bits: int
) -> None:
    public = hsm.generate_ec_key("ca", curve)
    signer = hsm.signer("ca")
    assert signer.public_key().public_numbers() == public.public_numbers()
    assert isinstance(signer.hash_algorithm, hash_type)
    signature = signer.sign(b"tbs bytes")
    r, s = decode_dss_signature(signature)  # DER, not raw r || s
    assert 0 < r < 2**order_bits and 0 < s < 2**order_bits
    public.verify(signature, b"tbs bytes", ec.ECDSA(hash_type()))
    with pytest.raises(InvalidSignature):
        public.verify(signature, b"other bytes", ec.ECDSA(hash_type()))


@pytest.mark.parametrize("curve", ["P-521", "secp256k1", "p-256", "Ed25519", ""])
def test_unsupported_curve_is_refused(hsm: Hsm, curve: str) -> None:
    with pytest.raises(HsmError, match="not offered"):
        hsm.generate_ec_key("ca", curve)
    assert hsm.labels() == []


def test_duplicate_and_malformed_labels_are_refused(hsm: Hsm) -> None:
    hsm.generate_ec_key("ca", "P-256")
    with pytest.raises(HsmError, match="exists already"):
        hsm.generate_ec_key("ca", "P-384")
    with pytest.raises(HsmError, match="exists already"):
        hsm.generate_aes_key("ca", 128)
    for bad in ("", "a b", "x" * 65, "../ca"):
        with pytest.raises(HsmError, match="label"):
            hsm.generate_ec_key(bad, "P-256")


def test_signer_needs_an_ec_key(hsm: Hsm) -> None:
    _with_keys(hsm)
    with pytest.raises(HsmError, match="no key"):
        hsm.signer("missing")
    with pytest.raises(HsmError, match="not ec"):
        hsm.signer("line-master")


# -- verify-before-return -------------------------------------------------------------------------


def _faulty(hsm: Hsm, monkeypatch: pytest.MonkeyPatch, fault: Callable[[bytes], bytes]) -> None:
    original = hsm._sign_digest

    def faulty_sign(label: str, digest: bytes) -> bytes:
        return fault(original(label, digest))

    monkeypatch.setattr(hsm, "_sign_digest", faulty_sign)


def _flip_last_byte(signature: bytes) -> bytes:
    return signature[:-1] + bytes([signature[-1] ^ 0x01])


@pytest.mark.parametrize(
    "fault",
    [
        _flip_last_byte,  # a bit error in s
        lambda sig: sig[:-1],  # truncated DER
        lambda sig: b"\x30\x00",  # empty SEQUENCE
        lambda sig: SoftwareSigner(ec.generate_private_key(ec.SECP256R1())).sign(b"x"),  # other key
    ],
    ids=["bit-flip", "truncated", "empty", "other-key"],
)
def test_a_corrupted_signature_from_the_token_is_caught(
    hsm: Hsm, monkeypatch: pytest.MonkeyPatch, fault: Callable[[bytes], bytes]
) -> None:
    hsm.generate_ec_key("ca", "P-256")
    signer = hsm.signer("ca")
    signer.sign(b"fine before the fault")
    _faulty(hsm, monkeypatch, fault)
    with pytest.raises(HsmError, match="does not verify"):
        signer.sign(b"data")


# -- export refusals ----------------------------------------------------------------------------


def test_export_of_ca_master_and_transport_keys_is_refused(hsm: Hsm) -> None:
    _with_keys(hsm)
    hsm.generate_aes_key("generated-master", 256)
    with pytest.raises(HsmError, match="non-extractable private key"):
        hsm.export_private("root-ca")
    for label in ("line-master", "generated-master", "transport-dek"):
        with pytest.raises(HsmError, match="non-extractable"):
            hsm.export_secret(label)
    with pytest.raises(HsmError, match="use export_private"):
        hsm.export_secret("root-ca")
    with pytest.raises(HsmError, match="not ec"):
        hsm.export_private("line-master")
    with pytest.raises(HsmError, match="no key"):
        hsm.export_secret("missing")


@pytest.mark.softhsm
def test_the_token_itself_refuses_to_reveal_keys(tmp_path: Path, softhsm_conf: Path) -> None:
    """Below our API: CKA_SENSITIVE keys do not give up CKA_VALUE, even to a logged-in session."""
    import pkcs11
    from pkcs11 import Attribute, Mechanism, ObjectClass

    from fleetid.hsm.pkcs11 import Pkcs11Hsm

    token, module = make_softhsm(softhsm_conf)
    hsm = Pkcs11Hsm.initialise(
        token_label=token, so_pin=SO_PIN, state_file=tmp_path / "p11.json", kek=KEK, module=module
    )
    _with_keys(hsm)
    keys = hsm.derive_scp03_keys("line-master", KDD)
    session: Any = hsm._session  # type: ignore[attr-defined]
    ca = session.get_key(object_class=ObjectClass.PRIVATE_KEY, label="root-ca")
    assert ca[Attribute.SENSITIVE] and not ca[Attribute.EXTRACTABLE]
    for label in ("root-ca", "line-master", "transport-dek"):
        for obj in session.get_objects({Attribute.LABEL: label}):
            if obj[Attribute.CLASS] != ObjectClass.PUBLIC_KEY:
                with pytest.raises(pkcs11.exceptions.AttributeSensitive):
                    obj[Attribute.VALUE]
    derived = hsm._derived[keys.enc.label]  # type: ignore[attr-defined]
    with pytest.raises(pkcs11.exceptions.AttributeSensitive):
        derived[Attribute.VALUE]
    # CKA_ENCRYPT was dropped after the KCV, so a derived key is no AES-ECB oracle.
    with pytest.raises(pkcs11.exceptions.PKCS11Error):
        derived.encrypt(bytes(16), mechanism=Mechanism.AES_ECB)
    # The master may only derive: it cannot wrap out a key or be wrapped itself.
    master = session.get_key(object_class=ObjectClass.SECRET_KEY, label="line-master")
    with pytest.raises(pkcs11.exceptions.PKCS11Error):
        hsm._derived[keys.dek.label].wrap_key(  # type: ignore[attr-defined]
            master, mechanism=Mechanism.AES_CBC, mechanism_param=bytes(16)
        )
    hsm.close()


# -- activation gate ----------------------------------------------------------------------------


LOCKED_OPERATIONS: dict[str, Callable[[Hsm], object]] = {
    "generate_ec_key": lambda h: h.generate_ec_key("new", "P-256"),
    "public_key": lambda h: h.public_key("root-ca"),
    "signer": lambda h: h.signer("root-ca"),
    "generate_aes_key": lambda h: h.generate_aes_key("new", 128),
    "unwrap_aes_key": lambda h: h.unwrap_aes_key(
        "new", aes_key_wrap_with_padding(KEK, MASTER_128), KeyKind.MASTER
    ),
    "key_check_value": lambda h: h.key_check_value("line-master"),
    "derive_scp03_keys": lambda h: h.derive_scp03_keys("line-master", KDD),
    "export_private": lambda h: h.export_private("root-ca"),
    "export_secret": lambda h: h.export_secret("line-master"),
    "labels": lambda h: h.labels(),
    "aes_cmac": lambda h: h.aes_cmac("transport-dek", b"x"),
}


@pytest.mark.parametrize("operation", sorted(LOCKED_OPERATIONS))
def test_every_operation_is_refused_before_activation(backend: Backend, operation: str) -> None:
    _with_keys(backend.create(KEK)).lock()
    locked = backend.reopen()
    assert not locked.is_activated
    with pytest.raises(HsmNotActivatedError):
        LOCKED_OPERATIONS[operation](locked)


def test_lock_disables_signers_and_derived_keys_already_handed_out(hsm: Hsm) -> None:
    _with_keys(hsm)
    signer = hsm.signer("root-ca")
    keys = hsm.derive_scp03_keys("line-master", KDD)
    hsm.lock()
    with pytest.raises(HsmNotActivatedError):
        signer.sign(b"data")
    with pytest.raises(HsmNotActivatedError):
        hsm.wrap_for_put_key(keys.enc, "transport-dek")
    hsm.activate(KEK)
    signer.sign(b"data")
    with pytest.raises(HsmError, match="not a live derived key"):  # session objects are gone
        hsm.wrap_for_put_key(keys.enc, "transport-dek")


@pytest.mark.parametrize(
    "wrong", [OTHER_KEK, KEK[:-1] + b"\x00", bytes(32)], ids=["other", "near", "256"]
)
def test_a_wrong_kek_is_refused_and_the_hsm_stays_locked(backend: Backend, wrong: bytes) -> None:
    public = _with_keys(backend.create(KEK)).public_key("root-ca")
    locked = backend.reopen()
    with pytest.raises(HsmNotActivatedError, match="check value"):
        locked.activate(wrong)
    assert not locked.is_activated
    with pytest.raises(HsmNotActivatedError):
        locked.signer("root-ca")
    locked.activate(KEK)
    assert locked.public_key("root-ca").public_numbers() == public.public_numbers()
    signature = locked.signer("root-ca").sign(b"after re-activation")
    public.verify(signature, b"after re-activation", ec.ECDSA(hashes.SHA384()))
    assert locked.key_check_value("line-master") == aes_kcv(MASTER_128)


@pytest.mark.parametrize("length", [0, 15, 24, 33])
def test_a_kek_of_the_wrong_size_is_refused(backend: Backend, length: int) -> None:
    backend.create(KEK).lock()
    with pytest.raises(HsmError, match="16 or 32 bytes"):
        backend.reopen().activate(bytes(length))


# -- diversification ------------------------------------------------------------------------------


@pytest.mark.parametrize("length", [16, 32])
@pytest.mark.parametrize("master", [MASTER_128, MASTER_256], ids=["aes128", "aes256"])
def test_derived_keys_are_the_documented_diversification(
    hsm: Hsm, master: bytes, length: int
) -> None:
    assert hsm.unwrap_aes_key("m", aes_key_wrap_with_padding(KEK, master), KeyKind.MASTER) == (
        aes_kcv(master)
    )
    assert hsm.key_check_value("m") == aes_kcv(master)
    for kdd in (KDD, bytes(10), b"\xff" * 10):
        keys = hsm.derive_scp03_keys("m", kdd, length=length)
        for key in keys.derived():
            assert key.length == length
            assert key.kcv == aes_kcv(expected_key(master, kdd, key.role, length))
        assert len({key.kcv for key in keys.derived()}) == 3
        hsm.release(keys)


@pytest.mark.softhsm
def test_both_backends_derive_identical_keys(tmp_path: Path, softhsm_conf: Path) -> None:
    from fleetid.hsm.pkcs11 import Pkcs11Hsm

    token, module = make_softhsm(softhsm_conf)
    token_hsm = Pkcs11Hsm.initialise(
        token_label=token, so_pin=SO_PIN, state_file=tmp_path / "p11.json", kek=KEK, module=module
    )
    software = SoftwareHsm.initialise(None, KEK)
    try:
        wrapped = aes_key_wrap_with_padding(KEK, MASTER_256)
        dek = aes_key_wrap_with_padding(KEK, TRANSPORT_DEK)
        for hsm in (token_hsm, software):
            hsm.unwrap_aes_key("m", wrapped, KeyKind.MASTER)
            hsm.unwrap_aes_key("t", dek, KeyKind.TRANSPORT)
        for kdd in (KDD, bytes(range(10))):
            for length in (16, 32):
                a = token_hsm.derive_scp03_keys("m", kdd, length=length)
                b = software.derive_scp03_keys("m", kdd, length=length)
                assert a == b  # labels, roles, lengths and KCVs
                for key_a, key_b in zip(a.derived(), b.derived(), strict=True):
                    assert token_hsm.wrap_for_put_key(key_a, "t") == software.wrap_for_put_key(
                        key_b, "t"
                    )
    finally:
        token_hsm.close()
        software.close()


def test_derivation_inputs_are_checked(hsm: Hsm) -> None:
    _with_keys(hsm)
    for kdd in (b"", KDD[:9], KDD + b"\x00"):
        with pytest.raises(HsmError, match="KDD"):
            hsm.derive_scp03_keys("line-master", kdd)
    with pytest.raises(HsmError, match="16 or 32"):
        hsm.derive_scp03_keys("line-master", KDD, length=24)
    with pytest.raises(HsmError, match="not aes-master"):
        hsm.derive_scp03_keys("transport-dek", KDD)
    with pytest.raises(HsmError, match="not aes-master"):
        hsm.derive_scp03_keys("root-ca", KDD)
    with pytest.raises(HsmError, match="no key"):
        hsm.derive_scp03_keys("missing", KDD)


# -- PUT KEY wrapping -----------------------------------------------------------------------------


def test_wrap_for_put_key_decrypts_to_the_derived_key_under_the_transport_dek(hsm: Hsm) -> None:
    _with_keys(hsm)
    keys = hsm.derive_scp03_keys("line-master", KDD)
    for key in keys.derived():
        wrapped = hsm.wrap_for_put_key(key, "transport-dek")
        plain = _cbc_decrypt(TRANSPORT_DEK, wrapped.ciphertext)  # Amd D §6.2.8: CBC, zero ICV
        assert plain == expected_key(MASTER_128, KDD, key.role, 16)
        assert wrapped.kcv == aes_kcv(plain) == key.kcv
        assert wrapped.length == 16 and len(wrapped.ciphertext) == 16


def test_wrap_under_a_derived_dek(hsm: Hsm) -> None:
    """Re-keying a device: the new keys go under its current (derived) Key-DEK."""
    hsm.unwrap_aes_key("m", aes_key_wrap_with_padding(KEK, MASTER_256), KeyKind.MASTER)
    current = hsm.derive_scp03_keys("m", KDD, length=32)
    fresh = hsm.derive_scp03_keys("m", bytes(10), length=32)
    current_dek = expected_key(MASTER_256, KDD, AesKeyRole.DEK, 32)
    wrapped = hsm.wrap_for_put_key(fresh.mac, current.dek)
    assert _cbc_decrypt(current_dek, wrapped.ciphertext) == expected_key(
        MASTER_256, bytes(10), AesKeyRole.MAC, 32
    )


def test_wrap_for_put_key_refuses_anything_else(hsm: Hsm) -> None:
    _with_keys(hsm)
    keys = hsm.derive_scp03_keys("line-master", KDD)
    forged_master = DerivedKey(label="line-master", role=AesKeyRole.ENC, length=16, kcv=b"\x00" * 3)
    with pytest.raises(HsmError, match="not a live derived key"):
        hsm.wrap_for_put_key(forged_master, "transport-dek")
    with pytest.raises(HsmError, match="not a live derived Key-DEK"):
        hsm.wrap_for_put_key(keys.mac, keys.enc)  # an ENC key is no Key-DEK
    forged_dek = DerivedKey(label=keys.enc.label, role=AesKeyRole.DEK, length=16, kcv=b"")
    with pytest.raises(HsmError, match="not a live derived Key-DEK"):
        hsm.wrap_for_put_key(keys.mac, DerivedKey(**{**forged_dek.__dict__, "label": "nope"}))
    with pytest.raises(HsmError, match="not aes-transport"):
        hsm.wrap_for_put_key(keys.enc, "line-master")
    with pytest.raises(HsmError, match="not aes-transport"):
        hsm.wrap_for_put_key(keys.enc, "root-ca")
    hsm.release(keys)
    with pytest.raises(HsmError, match="not a live derived key"):
        hsm.wrap_for_put_key(keys.enc, "transport-dek")


# -- AES-CMAC (SCP03 session keys) --------------------------------------------------------------


def test_aes_cmac_matches_pyca_and_refuses_dek_and_master(hsm: Hsm) -> None:
    _with_keys(hsm)
    keys = hsm.derive_scp03_keys("line-master", KDD)
    message = bytes(11) + b"\x04\x00\x00\x80\x01" + bytes(16)  # an SCP03 KDF input block shape
    for key in (keys.enc, keys.mac):
        mac = CMAC(algorithms.AES(expected_key(MASTER_128, KDD, key.role, 16)))
        mac.update(message)
        assert hsm.aes_cmac(key, message) == mac.finalize()
    transport = CMAC(algorithms.AES(TRANSPORT_DEK))
    transport.update(message)
    assert hsm.aes_cmac("transport-dek", message) == transport.finalize()
    with pytest.raises(HsmError, match="ENC or MAC"):
        hsm.aes_cmac(keys.dek, message)
    with pytest.raises(HsmError, match="not aes-transport"):
        hsm.aes_cmac("line-master", message)


# -- import -------------------------------------------------------------------------------------


def test_import_accepts_only_keys_wrapped_under_the_kek(hsm: Hsm) -> None:
    good = aes_key_wrap_with_padding(KEK, MASTER_128)
    with pytest.raises(HsmError):
        hsm.unwrap_aes_key("a", aes_key_wrap_with_padding(OTHER_KEK, MASTER_128), KeyKind.MASTER)
    with pytest.raises(HsmError):
        hsm.unwrap_aes_key("b", good[:-8], KeyKind.MASTER)
    with pytest.raises(HsmError):
        hsm.unwrap_aes_key("c", good[:-1] + bytes([good[-1] ^ 1]), KeyKind.TRANSPORT)
    with pytest.raises(HsmError):
        hsm.unwrap_aes_key("d", aes_key_wrap_with_padding(KEK, bytes(20)), KeyKind.TRANSPORT)
    with pytest.raises(HsmError, match="only AES master or transport"):
        hsm.unwrap_aes_key("e", good, KeyKind.EC)
    assert hsm.labels() == []
    assert hsm.unwrap_aes_key("f", good, KeyKind.MASTER) == aes_kcv(MASTER_128)
    assert hsm.labels() == ["f"]


def test_generated_master_derives_and_survives_reopening(backend: Backend) -> None:
    hsm = backend.create(KEK)
    kcv = hsm.generate_aes_key("line-master", 256)
    before = hsm.derive_scp03_keys("line-master", KDD)
    hsm.lock()
    again = backend.reopen()
    again.activate(KEK)
    assert again.key_check_value("line-master") == kcv
    assert again.derive_scp03_keys("line-master", KDD) == before
    for bits in (0, 64, 512):
        with pytest.raises(HsmError, match="128, 192 or 256"):
            again.generate_aes_key("other", bits)


# -- backend-specific state at rest ---------------------------------------------------------------


def test_software_store_is_sealed_and_tamper_evident(tmp_path: Path) -> None:
    store = tmp_path / "hsm"
    hsm = _with_keys(SoftwareHsm.initialise(store, KEK))
    hsm.generate_ec_key("log", "P-256")
    hsm.close()
    path = store / STORE_FILE
    assert path.stat().st_mode & 0o077 == 0
    text = path.read_text()
    for secret in (MASTER_128, TRANSPORT_DEK):
        assert secret.hex() not in text
    with pytest.raises(HsmError, match="refusing to overwrite"):
        SoftwareHsm.initialise(store, KEK)
    record = json.loads(text)

    def activate_with(change: Callable[[dict[str, Any]], None]) -> None:
        altered = json.loads(json.dumps(record))
        change(altered)
        path.write_text(json.dumps(altered))
        SoftwareHsm.open(store).activate(KEK)

    def relabel(r: dict[str, Any]) -> None:  # move the master's blob to another label
        r["keys"]["stolen"] = r["keys"].pop("line-master")

    def rekind(r: dict[str, Any]) -> None:  # turn the master into a wrapping (transport) key
        r["keys"]["line-master"]["kind"] = "aes-transport"

    def flip(r: dict[str, Any]) -> None:
        sealed = bytearray.fromhex(r["keys"]["log"]["sealed"])
        sealed[20] ^= 1
        r["keys"]["log"]["sealed"] = sealed.hex()

    for change in (relabel, rekind, flip):
        with pytest.raises(HsmError, match="does not open"):
            activate_with(change)
    with pytest.raises(HsmError, match="not a fleetid-software-hsm/1"):
        activate_with(lambda r: r.update(format="other"))
    path.write_text(text)
    SoftwareHsm.open(store).activate(KEK)
    with pytest.raises(HsmError, match="no readable"):
        SoftwareHsm.open(tmp_path / "elsewhere")


@pytest.mark.softhsm
def test_pkcs11_activation_state_is_bound_and_sealed(tmp_path: Path, softhsm_conf: Path) -> None:
    from fleetid.hsm.pkcs11 import Pkcs11Hsm

    token, module = make_softhsm(softhsm_conf)
    state = tmp_path / "p11.json"
    Pkcs11Hsm.initialise(
        token_label=token, so_pin=SO_PIN, state_file=state, kek=KEK, module=module
    ).close()
    assert state.stat().st_mode & 0o077 == 0
    with pytest.raises(HsmError, match="refusing to re-initialise"):
        Pkcs11Hsm.initialise(
            token_label=token, so_pin=SO_PIN, state_file=state, kek=KEK, module=module
        )
    with pytest.raises(HsmError, match="not the activation state"):
        Pkcs11Hsm(token_label="another-token", state_file=state, module=module)
    record = json.loads(state.read_text())
    sealed = bytearray.fromhex(record["sealed_pin"])
    sealed[-1] ^= 1
    state.write_text(json.dumps({**record, "sealed_pin": sealed.hex()}))
    with pytest.raises(HsmError, match="does not open"):
        Pkcs11Hsm(token_label=token, state_file=state, module=module).activate(KEK)
    # Without the sealed PIN, the SO PIN is not a way in: the user PIN was never written down.
    state.write_text(json.dumps(record))
    hsm = Pkcs11Hsm(token_label=token, state_file=state, module=module)
    hsm.activate(KEK)
    hsm.close()
    other_state = tmp_path / "other.json"
    fresh, _ = make_softhsm(softhsm_conf)
    with pytest.raises(HsmError, match="set the user PIN"):
        Pkcs11Hsm.initialise(
            token_label=fresh, so_pin="wrong-so-pin", state_file=other_state, kek=KEK, module=module
        )


# -- certificates signed by HSM keys --------------------------------------------------------------


NOW = datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC)


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _ca_builder(
    subject: str, issuer: str, public: ec.EllipticCurvePublicKey, path_length: int
) -> x509.CertificateBuilder:
    return (
        x509.CertificateBuilder()
        .subject_name(_name(subject))
        .issuer_name(_name(issuer))
        .public_key(public)
        .serial_number(x509.random_serial_number())
        .not_valid_before(NOW)
        .not_valid_after(NOW + datetime.timedelta(days=3650))
        .add_extension(x509.BasicConstraints(ca=True, path_length=path_length), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=False,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
    )


def _chain(hsm: Hsm) -> tuple[x509.Certificate, x509.Certificate, x509.Certificate]:
    root_public = hsm.generate_ec_key("root", "P-384")
    line_public = hsm.generate_ec_key("line-ca", "P-256")
    root = sign_certificate(_ca_builder("Root", "Root", root_public, 1), hsm.signer("root"))
    line = sign_certificate(
        _ca_builder("Line CA", "Root", line_public, 0).add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(root_public), critical=False
        ),
        hsm.signer("root"),
    )
    device_key = ec.generate_private_key(ec.SECP256R1()).public_key()
    leaf = sign_certificate(
        x509.CertificateBuilder()
        .subject_name(_name("device 0001"))
        .issuer_name(_name("Line CA"))
        .public_key(device_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(NOW)
        .not_valid_after(NOW + datetime.timedelta(days=365))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(line_public), critical=False
        ),
        hsm.signer("line-ca"),
    )
    return root, line, leaf


def test_certsign_chain_verifies_with_pyca(hsm: Hsm) -> None:
    root, line, leaf = _chain(hsm)
    assert root.signature_hash_algorithm is not None
    assert root.signature_hash_algorithm.name == "sha384"
    assert leaf.signature_hash_algorithm is not None
    assert leaf.signature_hash_algorithm.name == "sha256"
    root.verify_directly_issued_by(root)
    line.verify_directly_issued_by(root)
    leaf.verify_directly_issued_by(line)
    with pytest.raises(InvalidSignature):
        leaf.verify_directly_issued_by(
            sign_certificate(
                _ca_builder("Line CA", "Root", hsm.generate_ec_key("impostor", "P-256"), 0),
                hsm.signer("root"),
            )
        )


def _openssl_verify(
    tmp_path: Path, root: bytes, intermediate: bytes, leaf: bytes
) -> subprocess.CompletedProcess[str]:
    openssl = require_tool("openssl")
    files = {}
    for name, data in (("root", root), ("line", intermediate), ("leaf", leaf)):
        files[name] = tmp_path / f"{name}.pem"
        files[name].write_bytes(data)
    return subprocess.run(
        [
            openssl,
            "verify",
            "-x509_strict",
            "-attime",
            str(int(NOW.timestamp()) + 86400),
            "-CAfile",
            str(files["root"]),
            "-untrusted",
            str(files["line"]),
            str(files["leaf"]),
        ],
        capture_output=True,
        text=True,
        check=False,
    )


def test_certsign_chain_is_accepted_by_openssl_and_a_tampered_one_is_not(
    hsm: Hsm, tmp_path: Path
) -> None:
    root, line, leaf = (c.public_bytes(serialization.Encoding.PEM) for c in _chain(hsm))
    accepted = _openssl_verify(tmp_path, root, line, leaf)
    assert accepted.returncode == 0, accepted.stderr
    assert accepted.stdout.strip().endswith("OK")
    der = bytearray(x509.load_pem_x509_certificate(leaf).public_bytes(serialization.Encoding.DER))
    der[-5] ^= 0x01  # inside the signature BIT STRING
    tampered = x509.load_der_x509_certificate(bytes(der)).public_bytes(serialization.Encoding.PEM)
    refused = _openssl_verify(tmp_path, root, line, tampered)
    assert refused.returncode != 0
    assert "signature" in (refused.stdout + refused.stderr).lower()


def test_certsign_crl_verifies(hsm: Hsm, tmp_path: Path) -> None:
    root, _, _ = _chain(hsm)
    crl = sign_crl(
        x509.CertificateRevocationListBuilder()
        .issuer_name(root.subject)
        .last_update(NOW)
        .next_update(NOW + datetime.timedelta(days=7))
        .add_revoked_certificate(
            x509.RevokedCertificateBuilder().serial_number(42).revocation_date(NOW).build()
        ),
        hsm.signer("root"),
    )
    assert crl.is_signature_valid(hsm.public_key("root"))
    assert not crl.is_signature_valid(hsm.public_key("line-ca"))
    openssl = require_tool("openssl")
    (tmp_path / "root.pem").write_bytes(root.public_bytes(serialization.Encoding.PEM))
    (tmp_path / "crl.pem").write_bytes(crl.public_bytes(serialization.Encoding.PEM))
    checked = subprocess.run(
        [
            openssl,
            "crl",
            "-in",
            str(tmp_path / "crl.pem"),
            "-CAfile",
            str(tmp_path / "root.pem"),
            "-noout",
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert checked.returncode == 0 and "verify OK" in checked.stdout + checked.stderr


class _LyingSigner:
    """A signer whose signatures are made by a different key than the one it claims."""

    def __init__(self) -> None:
        self._claimed = ec.generate_private_key(ec.SECP256R1()).public_key()
        self._actual = SoftwareSigner(ec.generate_private_key(ec.SECP256R1()))

    def public_key(self) -> ec.EllipticCurvePublicKey:
        return self._claimed

    @property
    def hash_algorithm(self) -> hashes.HashAlgorithm:
        return hashes.SHA256()

    def sign(self, data: bytes) -> bytes:
        return self._actual.sign(data)


def test_certsign_refuses_a_signature_that_does_not_verify() -> None:
    signer = _LyingSigner()
    builder = _ca_builder("Root", "Root", signer.public_key(), 1)
    with pytest.raises(VerificationError):
        sign_certificate(builder, signer)


# -- pinned formats and configuration -----------------------------------------------------------


def test_diversification_data_is_pinned_byte_for_byte() -> None:
    assert diversification_data(KDD, AesKeyRole.ENC, 16).hex() == "010000000100d9b1de5d0362dedce4fb"
    assert diversification_data(KDD, AesKeyRole.DEK, 32).hex() == (
        "010000000300d9b1de5d0362dedce4fb020000000300d9b1de5d0362dedce4fb"
    )
    with pytest.raises(HsmError, match="KDD"):
        diversification_data(KDD[:-1], AesKeyRole.MAC, 16)
    with pytest.raises(HsmError, match="16 or 32"):
        diversification_data(KDD, AesKeyRole.MAC, 24)


def test_module_override_must_exist(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    require_module("pkcs11", install=PKCS11_EXTRA)
    from fleetid.config import PKCS11_MODULE_ENV
    from fleetid.hsm.pkcs11 import find_pkcs11_module

    with pytest.raises(HsmError, match="not a file"):
        find_pkcs11_module(tmp_path / "missing.so")
    module = tmp_path / "libexample.so"
    module.write_bytes(b"")
    assert find_pkcs11_module(str(module)) == module
    # The environment is the entry points' to read: the HSM layer ignores it.
    monkeypatch.setenv(PKCS11_MODULE_ENV, str(tmp_path / "missing.so"))
    assert find_pkcs11_module(module) == module
    try:
        found = find_pkcs11_module()
    except HsmError as exc:
        assert "not a file" not in str(exc)
    else:
        assert found != tmp_path / "missing.so"
