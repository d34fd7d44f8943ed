"""IEEE 1609.2 SignedData: sign, open and verify an ``Ieee1609Dot2Data`` carrying ``signedData``.

The signature covers ``H(H(COER(ToBeSignedData)) ‖ H(signer))`` (IEEE 1609.2 §5.3.1), where
signer is the COER signer certificate, or empty when the signer identifier is ``self``.

COER of a SEQUENCE with no optional or extension fields is the concatenation of its fields
(ITU-T X.696 §16), so an ``Ieee1609Dot2Data`` carrying signedData is ``03 81 ‖ hashId ‖
ToBeSignedData ‖ SignerIdentifier ‖ Signature``. Signing encodes ToBeSignedData once (the bytes it
hashes) and places it; opening cuts the received ToBeSignedData out of the (canonically decoded)
message instead of re-encoding it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from fleetid.crypto.signer import Signer
from fleetid.crypto.v2xkeys import PublicKey, curve_name_of, hash_name_of, sign_1609, verify_1609
from fleetid.errors import EncodingError, VerificationError
from fleetid.formats.ieee1609.codec import decode, encode
from fleetid.formats.ieee1609.keys import rs_from_signature, signature_curve, signature_value

__all__ = ["SignedMessage", "open_signed_data", "sign_data", "unsecured", "verify_signed_data"]

PROTOCOL_VERSION = 3
# protocolVersion 3, then the CHOICE tag of signedData ([1], context-specific): X.696 §20.
_SIGNED_DATA_HEAD = bytes((PROTOCOL_VERSION, 0x81))


def _envelope(signed: dict[str, Any]) -> tuple[bytes, bytes]:
    """COER before and after ToBeSignedData in an Ieee1609Dot2Data carrying ``signed``."""
    head = _SIGNED_DATA_HEAD + encode("HashAlgorithm", signed["hashId"])
    tail = encode("SignerIdentifier", signed["signer"]) + encode("Signature", signed["signature"])
    return head, tail


def unsecured(payload: bytes) -> dict[str, Any]:
    """An Ieee1609Dot2Data value carrying ``unsecuredData``."""
    return {"protocolVersion": PROTOCOL_VERSION, "content": ("unsecuredData", payload)}


def sign_data(
    payload: dict[str, Any],
    header_info: dict[str, Any],
    signer: Signer,
    *,
    signer_identifier: tuple[str, Any] = ("self", None),
    signer_certificate: bytes = b"",
) -> bytes:
    """COER ``Ieee1609Dot2Data`` with ``signedData`` over a SignedDataPayload value.

    ``signer_certificate`` is the COER certificate of the signer (b"" when signing as ``self``),
    whatever ``signer_identifier`` says on the wire (digest or certificate).
    """
    if (signer_identifier[0] == "self") != (signer_certificate == b""):
        raise ValueError("a self signer has no certificate, any other signer has one")
    tbs = {"payload": payload, "headerInfo": header_info}
    tbs_encoded = encode("ToBeSignedData", tbs)
    r, s = sign_1609(signer, tbs_encoded, signer_certificate)
    signed = {
        "hashId": hash_name_of(signer.public_key()),
        "tbsData": tbs,
        "signer": signer_identifier,
        "signature": signature_value(r, s, curve_name_of(signer.public_key())),
    }
    head, tail = _envelope(signed)
    return head + tbs_encoded + tail


@dataclass(frozen=True, kw_only=True)
class SignedMessage:
    """A decoded signedData: its parts and the exact ToBeSignedData bytes it signs."""

    value: dict[str, Any] = field(repr=False)
    encoded: bytes
    tbs_encoded: bytes

    @property
    def signed_data(self) -> dict[str, Any]:
        signed: dict[str, Any] = self.value["content"][1]
        return signed

    @property
    def header_info(self) -> dict[str, Any]:
        header: dict[str, Any] = self.signed_data["tbsData"]["headerInfo"]
        return header

    @property
    def payload(self) -> dict[str, Any]:
        payload: dict[str, Any] = self.signed_data["tbsData"]["payload"]
        return payload

    @property
    def signer(self) -> tuple[str, Any]:
        signer: tuple[str, Any] = self.signed_data["signer"]
        return signer

    def unsecured_payload(self) -> bytes:
        """The ``unsecuredData`` inside ``payload.data`` (EtsiTs103097Data-Signed)."""
        data = self.payload.get("data")
        if data is None or data["content"][0] != "unsecuredData":
            raise EncodingError("the signed payload is not unsecuredData")
        return bytes(data["content"][1])


def open_signed_data(data: bytes) -> SignedMessage:
    """Decode an Ieee1609Dot2Data that must carry signedData (the signature is not checked)."""
    data = bytes(data)
    value = decode("Ieee1609Dot2Data", data)
    if value["content"][0] != "signedData":
        raise EncodingError(f"expected signedData, got {value['content'][0]}")
    head, tail = _envelope(value["content"][1])
    # ``decode`` proved ``data`` canonical, so its ToBeSignedData is the bytes between.
    if not (data.startswith(head) and data.endswith(tail)) or len(data) <= len(head) + len(tail):
        raise EncodingError("signedData is not laid out as COER lays it out")
    tbs_encoded = data[len(head) : len(data) - len(tail)]
    return SignedMessage(value=value, encoded=data, tbs_encoded=tbs_encoded)


def verify_signed_data(
    message: SignedMessage, public_key: PublicKey, signer_certificate: bytes = b""
) -> None:
    """Verify the signature with ``public_key``; raise ``VerificationError`` if it fails.

    ``signer_certificate`` is the COER signer certificate, b"" for a ``self`` signer.
    """
    signed = message.signed_data
    if (message.signer[0] == "self") != (signer_certificate == b""):
        raise VerificationError("signer identifier and signer certificate disagree")
    if signed["hashId"] != hash_name_of(public_key):
        raise VerificationError("hashId does not match the signer key (IEEE 1609.2 §5.3.1)")
    if signature_curve(signed["signature"]) != curve_name_of(public_key):
        raise VerificationError("the signature is not on the signer key's curve")
    r, s = rs_from_signature(signed["signature"])
    verify_1609(public_key, r, s, message.tbs_encoded, signer_certificate)
