"""Attestations carried in a PKCS#10 CSR, per draft-ietf-lamps-csr-attestation (-29, Sep 2026).

The draft defines one CSR attribute, ``id-aa-attestation`` (``{ id-aa 59 }`` =
1.2.840.113549.1.9.16.2.59, early-allocated by IANA as ``id-aa-evidence``), whose single value is
an ``AttestationBundle`` (§4.1, §4.3)::

    AttestationBundle ::= SEQUENCE {
       attestations SEQUENCE SIZE (1..MAX) OF AttestationStatement,
       certs SEQUENCE SIZE (1..MAX) OF LimitedCertChoices OPTIONAL }
    AttestationStatement ::= SEQUENCE { type OBJECT IDENTIFIER, stmt ANY DEFINED BY type }

``LimitedCertChoices`` is RFC 6268 ``CertificateChoices`` restricted to ``certificate`` and
``other``. ``COUNTS MAX 1`` means at most one such attribute per CSR, holding exactly one bundle
(§4.3); both are enforced when reading.

The draft registers no statement formats (§4.2: each format names its own OID). fleetid's
secure-element key attestation is ``FLEETID_SE_KEY_ATTESTATION_OID`` (arc ``.2`` under fleetid's
X.667 UUID arc, see ``fleetid.formats.attestation``); its ``stmt`` is the DER X.509
key-attestation certificate the card's ATTEST command returns, and ``certs`` carries the IDevID
chain that certificate was signed under. A TPM's key attestation is the TCG's format
(``fleetid.formats.tcg_attest_certify``) in the same attribute.

pyca/cryptography's CSR builder signs only with a private key it holds and adds attribute values
only as strings, so the ``CertificationRequestInfo`` is assembled with asn1crypto's RFC 2986 types
and signed by any ``Signer`` (the secure element); the result is loaded back with pyca and its
self-signature checked before it is returned. Nothing here writes DER by hand.

Reading (an authority, once per enrolment) walks the TLVs of what pyca has parsed (the CSR's
attributes) and of the bundle (``fleetid.formats.tlv``, which takes definite minimal lengths only),
checking each tag; the certificates go to pyca, each statement to its format's verifier.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

from asn1crypto import algos, cms, core, keys
from asn1crypto import csr as asn1_csr
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from fleetid.crypto.pkix import csr_self_signed
from fleetid.crypto.signer import Signer
from fleetid.errors import EncodingError, VerificationError
from fleetid.formats import x509_tbs
from fleetid.formats.attestation import FLEETID_ARC
from fleetid.formats.tlv import Tlv, TlvError, decode_tlv, decode_tlvs

__all__ = [
    "FLEETID_SE_KEY_ATTESTATION_OID",
    "ID_AA_ATTESTATION",
    "AttestationBundle",
    "AttestationStatement",
    "attestation_bundle_of",
    "build_attested_csr",
    "build_csr",
    "decode_attestation_bundle",
    "encode_attestation_bundle",
    "has_attestation_attribute",
]

# draft-ietf-lamps-csr-attestation §4.3 / §5.2: id-aa 59 (id-aa = 1.2.840.113549.1.9.16.2).
ID_AA_ATTESTATION = "1.2.840.113549.1.9.16.2.59"
# fleetid's statement format: stmt is a DER key-attestation Certificate (RFC 5280 §4.1).
FLEETID_SE_KEY_ATTESTATION_OID = FLEETID_ARC + ".2"
_ID_AA_ATTESTATION_DER = bytes(core.ObjectIdentifier(ID_AA_ATTESTATION).dump())

# Tags (X.690 §8.1.2; RFC 6268 CertificateChoices: [0]..[2] IMPLICIT constructed, [3] other).
_SEQUENCE, _SET, _OBJECT_IDENTIFIER, _OTHER_CERTIFICATE = 0x30, 0x31, 0x06, 0xA3
_EXCLUDED_CHOICES = {0xA0: "extendedCertificate", 0xA1: "v1AttrCert", 0xA2: "v2AttrCert"}

# RFC 5758 §3.2: ECDSA signature algorithms carry no parameters.
_ECDSA_WITH = {"sha256": "sha256_ecdsa", "sha384": "sha384_ecdsa", "sha512": "sha512_ecdsa"}


class _Statement(core.Sequence):  # type: ignore[misc]  # asn1crypto is untyped
    _fields: ClassVar[list[tuple[str, Any]]] = [
        ("type", core.ObjectIdentifier),
        ("stmt", core.Any),
    ]


class _Statements(core.SequenceOf):  # type: ignore[misc]
    _child_spec = _Statement


class _Certs(core.SequenceOf):  # type: ignore[misc]
    _child_spec = cms.CertificateChoices


class _SetOfAny(core.SetOf):  # type: ignore[misc]
    _child_spec = core.Any


class _Bundle(core.Sequence):  # type: ignore[misc]
    _fields: ClassVar[list[tuple[str, Any, dict[str, Any]] | tuple[str, Any]]] = [
        ("attestations", _Statements),
        ("certs", _Certs, {"optional": True}),
    ]


@dataclass(frozen=True, kw_only=True)
class AttestationStatement:
    """One ``AttestationStatement``: the format OID and the DER of its ``stmt``."""

    type: str
    statement: bytes


@dataclass(frozen=True, kw_only=True)
class AttestationBundle:
    """An ``AttestationBundle``: at least one statement, and certificates to validate them."""

    statements: tuple[AttestationStatement, ...]
    certificates: tuple[x509.Certificate, ...] = field(default_factory=tuple)

    def __post_init__(self) -> None:
        if not self.statements:
            raise EncodingError("an AttestationBundle holds at least one statement (§4.1)")

    def statements_of(self, type_oid: str) -> tuple[AttestationStatement, ...]:
        return tuple(s for s in self.statements if s.type == type_oid)


def encode_attestation_bundle(bundle: AttestationBundle) -> bytes:
    """DER of the ``AttestationBundle``."""
    value: dict[str, Any] = {
        "attestations": [
            {"type": s.type, "stmt": core.Any.load(s.statement)} for s in bundle.statements
        ]
    }
    if bundle.certificates:
        value["certs"] = [
            cms.CertificateChoices(
                name="certificate",
                value=asn1_x509.Certificate.load(c.public_bytes(serialization.Encoding.DER)),
            )
            for c in bundle.certificates
        ]
    # A new _Bundle encodes its own headers in DER; each certificate and statement is copied as
    # the DER it already is (``force`` would re-encode every certificate field by field).
    return bytes(_Bundle(value).dump())


def decode_attestation_bundle(der: bytes) -> AttestationBundle:
    """Parse a DER ``AttestationBundle``; ``EncodingError`` if it is anything else.

    The envelope is walked as TLVs that must be in DER form (X.690 §10.1: definite, minimal
    lengths; §8.1.2: the short tag form below 31); each certificate is parsed by pyca, which takes
    DER only, and each statement is left to its format's verifier.
    """
    try:
        bundle, end = decode_tlv(der)
        if bundle.tag != _SEQUENCE or end != len(der):
            raise EncodingError("not an AttestationBundle: one SEQUENCE expected")
        lists = decode_tlvs(bundle.value)
        if not 1 <= len(lists) <= 2 or any(each.tag != _SEQUENCE for each in lists):
            raise EncodingError("not an AttestationBundle: SEQUENCE { attestations, certs } (§4.1)")
        statements = tuple(_statement(each) for each in decode_tlvs(lists[0].value))
        certificates = tuple(_certificates(lists[1])) if len(lists) == 2 else ()
    except TlvError as exc:
        raise EncodingError("the AttestationBundle is not in DER form") from exc
    if not statements:
        raise EncodingError("an AttestationBundle holds at least one statement (§4.1)")
    return AttestationBundle(statements=statements, certificates=certificates)


def _statement(element: Tlv) -> AttestationStatement:
    """``AttestationStatement ::= SEQUENCE { type OBJECT IDENTIFIER, stmt ANY DEFINED BY type
    }`` (§4.1)."""
    fields = decode_tlvs(element.value) if element.tag == _SEQUENCE else []
    if len(fields) != 2 or fields[0].tag != _OBJECT_IDENTIFIER:
        raise EncodingError("not an AttestationStatement: SEQUENCE { type OID, stmt } (§4.1)")
    if not _der_tag(fields[1].tag):
        raise TlvError(f"the statement tag {fields[1].tag:X} is reserved or not in its short form")
    return AttestationStatement(
        type=x509_tbs.dotted_oid(fields[0].encode()), statement=fields[1].encode()
    )


def _certificates(certs: Tlv) -> list[x509.Certificate]:
    """``certs``: LimitedCertChoices, RFC 6268 ``CertificateChoices`` but for ``certificate`` and
    ``other`` (§4.1); ``other`` is skipped, each certificate parsed by pyca."""
    choices = decode_tlvs(certs.value)
    if not choices:
        raise EncodingError("certs, when present, holds at least one certificate (§4.1)")
    found: list[x509.Certificate] = []
    for choice in choices:
        if choice.tag == _SEQUENCE:
            try:
                found.append(x509.load_der_x509_certificate(choice.encode()))
            except (ValueError, x509.InvalidVersion) as exc:  # InvalidVersion: not a ValueError
                raise EncodingError("a certificate in certs does not parse") from exc
        elif choice.tag in _EXCLUDED_CHOICES:
            raise EncodingError(
                f"LimitedCertChoices excludes {_EXCLUDED_CHOICES[choice.tag]} (§4.1)"
            )
        elif choice.tag != _OTHER_CERTIFICATE:
            raise EncodingError(f"tag {choice.tag:X} is not a CertificateChoices (RFC 6268)")
    return found


def _der_tag(tag: int) -> bool:
    """Whether a tag (the integer of its bytes, as ``fleetid.formats.tlv`` gives it) is in DER's
    form, numbers below 31 in one byte (X.690 §8.1.2.2, §8.1.2.4), and not one X.680 §8.6
    reserves: UNIVERSAL 0 (the encoding rules' end-of-contents, X.690 §8.1.5) and 15."""
    if tag <= 0xFF:
        return tag & 0xDF not in (0x00, 0x0F)
    number = 0
    for byte in tag.to_bytes((tag.bit_length() + 7) // 8, "big")[1:]:
        number = number << 7 | byte & 0x7F
    return number >= 31


def build_csr(
    *, subject: x509.Name, signer: Signer, bundle: AttestationBundle | None = None
) -> x509.CertificateSigningRequest:
    """A PKCS#10 CSR (RFC 2986 §4) for ``signer``'s key, signed by it, with ``bundle`` if any."""
    spki = signer.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    algorithm = signer.hash_algorithm
    if algorithm.name not in _ECDSA_WITH:
        raise EncodingError(f"no ECDSA signature algorithm for hash {algorithm.name}")
    attributes = []
    if bundle is not None:
        attributes.append(
            {
                "type": ID_AA_ATTESTATION,
                # asn1crypto parses values of unknown attribute types as Any.
                "values": _SetOfAny([core.Any.load(encode_attestation_bundle(bundle))]),
            }
        )
    info = asn1_csr.CertificationRequestInfo(
        {
            "version": "v1",
            "subject": asn1_x509.Name.load(subject.public_bytes()),
            "subject_pk_info": keys.PublicKeyInfo.load(spki),
            "attributes": attributes,
        }
    )
    tbs = bytes(info.dump())  # fresh envelope in DER; the loaded parts are DER already
    request = asn1_csr.CertificationRequest(
        {
            "certification_request_info": info,
            "signature_algorithm": algos.SignedDigestAlgorithm(
                {"algorithm": _ECDSA_WITH[algorithm.name]}
            ),
            "signature": signer.sign(tbs),
        }
    )
    csr = x509.load_der_x509_csr(bytes(request.dump()))
    if csr.tbs_certrequest_bytes != tbs or not csr_self_signed(csr):
        raise VerificationError("the CSR does not verify under its own key")
    return csr


def build_attested_csr(
    *, subject: x509.Name, signer: Signer, bundle: AttestationBundle
) -> x509.CertificateSigningRequest:
    """A PKCS#10 CSR for ``signer``'s key carrying ``bundle`` in id-aa-attestation (§4.3)."""
    return build_csr(subject=subject, signer=signer, bundle=bundle)


def has_attestation_attribute(csr: x509.CertificateSigningRequest) -> bool:
    """Whether the CSR has an ``id-aa-attestation`` attribute at all (its value unread)."""
    return bool(_attestation_values(csr))


def _attestation_values(csr: x509.CertificateSigningRequest) -> list[Tlv]:
    """The ``values`` SET OF each ``id-aa-attestation`` attribute of a CSR, read from the
    CertificationRequestInfo pyca has parsed (RFC 2986 §4.1: version, subject, subjectPKInfo,
    ``attributes [0] IMPLICIT SET OF Attribute``, each ``SEQUENCE { type, values SET OF }``)."""
    try:
        info = decode_tlvs(decode_tlv(csr.tbs_certrequest_bytes)[0].value)
        if len(info) != 4 or info[3].tag != 0xA0:
            raise TlvError("no attributes [0] after subjectPKInfo")
        values = []
        for attribute in decode_tlvs(info[3].value):
            oid, found = decode_tlvs(attribute.value)
            if oid.encode() == _ID_AA_ATTESTATION_DER:
                values.append(found)
        return values
    except (TlvError, ValueError) as exc:
        raise EncodingError("the CSR attributes do not parse") from exc


def attestation_bundle_of(csr: x509.CertificateSigningRequest) -> AttestationBundle | None:
    """The one ``AttestationBundle`` of a CSR, ``None`` if it has none; ``EncodingError`` if it
    has several or the value does not parse.

    §4.3 ``COUNTS MAX 1``: at most one ``id-aa-attestation`` attribute, with exactly one value.
    """
    found = _attestation_values(csr)
    if not found:
        return None
    if len(found) > 1:
        raise EncodingError("the CSR carries more than one id-aa-attestation attribute (§4.3)")
    try:
        values = decode_tlvs(found[0].value) if found[0].tag == _SET else None
    except TlvError as exc:
        raise EncodingError("the id-aa-attestation values do not parse") from exc
    if values is None or len(values) != 1:
        raise EncodingError("id-aa-attestation holds exactly one AttestationBundle (§4.3)")
    return decode_attestation_bundle(values[0].encode())
