"""Profile checks for ETSI TS 103 097 data: the constraints asn1tools does not enforce.

EtsiTs103097Data and its parameterised subtypes (TS 103 097 §5) are WITH COMPONENTS / CONTAINING
constraints on Ieee1609Dot2Data; asn1tools compiles them away, so each message type is checked
here explicitly. Every check raises ``ProfileError``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from fleetid.errors import ProfileError

__all__ = [
    "PKI_PROFILES",
    "PSID_CERTIFICATE_REQUEST_SERVICE",
    "PSID_CRL_SERVICE",
    "PSID_CTL_SERVICE",
    "PkiProfile",
    "check_encrypted",
    "check_etsi_data",
    "check_pki_content",
    "check_pki_message",
    "check_signed",
    "check_signed_external_payload",
]

#: ITS-AIDs of the PKI services (ETSI TS 102 965): CRL, secured certificate request, CTL.
PSID_CRL_SERVICE = 622
PSID_CERTIFICATE_REQUEST_SERVICE = 623
PSID_CTL_SERVICE = 624


@dataclass(frozen=True, slots=True, kw_only=True)
class PkiProfile:
    """The outer profile of one EtsiTs102941Data content type: psid and allowed signers."""

    psid: int
    signers: frozenset[str]


_SELF = frozenset({"self"})
_DIGEST = frozenset({"digest"})
#: TS 102 941 §6.2.3 (requests and responses, psid 623), §6.3.3 (CRL, 622), §6.3.4 (CTL, 624)
#: and §6.3.5 (link certificates, distributed with the CTL, 624). Initial enrolment is signed
#: by the canonical key (``self``), re-enrolment by the current EC (``digest``); an
#: authorization request with POP by the new AT key (``self``); everything an authority signs
#: names its certificate by ``digest``.
PKI_PROFILES: dict[str, PkiProfile] = {
    "enrolmentRequest": PkiProfile(psid=623, signers=_SELF | _DIGEST),
    "enrolmentResponse": PkiProfile(psid=623, signers=_DIGEST),
    "authorizationRequest": PkiProfile(psid=623, signers=_SELF),
    "authorizationResponse": PkiProfile(psid=623, signers=_DIGEST),
    "authorizationValidationRequest": PkiProfile(psid=623, signers=_DIGEST),
    "authorizationValidationResponse": PkiProfile(psid=623, signers=_DIGEST),
    "certificateRevocationList": PkiProfile(psid=622, signers=_DIGEST),
    "certificateTrustListRca": PkiProfile(psid=624, signers=_DIGEST),
    "singleSignedLinkCertificateRca": PkiProfile(psid=624, signers=_DIGEST),
    "doubleSignedlinkCertificateRca": PkiProfile(psid=624, signers=_DIGEST),
    # Butterfly key provisioning (TS 102 941 V2.2.1): the EE signs with its EC, the RA (the EA
    # role) signs its answer.
    "butterflyAuthorizationRequest": PkiProfile(psid=623, signers=_DIGEST),
    "butterflyAuthorizationResponse": PkiProfile(psid=623, signers=_DIGEST),
    "butterflyAtDownloadRequest": PkiProfile(psid=623, signers=_DIGEST),
}


def check_etsi_data(value: dict[str, Any]) -> None:
    """EtsiTs103097Data (TS 103 097 §5.1): the base profile of every secured message."""
    kind, content = value["content"]
    if kind == "signedCertificateRequest":
        raise ProfileError("EtsiTs103097Data excludes signedCertificateRequest")
    if kind == "signedData":
        header = content["tbsData"]["headerInfo"]
        if "generationTime" not in header:
            raise ProfileError("signed EtsiTs103097Data must carry generationTime")
        for absent in ("p2pcdLearningRequest", "missingCrlIdentifier"):
            if absent in header:
                raise ProfileError(f"signed EtsiTs103097Data must not carry {absent}")
        signer_kind, signer = content["signer"]
        if signer_kind == "certificate" and len(signer) != 1:
            raise ProfileError("a certificate signer is exactly one certificate")


def _etsi_content(value: dict[str, Any], expected: str) -> dict[str, Any]:
    """The content of EtsiTs103097Data whose Ieee1609Dot2Content choice must be ``expected``."""
    check_etsi_data(value)
    kind, content = value["content"]
    if kind != expected:
        raise ProfileError(f"expected {expected}, got {kind}")
    result: dict[str, Any] = content
    return result


def check_signed(
    value: dict[str, Any],
    *,
    psid: int | None = None,
    signer_kinds: frozenset[str] = frozenset({"self", "digest", "certificate"}),
) -> None:
    """EtsiTs103097Data-Signed: signedData whose payload is data carrying unsecuredData."""
    payload = _signed_payload(value, psid, signer_kinds)
    data = payload.get("data")
    if data is None or data["content"][0] != "unsecuredData":
        raise ProfileError("EtsiTs103097Data-Signed carries its payload as data/unsecuredData")


def check_signed_external_payload(
    value: dict[str, Any],
    *,
    psid: int | None = None,
    signer_kinds: frozenset[str] = frozenset({"self", "digest", "certificate"}),
) -> None:
    """EtsiTs103097Data-SignedExternalPayload: signedData over a SHA-256 extDataHash only."""
    payload = _signed_payload(value, psid, signer_kinds)
    ext = payload.get("extDataHash")
    if "data" in payload or ext is None or ext[0] != "sha256HashedData":
        raise ProfileError("SignedExternalPayload carries only a sha256HashedData extDataHash")


def _signed_payload(
    value: dict[str, Any], psid: int | None, signer_kinds: frozenset[str]
) -> dict[str, Any]:
    """The payload of ``value``'s signedData, its header and signer checked."""
    content = _etsi_content(value, "signedData")
    _check_header_and_signer(content, psid, signer_kinds)
    payload: dict[str, Any] = content["tbsData"]["payload"]
    return payload


def _check_header_and_signer(
    content: dict[str, Any], psid: int | None, signer_kinds: frozenset[str]
) -> None:
    if psid is not None and content["tbsData"]["headerInfo"]["psid"] != psid:
        raise ProfileError(f"psid must be {psid}")
    if content["signer"][0] not in signer_kinds:
        raise ProfileError(
            f"signer {content['signer'][0]} not allowed here (allowed: {sorted(signer_kinds)})"
        )


def check_encrypted(
    value: dict[str, Any],
    *,
    unicast: bool,
    recipient_kinds: frozenset[str] = frozenset({"certRecipInfo", "pskRecipInfo"}),
) -> None:
    """EtsiTs103097Data-Encrypted (and -Unicast: exactly one recipient, TS 103 097 §5.3).

    TS 103 097 V2.1.1 lists pskRecipInfo as absent, but TS 102 941 §6.2.3 encrypts every PKI
    response to the request's AES key through pskRecipInfo, as deployed PKIs do; both are
    accepted unless the caller narrows ``recipient_kinds``.
    """
    content = _etsi_content(value, "encryptedData")
    recipients = content["recipients"]
    if not recipients:
        raise ProfileError("encrypted data with no recipient")
    if unicast and len(recipients) != 1:
        raise ProfileError(f"a unicast message has exactly one recipient, not {len(recipients)}")
    for recipient_kind, _ in recipients:
        if recipient_kind not in recipient_kinds:
            raise ProfileError(f"recipient kind {recipient_kind} is not allowed here")
    if content["ciphertext"][0] != "aes128ccm":
        raise ProfileError("ETSI ciphertext is AES-128-CCM")


# ------------------------------------------------------------------------------------------
# TS 102 941 messages: the outer profile per content type, then the content itself


def check_pki_message(value: dict[str, Any], content: tuple[str, Any]) -> None:
    """The profile of an EtsiTs103097Data-Signed{EtsiTs102941Data} for its content type: psid
    and signer kind from ``PKI_PROFILES``, then ``check_pki_content``."""
    kind = content[0]
    profile = PKI_PROFILES.get(kind)
    if profile is None:
        raise ProfileError(f"{kind} is not a message fleetid's PKI accepts")
    check_signed(value, psid=profile.psid, signer_kinds=profile.signers)
    check_pki_content(content)


def check_pki_content(content: tuple[str, Any]) -> None:
    """Constraints of an EtsiTs102941Data content that the ASN.1 compiler does not enforce."""
    kind, body = content
    checker = _CONTENT_CHECKS.get(kind)
    if checker is not None:
        checker(body)


def _request_hash(body: dict[str, Any]) -> None:
    if len(body["requestHash"]) != 16:
        raise ProfileError("requestHash is the leftmost 16 bytes of SHA-256 of the request")


def _issued_certificate(certificate: dict[str, Any], *, ticket: bool) -> None:
    """TS 103 097 §7.2.1 (AT) / §7.2.2 (EC): an explicit end-entity certificate, issued by a CA
    named by digest, that grants appPermissions and may issue nothing."""
    if certificate["type"] != "explicit":
        raise ProfileError("an EC or AT is an explicit certificate")
    if certificate["issuer"][0] == "self":
        raise ProfileError("an EC or AT is not self-signed")
    tbs = certificate["toBeSigned"]
    if "certIssuePermissions" in tbs:
        raise ProfileError("an EC or AT has no certIssuePermissions")
    if not tbs.get("appPermissions"):
        raise ProfileError("an EC or AT grants appPermissions")
    if tbs["verifyKeyIndicator"][0] != "verificationKey":
        raise ProfileError("an EC or AT carries its verificationKey")
    if ticket and tbs["id"][0] != "none":
        raise ProfileError("an AT carries no identifier (id none)")


def _response_with_certificate(body: dict[str, Any], *, ticket: bool) -> None:
    """InnerEcResponse / InnerAtResponse: ``ok`` always and only with a certificate."""
    _request_hash(body)
    ok = body["responseCode"] == "ok"
    if ok != ("certificate" in body):
        raise ProfileError("a certificate comes with ok and only with ok")
    if ok:
        _issued_certificate(body["certificate"], ticket=ticket)


def _inner_ec_response(body: dict[str, Any]) -> None:
    _response_with_certificate(body, ticket=False)


def _inner_at_response(body: dict[str, Any]) -> None:
    _response_with_certificate(body, ticket=True)


def _validation_response(body: dict[str, Any]) -> None:
    """AuthorizationValidationResponse: confirmedSubjectAttributes with ok and only with ok."""
    _request_hash(body)
    ok = body["responseCode"] == "ok"
    confirmed = body.get("confirmedSubjectAttributes")
    if ok != (confirmed is not None):
        raise ProfileError("confirmedSubjectAttributes come with ok and only with ok")
    if confirmed is not None:
        if not confirmed.get("appPermissions"):
            raise ProfileError("confirmedSubjectAttributes name appPermissions")
        if "certIssuePermissions" in confirmed:
            raise ProfileError("an AT request cannot be confirmed certIssuePermissions")


def _rca_ctl(body: dict[str, Any]) -> None:
    """ToBeSignedRcaCtl (TS 102 941 §6.3.4): version 1; a full CTL only adds; an RCA adds only
    EA, AA and DC entries (RCA and TLM entries are the TLM's)."""
    if body["version"] != 1:
        raise ProfileError("a CTL is version 1")
    for command, entry in body["ctlCommands"]:
        if command == "delete":
            if body["isFullCtl"]:
                raise ProfileError("a full CTL has no delete commands")
            continue
        if entry[0] not in ("ea", "aa", "dc"):
            raise ProfileError(f"an RCA CTL does not add {entry[0]} entries")


def _crl(body: dict[str, Any]) -> None:
    """ToBeSignedCrl (TS 102 941 §6.3.3): version 1, thisUpdate before nextUpdate, distinct
    HashedId8 entries."""
    if body["version"] != 1:
        raise ProfileError("a CRL is version 1")
    if not int(body["thisUpdate"]) < int(body["nextUpdate"]):
        raise ProfileError("a CRL's nextUpdate follows its thisUpdate")
    entries = [bytes(e) for e in body["entries"]]
    if len(set(entries)) != len(entries):
        raise ProfileError("a CRL lists each certificate once")


def _link_certificate(body: dict[str, Any]) -> None:
    """ToBeSignedLinkCertificate (TS 102 941 §6.3.5): the new root's hash, SHA-256 or SHA-384."""
    kind, value = body["certificateHash"]
    size = {"sha256HashedData": 32, "sha384HashedData": 48}.get(kind)
    if size is None or len(value) != size:
        raise ProfileError("a link certificate hashes the new root with SHA-256 or SHA-384")


def _double_signed_link(body: dict[str, Any]) -> None:
    """The double-signed link certificate carries the old root's signed link certificate."""
    if body["content"][0] != "signedData":
        raise ProfileError("a double-signed link certificate wraps a signed link certificate")


_CONTENT_CHECKS = {
    "enrolmentResponse": _inner_ec_response,
    "authorizationResponse": _inner_at_response,
    "authorizationValidationResponse": _validation_response,
    "certificateTrustListRca": _rca_ctl,
    "certificateRevocationList": _crl,
    "singleSignedLinkCertificateRca": _link_certificate,
    "doubleSignedlinkCertificateRca": _double_signed_link,
}
