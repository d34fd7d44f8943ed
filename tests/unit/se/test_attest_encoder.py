"""The card writes its ATTEST certificate's TBS from DER pieces: byte for byte the TBS pyca builds
from the same fields, for every key curve, usage, origin, boot state and challenge."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from hypothesis import given, settings
from hypothesis import strategies as st

from fleetid.errors import EncodingError
from fleetid.factory import manufacturer as mfr
from fleetid.se.applets import identity
from fleetid.se.state import CardState, Cplc, Curve, KeySlot

_CURVES = {
    Curve.P256: ec.SECP256R1(),
    Curve.P384: ec.SECP384R1(),
    Curve.BRAINPOOL_P256: ec.BrainpoolP256R1(),
    Curve.BRAINPOOL_P384: ec.BrainpoolP384R1(),
}
_KEYS = {c: ec.generate_private_key(curve) for c, curve in _CURVES.items()}
_ATTESTATION = {c: ec.generate_private_key(_CURVES[c]) for c in (Curve.P256, Curve.P384)}


def _issuer(curve: Curve, not_before: datetime, with_ski: bool) -> identity._Issuer:
    key = _ATTESTATION[curve]
    ca = ec.generate_private_key(ec.SECP256R1())
    builder = (
        x509.CertificateBuilder()
        .subject_name(mfr.ManufacturerNames(organization="Acme").line_ca_name("L1"))
        .issuer_name(mfr.ManufacturerNames(organization="Acme").root_name())
        .public_key(key.public_key())
        .serial_number(7)
        .not_valid_before(not_before)
        .not_valid_after(not_before + timedelta(days=1))
    )
    if with_ski:
        builder = builder.add_extension(
            x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False
        )
    cert = builder.sign(ca, hashes.SHA256())
    slot = KeySlot(curve=curve, private_value=key.private_numbers().private_value, usage=4)
    return identity._Issuer.of(cert.public_bytes(serialization.Encoding.DER), slot, key)


@settings(max_examples=120, deadline=None)
@given(
    key_curve=st.sampled_from(list(_KEYS)),
    attestation_curve=st.sampled_from(list(_ATTESTATION)),
    usage=st.sampled_from([0x01, 0x02, 0x03, 0x81, 0x82]),
    generated=st.booleans(),
    handle=st.integers(1, 0x7F),
    challenge=st.binary(max_size=64),
    measurement=st.none() | st.binary(min_size=32, max_size=32),
    version=st.none() | st.text(max_size=12),
    svn=st.integers(0, 2**31),
    serial=st.integers(1, 2**127),
    not_before=st.datetimes(
        min_value=datetime(1960, 1, 1), max_value=datetime(2200, 1, 1), timezones=st.just(UTC)
    ),
    with_ski=st.booleans(),
)
def test_tbs_equals_pyca(
    key_curve: Curve,
    attestation_curve: Curve,
    usage: int,
    generated: bool,
    handle: int,
    challenge: bytes,
    measurement: bytes | None,
    version: str | None,
    svn: int,
    serial: int,
    not_before: datetime,
    with_ski: bool,
) -> None:
    state = CardState(cplc=Cplc(ic_serial=bytes.fromhex("0A0B0C0D")))
    state.boot.measurement = measurement
    state.boot.image_version = version
    state.boot.security_counter = svn
    key = _KEYS[key_curve]
    slot = KeySlot(
        curve=key_curve,
        private_value=key.private_numbers().private_value,
        usage=usage,
        generated_on_card=generated,
    )
    fields = identity._AttestationFields.of(
        state=state,
        handle=handle,
        slot=slot,
        subject_spki=key.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        ),
        challenge=challenge,
        issuer=_issuer(attestation_curve, not_before, with_ski),
        serial=serial,
    )
    signing_key = _ATTESTATION[attestation_curve]
    sha384 = attestation_curve is Curve.P384
    draft = fields.builder().sign(signing_key, hashes.SHA384() if sha384 else hashes.SHA256())
    template = identity._attestation_template(attestation_curve)
    signer = identity.SoftwareSigner(signing_key)
    der = template.certificate(fields, signer).public_bytes(serialization.Encoding.DER)
    parsed = x509.load_der_x509_certificate(der)
    assert parsed.tbs_certificate_bytes == draft.tbs_certificate_bytes
    assert parsed.signature_algorithm_oid == draft.signature_algorithm_oid
    signing_key.public_key().verify(
        parsed.signature, parsed.tbs_certificate_bytes, ec.ECDSA(parsed.signature_hash_algorithm)
    )


def test_a_wrong_encoder_refuses_the_template_before_it_issues() -> None:
    """The template checks its own writing against pyca's draft when it is made: an encoder that
    writes another notAfter is refused then, not discovered in a certificate."""
    issuer = _issuer(Curve.P256, datetime(2027, 1, 1, tzinfo=UTC), True)
    identity._AttestationTemplate(issuer, _ATTESTATION[Curve.P256])  # the real encoder passes
    wrong = identity.x509_tbs.time(datetime(2049, 1, 1, tzinfo=UTC))
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(identity, "_NO_EXPIRY_DER", wrong)
        with pytest.raises(EncodingError, match="ATTEST certificate template"):
            identity._AttestationTemplate(issuer, _ATTESTATION[Curve.P256])


def test_a_signer_of_another_hash_is_refused() -> None:
    """One template per signature algorithm: a P-384 card key cannot sign under the P-256 one."""
    issuer = _issuer(Curve.P384, datetime(2027, 1, 1, tzinfo=UTC), True)
    state = CardState(cplc=Cplc(ic_serial=bytes.fromhex("0A0B0C0D")))
    key = _KEYS[Curve.P256]
    slot = KeySlot(curve=Curve.P256, private_value=key.private_numbers().private_value, usage=1)
    fields = identity._AttestationFields.of(
        state=state,
        handle=1,
        slot=slot,
        subject_spki=key.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        ),
        challenge=b"c",
        issuer=issuer,
        serial=5,
    )
    template = identity._attestation_template(Curve.P256)
    with pytest.raises(EncodingError, match="another hash"):
        template.certificate(fields, identity.SoftwareSigner(_ATTESTATION[Curve.P384]))
