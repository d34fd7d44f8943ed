"""Profile checks for ETSI TS 103 097 data: the constraints asn1tools does not enforce.

EtsiTs103097Data and its parameterised subtypes (TS 103 097 §5) are WITH COMPONENTS / CONTAINING
constraints on Ieee1609Dot2Data; asn1tools compiles them away, so each message type is checked
here explicitly. Every check raises ``ProfileError``.
"""

from __future__ import annotations

from typing import Any

from fleetid.errors import ProfileError

__all__ = [
    "check_encrypted",
    "check_etsi_data",
    "check_signed",
    "check_signed_external_payload",
]


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


def check_signed(
    value: dict[str, Any],
    *,
    psid: int | None = None,
    signer_kinds: frozenset[str] = frozenset({"self", "digest", "certificate"}),
) -> None:
    """EtsiTs103097Data-Signed: signedData whose payload is data carrying unsecuredData."""
    check_etsi_data(value)
    kind, content = value["content"]
    if kind != "signedData":
        raise ProfileError(f"expected signedData, got {kind}")
    payload = content["tbsData"]["payload"]
    data = payload.get("data")
    if data is None or data["content"][0] != "unsecuredData":
        raise ProfileError("EtsiTs103097Data-Signed carries its payload as data/unsecuredData")
    _check_header_and_signer(content, psid, signer_kinds)


def check_signed_external_payload(
    value: dict[str, Any],
    *,
    psid: int | None = None,
    signer_kinds: frozenset[str] = frozenset({"self", "digest", "certificate"}),
) -> None:
    """EtsiTs103097Data-SignedExternalPayload: signedData over a SHA-256 extDataHash only."""
    check_etsi_data(value)
    kind, content = value["content"]
    if kind != "signedData":
        raise ProfileError(f"expected signedData, got {kind}")
    payload = content["tbsData"]["payload"]
    ext = payload.get("extDataHash")
    if "data" in payload or ext is None or ext[0] != "sha256HashedData":
        raise ProfileError("SignedExternalPayload carries only a sha256HashedData extDataHash")
    _check_header_and_signer(content, psid, signer_kinds)


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
    check_etsi_data(value)
    kind, content = value["content"]
    if kind != "encryptedData":
        raise ProfileError(f"expected encryptedData, got {kind}")
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
