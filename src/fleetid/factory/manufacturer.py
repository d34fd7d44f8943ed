"""Manufacturer certificate profiles: the root CA, the line CA and the device's IEEE 802.1AR IDevID.

Profiles are builders (what goes in a certificate); issuance signs them with a ``Signer`` held by
the HSM, so the CA private keys never reach this process. Each profile follows RFC 5280 and is
checked by pkilint's RFC 5280 linters in the tests.

* Root: self-signed, basicConstraints cA (critical), keyUsage keyCertSign|cRLSign (critical),
  subject and authority key identifiers (RFC 5280 §4.2.1.1-4.2.1.3, §4.2.1.9).
* Line CA: the same, pathLenConstraint 0: it issues device certificates only.
* IDevID (IEEE 802.1AR-2018 §8): a non-empty subject holding the device serial in a
  serialNumber attribute; the chip serial also in subjectAltName as an RFC 4108 §5
  HardwareModuleName otherName; keyUsage digitalSignature (critical); notAfter
  99991231235959Z, the "no well-defined expiration" value of RFC 5280 §4.1.2.5 and
  802.1AR §8.5, because the identity lives as long as the silicon.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from typing import Any

import asn1tools
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from fleetid.crypto.certsign import key_usage
from fleetid.crypto.signer import Signer
from fleetid.errors import EncodingError, VerificationError

__all__ = [
    "IDEVID_NOT_AFTER",
    "ID_ON_HARDWARE_MODULE_NAME",
    "SE_HW_TYPE",
    "HardwareModuleName",
    "ManufacturerNames",
    "certificate_fingerprint",
    "decode_hardware_module_name",
    "encode_hardware_module_name",
    "hardware_module_name_of",
    "idevid_builder",
    "issue_idevid",
    "issue_line_ca",
    "issue_root",
    "line_ca_builder",
    "root_builder",
]

# RFC 4108 §5: id-on-hardwareModuleName ::= { id-pkix id-on(8) 4 }
ID_ON_HARDWARE_MODULE_NAME = x509.ObjectIdentifier("1.3.6.1.5.5.7.8.4")

# hwType of the fleetid emulated secure element, under IANA's documentation enterprise number
# 32473 (RFC 5612): a manufacturer replaces it with an arc of its own enterprise number. Not a
# 2.25.<UUID> (X.667) arc: its 128-bit arc is refused by common DER decoders (pyasn1-fasder in
# pkilint, older Go encoding/asn1), and a device certificate must parse everywhere.
SE_HW_TYPE = x509.ObjectIdentifier("1.3.6.1.4.1.32473.1.1")

# RFC 5280 §4.1.2.5 / IEEE 802.1AR §8.5: GeneralizedTime 99991231235959Z, no expiry.
IDEVID_NOT_AFTER = datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC)

_ROOT_LIFETIME = timedelta(days=25 * 365)
_LINE_CA_LIFETIME = timedelta(days=10 * 365)
# A little back-dating absorbs clock skew between the line and verifiers (RFC 5280 is silent;
# CA/B practice).
_BACKDATE = timedelta(minutes=5)

_HWNAME_ASN1 = """
PKIX-HardwareModuleName DEFINITIONS EXPLICIT TAGS ::= BEGIN
-- RFC 4108 §5
HardwareModuleName ::= SEQUENCE {
    hwType OBJECT IDENTIFIER,
    hwSerialNum OCTET STRING }
END
"""
_HWNAME_CODEC: Any = asn1tools.compile_string(_HWNAME_ASN1, "der")


@dataclass(frozen=True, kw_only=True)
class HardwareModuleName:
    """RFC 4108 HardwareModuleName: hardware type and chip serial as the silicon reports it."""

    hw_type: x509.ObjectIdentifier
    hw_serial: bytes


def encode_hardware_module_name(name: HardwareModuleName) -> bytes:
    """DER of the HardwareModuleName SEQUENCE (the otherName value)."""
    return bytes(
        _HWNAME_CODEC.encode(
            "HardwareModuleName",
            {"hwType": name.hw_type.dotted_string, "hwSerialNum": name.hw_serial},
        )
    )


def decode_hardware_module_name(der: bytes) -> HardwareModuleName:
    try:
        value = _HWNAME_CODEC.decode("HardwareModuleName", der)
    except asn1tools.Error as exc:
        raise EncodingError(f"not a DER HardwareModuleName: {exc}") from exc
    if encode_hardware_module_name(
        HardwareModuleName(
            hw_type=x509.ObjectIdentifier(value["hwType"]), hw_serial=value["hwSerialNum"]
        )
    ) != bytes(der):
        raise EncodingError("HardwareModuleName is not in canonical DER")
    return HardwareModuleName(
        hw_type=x509.ObjectIdentifier(value["hwType"]), hw_serial=bytes(value["hwSerialNum"])
    )


def hardware_module_name_of(certificate: x509.Certificate) -> HardwareModuleName:
    """The one HardwareModuleName in a certificate's subjectAltName; raise if not exactly one."""
    try:
        san = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound as exc:
        raise VerificationError("certificate has no subjectAltName") from exc
    names = [
        n
        for n in san.get_values_for_type(x509.OtherName)
        if n.type_id == ID_ON_HARDWARE_MODULE_NAME
    ]
    if len(names) != 1:
        raise VerificationError(f"expected one HardwareModuleName, found {len(names)}")
    return decode_hardware_module_name(names[0].value)


@dataclass(frozen=True, kw_only=True)
class ManufacturerNames:
    """Who the manufacturer is, as it appears in issuer and subject names."""

    organization: str
    country: str = "DE"
    root_common_name: str = ""
    line_ca_common_name: str = ""

    def root_name(self) -> x509.Name:
        return self._name(self.root_common_name or f"{self.organization} Manufacturer Root CA")

    def line_ca_name(self, line_id: str) -> x509.Name:
        return self._name(self.line_ca_common_name or f"{self.organization} Line CA {line_id}")

    def _name(self, common_name: str) -> x509.Name:
        return x509.Name(
            [
                x509.NameAttribute(NameOID.COUNTRY_NAME, self.country),
                x509.NameAttribute(NameOID.ORGANIZATION_NAME, self.organization),
                x509.NameAttribute(NameOID.COMMON_NAME, common_name),
            ]
        )


def root_builder(
    *, names: ManufacturerNames, public_key: ec.EllipticCurvePublicKey, now: datetime
) -> x509.CertificateBuilder:
    subject = names.root_name()
    return _ca_builder(
        subject=subject,
        issuer=subject,
        public_key=public_key,
        issuer_public_key=public_key,
        not_before=now - _BACKDATE,
        not_after=now + _ROOT_LIFETIME,
        path_length=None,
    )


def line_ca_builder(
    *,
    names: ManufacturerNames,
    line_id: str,
    public_key: ec.EllipticCurvePublicKey,
    root: x509.Certificate,
    now: datetime,
) -> x509.CertificateBuilder:
    return _ca_builder(
        subject=names.line_ca_name(line_id),
        issuer=root.subject,
        public_key=public_key,
        issuer_public_key=_ec_public_key(root),
        not_before=now - _BACKDATE,
        not_after=min(now + _LINE_CA_LIFETIME, root.not_valid_after_utc),
        path_length=0,
    )


def idevid_builder(
    *,
    line_ca: x509.Certificate,
    public_key: ec.EllipticCurvePublicKey,
    device_serial: str,
    chip_serial: bytes,
    now: datetime,
    organization: str,
    hw_type: x509.ObjectIdentifier = SE_HW_TYPE,
) -> x509.CertificateBuilder:
    """IEEE 802.1AR IDevID for one device (see the module docstring for the profile)."""
    subject = x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, organization),
            x509.NameAttribute(NameOID.COMMON_NAME, f"{organization} device {device_serial}"),
            x509.NameAttribute(NameOID.SERIAL_NUMBER, device_serial),
        ]
    )
    hw_name = encode_hardware_module_name(
        HardwareModuleName(hw_type=hw_type, hw_serial=chip_serial)
    )
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(line_ca.subject)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - _BACKDATE)
        .not_valid_after(IDEVID_NOT_AFTER)
        .add_extension(_IDEVID_KEY_USAGE, critical=True)
        .add_extension(
            x509.SubjectAlternativeName([x509.OtherName(ID_ON_HARDWARE_MODULE_NAME, hw_name)]),
            critical=False,
        )
        .add_extension(_authority_key_identifier(line_ca), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
    )


_IDEVID_KEY_USAGE = key_usage(digital_signature=True)


@lru_cache(maxsize=16)
def _authority_key_identifier(issuer: x509.Certificate) -> x509.AuthorityKeyIdentifier:
    """The AKI naming ``issuer``'s key (RFC 5280 §4.2.1.1), once per issuing CA, not per device."""
    return x509.AuthorityKeyIdentifier.from_issuer_public_key(_ec_public_key(issuer))


def issue_root(*, names: ManufacturerNames, signer: Signer, now: datetime) -> x509.Certificate:
    builder = root_builder(names=names, public_key=signer.public_key(), now=now)
    return _sign(builder, signer)


def issue_line_ca(
    *,
    names: ManufacturerNames,
    line_id: str,
    line_ca_public_key: ec.EllipticCurvePublicKey,
    root: x509.Certificate,
    root_signer: Signer,
    now: datetime,
) -> x509.Certificate:
    builder = line_ca_builder(
        names=names, line_id=line_id, public_key=line_ca_public_key, root=root, now=now
    )
    return _sign(builder, root_signer)


def issue_idevid(
    *,
    line_ca: x509.Certificate,
    line_ca_signer: Signer,
    public_key: ec.EllipticCurvePublicKey,
    device_serial: str,
    chip_serial: bytes,
    organization: str,
    now: datetime,
) -> x509.Certificate:
    builder = idevid_builder(
        line_ca=line_ca,
        public_key=public_key,
        device_serial=device_serial,
        chip_serial=chip_serial,
        now=now,
        organization=organization,
    )
    return _sign(builder, line_ca_signer)


def certificate_fingerprint(certificate: x509.Certificate) -> str:
    """SHA-256 over the DER certificate, lower-case hex."""
    return hashlib.sha256(certificate.public_bytes(serialization.Encoding.DER)).hexdigest()


def _sign(builder: x509.CertificateBuilder, signer: Signer) -> x509.Certificate:
    from fleetid.crypto.certsign import sign_certificate

    return sign_certificate(builder, signer)


def _ec_public_key(certificate: x509.Certificate) -> ec.EllipticCurvePublicKey:
    key = certificate.public_key()
    if not isinstance(key, ec.EllipticCurvePublicKey):
        raise VerificationError("manufacturer CA keys are ECDSA")
    return key


def _ca_builder(
    *,
    subject: x509.Name,
    issuer: x509.Name,
    public_key: ec.EllipticCurvePublicKey,
    issuer_public_key: ec.EllipticCurvePublicKey,
    not_before: datetime,
    not_after: datetime,
    path_length: int | None,
) -> x509.CertificateBuilder:
    ca_key_usage = key_usage(key_cert_sign=True, crl_sign=True)
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=True, path_length=path_length), critical=True)
        .add_extension(ca_key_usage, critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_public_key), critical=False
        )
    )
