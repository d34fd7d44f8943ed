"""IEEE 1609.2 CRLs (§7.3 CrlContents, §7.4 SecuredCrl): hash-based and linked, full and delta.

``CrlContents`` names the CRACA (the low-order 8 octets of its certificate's hash) and the CRL
series, and carries either hash-based entries (one HashedId10 a certificate) or linkage seeds
(IndividualRevocation inside its IMaxGroup, LAGroup and JMaxGroup; GroupCrlEntry for group
revocation). A SecuredCrl is an Ieee1609Dot2Data with signedData: psid 256 (CrlPsid),
unsecuredData CONTAINING CrlContents, and none of generationTime, expiryTime,
generationLocation, p2pcdLearningRequest, missingCrlIdentifier, encryptionKey in its header. Here
the CRACA signs it with the key of its own certificate.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Final, Literal

from fleetid.crypto.signer import Signer
from fleetid.errors import ProfileError, VerificationError
from fleetid.formats.ieee1609.certificate import Certificate
from fleetid.formats.ieee1609.codec import decode, encode
from fleetid.formats.ieee1609.signed_data import (
    SignedMessage,
    open_signed_data,
    sign_data,
    unsecured,
    verify_signed_data,
)

__all__ = [
    "CRL_PSID",
    "CRL_VERSION",
    "CrlContents",
    "GroupCrlEntry",
    "HashCrl",
    "HashRevocation",
    "IMaxGroup",
    "IndividualRevocation",
    "JMaxGroup",
    "LaGroup",
    "LinkedCrl",
    "SecuredCrl",
    "decode_crl_contents",
    "encode_crl_contents",
    "open_secured_crl",
    "sign_crl",
]

#: Ieee1609Dot2Crl: CrlPsid ::= Psid(256).
CRL_PSID: Final = 256
#: CrlContents.version: Uint8 (1) in this version of the standard.
CRL_VERSION: Final = 1
# §7.4 SecuredCrl: these HeaderInfo components are ABSENT.
_ABSENT_HEADER_FIELDS: Final = (
    "generationTime",
    "expiryTime",
    "generationLocation",
    "p2pcdLearningRequest",
    "missingCrlIdentifier",
    "encryptionKey",
)


@dataclass(frozen=True, kw_only=True, slots=True)
class HashRevocation:
    """HashBasedRevocationInfo: the HashedId10 of a revoked certificate and its expiry (Time32)."""

    id: bytes
    expiry: int


@dataclass(frozen=True, kw_only=True, slots=True)
class HashCrl:
    """ToBeSignedHashIdCrl: crlSerial counts every full or delta CRL of the series."""

    crl_serial: int
    entries: tuple[HashRevocation, ...] = ()


@dataclass(frozen=True, kw_only=True, slots=True)
class IndividualRevocation:
    """The two linkage seeds of one revoked device chain, of period iRev."""

    seed1: bytes
    seed2: bytes


@dataclass(frozen=True, kw_only=True, slots=True)
class IMaxGroup:
    """Entries whose certificates all expire by period ``i_max``."""

    i_max: int
    revocations: tuple[IndividualRevocation, ...]


@dataclass(frozen=True, kw_only=True, slots=True)
class LaGroup:
    """Entries whose seeds come from the linkage authorities ``la1_id`` and ``la2_id``."""

    la1_id: bytes
    la2_id: bytes
    i_max_groups: tuple[IMaxGroup, ...]


@dataclass(frozen=True, kw_only=True, slots=True)
class JMaxGroup:
    """Entries whose devices hold ``j_max`` certificates a period (j = 0 .. j_max - 1)."""

    j_max: int
    la_groups: tuple[LaGroup, ...]


@dataclass(frozen=True, kw_only=True, slots=True)
class GroupCrlEntry:
    """Group revocation: one seed pair shared by a group of devices, valid up to ``i_max``."""

    i_max: int
    la1_id: bytes
    seed1: bytes
    la2_id: bytes
    seed2: bytes


@dataclass(frozen=True, kw_only=True, slots=True)
class LinkedCrl:
    """ToBeSignedLinkageValueCrl. ``None`` is an absent list; at least one is present (§7.3)."""

    i_rev: int
    index_within_i: int
    individual: tuple[JMaxGroup, ...] | None = None
    groups: tuple[GroupCrlEntry, ...] | None = None


@dataclass(frozen=True, kw_only=True, slots=True)
class CrlContents:
    """CrlContents version 1. ``delta`` selects deltaHashCrl / deltaLinkedCrl."""

    crl_series: int
    craca_id: bytes
    issue_date: int
    next_crl: int
    body: HashCrl | LinkedCrl
    delta: bool = False
    priority: int | None = None

    @property
    def is_linked(self) -> bool:
        return isinstance(self.body, LinkedCrl)


# ---------------------------------------------------------------------------------------------
# CrlContents <-> the ASN.1 value


def _check(contents: CrlContents) -> None:
    """The rules the ASN.1 types do not carry (§7.3)."""
    if contents.next_crl <= contents.issue_date:
        raise ProfileError("nextCrl must be strictly after issueDate (IEEE 1609.2 §7.3)")
    body = contents.body
    if isinstance(body, LinkedCrl):
        if body.individual is None and body.groups is None:
            raise ProfileError("a linked CRL carries individual or groups (IEEE 1609.2 §7.3)")
        for j_group in body.individual or ():
            if j_group.j_max == 0:
                raise ProfileError("jmax 0: a device holds at least one certificate a period")


def _linked_value(body: LinkedCrl) -> dict[str, Any]:
    value: dict[str, Any] = {"iRev": body.i_rev, "indexWithinI": body.index_within_i}
    if body.individual is not None:
        value["individual"] = [
            {
                "jmax": j_group.j_max,
                "contents": [
                    {
                        "la1Id": la_group.la1_id,
                        "la2Id": la_group.la2_id,
                        "contents": [
                            {
                                "iMax": i_group.i_max,
                                "contents": [
                                    {"linkageSeed1": r.seed1, "linkageSeed2": r.seed2}
                                    for r in i_group.revocations
                                ],
                            }
                            for i_group in la_group.i_max_groups
                        ],
                    }
                    for la_group in j_group.la_groups
                ],
            }
            for j_group in body.individual
        ]
    if body.groups is not None:
        value["groups"] = [
            {
                "iMax": g.i_max,
                "la1Id": g.la1_id,
                "linkageSeed1": g.seed1,
                "la2Id": g.la2_id,
                "linkageSeed2": g.seed2,
            }
            for g in body.groups
        ]
    return value


def _linked_from(value: dict[str, Any]) -> LinkedCrl:
    individual = value.get("individual")
    groups = value.get("groups")
    return LinkedCrl(
        i_rev=value["iRev"],
        index_within_i=value["indexWithinI"],
        individual=None
        if individual is None
        else tuple(
            JMaxGroup(
                j_max=j["jmax"],
                la_groups=tuple(
                    LaGroup(
                        la1_id=bytes(la["la1Id"]),
                        la2_id=bytes(la["la2Id"]),
                        i_max_groups=tuple(
                            IMaxGroup(
                                i_max=i["iMax"],
                                revocations=tuple(
                                    IndividualRevocation(
                                        seed1=bytes(r["linkageSeed1"]),
                                        seed2=bytes(r["linkageSeed2"]),
                                    )
                                    for r in i["contents"]
                                ),
                            )
                            for i in la["contents"]
                        ),
                    )
                    for la in j["contents"]
                ),
            )
            for j in individual
        ),
        groups=None
        if groups is None
        else tuple(
            GroupCrlEntry(
                i_max=g["iMax"],
                la1_id=bytes(g["la1Id"]),
                seed1=bytes(g["linkageSeed1"]),
                la2_id=bytes(g["la2Id"]),
                seed2=bytes(g["linkageSeed2"]),
            )
            for g in groups
        ),
    )


def _value(contents: CrlContents) -> dict[str, Any]:
    body = contents.body
    kind = "delta" if contents.delta else "full"
    if isinstance(body, LinkedCrl):
        type_specific: tuple[str, Any] = (f"{kind}LinkedCrl", _linked_value(body))
    else:
        entries = [{"id": e.id, "expiry": e.expiry} for e in body.entries]
        type_specific = (f"{kind}HashCrl", {"crlSerial": body.crl_serial, "entries": entries})
    priority = {} if contents.priority is None else {"priority": contents.priority}
    return {
        "version": CRL_VERSION,
        "crlSeries": contents.crl_series,
        "crlCraca": contents.craca_id,
        "issueDate": contents.issue_date,
        "nextCrl": contents.next_crl,
        "priorityInfo": priority,
        "typeSpecific": type_specific,
    }


def _from_value(value: dict[str, Any]) -> CrlContents:
    kind, body = value["typeSpecific"]
    if kind.endswith("LinkedCrl"):
        parsed: HashCrl | LinkedCrl = _linked_from(body)
    else:
        entries = tuple(
            HashRevocation(id=bytes(e["id"]), expiry=e["expiry"]) for e in body["entries"]
        )
        parsed = HashCrl(crl_serial=body["crlSerial"], entries=entries)
    return CrlContents(
        crl_series=value["crlSeries"],
        craca_id=bytes(value["crlCraca"]),
        issue_date=value["issueDate"],
        next_crl=value["nextCrl"],
        body=parsed,
        delta=kind.startswith("delta"),
        priority=value["priorityInfo"].get("priority"),
    )


def encode_crl_contents(contents: CrlContents) -> bytes:
    """COER CrlContents; ``EncodingError`` if it breaks the type or the §7.3 rules."""
    _check(contents)
    return encode("CrlContents", _value(contents))


def decode_crl_contents(data: bytes) -> CrlContents:
    """Strict COER CrlContents (version 1, no trailing bytes) that keeps the §7.3 rules."""
    contents = _from_value(decode("CrlContents", bytes(data)))
    _check(contents)
    return contents


# ---------------------------------------------------------------------------------------------
# SecuredCrl (§7.4)


def sign_crl(
    contents: CrlContents,
    signer: Signer,
    craca_certificate: Certificate,
    *,
    signer_as: Literal["digest", "certificate"] = "digest",
) -> bytes:
    """A COER SecuredCrl over ``contents``, signed by the CRACA (the holder of its certificate).

    ``signer_as`` names the signer by the certificate's HashedId8 or carries the certificate.
    """
    if contents.craca_id != craca_certificate.hashed_id8:
        raise ValueError("crlCraca must be the HashedId8 of the signing CRACA's certificate")
    payload = {"data": unsecured(encode_crl_contents(contents))}
    identifier: tuple[str, Any] = (
        ("digest", craca_certificate.hashed_id8)
        if signer_as == "digest"
        else ("certificate", [craca_certificate.value])
    )
    return sign_data(
        payload,
        {"psid": CRL_PSID},
        signer,
        signer_identifier=identifier,
        signer_certificate=craca_certificate.encoded,
    )


@dataclass(frozen=True, kw_only=True)
class SecuredCrl:
    """A decoded SecuredCrl: its CrlContents and the signed message (not yet verified)."""

    contents: CrlContents
    message: SignedMessage = field(repr=False)

    def verify(self, craca_certificate: Certificate) -> CrlContents:
        """Check the CRL is the CRACA's and signed by its key; ``VerificationError`` if not."""
        if self.contents.craca_id != craca_certificate.hashed_id8:
            raise VerificationError("the CRL names another CRACA (crlCraca)")
        kind, value = self.message.signer
        if kind == "digest":
            if bytes(value) != craca_certificate.hashed_id8:
                raise VerificationError("the CRL is signed by another certificate")
        elif len(value) != 1 or encode("Certificate", value[0]) != craca_certificate.encoded:
            raise VerificationError("the CRL is signed by another certificate")
        verify_signed_data(
            self.message, craca_certificate.verification_key(), craca_certificate.encoded
        )
        return self.contents


def open_secured_crl(data: bytes) -> SecuredCrl:
    """Decode a SecuredCrl and check its §7.4 profile (psid, header, signer, content).

    The signature is checked by ``SecuredCrl.verify`` against the CRACA's certificate.
    """
    message = open_signed_data(data)
    header = message.header_info
    if header["psid"] != CRL_PSID:
        raise ProfileError(f"a SecuredCrl has psid {CRL_PSID}, got {header['psid']}")
    present = [name for name in _ABSENT_HEADER_FIELDS if name in header]
    if present:
        raise ProfileError(f"a SecuredCrl header has no {', '.join(present)} (IEEE 1609.2 §7.4)")
    if message.signer[0] == "self":
        raise ProfileError("a SecuredCrl is signed by a certificate, not self")
    contents = decode_crl_contents(message.unsecured_payload())
    return SecuredCrl(contents=contents, message=message)
