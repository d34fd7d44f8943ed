"""ETSI TS 102 941 messages: encryption to a certificate or a pre-shared key, and enrolment POP.

Encryption (ETSI TS 103 097 §5.3, IEEE 1609.2 §5.3.5): a fresh AES-128 key encrypts the payload
with AES-CCM and is ECIES-wrapped for the recipient certificate's encryption key, with
``P1 = SHA-256(COER recipient certificate)`` and ``recipientId = HashedId8(certificate)``.
Responses reuse the request's AES key, named by ``pskRecipInfo`` = HashedId8 of the COER
``SymmetricEncryptionKey`` (IEEE 1609.2 §6.3.34).

Enrolment (TS 102 941 §6.2.3.2.1): ``InnerEcRequestSignedForPop`` is an
``EtsiTs103097Data-Signed{InnerEcRequest}`` signed by the new EC key itself (signer ``self``,
psid 623), proving possession of that key.
"""

from __future__ import annotations

import functools
import hashlib
from dataclasses import dataclass, field
from typing import Any, Final

from fleetid.crypto.ecies import (
    EcdhKey,
    EciesWrappedKey,
    ccm_decrypt,
    ccm_encrypt,
    ecies_unwrap,
    ecies_wrap,
    new_aes_key,
    new_ccm_nonce,
)
from fleetid.crypto.signer import Signer
from fleetid.crypto.symmetric import hmac_sha256
from fleetid.crypto.v2xkeys import CURVES, PublicKey
from fleetid.errors import EncodingError, ProfileError, VerificationError
from fleetid.formats.ieee1609.certificate import decode_certificate, hashed_id8
from fleetid.formats.ieee1609.codec import decode, encode
from fleetid.formats.ieee1609.keys import (
    ecies_curve,
    encryption_key_value,
    point_value,
    public_key_from_encryption_key,
    public_key_from_verification_key,
    verification_key_value,
)
from fleetid.formats.ieee1609.profile import (
    PKI_PROFILES,
    PSID_CERTIFICATE_REQUEST_SERVICE,
    check_encrypted,
    check_pki_message,
    check_signed,
)
from fleetid.formats.ieee1609.signed_data import (
    SignedMessage,
    open_signed_data,
    sign_data,
    verify_signed_data,
)

__all__ = [
    "PSID_CERTIFICATE_REQUEST",
    "InnerEcRequest",
    "PkiData",
    "SealedMessage",
    "decode_enrolment_request",
    "decode_etsi102941_data",
    "decrypt",
    "decrypt_for_certificate",
    "decrypt_with_key",
    "encode_etsi102941_data",
    "encode_inner_ec_request",
    "encrypt",
    "encrypt_with_key",
    "key_tag",
    "open_pki_data",
    "psk_recipient_id",
    "request_hash",
    "shared_at_request_hash",
    "sign_enrolment_request_pop",
    "sign_external_payload",
    "sign_pki_data",
]

#: SecuredCertificateRequestService (ETSI TS 102 965): the psid of every PKI request/response.
PSID_CERTIFICATE_REQUEST = PSID_CERTIFICATE_REQUEST_SERVICE

_CERTIFICATE_FORMAT_TS103097V131 = 1


# --------------------------------------------------------------------------------------------
# Encryption


@dataclass(frozen=True, kw_only=True)
class SealedMessage:
    """An encrypted EtsiTs103097Data and the AES key the response will reuse."""

    encoded: bytes
    aes_key: bytes = field(repr=False)


def psk_recipient_id(aes_key: bytes) -> bytes:
    """HashedId8 of the COER ``SymmetricEncryptionKey`` holding ``aes_key`` (§6.3.34)."""
    encoded = encode("SymmetricEncryptionKey", ("aes128Ccm", aes_key))
    return hashlib.sha256(encoded).digest()[-8:]


def _encrypted_value(recipient: tuple[str, Any], aes_key: bytes, plaintext: bytes) -> bytes:
    nonce = new_ccm_nonce()
    value = {
        "protocolVersion": 3,
        "content": (
            "encryptedData",
            {
                "recipients": [recipient],
                "ciphertext": (
                    "aes128ccm",
                    {"nonce": nonce, "ccmCiphertext": ccm_encrypt(aes_key, nonce, plaintext)},
                ),
            },
        ),
    }
    return encode("Ieee1609Dot2Data", value)


@functools.lru_cache(maxsize=256)
def _recipient(certificate_bytes: bytes) -> tuple[bytes, bytes, tuple[str, PublicKey] | None]:
    """(recipientId, P1, encryption key) of a recipient certificate: a pure function of its
    bytes, cached because a PKI encrypts to the same few authority certificates all day."""
    certificate = decode_certificate(certificate_bytes)
    p1 = hashlib.sha256(certificate.encoded).digest()
    return hashed_id8(certificate.encoded), p1, certificate.encryption_key()


def encrypt(
    plaintext: bytes, recipient_certificate: bytes, *, aes_key: bytes | None = None
) -> SealedMessage:
    """EtsiTs103097Data-Encrypted-Unicast of ``plaintext`` to a certificate (certRecipInfo).

    ``plaintext`` is normally the COER of an EtsiTs103097Data (unsecured or signed).
    """
    recipient_id, p1, encryption = _recipient(bytes(recipient_certificate))
    if encryption is None:
        raise ProfileError("the recipient certificate has no encryption key")
    choice, recipient_key = encryption
    key = aes_key if aes_key is not None else new_aes_key()
    wrapped = ecies_wrap(key, recipient_key, p1)
    recipient = (
        "certRecipInfo",
        {
            "recipientId": recipient_id,
            "encKey": (
                choice,
                {
                    "v": point_value(wrapped.ephemeral_point),
                    "c": wrapped.ciphertext,
                    "t": wrapped.tag,
                },
            ),
        },
    )
    return SealedMessage(encoded=_encrypted_value(recipient, key, plaintext), aes_key=key)


def encrypt_with_key(plaintext: bytes, aes_key: bytes) -> bytes:
    """EtsiTs103097Data-Encrypted-Unicast to a pre-shared AES key (pskRecipInfo): responses."""
    return _encrypted_value(("pskRecipInfo", psk_recipient_id(aes_key)), aes_key, plaintext)


def _open_encrypted(message: bytes, *, unicast: bool) -> dict[str, Any]:
    value = decode("Ieee1609Dot2Data", bytes(message))
    check_encrypted(value, unicast=unicast)
    content: dict[str, Any] = value["content"][1]
    return content


def _ccm_open(content: dict[str, Any], aes_key: bytes) -> bytes:
    ciphertext = content["ciphertext"][1]
    return ccm_decrypt(aes_key, bytes(ciphertext["nonce"]), bytes(ciphertext["ccmCiphertext"]))


def _unwrap_for(
    content: dict[str, Any], recipient_id: bytes, private_key: EcdhKey, p1: bytes
) -> bytes:
    for kind, recipient in content["recipients"]:
        if kind != "certRecipInfo" or bytes(recipient["recipientId"]) != recipient_id:
            continue
        choice, encrypted_key = recipient["encKey"]
        if choice not in ("eciesNistP256", "eciesBrainpoolP256r1"):
            raise EncodingError(f"unsupported ECIES key type {choice}")
        if ecies_curve(choice) != _curve_name(private_key):
            raise VerificationError(
                f"the message is wrapped for {ecies_curve(choice)}, the key is on another curve"
            )
        v_kind, v_point = encrypted_key["v"]
        if v_kind == "compressed-y-0":
            sec1 = b"\x02" + bytes(v_point)
        elif v_kind == "compressed-y-1":
            sec1 = b"\x03" + bytes(v_point)
        elif v_kind == "uncompressedP256":
            sec1 = b"\x04" + bytes(v_point["x"]) + bytes(v_point["y"])
        else:
            raise EncodingError(f"the ECIES ephemeral key cannot be {v_kind}")
        wrapped = EciesWrappedKey(
            ephemeral_point=sec1,
            ciphertext=bytes(encrypted_key["c"]),
            tag=bytes(encrypted_key["t"]),
        )
        return ecies_unwrap(wrapped, private_key, p1)
    raise VerificationError("the message is not addressed to this certificate")


def _curve_name(private_key: EcdhKey) -> str:
    for name, curve in CURVES.items():
        if curve.name == private_key.curve.name:
            return name
    raise VerificationError(f"curve {private_key.curve.name} does not do ECIES in IEEE 1609.2")


def decrypt(
    message: bytes,
    private_key: EcdhKey,
    recipient_certificate_hash: bytes,
    *,
    unicast: bool = False,
) -> bytes:
    """Open an EtsiTs103097Data-Encrypted addressed to a certificate; return the plaintext.

    ``recipient_certificate_hash`` is SHA-256 of the COER recipient certificate: it is P1, and
    its low-order 8 bytes are the recipientId looked for (true for certificates whose HashedId8
    is SHA-256-based; use ``decrypt_for_certificate`` when the certificate has a 384-bit key).
    Raises ``VerificationError`` if no recipient matches or the ECIES or CCM tag fails,
    ``EncodingError``/``ProfileError`` if the message is not such a message.
    """
    if len(recipient_certificate_hash) != 32:
        raise ValueError("recipient_certificate_hash is SHA-256 of the certificate (32 bytes)")
    content = _open_encrypted(message, unicast=unicast)
    aes_key = _unwrap_for(
        content, recipient_certificate_hash[-8:], private_key, recipient_certificate_hash
    )
    return _ccm_open(content, aes_key)


def decrypt_for_certificate(
    message: bytes, private_key: EcdhKey, recipient_certificate: bytes, *, unicast: bool = False
) -> tuple[bytes, bytes]:
    """Like ``decrypt`` given the certificate itself; returns (plaintext, AES key)."""
    recipient_id, p1, _ = _recipient(bytes(recipient_certificate))
    content = _open_encrypted(message, unicast=unicast)
    aes_key = _unwrap_for(content, recipient_id, private_key, p1)
    return _ccm_open(content, aes_key), aes_key


def decrypt_with_key(message: bytes, aes_key: bytes, *, unicast: bool = True) -> bytes:
    """Open a response encrypted to a pre-shared AES key; ``VerificationError`` if it fails."""
    content = _open_encrypted(message, unicast=unicast)
    expected = psk_recipient_id(aes_key)
    if not any(
        kind == "pskRecipInfo" and bytes(rid) == expected for kind, rid in content["recipients"]
    ):
        raise VerificationError("the message is not encrypted to this pre-shared key")
    return _ccm_open(content, aes_key)


def request_hash(message: bytes) -> bytes:
    """requestHash: the leftmost 16 bytes of SHA-256 of the request as sent (TS 102 941 §6.2.3)."""
    return hashlib.sha256(message).digest()[:16]


# --------------------------------------------------------------------------------------------
# EtsiTs102941Data


def encode_etsi102941_data(content: tuple[str, Any]) -> bytes:
    """COER EtsiTs102941Data (version v1) around one content alternative."""
    return encode("EtsiTs102941Data", {"version": 1, "content": content})


def decode_etsi102941_data(data: bytes) -> tuple[str, Any]:
    """The content alternative of a COER EtsiTs102941Data."""
    value = decode("EtsiTs102941Data", bytes(data))
    content: tuple[str, Any] = value["content"]
    if content[0] is None:
        raise EncodingError("unknown EtsiTs102941Data content alternative")
    if content[0] in _OUTSIDE_SUBSET:
        raise EncodingError(f"{content[0]} is outside fleetid's subset of TS 102 941")
    return content


# Butterfly alternatives declared only to keep the CHOICE tags of the ones after them.
_OUTSIDE_SUBSET: Final = frozenset(
    {
        "x509SignedbutterflyAuthorizationRequest",
        "butterflyCertificateRequest",
        "butterflyCertificateResponse",
    }
)


# --------------------------------------------------------------------------------------------
# Enrolment request: InnerEcRequest and its proof of possession


@dataclass(frozen=True, kw_only=True)
class InnerEcRequest:
    """A decoded InnerEcRequest (TS 102 941 §6.2.3.2.1) whose POP signature has verified."""

    its_id: bytes
    certificate_format: int
    verification_key: PublicKey
    encryption_key: PublicKey | None
    requested_subject_attributes: dict[str, Any] = field(repr=False)
    encoded: bytes = field(repr=False)


def encode_inner_ec_request(
    *,
    its_id: bytes,
    verification_key: PublicKey,
    requested_subject_attributes: dict[str, Any],
    encryption_key: PublicKey | None = None,
) -> bytes:
    """COER InnerEcRequest (certificateFormat ts103097v131)."""
    if "certIssuePermissions" in requested_subject_attributes:
        raise ProfileError("an enrolment request cannot ask for certIssuePermissions")
    public_keys: dict[str, Any] = {"verificationKey": verification_key_value(verification_key)}
    if encryption_key is not None:
        public_keys["encryptionKey"] = encryption_key_value(encryption_key)
    value = {
        "itsId": its_id,
        "certificateFormat": _CERTIFICATE_FORMAT_TS103097V131,
        "publicKeys": public_keys,
        "requestedSubjectAttributes": requested_subject_attributes,
    }
    return encode("InnerEcRequest", value)


def sign_enrolment_request_pop(
    inner_ec_request: bytes, new_ec_key: Signer, *, generation_time: int
) -> bytes:
    """InnerEcRequestSignedForPop: the InnerEcRequest signed by the new EC key, signer self.

    ``generation_time`` is a Time64 (microseconds of TAI since 2004).
    """
    payload = {"data": {"protocolVersion": 3, "content": ("unsecuredData", inner_ec_request)}}
    header = {"psid": PSID_CERTIFICATE_REQUEST, "generationTime": generation_time}
    return sign_data(payload, header, new_ec_key)


def decode_enrolment_request(inner_signed: bytes) -> InnerEcRequest:
    """Decode an InnerEcRequestSignedForPop and verify its proof-of-possession signature.

    Raises ``EncodingError`` (``ProfileError`` for a profile breach: signer not self, psid not
    623, no generationTime ...) and ``VerificationError`` if the signature by the requested
    verification key does not verify.
    """
    message = open_signed_data(inner_signed)
    check_signed(message.value, psid=PSID_CERTIFICATE_REQUEST, signer_kinds=frozenset({"self"}))
    inner_encoded = message.unsecured_payload()
    inner = decode("InnerEcRequest", inner_encoded)
    if inner["certificateFormat"] != _CERTIFICATE_FORMAT_TS103097V131:
        raise ProfileError("unsupported certificateFormat")
    attributes = inner["requestedSubjectAttributes"]
    if "certIssuePermissions" in attributes:
        raise ProfileError("an enrolment request cannot ask for certIssuePermissions")
    if "appPermissions" not in attributes:
        raise ProfileError("requestedSubjectAttributes needs appPermissions")
    public_keys = inner["publicKeys"]
    verification_key = public_key_from_verification_key(public_keys["verificationKey"])
    verify_signed_data(message, verification_key)
    encryption = public_keys.get("encryptionKey")
    return InnerEcRequest(
        its_id=bytes(inner["itsId"]),
        certificate_format=inner["certificateFormat"],
        verification_key=verification_key,
        encryption_key=None
        if encryption is None
        else public_key_from_encryption_key(encryption)[1],
        requested_subject_attributes=attributes,
        encoded=inner_encoded,
    )


# --------------------------------------------------------------------------------------------
# Signed PKI messages: EtsiTs103097Data-Signed {EtsiTs102941Data}


def sign_pki_data(
    content: tuple[str, Any],
    signer: Signer,
    *,
    generation_time: int,
    signer_certificate: bytes | None = None,
) -> bytes:
    """EtsiTs103097Data-Signed{EtsiTs102941Data} with the psid of its content type
    (``PKI_PROFILES``: 623 for requests and responses, 622 for a CRL, 624 for a CTL and link
    certificates; TS 102 941 §6.2, §6.3).

    ``signer_certificate`` None signs as ``self`` (a POP or the canonical key); otherwise the
    signer is given as the HashedId8 ``digest`` of that COER certificate, as the PKI's
    authorities and re-enrolling stations sign.
    """
    payload = {"data": {"protocolVersion": 3, "content": ("unsecuredData", _etsi_data(content))}}
    profile = PKI_PROFILES.get(content[0])
    psid = PSID_CERTIFICATE_REQUEST if profile is None else profile.psid
    header = {"psid": psid, "generationTime": generation_time}
    if signer_certificate is None:
        return sign_data(payload, header, signer)
    return sign_data(
        payload,
        header,
        signer,
        signer_identifier=("digest", hashed_id8(signer_certificate)),
        signer_certificate=signer_certificate,
    )


def _etsi_data(content: tuple[str, Any]) -> bytes:
    return encode_etsi102941_data(content)


@dataclass(frozen=True, kw_only=True)
class PkiData:
    """An opened EtsiTs103097Data-Signed{EtsiTs102941Data}; the signature is not yet checked."""

    message: SignedMessage = field(repr=False)
    content: tuple[str, Any] = field(repr=False)

    @property
    def kind(self) -> str:
        return self.content[0]

    @property
    def generation_time(self) -> int:
        return int(self.message.header_info["generationTime"])

    @property
    def signer_digest(self) -> bytes | None:
        """The signer's HashedId8 for a ``digest`` signer, None for ``self``."""
        kind, value = self.message.signer
        return bytes(value) if kind == "digest" else None

    def verify(self, public_key: PublicKey, signer_certificate: bytes = b"") -> None:
        """Verify the signature; ``VerificationError`` if it does not (or names another cert)."""
        digest = self.signer_digest
        if signer_certificate and digest != hashed_id8(signer_certificate):
            raise VerificationError("the message is signed by another certificate")
        verify_signed_data(self.message, public_key, signer_certificate)


def open_pki_data(
    data: bytes,
    *,
    signer_kinds: frozenset[str],
    expected: frozenset[str] | None = None,
) -> PkiData:
    """Decode and profile-check a signed PKI message: the signer kinds the caller allows, then
    the profile of its content type (psid, signer kind, content constraints:
    ``fleetid.formats.ieee1609.profile.check_pki_message``).

    ``expected`` limits the EtsiTs102941Data content alternatives accepted (``ProfileError``).
    """
    message = open_signed_data(data)
    check_signed(message.value, signer_kinds=signer_kinds)
    content = decode_etsi102941_data(message.unsecured_payload())
    if expected is not None and content[0] not in expected:
        raise ProfileError(f"expected {sorted(expected)}, got {content[0]}")
    check_pki_message(message.value, content)
    return PkiData(message=message, content=content)


# --------------------------------------------------------------------------------------------
# Authorization: keyTag and the EC signature over the SharedAtRequest


def key_tag(hmac_key: bytes, public_keys: dict[str, Any]) -> bytes:
    """keyTag (TS 102 941 §6.2.3.3.1): the leftmost 16 bytes of HMAC-SHA256(hmacKey, keys).

    The HMAC input is COER(verificationKey), followed by COER(encryptionKey) when the request
    carries one (as vanetza computes it against the ETSI L0 PKI).
    """
    if len(hmac_key) != 32:
        raise ValueError("hmacKey is 32 bytes")
    data = encode("PublicVerificationKey", public_keys["verificationKey"])
    if public_keys.get("encryptionKey") is not None:
        data += encode("PublicEncryptionKey", public_keys["encryptionKey"])
    return hmac_sha256(hmac_key, data)[:16]


def shared_at_request_hash(shared_at_request: dict[str, Any]) -> bytes:
    """SHA-256 of the COER SharedAtRequest: the extDataHash the EC signs."""
    return hashlib.sha256(encode("SharedAtRequest", shared_at_request)).digest()


def sign_external_payload(
    data_hash: bytes,
    signer: Signer,
    signer_certificate: bytes,
    *,
    generation_time: int,
) -> bytes:
    """EtsiTs103097Data-SignedExternalPayload over a SHA-256 hash, signer digest, psid 623."""
    if len(data_hash) != 32:
        raise ValueError("extDataHash is a SHA-256 hash")
    return sign_data(
        {"extDataHash": ("sha256HashedData", data_hash)},
        {"psid": PSID_CERTIFICATE_REQUEST, "generationTime": generation_time},
        signer,
        signer_identifier=("digest", hashed_id8(signer_certificate)),
        signer_certificate=signer_certificate,
    )
