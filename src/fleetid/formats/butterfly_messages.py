"""The butterfly batch messages (IEEE 1609.2.1 §6.3.5) and the pseudonym certificate template.

The ASN.1 is ours (``ieee1609/FleetidButterfly.asn``, compiled with the IEEE 1609.2 modules).
Three kinds of content ride in it:

* the EE-RA request and acknowledgement, and the download (``RaEeCertBatch``);
* the RA-CA request, one per certificate, carrying the cocoon keys and the two encrypted
  pre-linkage values, and the CA's answer, encrypted to the cocoon encryption key;
* the ``AcaEeCertResponse`` inside that encryption: the certificate and c (explicit) or r
  (implicit), which only the device can use.

Encryption to a cocoon key is IEEE 1609.2 EncryptedData with ``rekRecipInfo`` (§6.3.46): the
recipientId is the HashedId8 of the COER ``PublicEncryptionKey`` and P1 is SHA-256 of the empty
string. A pre-linkage value is AES-128-CCM under the key its linkage authority shares with the
pseudonym CA (the LA wraps that key once, with ECIES, to the CA's certificate); one ECIES
operation per value would double the CA's cost for nothing an attacker could use.

``PseudonymTemplate`` encodes a pseudonym certificate by splicing the few values that change
(iCert, the linkage value, the validity start, the key point and the signature) into bytes the
codec produced once; it checks itself against the codec when built, and the tests compare it
with the codec on random values.
"""

from __future__ import annotations

import functools
import hashlib
from dataclasses import dataclass
from typing import Any, Final

from fleetid.crypto.ecies import (
    CCM_NONCE_LENGTH,
    EMPTY_P1,
    EcdhKey,
    EciesWrappedKey,
    ccm_decrypt,
    ccm_encrypt,
    ecies_unwrap,
    ecies_wrap,
    new_aes_key,
    new_ccm_nonce,
)
from fleetid.crypto.v2xkeys import PublicKey, compressed_point, field_size
from fleetid.errors import EncodingError, VerificationError
from fleetid.formats.ieee1609.certificate import hashed_id8
from fleetid.formats.ieee1609.codec import decode, encode
from fleetid.formats.ieee1609.keys import (
    ecies_choice,
    point_value,
    signature_value,
)

__all__ = [
    "ACA_EE_CERTIFICATE_OFFSET",
    "ACA_EE_PREAMBLE",
    "PLV_PLAINTEXT_SIZE",
    "PseudonymTemplate",
    "aca_ee_response",
    "decode_message",
    "encode_message",
    "open_from_key",
    "open_plv",
    "seal_plv",
    "seal_to_key",
]

PLV_PLAINTEXT_SIZE: Final = 2 + 2 + 4 + 9


def encode_message(type_name: str, value: Any) -> bytes:
    """COER of a butterfly message; ``EncodingError`` if the value does not fit the type."""
    return encode(type_name, value)


def decode_message(type_name: str, data: bytes) -> Any:
    """Decode strict COER (canonical, no trailing bytes); ``EncodingError`` otherwise."""
    return decode(type_name, data)


# --------------------------------------------------------------------------------------------
# Encryption to a cocoon key (rekRecipInfo) and pre-linkage values


def _sealed_value(
    choice: str, recipient_id: bytes, point: bytes, c: bytes, t: bytes, nonce: bytes, ct: bytes
) -> dict[str, Any]:
    encrypted_key = {"v": point_value(point), "c": c, "t": t}
    recipient = ("rekRecipInfo", {"recipientId": recipient_id, "encKey": (choice, encrypted_key)})
    ciphertext = ("aes128ccm", {"nonce": nonce, "ccmCiphertext": ct})
    return {
        "protocolVersion": 3,
        "content": ("encryptedData", {"recipients": [recipient], "ciphertext": ciphertext}),
    }


@functools.lru_cache(maxsize=64)
def _sealed_splice(choice: str, ciphertext_size: int) -> _Splice:
    """The encrypted response's bytes for one ECIES curve and one ciphertext size."""
    sample = {
        "id": b"\x11" * 8,
        "v": b"\x82" + b"\x22" * 32,
        "c": b"\x33" * 16,
        "t": b"\x44" * 16,
        "nonce": b"\x55" * 12,
        "ct": b"\x66" * ciphertext_size,
    }
    value = _sealed_value(
        choice,
        sample["id"],
        b"\x02" + sample["v"][1:],
        sample["c"],
        sample["t"],
        sample["nonce"],
        sample["ct"],
    )
    return _Splice("Ieee1609Dot2Data", value, sample)


def seal_to_key(plaintext: bytes, recipient: PublicKey) -> bytes:
    """COER Ieee1609Dot2Data-Encrypted of ``plaintext`` to an ECIES public key (rekRecipInfo)."""
    aes_key = new_aes_key()
    wrapped = ecies_wrap(aes_key, recipient, EMPTY_P1)
    nonce = new_ccm_nonce()
    ciphertext = ccm_encrypt(aes_key, nonce, plaintext)
    splice = _sealed_splice(ecies_choice(recipient), len(ciphertext))
    return splice.fill(
        id=_rek_id(recipient),
        v=_POINT_TAGS[wrapped.ephemeral_point[0]] + wrapped.ephemeral_point[1:],
        c=wrapped.ciphertext,
        t=wrapped.tag,
        nonce=nonce,
        ct=ciphertext,
    )


#: COER CHOICE tags of EccP256CurvePoint compressed-y-0 and -1, by the SEC 1 prefix.
_POINT_TAGS: Final = {2: b"\x82", 3: b"\x83"}


@functools.lru_cache(maxsize=4)
def _encryption_key_splice(choice: str) -> _Splice:
    sample = {"v": b"\x82" + b"\x77" * 32}
    value = {
        "supportedSymmAlg": "aes128Ccm",
        "publicKey": (choice, ("compressed-y-0", b"\x77" * 32)),
    }
    return _Splice("PublicEncryptionKey", value, sample)


def _rek_id(key: PublicKey) -> bytes:
    """recipientId of rekRecipInfo: HashedId8 of COER(PublicEncryptionKey) (1609.2 §6.3.46)."""
    point = compressed_point(key)
    encoded = _encryption_key_splice(ecies_choice(key)).fill(v=_POINT_TAGS[point[0]] + point[1:])
    return hashlib.sha256(encoded).digest()[-8:]


class _Splice:
    """Bytes the codec encoded once from a sample, with fixed-size fields to overwrite.

    ``markers`` maps each field to its sample bytes, which must occur exactly once; ``fill``
    writes values of the same sizes there. Tests compare the result with the codec.
    """

    def __init__(self, type_name: str, sample: Any, markers: dict[str, bytes]) -> None:
        self._bytes = encode(type_name, sample)
        self._fields = {
            name: (_find_once(self._bytes, marker, name), len(marker))
            for name, marker in markers.items()
        }

    def fill(self, **values: bytes) -> bytes:
        out = bytearray(self._bytes)
        for name, value in values.items():
            at, size = self._fields[name]
            if len(value) != size:
                raise EncodingError(f"{name} is {size} bytes, got {len(value)}")
            out[at : at + size] = value
        return bytes(out)


def open_from_key(
    message: bytes | dict[str, Any], private_key: EcdhKey, public: PublicKey
) -> bytes:
    """Open what ``seal_to_key`` sealed to ``public``; ``VerificationError`` if not for it."""
    value = decode_message("Ieee1609Dot2Data", message) if isinstance(message, bytes) else message
    kind, content = value["content"]
    if kind != "encryptedData" or len(content["recipients"]) != 1:
        raise EncodingError("expected encryptedData with exactly one recipient")
    recipient_kind, recipient = content["recipients"][0]
    if recipient_kind != "rekRecipInfo":
        raise EncodingError(f"expected rekRecipInfo, got {recipient_kind}")
    if bytes(recipient["recipientId"]) != _rek_id(public):
        raise VerificationError("the response is encrypted to another key")
    choice, encrypted_key = recipient["encKey"]
    if choice != ecies_choice(public):
        raise VerificationError("the response is wrapped for another curve")
    v_kind, v_point = encrypted_key["v"]
    if v_kind not in ("compressed-y-0", "compressed-y-1"):
        raise EncodingError(f"the ephemeral key cannot be {v_kind}")
    wrapped = EciesWrappedKey(
        ephemeral_point=(b"\x02" if v_kind == "compressed-y-0" else b"\x03") + bytes(v_point),
        ciphertext=bytes(encrypted_key["c"]),
        tag=bytes(encrypted_key["t"]),
    )
    aes_key = ecies_unwrap(wrapped, private_key, EMPTY_P1)
    cipher_kind, ciphertext = content["ciphertext"]
    if cipher_kind != "aes128ccm":
        raise EncodingError(f"unsupported symmetric ciphertext {cipher_kind}")
    return ccm_decrypt(aes_key, bytes(ciphertext["nonce"]), bytes(ciphertext["ccmCiphertext"]))


def seal_plv(shared_key: bytes, la_id: bytes, i: int, j: int, plv: bytes) -> tuple[bytes, bytes]:
    """(nonce, CCM ciphertext) of la_id ‖ i ‖ j ‖ plv under the LA-CA key."""
    plaintext = la_id + i.to_bytes(2, "big") + j.to_bytes(4, "big") + plv
    if len(plaintext) != PLV_PLAINTEXT_SIZE:
        raise EncodingError("a pre-linkage value is 9 bytes and an LA id 2")
    nonce = new_ccm_nonce()
    return nonce, ccm_encrypt(shared_key, nonce, plaintext)


def open_plv(shared_key: bytes, entry: dict[str, Any], i: int) -> tuple[int, bytes]:
    """(j, plv) of an EncryptedPlv for period ``i``.

    Raises ``VerificationError`` if it does not decrypt (tampered, or not from this LA) or names
    another LA or another period than the certificate it is for.
    """
    nonce = bytes(entry["nonce"])
    if len(nonce) != CCM_NONCE_LENGTH:
        raise EncodingError("a CCM nonce is 12 bytes")
    plaintext = ccm_decrypt(shared_key, nonce, bytes(entry["ccmCiphertext"]))
    la_id, period = plaintext[:2], int.from_bytes(plaintext[2:4], "big")
    if la_id != bytes(entry["laId"]):
        raise VerificationError("the pre-linkage value is from another linkage authority")
    if period != i:
        raise VerificationError(f"the pre-linkage value is for period {period}, not {i}")
    return int.from_bytes(plaintext[4:8], "big"), plaintext[8:]


#: X.696 §16.2: the preamble of AcaEeCertResponse, extension bit 0, privateKeyInfo present.
ACA_EE_PREAMBLE: Final = b"\x40"
#: The bytes before the certificate in an AcaEeCertResponse: preamble, version, generationTime.
ACA_EE_CERTIFICATE_OFFSET: Final = 6


def aca_ee_response(generation_time: int, certificate: bytes, private_key_info: int) -> bytes:
    """COER AcaEeCertResponse{version 2, generationTime, certificate, privateKeyInfo}.

    The SEQUENCE is extensible with privateKeyInfo OPTIONAL (1609.2.1 AcaEeInterface), so its
    COER is the preamble octet ``ACA_EE_PREAMBLE`` (no extension, privateKeyInfo present) and
    then the fields one after the other: the certificate's own bytes are spliced in, never
    decoded and re-encoded.
    """
    return (
        ACA_EE_PREAMBLE
        + b"\x02"
        + generation_time.to_bytes(4, "big")
        + certificate
        + private_key_info.to_bytes(32, "big")
    )


# --------------------------------------------------------------------------------------------
# The pseudonym certificate, from a template


_SAMPLE_LV: Final = bytes.fromhex("a55aa55aa55aa55aa5")
_SAMPLE_START: Final = 0x5A3C5A3C
_SAMPLE_X: Final = bytes.fromhex("c3" * 32)
_SAMPLE_R: Final = bytes.fromhex("e7" * 32)
_SAMPLE_S: Final = bytes.fromhex("7e" * 32)
_SAMPLE_I: Final = 0xB44B


def _find_once(haystack: bytes, needle: bytes, what: str) -> int:
    at = haystack.find(needle)
    if at < 0 or haystack.find(needle, at + 1) >= 0:
        raise EncodingError(f"the template cannot place {what}")
    return at


@dataclass(frozen=True, kw_only=True)
class _Layout:
    tbs: bytes
    i_at: int
    lv_at: int
    start_at: int
    key_at: int  # the point's CHOICE tag; the 32-byte x follows
    head: bytes  # the certificate's bytes before its ToBeSignedCertificate
    signature: bytes  # the bytes after it (explicit), with r and s at r_at and s_at
    r_at: int
    s_at: int


class PseudonymTemplate:
    """Pseudonym certificates of one shape: issuer, type, permissions, duration, key curve.

    ``tbs`` and ``certificate`` return the same bytes as ``fleetid.formats.ieee1609.encode``
    would for the same value; the constructor proves it on two samples.
    """

    def __init__(
        self,
        *,
        issuer_certificate: bytes,
        issuer_curve: str,
        implicit: bool,
        app_permissions: list[Any],
        duration: tuple[str, int],
        key_curve: str = "nistP256",
        craca_id: bytes = b"\x00\x00\x00",
        crl_series: int = 0,
    ) -> None:
        self.implicit = implicit
        self.issuer_certificate = bytes(issuer_certificate)
        self._issuer_curve = issuer_curve
        self._key_curve = key_curve
        self._shape = {
            "cracaId": craca_id,
            "crlSeries": crl_series,
            "appPermissions": app_permissions,
            "duration": duration,
        }
        self._layout = self._build()
        self._check()

    def _value(self, i: int, lv: bytes, start: int, point: bytes) -> dict[str, Any]:
        key = point_value(point)
        tbs: dict[str, Any] = {
            "id": ("linkageData", {"iCert": i, "linkage-value": lv}),
            "cracaId": self._shape["cracaId"],
            "crlSeries": self._shape["crlSeries"],
            "validityPeriod": {"start": start, "duration": self._shape["duration"]},
            "appPermissions": self._shape["appPermissions"],
            "verifyKeyIndicator": (
                ("reconstructionValue", key)
                if self.implicit
                else ("verificationKey", (_VERIFICATION_CHOICE[self._key_curve], key))
            ),
        }
        return tbs

    def _certificate_value(self, tbs: dict[str, Any], r: bytes, s: bytes) -> dict[str, Any]:
        wide = field_size(self._issuer_curve) == 48
        choice = "sha384AndDigest" if wide else "sha256AndDigest"
        value: dict[str, Any] = {
            "version": 3,
            "type": "implicit" if self.implicit else "explicit",
            "issuer": (choice, hashed_id8(self.issuer_certificate)),
            "toBeSigned": tbs,
        }
        if not self.implicit:
            value["signature"] = signature_value(
                int.from_bytes(r, "big"), int.from_bytes(s, "big"), self._issuer_curve
            )
        return value

    def _build(self) -> _Layout:
        sample_point = b"\x02" + _SAMPLE_X
        tbs_value = self._value(_SAMPLE_I, _SAMPLE_LV, _SAMPLE_START, sample_point)
        tbs = encode_message("ToBeSignedCertificate", tbs_value)
        size = field_size(self._issuer_curve)
        r, s = _SAMPLE_R[:1] * size, _SAMPLE_S[:1] * size
        certificate = encode_message("Certificate", self._certificate_value(tbs_value, r, s))
        head_size = _find_once(certificate, tbs, "the ToBeSignedCertificate")
        signature = certificate[head_size + len(tbs) :]
        return _Layout(
            tbs=tbs,
            i_at=_find_once(tbs, _SAMPLE_I.to_bytes(2, "big") + _SAMPLE_LV, "iCert"),
            lv_at=_find_once(tbs, _SAMPLE_LV, "the linkage value"),
            start_at=_find_once(tbs, _SAMPLE_START.to_bytes(4, "big"), "the start"),
            key_at=_find_once(tbs, _SAMPLE_X, "the key") - 1,
            head=certificate[:head_size],
            signature=signature,
            r_at=_find_once(signature, r, "r") if signature else 0,
            s_at=_find_once(signature, s, "s") if signature else 0,
        )

    def _check(self) -> None:
        """The template and the codec agree on values unlike the samples (both key parities)."""
        for parity, i in ((b"\x03", 7), (b"\x02", 65535)):
            point = parity + bytes(range(32))
            lv, start = bytes(range(9, 18)), 0x01020304 + i
            expected = encode_message("ToBeSignedCertificate", self._value(i, lv, start, point))
            if self.tbs(i, lv, start, point) != expected:
                raise EncodingError("the pseudonym template disagrees with the codec")

    def tbs(self, i: int, lv: bytes, start: int, point: bytes) -> bytes:
        """COER ToBeSignedCertificate for (i, lv, validity start, compressed SEC 1 point)."""
        layout = self._layout
        if len(lv) != 9 or len(point) != 33 or point[0] not in (2, 3):
            raise EncodingError("a linkage value is 9 bytes, a key point compressed (33)")
        out = bytearray(layout.tbs)
        out[layout.i_at : layout.i_at + 2] = i.to_bytes(2, "big")
        out[layout.lv_at : layout.lv_at + 9] = lv
        out[layout.start_at : layout.start_at + 4] = start.to_bytes(4, "big")
        out[layout.key_at] = 0x82 if point[0] == 2 else 0x83  # compressed-y-0 / compressed-y-1
        out[layout.key_at + 1 : layout.key_at + 33] = point[1:]
        return bytes(out)

    def certificate(self, tbs: bytes, r: int = 0, s: int = 0) -> bytes:
        """COER Certificate around ``tbs`` (with r, s for an explicit one)."""
        layout = self._layout
        if self.implicit:
            return layout.head + tbs
        size = len(layout.signature) - layout.s_at
        signature = bytearray(layout.signature)
        signature[layout.r_at : layout.r_at + size] = r.to_bytes(size, "big")
        signature[layout.s_at : layout.s_at + size] = s.to_bytes(size, "big")
        return layout.head + tbs + bytes(signature)


_VERIFICATION_CHOICE: Final = {
    "nistP256": "ecdsaNistP256",
    "brainpoolP256r1": "ecdsaBrainpoolP256r1",
}
