"""Manufacturer certificate profiles: pkilint-clean, 802.1AR IDevID fields, RFC 4108 SAN."""

from __future__ import annotations

import subprocess
import uuid
from datetime import UTC, datetime
from pathlib import Path

# pyasn1-alt-modules' RFC 4108 module registers HardwareModuleName in the otherName map; import it
# before pkilint so pkilint decodes (and so checks) the SAN otherName value.
import pyasn1_alt_modules.rfc4108 as rfc4108
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from hypothesis import given, settings
from hypothesis import strategies as st
from pkilint import loader, report
from pkilint.bin import lint_pkix_signer_signee_cert_chain as chain_linter
from pkilint.pkix import certificate as pkilint_certificate
from pkilint.pkix import extension as pkilint_extension
from pkilint.pkix import name as pkilint_name
from pkilint.validation import ValidationFindingSeverity
from pyasn1.codec.der import decoder as der_decoder
from pyasn1.codec.der import encoder as der_encoder
from tests.mutations import KINDS, mutate, outcome
from tests.optional import require_tool

from fleetid.crypto.signer import SoftwareSigner
from fleetid.errors import EncodingError, VerificationError
from fleetid.factory import manufacturer as mfr
from fleetid.formats.webauthn import FIDO_AAGUID_OID

NOW = datetime(2027, 3, 1, 12, 0, tzinfo=UTC)
NAMES = mfr.ManufacturerNames(organization="Acme Devices", country="DE")
CHIP = bytes.fromhex("4790D5010203040506A1")
FIDO_MODEL = mfr.FidoModel(
    aaguid=uuid.UUID("0f0e0d0c-0b0a-4908-8706-050403020100"), name="Acme FIDO2 key"
)


@pytest.fixture(scope="module")
def chain() -> dict[str, x509.Certificate]:
    root_signer = SoftwareSigner(ec.generate_private_key(ec.SECP384R1()))
    line_signer = SoftwareSigner(ec.generate_private_key(ec.SECP256R1()))
    device_key = ec.generate_private_key(ec.SECP256R1())
    root = mfr.issue_root(names=NAMES, signer=root_signer, now=NOW)
    line = mfr.issue_line_ca(
        names=NAMES,
        line_id="L1",
        line_ca_public_key=line_signer.public_key(),
        root=root,
        root_signer=root_signer,
        now=NOW,
    )
    idevid = mfr.issue_idevid(
        line_ca=line,
        line_ca_signer=line_signer,
        public_key=device_key.public_key(),
        device_serial=CHIP.hex().upper(),
        chip_serial=CHIP,
        organization="Acme Devices",
        now=NOW,
    )
    fido = mfr.issue_fido_attestation(
        line_ca=line,
        line_ca_signer=line_signer,
        public_key=ec.generate_private_key(ec.SECP256R1()).public_key(),
        model=FIDO_MODEL,
        names=NAMES,
        now=NOW,
    )
    return {"root": root, "line": line, "idevid": idevid, "fido": fido}


def _write(tmp_path: Path, name: str, cert: x509.Certificate) -> str:
    path = tmp_path / f"{name}.pem"
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return str(path)


def _findings(results: object) -> list[str]:
    # Everything above INFO (pkilint's "method 1 SKI identified" is informational).
    return [
        f"{result.validator}: {finding.finding.code} ({finding.finding.severity.name})"
        for result in results  # type: ignore[attr-defined]
        for finding in result.finding_descriptions
        if finding.finding.severity <= ValidationFindingSeverity.NOTICE
    ]


def _load(cert: x509.Certificate, name: str, collection: dict[str, object] | None = None) -> object:
    der = cert.public_bytes(serialization.Encoding.DER)
    return loader.RFC5280CertificateDocumentLoader().load_der_document(der, name, name, collection)


def _lint_pkix_cert(cert: x509.Certificate) -> list[str]:
    """pkilint's ``lint_pkix_cert`` (RFC 5280 certificate linter), run in-process."""
    validator = pkilint_certificate.create_pkix_certificate_validator_container(
        pkilint_certificate.create_decoding_validators(
            pkilint_name.ATTRIBUTE_TYPE_MAPPINGS, pkilint_extension.EXTENSION_MAPPINGS
        ),
        [
            pkilint_certificate.create_issuer_validator_container([]),
            pkilint_certificate.create_validity_validator_container(),
            pkilint_certificate.create_subject_validator_container([]),
            pkilint_certificate.create_extensions_validator_container([]),
            pkilint_certificate.create_spki_validator_container([]),
        ],
    )
    doc = _load(cert, "certificate")
    results = validator.validate(doc.root)  # type: ignore[attr-defined]
    assert report.get_findings_count(results, None) >= 0
    return _findings(results)


def _lint_chain(issuer: x509.Certificate, subject: x509.Certificate) -> list[str]:
    """pkilint's ``lint_pkix_signer_signee_cert_chain``, run in-process."""
    collection: dict[str, object] = {}
    collection["issuer"] = _load(issuer, "issuer", collection)
    collection["subject"] = _load(subject, "subject", collection)
    decoding = chain_linter.create_decoder_validation_container()
    results = decoding.validate(collection["issuer"].root)  # type: ignore[attr-defined]
    results += decoding.validate(collection["subject"].root)  # type: ignore[attr-defined]
    results += chain_linter.create_issuer_validation_container().validate(
        collection["issuer"].root  # type: ignore[attr-defined]
    )
    results += chain_linter.create_subject_validation_container().validate(
        collection["subject"].root  # type: ignore[attr-defined]
    )
    return _findings(results)


@pytest.mark.parametrize("name", ["root", "line", "idevid", "fido"])
def test_pkilint_rfc5280_finds_nothing_above_info(
    name: str, chain: dict[str, x509.Certificate]
) -> None:
    assert _lint_pkix_cert(chain[name]) == []


@pytest.mark.parametrize(
    ("issuer", "subject"), [("root", "line"), ("line", "idevid"), ("line", "fido")]
)
def test_pkilint_issuer_subject_chain_is_clean(
    issuer: str, subject: str, chain: dict[str, x509.Certificate]
) -> None:
    assert _lint_chain(chain[issuer], chain[subject]) == []


def test_pkilint_chain_linter_flags_a_wrong_issuer(chain: dict[str, x509.Certificate]) -> None:
    findings = _lint_chain(chain["root"], chain["idevid"])
    assert findings, "the IDevID is not issued by the root: pkilint must flag the pair"


def test_pkilint_does_flag_a_broken_profile() -> None:
    # The linter is live: an IDevID-like certificate with an empty subject and a non-critical SAN
    # breaks RFC 5280 §4.2.1.6, and pkilint must say so.
    key = ec.generate_private_key(ec.SECP256R1())
    hw = mfr.encode_hardware_module_name(
        mfr.HardwareModuleName(hw_type=mfr.SE_HW_TYPE, hw_serial=CHIP)
    )
    bad = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([]))
        .issuer_name(NAMES.root_name())
        .public_key(key.public_key())
        .serial_number(7)
        .not_valid_before(NOW)
        .not_valid_after(mfr.IDEVID_NOT_AFTER)
        .add_extension(
            x509.SubjectAlternativeName([x509.OtherName(mfr.ID_ON_HARDWARE_MODULE_NAME, hw)]),
            critical=False,
        )
        .sign(key, hashes.SHA256())
    )
    assert _lint_pkix_cert(bad) != []


def test_openssl_verifies_the_chain(chain: dict[str, x509.Certificate], tmp_path: Path) -> None:
    done = subprocess.run(
        [
            require_tool("openssl"),
            "verify",
            "-x509_strict",
            "-attime",
            str(int(NOW.timestamp()) + 3600),
            "-CAfile",
            _write(tmp_path, "root", chain["root"]),
            "-untrusted",
            _write(tmp_path, "line", chain["line"]),
            _write(tmp_path, "idevid", chain["idevid"]),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_idevid_carries_the_802_1ar_fields(chain: dict[str, x509.Certificate]) -> None:
    idevid = chain["idevid"]
    serials = idevid.subject.get_attributes_for_oid(NameOID.SERIAL_NUMBER)
    assert [a.value for a in serials] == [CHIP.hex().upper()]
    assert idevid.not_valid_after_utc == datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC)
    key_usage = idevid.extensions.get_extension_for_class(x509.KeyUsage)
    assert key_usage.critical and key_usage.value.digital_signature
    assert not key_usage.value.key_cert_sign
    aki = idevid.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier).value
    ski = chain["line"].extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    assert aki.key_identifier == ski.digest
    assert idevid.issuer == chain["line"].subject


def test_idevid_not_after_is_generalized_time_99991231235959z(
    chain: dict[str, x509.Certificate],
) -> None:
    der = chain["idevid"].public_bytes(serialization.Encoding.DER)
    assert b"\x18\x0f99991231235959Z" in der  # GeneralizedTime, RFC 5280 §4.1.2.5


def test_san_hardware_module_name_decodes_with_an_independent_asn1_library(
    chain: dict[str, x509.Certificate],
) -> None:
    san = chain["idevid"].extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    (other,) = san.get_values_for_type(x509.OtherName)
    assert other.type_id.dotted_string == str(rfc4108.id_on_hardwareModuleName)
    decoded, rest = der_decoder.decode(other.value, asn1Spec=rfc4108.HardwareModuleName())
    assert rest == b""
    assert str(decoded["hwType"]) == mfr.SE_HW_TYPE.dotted_string
    assert bytes(decoded["hwSerialNum"]) == CHIP
    assert mfr.hardware_module_name_of(chain["idevid"]) == mfr.HardwareModuleName(
        hw_type=mfr.SE_HW_TYPE, hw_serial=CHIP
    )


def test_ca_profiles(chain: dict[str, x509.Certificate]) -> None:
    root, line = chain["root"], chain["line"]
    assert root.subject == root.issuer
    root_bc = root.extensions.get_extension_for_class(x509.BasicConstraints)
    line_bc = line.extensions.get_extension_for_class(x509.BasicConstraints)
    assert root_bc.critical and root_bc.value.ca
    assert line_bc.critical and line_bc.value.ca and line_bc.value.path_length == 0
    for cert in (root, line):
        usage = cert.extensions.get_extension_for_class(x509.KeyUsage)
        assert usage.critical and usage.value.key_cert_sign and usage.value.crl_sign
    line.verify_directly_issued_by(root)


def test_certificate_without_san_has_no_hardware_module_name(
    chain: dict[str, x509.Certificate],
) -> None:
    with pytest.raises(VerificationError, match="no subjectAltName"):
        mfr.hardware_module_name_of(chain["root"])


def test_malformed_hardware_module_name_is_refused() -> None:
    with pytest.raises(EncodingError):
        mfr.decode_hardware_module_name(b"\x30\x03\x06\x01")


def test_non_canonical_hardware_module_name_is_refused() -> None:
    good = mfr.encode_hardware_module_name(
        mfr.HardwareModuleName(hw_type=mfr.SE_HW_TYPE, hw_serial=b"\x01")
    )
    long_form = b"\x30\x81" + good[1:]  # BER long-form length: not DER
    with pytest.raises(EncodingError):
        mfr.decode_hardware_module_name(long_form)


_HW_TYPES = [
    mfr.SE_HW_TYPE,
    x509.ObjectIdentifier("1.3.6.1.4.1.99999.1"),
    x509.ObjectIdentifier("2.999"),
]


def _pyasn1_reading(der: bytes) -> mfr.HardwareModuleName | str:
    """pyasn1's RFC 4108 module, decoding and re-encoding in DER: the independent oracle."""
    try:
        value, rest = der_decoder.decode(der, asn1Spec=rfc4108.HardwareModuleName())
        if rest or der_encoder.encode(value) != der:
            return "refused"
        return mfr.HardwareModuleName(
            hw_type=x509.ObjectIdentifier(str(value["hwType"])),
            hw_serial=bytes(value["hwSerialNum"]),
        )
    except Exception:  # any failure of the oracle is a refusal
        return "refused"


@settings(max_examples=300, deadline=None)
@given(
    hw_type=st.sampled_from(_HW_TYPES),
    serial=st.binary(max_size=300),
    kind=st.sampled_from(KINDS),
    data=st.data(),
)
def test_hardware_module_name_codec_agrees_with_pyasn1(
    hw_type: x509.ObjectIdentifier, serial: bytes, kind: str, data: st.DataObject
) -> None:
    name = mfr.HardwareModuleName(hw_type=hw_type, hw_serial=serial)
    der = mfr.encode_hardware_module_name(name)
    reference = rfc4108.HardwareModuleName()
    reference["hwType"] = hw_type.dotted_string
    reference["hwSerialNum"] = serial
    assert der == der_encoder.encode(reference)
    mutated = mutate(data, der, kind)
    assert outcome(mfr.decode_hardware_module_name, mutated) == _pyasn1_reading(mutated)


def test_fido_attestation_certificate_meets_webauthn_8_2_1(
    chain: dict[str, x509.Certificate],
) -> None:
    """WebAuthn L3 §8.2.1: version 3; subject C, O, OU "Authenticator Attestation", CN;
    basicConstraints CA false; id-fido-gen-ce-aaguid a non-critical OCTET STRING of the AAGUID
    (python-fido2's packed verification checks the same fields)."""
    fido = chain["fido"]
    assert fido.version is x509.Version.v3
    subject = {a.oid: a.value for a in fido.subject}
    assert subject == {
        NameOID.COUNTRY_NAME: "DE",
        NameOID.ORGANIZATION_NAME: "Acme Devices",
        NameOID.ORGANIZATIONAL_UNIT_NAME: "Authenticator Attestation",
        NameOID.COMMON_NAME: "Acme FIDO2 key",
    }
    assert fido.extensions.get_extension_for_class(x509.BasicConstraints).value.ca is False
    aaguid = fido.extensions.get_extension_for_oid(FIDO_AAGUID_OID)
    assert not aaguid.critical
    assert aaguid.value.value == b"\x04\x10" + FIDO_MODEL.aaguid.bytes  # type: ignore[attr-defined]
    assert fido.issuer == chain["line"].subject
