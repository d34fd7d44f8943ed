"""Manufacturer certificate profiles: the root CA, the line CA and the device's IEEE 802.1AR IDevID.

Profiles say what goes in a certificate; issuance signs them with a ``Signer`` held by the HSM, so
the CA private keys never reach this process. The root and the line CA are the one CA profile's
(``fleetid.formats.ca_profile``) with the manufacturer's names, validity and path lengths. Each
profile follows RFC 5280 and is checked by pkilint's RFC 5280 linters in the tests.

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
import re
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import lru_cache

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtensionOID, NameOID

from fleetid.crypto.signer import Signer
from fleetid.errors import EncodingError, VerificationError
from fleetid.formats import x509_tbs as der
from fleetid.formats.ca_profile import CaProfile
from fleetid.formats.tlv import decode_tlv, decode_tlvs, encode_tlv
from fleetid.formats.webauthn import FIDO_AAGUID_OID
from fleetid.formats.x509_sign import key_usage, probe_public_key, sign_certificate
from fleetid.formats.x509_template import TbsParts, TbsTemplate

__all__ = [
    "IDEVID_NOT_AFTER",
    "ID_ON_HARDWARE_MODULE_NAME",
    "SE_HW_TYPE",
    "FidoModel",
    "HardwareModuleName",
    "IdevidFields",
    "IdevidIssuer",
    "ManufacturerNames",
    "certificate_fingerprint",
    "decode_hardware_module_name",
    "encode_hardware_module_name",
    "hardware_module_name_of",
    "idevid_builder",
    "issue_fido_attestation",
    "issue_idevid",
    "issue_line_ca",
    "issue_root",
    "line_ca_profile",
    "root_profile",
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
_CA_KEY_USAGE = key_usage(key_cert_sign=True, crl_sign=True)


@dataclass(frozen=True, kw_only=True)
class HardwareModuleName:
    """RFC 4108 HardwareModuleName: hardware type and chip serial as the silicon reports it."""

    hw_type: x509.ObjectIdentifier
    hw_serial: bytes


def encode_hardware_module_name(name: HardwareModuleName) -> bytes:
    """DER of the HardwareModuleName SEQUENCE (the otherName value): the hwType OID, encoded
    once per type, then the serial (X.690 §8.9: the components in order)."""
    return encode_tlv(0x30, _hw_type_der(name.hw_type) + encode_tlv(0x04, name.hw_serial))


def decode_hardware_module_name(encoding: bytes) -> HardwareModuleName:
    """Parse a DER HardwareModuleName: the serial read in place, the hwType decoded once per
    encoding; what decoded must encode back to the very bytes."""
    try:
        sequence, end = decode_tlv(encoding)
        parts = decode_tlvs(sequence.value) if sequence.tag == 0x30 and end == len(encoding) else []
        if len(parts) != 2 or parts[0].tag != 0x06 or parts[1].tag != 0x04:
            raise EncodingError("SEQUENCE { hwType OBJECT IDENTIFIER, hwSerialNum OCTET STRING }")
        # Not asn1tools: 0.169 misreads an OID under 2 with a second arc of 40 or more (2.999.7
        # as 26.39.7).
        hw_type = x509.ObjectIdentifier(der.dotted_oid(parts[0].encode()))
        name = HardwareModuleName(hw_type=hw_type, hw_serial=parts[1].value)
    except (EncodingError, ValueError) as exc:  # ValueError: an OID pyca does not take
        raise EncodingError(f"not a DER HardwareModuleName: {exc}") from exc
    if encode_hardware_module_name(name) != bytes(encoding):
        raise EncodingError("HardwareModuleName is not in canonical DER")
    return name


@lru_cache(maxsize=64)
def _hw_type_der(hw_type: x509.ObjectIdentifier) -> bytes:
    """A hwType's DER, remembered: a line writes the same one into every IDevID."""
    return der.oid(hw_type)


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


def root_profile(
    *, names: ManufacturerNames, public_key: ec.EllipticCurvePublicKey, now: datetime
) -> CaProfile:
    """The manufacturer root: self-signed, no path length, naming its own key as authority."""
    subject = names.root_name()
    return CaProfile(
        subject=subject,
        issuer=subject,
        public_key=public_key,
        serial_number=x509.random_serial_number(),
        not_before=now - _BACKDATE,
        not_after=now + _ROOT_LIFETIME,
        path_length=None,
        key_usage=_CA_KEY_USAGE,
        authority_key=public_key,
    )


def line_ca_profile(
    *,
    names: ManufacturerNames,
    line_id: str,
    public_key: ec.EllipticCurvePublicKey,
    root: x509.Certificate,
    now: datetime,
) -> CaProfile:
    """A line CA under the root: pathLenConstraint 0, it certifies devices only."""
    return CaProfile(
        subject=names.line_ca_name(line_id),
        issuer=root.subject,
        public_key=public_key,
        serial_number=x509.random_serial_number(),
        not_before=now - _BACKDATE,
        not_after=min(now + _LINE_CA_LIFETIME, root.not_valid_after_utc),
        path_length=0,
        key_usage=_CA_KEY_USAGE,
        authority_key=_ec_public_key(root),
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
    serial_number: int | None = None,
) -> x509.CertificateBuilder:
    """IEEE 802.1AR IDevID for one device (see the module docstring for the profile); a random
    serial number unless one is given."""
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
        .serial_number(x509.random_serial_number() if serial_number is None else serial_number)
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


@dataclass(frozen=True, kw_only=True)
class FidoModel:
    """A FIDO authenticator model: its AAGUID and the name its attestation certificate carries.

    FIDO attestation is per model, not per unit (a batch shares one attestation key, so that a
    signature does not single a user out); the line issues one certificate per model and
    injects the same key and chain into every card of it.
    """

    aaguid: uuid.UUID
    name: str


def issue_fido_attestation(
    *,
    line_ca: x509.Certificate,
    line_ca_signer: Signer,
    public_key: ec.EllipticCurvePublicKey,
    model: FidoModel,
    names: ManufacturerNames,
    now: datetime,
) -> x509.Certificate:
    """A packed attestation certificate for ``model`` (WebAuthn L3 §8.2.1): version 3; subject
    C, O, OU "Authenticator Attestation" and CN; basicConstraints CA false; the AAGUID in the
    non-critical id-fido-gen-ce-aaguid extension as a DER OCTET STRING."""
    subject = x509.Name(
        [
            x509.NameAttribute(NameOID.COUNTRY_NAME, names.country),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, names.organization),
            x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, "Authenticator Attestation"),
            x509.NameAttribute(NameOID.COMMON_NAME, model.name),
        ]
    )
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(line_ca.subject)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - _BACKDATE)
        .not_valid_after(line_ca.not_valid_after_utc)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_IDEVID_KEY_USAGE, critical=True)
        .add_extension(
            x509.UnrecognizedExtension(FIDO_AAGUID_OID, encode_tlv(0x04, model.aaguid.bytes)),
            critical=False,
        )
        .add_extension(_authority_key_identifier(line_ca), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
    )
    return sign_certificate(builder, line_ca_signer)


@lru_cache(maxsize=16)
def _authority_key_identifier(issuer: x509.Certificate) -> x509.AuthorityKeyIdentifier:
    """The AKI naming ``issuer``'s key (RFC 5280 §4.2.1.1), once per issuing CA, not per device."""
    return x509.AuthorityKeyIdentifier.from_issuer_public_key(_ec_public_key(issuer))


def issue_root(*, names: ManufacturerNames, signer: Signer, now: datetime) -> x509.Certificate:
    return root_profile(names=names, public_key=signer.public_key(), now=now).issue(signer)


def issue_line_ca(
    *,
    names: ManufacturerNames,
    line_id: str,
    line_ca_public_key: ec.EllipticCurvePublicKey,
    root: x509.Certificate,
    root_signer: Signer,
    now: datetime,
) -> x509.Certificate:
    profile = line_ca_profile(
        names=names, line_id=line_id, public_key=line_ca_public_key, root=root, now=now
    )
    return profile.issue(root_signer)


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
    return sign_certificate(builder, line_ca_signer)


@dataclass(frozen=True, kw_only=True)
class IdevidFields:
    """What one IDevID says besides its line CA: the values an ``IdevidTemplate`` writes."""

    public_key: ec.EllipticCurvePublicKey
    device_serial: str
    chip_serial: bytes
    now: datetime  # notBefore is ``now`` less the back-dating
    serial: int


class IdevidIssuer(TbsTemplate[IdevidFields]):
    """``issue_idevid`` for one line CA, with what every IDevID of it shares encoded once.

    The TBS of an IDevID (RFC 5280 §4.1) differs between devices only in the serial number,
    notBefore, the subject's commonName and serialNumber, the key, the HardwareModuleName in
    subjectAltName and the subject key identifier. The rest (version, signature algorithm,
    issuer, notAfter, the subject's organizationName, keyUsage, authorityKeyIdentifier) is taken
    once from a draft of ``idevid_builder``, checked to rebuild a second draft byte for byte
    (``EncodingError`` otherwise; ``fleetid.formats.x509_template``). Per device, the line CA
    signer signs the TBS (an HSM signer verifies the signature before returning it; any other is
    verified), and the certificate is parsed back and its TBS and signature compared with what
    was signed.
    """

    what = "IDevID"

    def __init__(
        self,
        *,
        line_ca: x509.Certificate,
        line_ca_signer: Signer,
        organization: str,
        hw_type: x509.ObjectIdentifier = SE_HW_TYPE,
    ) -> None:
        self.line_ca = line_ca
        self._organization = organization
        self._hw_type = hw_type
        self._hw_type_der = der.oid(hw_type)
        self._organization_rdn = self._key_usage = self._aki = b""
        super().__init__(line_ca_signer)

    def builder(self, values: IdevidFields) -> x509.CertificateBuilder:
        return idevid_builder(
            line_ca=self.line_ca,
            public_key=values.public_key,
            device_serial=values.device_serial,
            chip_serial=values.chip_serial,
            now=values.now,
            organization=self._organization,
            hw_type=self._hw_type,
            serial_number=values.serial,
        )

    def probe(self) -> IdevidFields:
        return _sample("00", b"\x00", _PROBE_TIME, 1)

    def check(self) -> IdevidFields:
        return _sample("0A1B2C", b"\x01\x02", _CHECK_TIME, 0x5A17C3)

    def learn(self, parts: TbsParts) -> None:
        key_usage_ext, _san, aki_ext, _ski = parts.extensions
        self._organization_rdn = parts.subject_rdns[0]
        self._key_usage = key_usage_ext
        self._aki = aki_ext

    def takes(self, values: IdevidFields) -> bool:
        # serialNumber is a PrintableString (X.520); pyca encodes anything else its own way and
        # refuses a commonName over its upper bound (RFC 5280 Appendix A.1), in UTF-8 bytes.
        common_name = f"{self._organization} device {values.device_serial}"
        return bool(_PRINTABLE.fullmatch(values.device_serial)) and (
            len(common_name.encode()) <= _UB_COMMON_NAME
        )

    def tbs(self, values: IdevidFields) -> bytes:
        spki = values.public_key.public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        common_name = f"{self._organization} device {values.device_serial}".encode()
        subject = (
            self._organization_rdn
            + der.rdn(_OID_COMMON_NAME, 0x0C, common_name)  # UTF8String
            + der.rdn(_OID_SERIAL_NUMBER, 0x13, values.device_serial.encode())  # PrintableString
        )
        hw_name = encode_tlv(0x30, self._hw_type_der + encode_tlv(0x04, values.chip_serial))
        # GeneralNames { otherName [0] { type-id, [0] EXPLICIT value } } (RFC 5280 §4.2.1.6)
        other_name = encode_tlv(0xA0, _ID_ON_HW_NAME_DER + encode_tlv(0xA0, hw_name))
        return self.parts.tbs(
            serial=values.serial,
            validity=der.time(values.now - _BACKDATE) + self.parts.not_after,
            subject=subject,
            spki=spki,
            extensions=self._key_usage
            + der.extension(_OID_SAN, encode_tlv(0x30, other_name))
            + self._aki
            + der.subject_key_identifier(spki),
        )

    def issue(
        self,
        *,
        public_key: ec.EllipticCurvePublicKey,
        device_serial: str,
        chip_serial: bytes,
        now: datetime,
    ) -> x509.Certificate:
        """The IDevID ``issue_idevid`` would issue for these values (with its own serial)."""
        return self.certificate(
            IdevidFields(
                public_key=public_key,
                device_serial=device_serial,
                chip_serial=chip_serial,
                now=now,
                serial=x509.random_serial_number(),
            )
        )


def _sample(device_serial: str, chip_serial: bytes, now: datetime, serial: int) -> IdevidFields:
    """Values for the template's probe and check, with a fresh key."""
    return IdevidFields(
        public_key=probe_public_key(),
        device_serial=device_serial,
        chip_serial=chip_serial,
        now=now,
        serial=serial,
    )


_UB_COMMON_NAME = 64
_PRINTABLE = re.compile(r"[A-Za-z0-9 '()+,\-./:=?]+")  # X.680 §41.4 PrintableString
_PROBE_TIME = datetime(2030, 1, 1, tzinfo=UTC)
_CHECK_TIME = datetime(2027, 6, 15, 9, 30, 45, tzinfo=UTC)


_OID_COMMON_NAME = der.oid(NameOID.COMMON_NAME)
_OID_SERIAL_NUMBER = der.oid(NameOID.SERIAL_NUMBER)
_OID_SAN = der.oid(ExtensionOID.SUBJECT_ALTERNATIVE_NAME)
_ID_ON_HW_NAME_DER = der.oid(ID_ON_HARDWARE_MODULE_NAME)


def certificate_fingerprint(certificate: x509.Certificate) -> str:
    """SHA-256 over the DER certificate, lower-case hex."""
    return hashlib.sha256(certificate.public_bytes(serialization.Encoding.DER)).hexdigest()


def _ec_public_key(certificate: x509.Certificate) -> ec.EllipticCurvePublicKey:
    key = certificate.public_key()
    if not isinstance(key, ec.EllipticCurvePublicKey):
        raise VerificationError("manufacturer CA keys are ECDSA")
    return key
