"""EndEntityTemplate: the TBS it builds from its once-encoded parts is byte for byte the TBS pyca
builds from ``end_entity_builder`` for the same values; what it issues is signed, verified and
parsed back; what it would encode otherwise than pyca goes to the builder."""

from __future__ import annotations

import os
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from hypothesis import given, settings
from hypothesis import strategies as st

from fleetid.authority import end_entity
from fleetid.authority.end_entity import EndEntity, EndEntityTemplate, end_entity_builder
from fleetid.crypto.pkix import issued_by
from fleetid.crypto.signer import SoftwareSigner, verify_signature
from fleetid.errors import EncodingError, VerificationError
from fleetid.hsm.software import SoftwareHsm

NOW = datetime(2027, 3, 1, 12, 0, tzinfo=UTC)
CA_KEY = ec.generate_private_key(ec.SECP384R1())
CA_SIGNER = SoftwareSigner(CA_KEY)


def _issuing(key: ec.EllipticCurvePrivateKey) -> x509.Certificate:
    name = x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "fleetid"),
            x509.NameAttribute(NameOID.COMMON_NAME, "Fleet Issuing CA G1"),
        ]
    )
    return (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(5)
        .not_valid_before(NOW - timedelta(days=1))
        .not_valid_after(NOW + timedelta(days=3650))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False)
        .sign(key, hashes.SHA384())
    )


ISSUING = _issuing(CA_KEY)
EKU_SETS = [
    (ExtendedKeyUsageOID.CLIENT_AUTH,),
    (ExtendedKeyUsageOID.CLIENT_AUTH, ExtendedKeyUsageOID.SERVER_AUTH),
]
BASES = ["http://127.0.0.1:8080", "https://fleet.example.com:8443"]
TEMPLATES = {
    (ekus, base): EndEntityTemplate(
        issuing=ISSUING, signer=CA_SIGNER, extended_key_usages=ekus, ocsp_url=base + "/ocsp"
    )
    for ekus in EKU_SETS
    for base in BASES
}
ANY_TEMPLATE = TEMPLATES[(EKU_SETS[0], BASES[0])]
KEYS = [ec.generate_private_key(curve).public_key() for curve in (ec.SECP256R1(), ec.SECP384R1())]


def _entity(common_name: str, *, serial: int = 7, crl_url: str = "http://a/crl/1.crl") -> EndEntity:
    return EndEntity(
        public_key=KEYS[0],
        serial=serial,
        common_name=common_name,
        not_before=NOW,
        not_after=NOW + timedelta(days=30),
        crl_url=crl_url,
    )


@settings(max_examples=200, deadline=None)
@given(
    ekus=st.sampled_from(EKU_SETS),
    base=st.sampled_from(BASES),
    key=st.sampled_from(KEYS),
    common_name=st.one_of(
        st.from_regex(r"[A-Za-z0-9 ._-]{1,64}", fullmatch=True),  # device names as fleets use them
        st.text(min_size=1, max_size=64).filter(lambda n: ANY_TEMPLATE.takes(_entity(n))),
    ),
    serial=st.integers(1, (1 << 159) - 1),
    shard=st.integers(0, 15),
    seconds=st.integers(0, 150 * 365 * 86400),
    micro=st.integers(0, 999_999),
    lifetime=st.integers(1, 40 * 365 * 86400),
)
def test_tbs_equals_pyca(
    ekus: tuple[x509.ObjectIdentifier, ...],
    base: str,
    key: ec.EllipticCurvePublicKey,
    common_name: str,
    serial: int,
    shard: int,
    seconds: int,
    micro: int,
    lifetime: int,
) -> None:
    not_before = datetime(1955, 1, 1, tzinfo=UTC) + timedelta(seconds=seconds, microseconds=micro)
    not_after = not_before + timedelta(seconds=lifetime)
    entity = EndEntity(
        public_key=key,
        serial=serial,
        common_name=common_name,
        not_before=not_before,
        not_after=not_after,
        crl_url=f"{base}/crl/issuing-1/{shard}.crl",
    )
    draft = end_entity_builder(
        issuing=ISSUING, entity=entity, extended_key_usages=ekus, ocsp_url=base + "/ocsp"
    ).sign(ec.generate_private_key(ec.SECP256R1()), hashes.SHA384())  # the P-384 CA's hash
    tbs = TEMPLATES[(ekus, base)].tbs(entity)
    assert tbs == draft.tbs_certificate_bytes


@pytest.mark.parametrize(
    "common_name",
    ["d", "x" * 64, "device-" + "0" * 57, "é" * 32, "\U00010000" * 16, "Müller device 0A1B"],
)
def test_tbs_equals_pyca_at_the_bounds(common_name: str) -> None:
    test_tbs_equals_pyca.hypothesis.inner_test(  # type: ignore[attr-defined]
        EKU_SETS[1], BASES[1], KEYS[1], common_name, 1 << 158, 15, 95 * 365 * 86400, 1, 86400
    )


def test_issued_with_an_hsm_signer_verifies_and_parses_back() -> None:
    hsm = SoftwareHsm.initialise(None, os.urandom(32))
    hsm.generate_ec_key("issuing", "P-256")
    signer = hsm.signer("issuing")
    template = EndEntityTemplate(
        issuing=ISSUING,
        signer=signer,
        extended_key_usages=EKU_SETS[0],
        ocsp_url=BASES[0] + "/ocsp",
    )
    made = template.certificate(
        _entity("device-0001", serial=0x1234, crl_url=BASES[0] + "/crl/issuing-1/4.crl")
    )
    assert made.serial_number == 0x1234 and made.issuer == ISSUING.subject
    assert made.subject.rfc4514_string() == "CN=device-0001"
    assert made.public_key() == KEYS[0]
    verify_signature(
        signer.public_key(), made.signature, made.tbs_certificate_bytes, hashes.SHA256()
    )


@pytest.mark.parametrize(
    ("common_name", "crl_url", "taken"),
    [
        ("device-1", "http://a/crl/1.crl", True),
        ("é" * 32, "http://a/crl/1.crl", True),  # 64 UTF-8 bytes
        ("", "http://a/crl/1.crl", False),  # pyca refuses an empty commonName
        ("x" * 65, "http://a/crl/1.crl", False),  # over ub-common-name: pyca refuses it
        ("é" * 33, "http://a/crl/1.crl", False),  # 33 characters, 66 UTF-8 bytes: pyca refuses
        ("\ud800", "http://a/crl/1.crl", False),  # no UTF-8 for a lone surrogate
        ("device-1", "http://bücher.example/crl/1.crl", False),  # not IA5String
    ],
)
def test_what_the_template_takes(common_name: str, crl_url: str, taken: bool) -> None:
    assert ANY_TEMPLATE.takes(_entity(common_name, crl_url=crl_url)) is taken


def test_subject_alt_names_go_to_the_builder() -> None:
    named = replace(_entity("host"), alt_names=(x509.DNSName("host.example"),))
    assert ANY_TEMPLATE.takes(_entity("host")) and not ANY_TEMPLATE.takes(named)


class _BadSigner(SoftwareSigner):
    def sign(self, data: bytes) -> bytes:
        return super().sign(data + b"not the tbs")


def test_a_signature_that_does_not_verify_is_refused() -> None:
    template = EndEntityTemplate(
        issuing=ISSUING,
        signer=_BadSigner(CA_KEY),
        extended_key_usages=EKU_SETS[0],
        ocsp_url=BASES[0] + "/ocsp",
    )
    with pytest.raises(VerificationError):
        template.certificate(_entity("d", serial=7, crl_url=BASES[0] + "/crl/issuing-1/7.crl"))


def test_an_encoding_that_does_not_rebuild_pyca_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    # A distribution point written with its URI as a UTF8String instead of IA5String ([6]).
    monkeypatch.setattr(
        end_entity,
        "_crl_distribution_points",
        lambda url: end_entity.x509_tbs.extension(
            end_entity._OID_CRL_DP,
            end_entity.encode_tlv(
                0x30,
                end_entity.encode_tlv(
                    0x30,
                    end_entity.encode_tlv(
                        0xA0, end_entity.encode_tlv(0xA0, end_entity.encode_tlv(0x0C, url))
                    ),
                ),
            ),
        ),
    )
    with pytest.raises(EncodingError):
        EndEntityTemplate(
            issuing=ISSUING,
            signer=CA_SIGNER,
            extended_key_usages=EKU_SETS[0],
            ocsp_url=BASES[0] + "/ocsp",
        )


def test_a_certificate_verifies_under_a_p384_issuing_ca() -> None:
    """The template's signature algorithm is its signer's (SHA-384 for this P-384 CA); it used
    to draft with SHA-256 whatever the signer, and its certificates did not verify."""
    made = ANY_TEMPLATE.certificate(_entity("device-1", serial=9, crl_url=BASES[0] + "/crl/1.crl"))
    assert made.signature_hash_algorithm is not None
    assert made.signature_hash_algorithm.name == "sha384"
    assert issued_by(made, ISSUING)
    assert not issued_by(made, _issuing(ec.generate_private_key(ec.SECP384R1())))
