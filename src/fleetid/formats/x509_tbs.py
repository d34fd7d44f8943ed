"""DER pieces of an X.509 TBSCertificate (RFC 5280 §4.1), for issuers that encode what their
certificates share once and only the per-certificate fields each time.

Each piece is the DER pyca/cryptography writes for the same value (X.690 §10: definite minimal
lengths; the choices RFC 5280 leaves are pyca's: UTCTime through 2049, no ``critical FALSE``).
The callers (``fleetid.factory.manufacturer.IdevidIssuer``, the card's ATTEST) check what they
build against a certificate pyca builds from the same values before they rely on it.

The readers (``tbs_fields``, ``subject_public_key_info``, ``certifies``, ``names_issuer``,
``printable_subject_attribute``) take fields of a certificate pyca has parsed as the DER they
are, for callers that would otherwise have pyca build objects only to encode or compare them.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from functools import lru_cache

from asn1crypto import core
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from cryptography.x509.oid import ExtensionOID

from fleetid.formats.tlv import Tlv, TlvError, decode_tlv, decode_tlvs, encode_tlv

__all__ = [
    "certificate",
    "certifies",
    "dotted_oid",
    "extension",
    "integer",
    "key_identifier",
    "names_issuer",
    "oid",
    "printable_subject_attribute",
    "rdn",
    "subject_key_identifier",
    "subject_public_key_info",
    "tbs_fields",
    "time",
]

_CRITICAL = encode_tlv(0x01, b"\xff")  # BOOLEAN TRUE
_OID_SKI = bytes(core.ObjectIdentifier(ExtensionOID.SUBJECT_KEY_IDENTIFIER.dotted_string).dump())


def oid(value: x509.ObjectIdentifier) -> bytes:
    """An OBJECT IDENTIFIER, tag and all (X.690 §8.19), as asn1crypto encodes it."""
    return bytes(core.ObjectIdentifier(value.dotted_string).dump())


def integer(value: int) -> bytes:
    """An INTEGER in its shortest two's complement form (X.690 §8.3), as asn1crypto encodes it."""
    return bytes(core.Integer(value).dump())


def rdn(oid_der: bytes, string_tag: int, value: bytes) -> bytes:
    """SET { SEQUENCE { type, value } }: one single-valued RDN (RFC 5280 §4.1.2.4)."""
    return encode_tlv(0x31, encode_tlv(0x30, oid_der + encode_tlv(string_tag, value)))


def extension(oid_der: bytes, value: bytes, *, critical: bool = False) -> bytes:
    """Extension ::= SEQUENCE { extnID, critical BOOLEAN DEFAULT FALSE, extnValue OCTET STRING };
    DER leaves the default out (X.690 §11.5)."""
    return encode_tlv(0x30, oid_der + (_CRITICAL if critical else b"") + encode_tlv(0x04, value))


def time(when: datetime) -> bytes:
    """RFC 5280 §4.1.2.5: UTCTime through 2049, GeneralizedTime from 2050; seconds, ``Z``."""
    return _time(when.astimezone(UTC).replace(microsecond=0))


@lru_cache(maxsize=1024)
def _time(utc: datetime) -> bytes:
    """``time`` of a whole second in UTC, cached: an issuer writes the same second into many
    certificates in a row."""
    if 1950 <= utc.year < 2050:
        return bytes(core.UTCTime(utc).dump())
    return bytes(core.GeneralizedTime(utc).dump())


def key_identifier(spki: bytes) -> bytes:
    """RFC 5280 §4.2.1.2 method (1): SHA-1 of the subjectPublicKey BIT STRING's bits."""
    subject_public_key = decode_tlvs(decode_tlv(spki)[0].value)[1].value[1:]
    return hashlib.sha1(subject_public_key, usedforsecurity=False).digest()


def subject_key_identifier(spki: bytes) -> bytes:
    """The subjectKeyIdentifier extension (RFC 5280 §4.2.1.2, not critical) of the key whose DER
    SubjectPublicKeyInfo is ``spki``, its identifier by method (1)."""
    return extension(_OID_SKI, encode_tlv(0x04, key_identifier(spki)))


@lru_cache(maxsize=256)
def dotted_oid(oid_der: bytes) -> str:
    """The dotted form of a DER OBJECT IDENTIFIER, tag and all (the inverse of ``oid``); a
    ``TlvError`` unless it is one with each arc in its fewest octets (X.690 §8.19.2). The few
    OIDs a verifier meets recur, so they are remembered."""
    try:
        value = core.ObjectIdentifier.load(oid_der)
        dotted: str = value.dotted
        if value.dump(force=True) == oid_der:
            return dotted
    except ValueError as exc:
        raise TlvError(f"not an OBJECT IDENTIFIER: {exc}") from exc
    raise TlvError("an OBJECT IDENTIFIER not in its fewest octets (X.690 §8.19.2)")


def tbs_fields(certificate_der: bytes) -> list[Tlv]:
    """The fields of a DER certificate's TBSCertificate (RFC 5280 §4.1), ``[0] version`` first
    (inserted as ``A0 00`` when absent, so that field ``i`` is always at index ``i``): serialNumber
    at 1, signature, issuer, validity, subject at 5, subjectPublicKeyInfo at 6, then the optional
    ones. For certificates pyca has parsed: the structure is not checked again."""
    tbs = decode_tlv(decode_tlv(certificate_der)[0].value)[0]
    fields = decode_tlvs(tbs.value)
    if fields and fields[0].tag != 0xA0:
        fields.insert(0, Tlv(tag=0xA0, value=b""))
    return fields


@lru_cache(maxsize=256)
def _names(certificate: x509.Certificate) -> tuple[bytes, bytes]:
    """A parsed certificate's issuer and subject Names as the DER in its TBSCertificate; an
    issuing CA's certificate recurs with every certificate it issued, so the last few are
    remembered (pyca certificates hash and compare by their DER)."""
    tbs = decode_tlv(certificate.tbs_certificate_bytes)[0].value
    # [0] version (absent in v1), serialNumber, signature, issuer, validity, subject: read up
    # to the subject only.
    fields: list[bytes] = []
    offset = 0
    while len(fields) < 6:
        end = decode_tlv(tbs, offset)[1]
        fields.append(tbs[offset:end])
        offset = end
    issuer = 3 if fields[0][0] == 0xA0 else 2
    return fields[issuer], fields[issuer + 2]


def names_issuer(certificate: x509.Certificate, issuer: x509.Certificate) -> bool:
    """Whether ``certificate``'s issuer is ``issuer``'s subject (RFC 5280 §6.1.3 (a)(4)): the
    same DER, or else equal as pyca compares ``Name`` objects, which it builds attribute by
    attribute (about 20 µs a Name, so only when the bytes differ)."""
    if _names(certificate)[0] == _names(issuer)[1]:
        return True
    return certificate.issuer == issuer.subject


def printable_subject_attribute(certificate: x509.Certificate, oid_der: bytes) -> str | None:
    """The value of the subject's one attribute of type ``oid_der`` (an OID's DER), read from
    the DER when it is a non-empty PrintableString (X.520's form for serialNumber); ``None`` in
    every other case, for the caller to ask pyca's ``Name``."""
    found = [
        value
        for rdn in decode_tlvs(decode_tlv(_names(certificate)[1])[0].value)
        for attribute in decode_tlvs(rdn.value)
        for kind, value in [decode_tlvs(attribute.value)]
        if kind.encode() == oid_der
    ]
    if len(found) != 1 or found[0].tag != 0x13 or not found[0].value:
        return None
    try:
        return found[0].value.decode("ascii")
    except UnicodeDecodeError:
        return None


def subject_public_key_info(certificate_der: bytes) -> bytes:
    """The DER SubjectPublicKeyInfo of a DER certificate, as it stands in the certificate."""
    return tbs_fields(certificate_der)[6].encode()


def certifies(certificate_der: bytes, spki: bytes) -> bool:
    """Whether the certificate's public key is the key whose DER SubjectPublicKeyInfo is
    ``spki``: the same bytes, or (a point encoded another way, RFC 5480 §2.2) the same key."""
    if subject_public_key_info(certificate_der) == spki:
        return True
    key = x509.load_der_x509_certificate(certificate_der).public_key()
    return spki == key.public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)


def certificate(tbs: bytes, algorithm: bytes, signature: bytes) -> bytes:
    """Certificate ::= SEQUENCE { tbsCertificate, signatureAlgorithm, signatureValue BIT STRING }
    (RFC 5280 §4.1), the signature with no unused bits."""
    return encode_tlv(0x30, tbs + algorithm + encode_tlv(0x03, b"\x00" + signature))
