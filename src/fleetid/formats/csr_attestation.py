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
chain that certificate was signed under.

pyca/cryptography's CSR builder signs only with a private key it holds and adds attribute values
only as strings, so the ``CertificationRequestInfo`` is assembled with asn1crypto's RFC 2986 types
and signed by any ``Signer`` (the secure element); the result is loaded back with pyca and its
self-signature checked before it is returned. Nothing here writes DER by hand.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from typing import Any, ClassVar

from asn1crypto import algos, cms, core, keys, parser
from asn1crypto import csr as asn1_csr
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from fleetid.crypto.signer import Signer
from fleetid.errors import EncodingError, VerificationError
from fleetid.formats.attestation import FLEETID_ARC

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
    """Parse a DER ``AttestationBundle``; ``EncodingError`` if it is anything else."""
    try:
        parsed = _Bundle.load(der, strict=True)
        statements = tuple(
            AttestationStatement(type=s["type"].dotted, statement=bytes(s["stmt"].dump()))
            for s in parsed["attestations"]
        )
        certificates: list[x509.Certificate] = []
        certs = parsed["certs"]
        if not isinstance(certs, core.Void):  # present (``.native`` would parse every cert)
            if len(certs) == 0:
                raise EncodingError("certs, when present, holds at least one certificate (§4.1)")
            for choice in certs:
                if choice.name not in ("certificate", "other"):
                    raise EncodingError(f"LimitedCertChoices excludes {choice.name} (§4.1)")
                if choice.name == "certificate":
                    certificates.append(x509.load_der_x509_certificate(choice.chosen.dump()))
    except (ValueError, TypeError) as exc:
        raise EncodingError(f"not a DER AttestationBundle: {exc}") from exc
    if not statements:
        raise EncodingError("an AttestationBundle holds at least one statement (§4.1)")
    # DER: every header of the envelope must be the one DER gives its contents. The
    # certificates inside were parsed by pyca, which takes DER only; each statement is parsed by
    # its format's verifier.
    if not _der_envelope(der):
        raise EncodingError("the AttestationBundle is not in DER form")
    return AttestationBundle(statements=statements, certificates=tuple(certificates))


def _der_tlvs(contents: bytes) -> list[bytes]:
    """The encodings inside ``contents``, each in DER form (X.690 §10.1: definite, minimal
    length), checked against asn1crypto's own DER header for the same contents."""
    encodings = []
    while contents:
        class_, method, tag, header, inner, _ = parser.parse(contents)
        size = len(header) + len(inner)
        if parser.emit(class_, method, tag, inner) != contents[:size]:
            raise EncodingError("a header is not in DER form")
        encodings.append(contents[:size])
        contents = contents[size:]
    return encodings


def _inner(encoding: bytes) -> bytes:
    return bytes(parser.parse(encoding)[4])


def _der_envelope(der: bytes) -> bool:
    """Whether the bundle's own headers (it, its two lists, each statement and its type OID) are
    DER; what the lists hold is left to pyca and to each statement's verifier."""
    try:
        (bundle,) = _der_tlvs(der)
        lists = _der_tlvs(_inner(bundle))
        for statement in _der_tlvs(_inner(lists[0])):
            type_oid = _der_tlvs(_inner(statement))[0]
            if core.ObjectIdentifier.load(type_oid).dump(force=True) != type_oid:
                return False
        for rest in lists[1:]:
            _der_tlvs(_inner(rest))
    except (EncodingError, ValueError):
        return False
    return True


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
    if csr.tbs_certrequest_bytes != tbs or not csr.is_signature_valid:
        raise VerificationError("the CSR does not verify under its own key")
    return csr


def build_attested_csr(
    *, subject: x509.Name, signer: Signer, bundle: AttestationBundle
) -> x509.CertificateSigningRequest:
    """A PKCS#10 CSR for ``signer``'s key carrying ``bundle`` in id-aa-attestation (§4.3)."""
    return build_csr(subject=subject, signer=signer, bundle=bundle)


def has_attestation_attribute(csr: x509.CertificateSigningRequest) -> bool:
    """Whether the CSR has an ``id-aa-attestation`` attribute at all (its value unread)."""
    return bool(_attestation_values(csr.public_bytes(serialization.Encoding.DER)))


@functools.lru_cache(maxsize=64)
def _attestation_values(csr_der: bytes) -> tuple[bytes, ...]:
    """The DER ``values`` of each ``id-aa-attestation`` attribute of a CSR. An authority asks
    twice per request (which provisioner, then the evidence), so the last few are remembered."""
    try:
        request = asn1_csr.CertificationRequest.load(csr_der)
        attributes = request["certification_request_info"]["attributes"]
        return tuple(
            bytes(a["values"].dump()) for a in attributes if a["type"].dotted == ID_AA_ATTESTATION
        )
    except ValueError as exc:
        raise EncodingError(f"the CSR attributes do not parse: {exc}") from exc


def attestation_bundle_of(csr: x509.CertificateSigningRequest) -> AttestationBundle | None:
    """The one ``AttestationBundle`` of a CSR, ``None`` if it has none; ``EncodingError`` if it
    has several or the value does not parse.

    §4.3 ``COUNTS MAX 1``: at most one ``id-aa-attestation`` attribute, with exactly one value.
    """
    found = _attestation_values(csr.public_bytes(serialization.Encoding.DER))
    if not found:
        return None
    if len(found) > 1:
        raise EncodingError("the CSR carries more than one id-aa-attestation attribute (§4.3)")
    try:
        values = _SetOfAny.load(found[0])
        count = len(values)
    except ValueError as exc:
        raise EncodingError(f"the id-aa-attestation values do not parse: {exc}") from exc
    if count != 1:
        raise EncodingError("id-aa-attestation holds exactly one AttestationBundle (§4.3)")
    return decode_attestation_bundle(bytes(values[0].dump()))
