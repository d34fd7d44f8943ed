"""The fleet CA's end-entity certificates (RFC 5280 §4.1), built by pyca or from a template.

``end_entity_builder`` is the profile: subject ``CN``, keyUsage digitalSignature (critical),
basicConstraints cA FALSE (critical), the credential type's extended key usages, the subject and
authority key identifiers, an AIA OCSP URL and a CRL distribution point (the certificate's shard)
on the server that issued it, and subjectAltNames when given.

Certificates of one issuing CA, credential type and base URL differ only in the serial number,
validity, the commonName, the key, its key identifier and the distribution point's URL.
``EndEntityTemplate`` takes everything else once from a draft pyca builds from
``end_entity_builder`` and signs with a throwaway key, and before it is used rebuilds the TBS of a
second draft (other key, serial, name, times and shard) and compares it with pyca's bytes
(``EncodingError`` otherwise). Per certificate it then writes only the fields that differ, and
``fleetid.formats.x509_sign.sign_tbs`` signs, checks and parses the result. ``EndEntityIssuer``
keeps a template per extended key usage set and OCSP URL, and sends to the builder what the
template would not write as pyca does (a commonName of no or over 64 UTF-8 bytes, or not UTF-8)
and subjectAltNames.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Final

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import AuthorityInformationAccessOID, ExtensionOID, NameOID

from fleetid.crypto.signer import Signer
from fleetid.errors import EncodingError
from fleetid.formats import x509_tbs
from fleetid.formats.tlv import decode_tlv, decode_tlvs, encode_tlv
from fleetid.formats.x509_sign import key_usage, sign_certificate, sign_tbs

__all__ = ["EndEntity", "EndEntityIssuer", "EndEntityTemplate", "end_entity_builder"]

_EE_KEY_USAGE: Final = key_usage(digital_signature=True)
_UB_COMMON_NAME: Final = 64  # RFC 5280 Appendix A.1 ub-common-name (pyca: UTF-8 bytes)
_OID_COMMON_NAME: Final = x509_tbs.oid(NameOID.COMMON_NAME)
_OID_SKI: Final = x509_tbs.oid(ExtensionOID.SUBJECT_KEY_IDENTIFIER)
_OID_CRL_DP: Final = x509_tbs.oid(ExtensionOID.CRL_DISTRIBUTION_POINTS)
_PROBE_TIME: Final = datetime(2030, 1, 1, tzinfo=UTC)


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


def _crl_distribution_points(url: bytes) -> bytes:
    """The extension for one DistributionPoint with a fullName URI (RFC 5280 §4.2.1.13):
    SEQUENCE { SEQUENCE { [0] { [0] { [6] IA5String } } } }, as pyca encodes it."""
    name = encode_tlv(0xA0, encode_tlv(0xA0, encode_tlv(0x86, url)))
    return x509_tbs.extension(_OID_CRL_DP, encode_tlv(0x30, encode_tlv(0x30, name)))


class EndEntityIssuer:
    """One issuing CA's end-entity certificates: from an ``EndEntityTemplate`` per extended key
    usage set and OCSP URL when the template writes them as pyca would, by the builder
    otherwise."""

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
        if not EndEntityTemplate.takes(entity):
            builder = end_entity_builder(
                issuing=self._issuing,
                entity=entity,
                extended_key_usages=extended_key_usages,
                ocsp_url=ocsp_url,
            )
            return sign_certificate(builder, self._signer)
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
        return template.issue(entity)


class EndEntityTemplate:
    """``end_entity_builder``'s certificates for one issuing CA, EKU set and OCSP URL, with what
    they share encoded once (module docstring)."""

    def __init__(
        self,
        *,
        issuing: x509.Certificate,
        signer: Signer,
        extended_key_usages: tuple[x509.ObjectIdentifier, ...],
        ocsp_url: str,
    ) -> None:
        self._issuing = issuing
        self._signer = signer
        self._ekus = extended_key_usages
        self._ocsp_url = ocsp_url
        throwaway = ec.generate_private_key(ec.SECP256R1())
        probe = self._draft(
            EndEntity(
                public_key=throwaway.public_key(),
                serial=1,
                common_name="probe",
                not_before=_PROBE_TIME,
                not_after=_PROBE_TIME + timedelta(days=1),
                crl_url="http://probe.invalid/0.crl",
            )
        )
        fields = decode_tlvs(decode_tlv(probe.tbs_certificate_bytes)[0].value)
        version, _, algorithm, issuer, _, _, _, extensions = fields
        basic, usage, eku, _ski, aki, aia, _crl = decode_tlvs(decode_tlv(extensions.value)[0].value)
        self._version, self._algorithm, self._issuer = (
            version.encode(),
            algorithm.encode(),
            issuer.encode(),
        )
        self._before_ski = basic.encode() + usage.encode() + eku.encode()
        self._after_ski = aki.encode() + aia.encode()
        # The check: pyca's TBS for another key, serial, name, times and URL, rebuilt here.
        now = datetime.now(UTC).replace(microsecond=0)
        check = EndEntity(
            public_key=ec.generate_private_key(ec.SECP256R1()).public_key(),
            serial=0x7F3A,
            common_name="check é",
            not_before=now,
            not_after=now + timedelta(days=1),
            crl_url="https://a.example:8443/crl/x/9.crl",
        )
        if self._tbs(check) != self._draft(check).tbs_certificate_bytes:
            raise EncodingError("the end-entity template does not rebuild pyca's encoding")

    def _draft(self, entity: EndEntity) -> x509.Certificate:
        """``entity``'s certificate signed with a throwaway key: only its TBS is used."""
        builder = end_entity_builder(
            issuing=self._issuing,
            entity=entity,
            extended_key_usages=self._ekus,
            ocsp_url=self._ocsp_url,
        )
        return builder.sign(ec.generate_private_key(ec.SECP256R1()), hashes.SHA256())

    @staticmethod
    def takes(entity: EndEntity) -> bool:
        """Whether the template writes ``entity`` as pyca would; otherwise use the builder (which
        refuses a commonName of no or over 64 UTF-8 bytes, as pyca counts them)."""
        try:
            size = len(entity.common_name.encode())  # pyca counts a commonName's UTF-8 bytes
        except UnicodeEncodeError:
            return False
        return not entity.alt_names and 0 < size <= _UB_COMMON_NAME and entity.crl_url.isascii()

    def issue(self, entity: EndEntity) -> x509.Certificate:
        """The certificate ``end_entity_builder`` describes, signed (``takes`` must hold)."""
        return sign_tbs(self._tbs(entity), self._algorithm, self._signer)

    def _tbs(self, entity: EndEntity) -> bytes:
        spki = entity.public_key.public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        extensions = (
            self._before_ski
            + x509_tbs.subject_key_identifier(spki)
            + self._after_ski
            + _crl_distribution_points(entity.crl_url.encode())
        )
        subject = x509_tbs.rdn(_OID_COMMON_NAME, 0x0C, entity.common_name.encode())
        validity = x509_tbs.time(entity.not_before) + x509_tbs.time(entity.not_after)
        return encode_tlv(
            0x30,
            self._version
            + x509_tbs.integer(entity.serial)
            + self._algorithm
            + self._issuer
            + encode_tlv(0x30, validity)
            + encode_tlv(0x30, subject)
            + spki
            + encode_tlv(0xA3, encode_tlv(0x30, extensions)),
        )
