"""``verify_attestation``: real registrations pass, and every step added to python-fido2's checks
refuses an input that the library alone accepts (each such test runs the library on the same
bytes first)."""

from __future__ import annotations

import contextlib
import hashlib
import uuid
from collections.abc import Callable
from datetime import UTC, datetime

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from fido2 import cbor
from fido2.attestation.base import Attestation, NoneAttestation, UnsupportedAttestation
from fido2.attestation.packed import PackedAttestation
from fido2.attestation.tpm import TpmAttestation
from fido2.attestation.u2f import FidoU2FAttestation
from fido2.cose import CoseKey
from fido2.webauthn import AttestationObject
from hypothesis import given, settings
from hypothesis import strategies as st
from tests.fido_fixtures import (
    AndroidKey,
    authorization_list,
    edit_statement,
    key_description,
    rebuild_auth_data,
    registration,
    registrations,
)

from fleetid import errors as e
from fleetid.authority.attestation.fido import FIDO_AAGUID_OID, FidoAttestation, verify_attestation
from fleetid.formats.webauthn import encode_attestation_object, encode_authenticator_data
from fleetid.sim.demo_fido import new_authenticator

NOW = datetime(2026, 12, 1, tzinfo=UTC)
CLIENT_DATA_HASH = hashlib.sha256(b'{"type":"webauthn.create"}').digest()

_LIBRARY: dict[str, Callable[[], Attestation]] = {
    "packed": PackedAttestation,
    "tpm": TpmAttestation,
    "fido-u2f": FidoU2FAttestation,
    "none": NoneAttestation,
}


def library_accepts(attestation_object: bytes, client_data_hash: bytes) -> None:
    """python-fido2 alone, on the same bytes: raises if it refuses."""
    parsed = AttestationObject(attestation_object)
    _LIBRARY[parsed.fmt]().verify(parsed.att_stmt, parsed.auth_data, client_data_hash)


# --- real authenticators ---------------------------------------------------------------------


@pytest.mark.parametrize("vector", registrations(), ids=lambda v: v.name)
def test_real_registration_verifies(vector: object) -> None:
    from tests.fido_fixtures import Registration

    assert isinstance(vector, Registration)
    result = verify_attestation(vector.attestation_object, vector.client_data_hash)
    assert isinstance(result, FidoAttestation)
    assert result.fmt == vector.decoded["fmt"]
    x5c = vector.decoded["attStmt"]["x5c"]
    assert [c.public_bytes(serialization.Encoding.DER) for c in result.trust_path] == x5c
    assert result.aaguid.bytes == vector.decoded["authData"][37:53]


@pytest.mark.parametrize("vector", registrations(), ids=lambda v: v.name)
def test_real_registration_with_another_client_data_is_refused(vector: object) -> None:
    from tests.fido_fixtures import Registration

    assert isinstance(vector, Registration)
    other = hashlib.sha256(vector.client_data_json + b" ").digest()
    with pytest.raises(e.VerificationError):
        verify_attestation(vector.attestation_object, other)


def test_real_aaguids_and_paths() -> None:
    packed = verify_attestation(
        registration("packed").attestation_object, registration("packed").client_data_hash
    )
    assert packed.aaguid == uuid.UUID("6d44ba9b-f6ec-2e49-b930-0c8fe920cb73")  # YubiKey 5 NFC
    android = registration("android-key")
    result = verify_attestation(android.attestation_object, android.client_data_hash)
    assert len(result.trust_path) == 5
    u2f = registration("fido-u2f")
    assert verify_attestation(u2f.attestation_object, u2f.client_data_hash).aaguid.int == 0


def test_client_data_hash_must_be_sha256_sized() -> None:
    vector = registration("packed")
    with pytest.raises(e.EvidenceMalformedError):
        verify_attestation(vector.attestation_object, vector.client_data_hash[:31])


# --- A1: strict CBOR -------------------------------------------------------------------------


def _duplicate_sig(attestation_object: bytes) -> bytes:
    """attStmt with "sig" twice, a bogus one first: the library keeps the last."""
    top = cbor.decode(attestation_object)
    assert isinstance(top, dict)
    statement = top["attStmt"]
    members = [(k, v) for k, v in statement.items() if k != "sig"]
    encoded_members = b"".join(cbor.encode(k) + cbor.encode(v) for k, v in members)
    bogus = cbor.encode("sig") + cbor.encode(b"\x30\x00")
    real = cbor.encode("sig") + cbor.encode(statement["sig"])
    count = len(members) + 2
    att_stmt = bytes([0xA0 | count]) + bogus + encoded_members + real
    return (
        b"\xa3"
        + cbor.encode("fmt")
        + cbor.encode(top["fmt"])
        + cbor.encode("attStmt")
        + att_stmt
        + cbor.encode("authData")
        + cbor.encode(top["authData"])
    )


def test_duplicate_map_key_is_refused_where_the_library_takes_the_last() -> None:
    vector = registration("packed")
    forged = _duplicate_sig(vector.attestation_object)
    library_accepts(forged, vector.client_data_hash)
    with pytest.raises(e.EvidenceMalformedError, match="canonical"):
        verify_attestation(forged, vector.client_data_hash)


def test_byte_string_longer_than_the_input_is_refused_where_the_library_cuts_it() -> None:
    """authData is the last member: declaring one byte more than there is."""
    vector = registration("packed")
    data = vector.attestation_object
    auth_data = vector.decoded["authData"]
    header = cbor.encode(auth_data)[: -len(auth_data)]
    longer = cbor.encode(b"\x00" * (len(auth_data) + 1))[: len(header)]
    assert data.endswith(header + auth_data) and len(longer) == len(header)
    forged = data[: -len(header + auth_data)] + longer + auth_data
    library_accepts(forged, vector.client_data_hash)
    with pytest.raises(e.EvidenceMalformedError, match="canonical"):
        verify_attestation(forged, vector.client_data_hash)


def test_non_minimal_length_is_refused() -> None:
    vector = registration("packed")
    data = vector.attestation_object
    assert data.startswith(b"\xa3\x63fmt")
    forged = b"\xa3\x78\x03fmt" + data[5:]  # "fmt" with a one-byte length field
    library_accepts(forged, vector.client_data_hash)
    with pytest.raises(e.EvidenceMalformedError):
        verify_attestation(forged, vector.client_data_hash)


def test_trailing_bytes_are_refused() -> None:
    vector = registration("packed")
    with pytest.raises(e.EvidenceMalformedError):
        verify_attestation(vector.attestation_object + b"\x00", vector.client_data_hash)


def test_an_extra_top_level_member_is_refused() -> None:
    vector = registration("packed")
    top = vector.decoded
    forged = cbor.encode({**top, "ep": True})
    with pytest.raises(e.EvidenceMalformedError, match="exactly fmt"):
        verify_attestation(forged, vector.client_data_hash)


def test_authenticator_data_without_attested_credential_is_refused() -> None:
    vector = registration("packed")
    top = vector.decoded
    auth_data = top["authData"][:32] + bytes([top["authData"][32] & ~0x40]) + top["authData"][33:37]
    forged = encode_attestation_object(top["fmt"], top["attStmt"], auth_data)
    with pytest.raises(e.EvidenceMalformedError, match="attested credential"):
        verify_attestation(forged, vector.client_data_hash)


# --- A2: "none" and self attestation, refused by policy --------------------------------------


def _self_attested() -> tuple[bytes, bytes]:
    key = ec.generate_private_key(ec.SECP256R1())
    auth_data = encode_authenticator_data(
        rp_id_hash=hashlib.sha256(b"example.org").digest(),
        flags=0x05,
        sign_count=0,
        aaguid=uuid.uuid4(),
        credential_id=b"\x02" * 16,
        credential_public_key=CoseKey.for_alg(-7).from_cryptography_key(key.public_key()),
    )
    sig = key.sign(auth_data + CLIENT_DATA_HASH, ec.ECDSA(hashes.SHA256()))
    return encode_attestation_object("packed", {"alg": -7, "sig": sig}, auth_data), auth_data


def test_self_attestation_is_refused_by_policy() -> None:
    forged, _ = _self_attested()
    library_accepts(forged, CLIENT_DATA_HASH)
    with pytest.raises(e.AttestationTypeRefusedError, match="self attestation"):
        verify_attestation(forged, CLIENT_DATA_HASH)


def test_none_attestation_is_refused_by_policy() -> None:
    _, auth_data = _self_attested()
    none = encode_attestation_object("none", {}, auth_data)
    library_accepts(none, CLIENT_DATA_HASH)
    with pytest.raises(e.AttestationTypeRefusedError) as refused:
        verify_attestation(none, CLIENT_DATA_HASH)
    assert refused.value.reason == "attestation-type-refused"


def test_an_unknown_format_is_unsupported() -> None:
    _, auth_data = _self_attested()
    apple = encode_attestation_object("apple", {"x5c": [b"\x30\x00"]}, auth_data)
    with pytest.raises(e.EvidenceFormatUnsupportedError):
        verify_attestation(apple, CLIENT_DATA_HASH)


# --- A3 and A4: the statement's members and its certificates ---------------------------------


def test_an_unknown_statement_member_is_refused() -> None:
    vector = registration("packed")
    forged = edit_statement(vector.attestation_object, ecdaaKeyId=None, extra=b"\x00")
    library_accepts(forged, vector.client_data_hash)
    with pytest.raises(e.EvidenceMalformedError, match="exactly alg, sig, x5c"):
        verify_attestation(forged, vector.client_data_hash)


def test_an_x5c_element_that_is_not_a_certificate_is_refused() -> None:
    vector = registration("packed")
    x5c = vector.decoded["attStmt"]["x5c"]
    forged = edit_statement(vector.attestation_object, x5c=[*x5c, b"not a certificate"])
    library_accepts(forged, vector.client_data_hash)
    with pytest.raises(e.EvidenceMalformedError, match="not a DER certificate"):
        verify_attestation(forged, vector.client_data_hash)


# --- packed: P1, the AAGUID extension --------------------------------------------------------


def test_packed_from_a_software_authenticator_verifies() -> None:
    authenticator = new_authenticator("Test Key", NOW)
    obj = authenticator.make_credential("example.org", b"{}")
    result = verify_attestation(obj, hashlib.sha256(b"{}").digest())
    assert result.aaguid == authenticator.aaguid
    assert result.trust_path == (authenticator.attestation_certificate,)


def test_aaguid_extension_that_is_not_an_octet_string_is_refused() -> None:
    aaguid = uuid.uuid4()
    # A NULL-tagged value of 16 bytes: the library compares bytes [2:] and finds the AAGUID.
    authenticator = new_authenticator(
        "Test Key", NOW, aaguid=aaguid, aaguid_extension=b"\x05\x10" + aaguid.bytes
    )
    obj = authenticator.make_credential("example.org", b"{}")
    library_accepts(obj, hashlib.sha256(b"{}").digest())
    with pytest.raises(e.EvidenceMalformedError, match="OCTET STRING"):
        verify_attestation(obj, hashlib.sha256(b"{}").digest())


def test_aaguid_extension_naming_another_model_is_refused() -> None:
    authenticator = new_authenticator(
        "Test Key", NOW, aaguid_extension=b"\x04\x10" + uuid.uuid4().bytes
    )
    obj = authenticator.make_credential("example.org", b"{}")
    # The library checks this one itself; ours runs after it for tpm too.
    with pytest.raises(e.EvidenceMalformedError, match="AAGUID"):
        verify_attestation(obj, hashlib.sha256(b"{}").digest())


def test_packed_with_a_forged_signature_is_refused() -> None:
    authenticator = new_authenticator("Test Key", NOW)
    obj = authenticator.make_credential(
        "example.org", b"{}", statement={"sig": b"\x30\x06\x02\x01\x01\x02\x01\x01"}
    )
    with pytest.raises(e.AttestationSignatureError):
        verify_attestation(obj, hashlib.sha256(b"{}").digest())


# --- tpm: T1, the version ---------------------------------------------------------------------


def test_tpm_version_other_than_2_0_is_refused() -> None:
    vector = registration("tpm")
    forged = edit_statement(vector.attestation_object, ver="1.2")
    library_accepts(forged, vector.client_data_hash)
    with pytest.raises(e.EvidenceMalformedError, match=r"2\.0"):
        verify_attestation(forged, vector.client_data_hash)


# --- fido-u2f: U1 and U2 -----------------------------------------------------------------------


def test_u2f_with_more_than_one_certificate_is_refused() -> None:
    vector = registration("fido-u2f")
    x5c = vector.decoded["attStmt"]["x5c"]
    forged = edit_statement(vector.attestation_object, x5c=[x5c[0], x5c[0]])
    library_accepts(forged, vector.client_data_hash)
    with pytest.raises(e.EvidenceMalformedError, match="exactly one"):
        verify_attestation(forged, vector.client_data_hash)


def test_u2f_credential_key_that_is_not_es256_is_refused() -> None:
    """The U2F signature covers the key's point, not its COSE labels: an alg of ES384 on the
    same point still verifies under the library."""
    vector = registration("fido-u2f")
    key = dict(cbor.decode(vector.decoded["authData"][55 + 64 :]))  # 64-byte credential id
    assert key[3] == -7
    forged = rebuild_auth_data(vector.attestation_object, credential_public_key={**key, 3: -35})
    library_accepts(forged, vector.client_data_hash)
    with pytest.raises(e.EvidenceMalformedError, match="EC2, ES256, P-256"):
        verify_attestation(forged, vector.client_data_hash)


# --- android-key: K1 to K5, none of which the library has ------------------------------------


def test_the_library_has_no_android_key_format() -> None:
    assert issubclass(Attestation.for_type("android-key"), UnsupportedAttestation)


def test_android_key_from_a_software_keystore_verifies() -> None:
    android = AndroidKey(uuid.uuid4())
    assert verify_attestation(android.register(CLIENT_DATA_HASH), CLIENT_DATA_HASH).fmt == (
        "android-key"
    )


def test_android_key_signed_by_another_key_is_refused() -> None:
    android = AndroidKey(uuid.uuid4())
    obj = android.register(CLIENT_DATA_HASH, signing_key=ec.generate_private_key(ec.SECP256R1()))
    with pytest.raises(e.AttestationSignatureError):
        verify_attestation(obj, CLIENT_DATA_HASH)


def test_android_key_certificate_for_another_key_is_refused() -> None:
    other = ec.generate_private_key(ec.SECP256R1())
    android = AndroidKey(uuid.uuid4())
    obj = android.register(CLIENT_DATA_HASH, signing_key=other, certified_key=other)
    with pytest.raises(e.KeyMismatchError):
        verify_attestation(obj, CLIENT_DATA_HASH)


def test_android_key_challenge_must_be_the_client_data_hash() -> None:
    android = AndroidKey(uuid.uuid4())
    obj = android.register(CLIENT_DATA_HASH, description=key_description(b"\x00" * 32))
    with pytest.raises(e.EvidenceMalformedError, match="attestationChallenge"):
        verify_attestation(obj, CLIENT_DATA_HASH)


@pytest.mark.parametrize("where", ["software", "hardware"])
def test_android_key_for_all_applications_is_refused(where: str) -> None:
    listed = authorization_list(all_applications=True)
    description = (
        key_description(CLIENT_DATA_HASH, software=listed)
        if where == "software"
        else key_description(CLIENT_DATA_HASH, hardware=listed)
    )
    obj = AndroidKey(uuid.uuid4()).register(CLIENT_DATA_HASH, description=description)
    with pytest.raises(e.KeyUsageError, match="allApplications"):
        verify_attestation(obj, CLIENT_DATA_HASH)


def test_android_key_imported_rather_than_generated_is_refused() -> None:
    description = key_description(CLIENT_DATA_HASH, hardware=authorization_list(origin=2))
    obj = AndroidKey(uuid.uuid4()).register(CLIENT_DATA_HASH, description=description)
    with pytest.raises(e.KeyNotGeneratedOnCardError):
        verify_attestation(obj, CLIENT_DATA_HASH)


def test_android_key_origin_enforced_only_in_software_is_refused() -> None:
    description = key_description(
        CLIENT_DATA_HASH,
        software=authorization_list(),
        hardware=authorization_list(purposes=(2,), origin=None),
    )
    obj = AndroidKey(uuid.uuid4()).register(CLIENT_DATA_HASH, description=description)
    with pytest.raises(e.KeyNotGeneratedOnCardError):
        verify_attestation(obj, CLIENT_DATA_HASH)


@pytest.mark.parametrize("purposes", [(0, 1), (2, 3), ()])
def test_android_key_purpose_other_than_sign_alone_is_refused(purposes: tuple[int, ...]) -> None:
    description = key_description(CLIENT_DATA_HASH, hardware=authorization_list(purposes=purposes))
    obj = AndroidKey(uuid.uuid4()).register(CLIENT_DATA_HASH, description=description)
    with pytest.raises(e.KeyUsageError, match="SIGN alone"):
        verify_attestation(obj, CLIENT_DATA_HASH)


def test_android_key_without_key_description_is_refused() -> None:
    vector = registration("packed")  # a packed certificate has no key description
    x5c = vector.decoded["attStmt"]["x5c"]
    top = vector.decoded
    forged = encode_attestation_object(
        "android-key", {**top["attStmt"], "x5c": x5c}, top["authData"]
    )
    with pytest.raises(e.VerificationError):
        verify_attestation(forged, vector.client_data_hash)


def test_real_android_key_certificate_is_the_keystore_leaf() -> None:
    vector = registration("android-key")
    leaf = x509.load_der_x509_certificate(vector.decoded["attStmt"]["x5c"][0])
    assert leaf.subject.rfc4514_string() == "CN=Android Keystore Key"


def _aik_with_aaguid(attestation_object: bytes, aaguid: uuid.UUID) -> bytes:
    """The published TPM registration with its AIK certificate re-issued (same key, same
    extensions, a test issuer) plus id-fido-gen-ce-aaguid naming ``aaguid``: neither the library
    nor ``verify_attestation`` validates the chain, which is the metadata store's business."""
    top = cbor.decode(attestation_object)
    assert isinstance(top, dict)
    original = x509.load_der_x509_certificate(top["attStmt"]["x5c"][0])
    issuer_key = ec.generate_private_key(ec.SECP256R1())
    builder = (
        x509.CertificateBuilder()
        .subject_name(original.subject)
        .issuer_name(original.issuer)
        .public_key(original.public_key())  # type: ignore[arg-type]
        .serial_number(original.serial_number)
        .not_valid_before(original.not_valid_before_utc)
        .not_valid_after(original.not_valid_after_utc)
    )
    for extension in original.extensions:
        builder = builder.add_extension(extension.value, critical=extension.critical)
    builder = builder.add_extension(
        x509.UnrecognizedExtension(FIDO_AAGUID_OID, b"\x04\x10" + aaguid.bytes), critical=False
    )
    aik = builder.sign(issuer_key, hashes.SHA256()).public_bytes(serialization.Encoding.DER)
    return edit_statement(attestation_object, x5c=[aik, *top["attStmt"]["x5c"][1:]])


def test_tpm_aik_naming_its_own_aaguid_verifies() -> None:
    vector = registration("tpm")
    aaguid = uuid.UUID(bytes=vector.decoded["authData"][37:53])
    forged = _aik_with_aaguid(vector.attestation_object, aaguid)
    assert verify_attestation(forged, vector.client_data_hash).aaguid == aaguid


def test_tpm_aik_naming_another_aaguid_is_refused() -> None:
    vector = registration("tpm")
    forged = _aik_with_aaguid(vector.attestation_object, uuid.uuid4())
    library_accepts(forged, vector.client_data_hash)
    with pytest.raises(e.EvidenceMalformedError, match="names AAGUID"):
        verify_attestation(forged, vector.client_data_hash)


def test_u2f_with_a_non_zero_aaguid_is_refused() -> None:
    """The U2F signature does not cover the AAGUID: a model's AAGUID written into a U2F
    registration still verifies under the library."""
    vector = registration("fido-u2f")
    forged = rebuild_auth_data(vector.attestation_object, aaguid=uuid.uuid4())
    library_accepts(forged, vector.client_data_hash)
    with pytest.raises(e.EvidenceMalformedError, match="AAGUID is zero"):
        verify_attestation(forged, vector.client_data_hash)


def test_u2f_flags_are_outside_its_signature() -> None:
    """Why operator registration refuses fido-u2f where UV is required: UV set afterwards still
    verifies."""
    vector = registration("fido-u2f")
    forged = rebuild_auth_data(vector.attestation_object, flags=0x45)  # UP, UV, AT
    assert verify_attestation(forged, vector.client_data_hash).flags & 0x04


@settings(max_examples=300, deadline=None)
@given(
    index=st.sampled_from(range(4)),
    edits=st.lists(
        st.tuples(st.integers(min_value=0), st.integers(0, 255)), min_size=1, max_size=3
    ),
    cut=st.none() | st.integers(min_value=0),
)
def test_mutated_registrations_raise_only_verification_errors(
    index: int, edits: list[tuple[int, int]], cut: int | None
) -> None:
    """Whatever bytes arrive, the answer is a result or a ``VerificationError``, never another
    exception (which the HTTP edge would turn into a 500)."""
    vector = registrations()[index]
    data = bytearray(vector.attestation_object)
    for position, value in edits:
        data[position % len(data)] = value
    if cut is not None:
        data = data[: cut % len(data)]
    with contextlib.suppress(e.VerificationError):
        verify_attestation(bytes(data), vector.client_data_hash)
