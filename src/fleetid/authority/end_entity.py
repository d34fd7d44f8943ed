"""The fleet CA's end-entity certificates (RFC 5280 §4.1), built by pyca or from a template.

``end_entity_builder`` is the profile: subject ``CN``, keyUsage digitalSignature (critical),
basicConstraints cA FALSE (critical), the credential type's extended key usages, the subject and
authority key identifiers, an AIA OCSP URL and a CRL distribution point (the certificate's shard)
on the server that issued it, and subjectAltNames when given.

Certificates of one issuing CA, credential type and base URL differ only in the serial number,
validity, the commonName, the key, its key identifier and the distribution point's URL.
``EndEntityTemplate`` is a ``fleetid.formats.x509_template.TbsTemplate``: it takes everything
else once from a draft of ``end_entity_builder``, checks that it rebuilds the TBS of a second
draft (other key, serial, name, times and shard) byte for byte, and per certificate writes only
the fields that differ. What it would not write as pyca does (a commonName of no or over 64 UTF-8
bytes, or not UTF-8, and subjectAltNames) goes to the builder. ``EndEntityIssuer`` keeps a
template per extended key usage set and OCSP URL.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Final

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import AuthorityInformationAccessOID, ExtensionOID, NameOID

from fleetid.crypto.signer import Signer
from fleetid.formats import x509_tbs
from fleetid.formats.tlv import encode_tlv
from fleetid.formats.x509_sign import key_usage, probe_public_key
from fleetid.formats.x509_template import TbsParts, TbsTemplate

__all__ = ["EndEntity", "EndEntityIssuer", "EndEntityTemplate", "end_entity_builder"]

_EE_KEY_USAGE: Final = key_usage(digital_signature=True)
_UB_COMMON_NAME: Final = 64  # RFC 5280 Appendix A.1 ub-common-name (pyca: UTF-8 bytes)
_OID_COMMON_NAME: Final = x509_tbs.oid(NameOID.COMMON_NAME)
_OID_SKI: Final = x509_tbs.oid(ExtensionOID.SUBJECT_KEY_IDENTIFIER)
_OID_CRL_DP: Final = x509_tbs.oid(ExtensionOID.CRL_DISTRIBUTION_POINTS)
_PROBE_TIME: Final = datetime(2030, 1, 1, tzinfo=UTC)
_CHECK_TIME: Final = datetime(2027, 6, 15, 9, 30, 45, tzinfo=UTC)


@dataclass(frozen=True, kw_only=True)
class EndEntity:
    """What one end-entity certificate says besides its issuer and its credential type."""

    public_key: ec.EllipticCurvePublicKey
    serial: int
    common_name: str
    not_before: datetime
    not_after: datetime
    crl_url: str  # the distribution point of the certificate's CRL shard
    alt_names: tuple[x509.GeneralName, ...] = ()


def end_entity_builder(
    *,
    issuing: x509.Certificate,
    entity: EndEntity,
    extended_key_usages: tuple[x509.ObjectIdentifier, ...],
    ocsp_url: str,
) -> x509.CertificateBuilder:
    """The profile (module docstring) as a pyca builder."""
    public_key = entity.public_key
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, entity.common_name)]))
        .issuer_name(issuing.subject)
        .public_key(public_key)
        .serial_number(entity.serial)
        .not_valid_before(entity.not_before)
        .not_valid_after(entity.not_after)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_EE_KEY_USAGE, critical=True)
        .add_extension(x509.ExtendedKeyUsage(list(extended_key_usages)), False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(
                issuing.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
            ),
            False,
        )
        .add_extension(
            x509.AuthorityInformationAccess(
                [
                    x509.AccessDescription(
                        AuthorityInformationAccessOID.OCSP, x509.UniformResourceIdentifier(ocsp_url)
                    )
                ]
            ),
            False,
        )
        .add_extension(
            x509.CRLDistributionPoints(
                [
                    x509.DistributionPoint(
                        full_name=[x509.UniformResourceIdentifier(entity.crl_url)],
                        relative_name=None,
                        reasons=None,
                        crl_issuer=None,
                    )
                ]
            ),
            False,
        )
    )
    if entity.alt_names:
        builder = builder.add_extension(x509.SubjectAlternativeName(list(entity.alt_names)), False)
    return builder


def _sample(serial: int, common_name: str, when: datetime, crl_url: str) -> EndEntity:
    """Values for a template's probe and check: a fresh key, valid for a day from ``when``."""
    return EndEntity(
        public_key=probe_public_key(),
        serial=serial,
        common_name=common_name,
        not_before=when,
        not_after=when + timedelta(days=1),
        crl_url=crl_url,
    )


def _crl_distribution_points(url: bytes) -> bytes:
    """The extension for one DistributionPoint with a fullName URI (RFC 5280 §4.2.1.13):
    SEQUENCE { SEQUENCE { [0] { [0] { [6] IA5String } } } }, as pyca encodes it."""
    name = encode_tlv(0xA0, encode_tlv(0xA0, encode_tlv(0x86, url)))
    return x509_tbs.extension(_OID_CRL_DP, encode_tlv(0x30, encode_tlv(0x30, name)))


class EndEntityIssuer:
    """One issuing CA's end-entity certificates, through an ``EndEntityTemplate`` per extended key
    usage set and OCSP URL."""

    def __init__(self, *, issuing: x509.Certificate, signer: Signer) -> None:
        self._issuing = issuing
        self._signer = signer
        self._templates: dict[tuple[tuple[x509.ObjectIdentifier, ...], str], EndEntityTemplate] = {}

    def issue(
        self,
        entity: EndEntity,
        *,
        extended_key_usages: tuple[x509.ObjectIdentifier, ...],
        ocsp_url: str,
    ) -> x509.Certificate:
        """``entity``'s certificate under the profile, signed."""
        key = (extended_key_usages, ocsp_url)
        template = self._templates.get(key)
        if template is None:
            template = EndEntityTemplate(
                issuing=self._issuing,
                signer=self._signer,
                extended_key_usages=extended_key_usages,
                ocsp_url=ocsp_url,
            )
            self._templates[key] = template
        return template.certificate(entity)


class EndEntityTemplate(TbsTemplate[EndEntity]):
    """``end_entity_builder``'s certificates for one issuing CA, EKU set and OCSP URL, with what
    they share encoded once (module docstring; ``fleetid.formats.x509_template``)."""

    what = "end-entity"

    def __init__(
        self,
        *,
        issuing: x509.Certificate,
        signer: Signer,
        extended_key_usages: tuple[x509.ObjectIdentifier, ...],
        ocsp_url: str,
    ) -> None:
        self._issuing = issuing
        self._ekus = extended_key_usages
        self._ocsp_url = ocsp_url
        self._before_ski = self._after_ski = b""
        super().__init__(signer)

    def builder(self, values: EndEntity) -> x509.CertificateBuilder:
        return end_entity_builder(
            issuing=self._issuing,
            entity=values,
            extended_key_usages=self._ekus,
            ocsp_url=self._ocsp_url,
        )

    def probe(self) -> EndEntity:
        return _sample(1, "probe", _PROBE_TIME, "http://probe.invalid/0.crl")

    def check(self) -> EndEntity:
        return _sample(0x7F3A, "check é", _CHECK_TIME, "https://a.example:8443/crl/x/9.crl")

    def learn(self, parts: TbsParts) -> None:
        basic, usage, eku, _ski, aki, aia, _crl = parts.extensions
        self._before_ski = basic + usage + eku
        self._after_ski = aki + aia

    def takes(self, values: EndEntity) -> bool:
        """Whether the template writes ``values`` as pyca would; otherwise the builder issues
        (and refuses a commonName of no or over 64 UTF-8 bytes, as pyca counts them)."""
        try:
            size = len(values.common_name.encode())  # pyca counts a commonName's UTF-8 bytes
        except UnicodeEncodeError:
            return False
        return not values.alt_names and 0 < size <= _UB_COMMON_NAME and values.crl_url.isascii()

    def tbs(self, values: EndEntity) -> bytes:
        spki = values.public_key.public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        return self.parts.tbs(
            serial=values.serial,
            validity=x509_tbs.time(values.not_before) + x509_tbs.time(values.not_after),
            subject=x509_tbs.rdn(_OID_COMMON_NAME, 0x0C, values.common_name.encode()),
            spki=spki,
            extensions=self._before_ski
            + x509_tbs.subject_key_identifier(spki)
            + self._after_ski
            + _crl_distribution_points(values.crl_url.encode()),
        )
