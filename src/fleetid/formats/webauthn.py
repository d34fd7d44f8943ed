"""The WebAuthn attestation object, decoded strictly (WebAuthn Level 3 §6.1, §6.5.4).

python-fido2 decodes the CBOR (``fido2.cbor``) and the authenticator data
(``fido2.webauthn.AuthenticatorData``). Its decoder is lenient in three ways that matter to a
verifier: a duplicate map key silently replaces the first, a byte string whose declared length
runs past the end of the input is cut short without an error, and any encoding of a length or an
integer is taken, minimal or not. A WebAuthn Relying Party decodes with "CTAP2 canonical CBOR"
in mind (WebAuthn §6.5.4 and CTAP 2.2 §8 "Message Encoding": minimal lengths, definite lengths,
map keys sorted, no duplicates), so this module re-encodes what it decoded with the same library
and requires the very bytes it was given: for the attestation object, for the credential public
key inside the authenticator data and for the extensions. That one comparison refuses each of
the three leniencies, and anything trailing.
"""

from __future__ import annotations

import base64
import binascii
import re
import struct
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from cryptography import x509
from fido2 import cbor
from fido2.webauthn import AuthenticatorData

from fleetid.errors import EncodingError

__all__ = [
    "FIDO_AAGUID_OID",
    "FLAG_AT",
    "FLAG_BE",
    "FLAG_BS",
    "FLAG_ED",
    "FLAG_UP",
    "FLAG_UV",
    "AttestationObjectParts",
    "b64url_decode",
    "b64url_encode",
    "encode_attestation_object",
    "encode_authenticator_data",
    "parse_attestation_object",
]

FLAG_UP: Final = 0x01  # user present (§6.1, flags bit 0)
FLAG_UV: Final = 0x04  # user verified (bit 2)
FLAG_BE: Final = 0x08  # backup eligible (bit 3)
FLAG_BS: Final = 0x10  # backup state (bit 4)
FLAG_AT: Final = 0x40  # attested credential data included (bit 6)
FLAG_ED: Final = 0x80  # extension data included (bit 7)
# id-fido-gen-ce-aaguid (WebAuthn L3 §8.2.1): the model an attestation certificate speaks for.
FIDO_AAGUID_OID: Final = x509.ObjectIdentifier("1.3.6.1.4.1.45724.1.1.4")

_TOP_KEYS: Final = frozenset({"fmt", "attStmt", "authData"})
_BASE64URL: Final = re.compile(r"[A-Za-z0-9_-]*")
_FIXED: Final = 37
# What python-fido2's decoders raise on bytes that do not parse (its CBOR reader and the
# AuthenticatorData and COSE_Key constructors index, unpack and call methods on what they read).
_DECODING_ERRORS: Final = (
    ValueError,
    KeyError,
    IndexError,
    TypeError,
    AttributeError,
    UnicodeDecodeError,
    struct.error,
)  # rpIdHash (32) + flags (1) + signCount (4)


@dataclass(frozen=True, kw_only=True)
class AttestationObjectParts:
    """An attestation object's members and its authenticator data, split up."""

    fmt: str
    statement: Mapping[str, Any] = field(repr=False)
    auth_data: bytes = field(repr=False)
    rp_id_hash: bytes
    flags: int
    sign_count: int
    aaguid: uuid.UUID
    credential_id: bytes
    credential_public_key: bytes = field(repr=False)  # the COSE_Key, as encoded in authData


def _canonical(value: Any, encoded: bytes, what: str) -> None:
    try:
        again = cbor.encode(value)
    except (ValueError, TypeError) as exc:
        raise EncodingError(f"the {what} holds a CBOR value outside CTAP2's subset") from exc
    if again != encoded:
        raise EncodingError(
            f"the {what} is not CTAP2 canonical CBOR (a duplicate key, a length past the end,"
            " a non-minimal or unsorted encoding, or bytes after it)"
        )


def _decode(data: bytes, what: str) -> Any:
    try:
        value = cbor.decode(data)
    except _DECODING_ERRORS as exc:
        raise EncodingError(f"the {what} is not CBOR: {exc}") from exc
    _canonical(value, data, what)
    return value


def parse_attestation_object(data: bytes) -> AttestationObjectParts:
    """Decode ``data`` strictly; raise ``EncodingError`` for anything but a canonical attestation
    object whose authenticator data carries an attested credential (a registration)."""
    if not data:
        raise EncodingError("the attestation object is empty")
    top = _decode(data, "attestation object")
    if not isinstance(top, dict) or set(top) != _TOP_KEYS:
        raise EncodingError("the attestation object is not a map of exactly fmt, attStmt, authData")
    fmt, statement, auth_data = top["fmt"], top["attStmt"], top["authData"]
    if not isinstance(fmt, str) or not isinstance(statement, dict):
        raise EncodingError("fmt is not a text string or attStmt is not a map")
    if not isinstance(auth_data, bytes):
        raise EncodingError("authData is not a byte string")
    try:
        parsed = AuthenticatorData(auth_data)
    except _DECODING_ERRORS as exc:
        raise EncodingError(f"the authenticator data does not parse: {exc}") from exc
    credential = parsed.credential_data
    if credential is None or not parsed.flags & FLAG_AT:
        raise EncodingError("the authenticator data carries no attested credential (AT flag)")
    key_at = _FIXED + 16 + 2 + len(credential.credential_id)
    key_and_extensions = auth_data[key_at:]
    key_bytes = cbor.encode(dict(credential.public_key))
    if not key_and_extensions.startswith(key_bytes):
        raise EncodingError("the credential public key is not CTAP2 canonical CBOR")
    if parsed.flags & FLAG_ED:
        extensions = key_and_extensions[len(key_bytes) :]
        _canonical(parsed.extensions, extensions, "authenticator extension outputs")
    elif len(key_and_extensions) != len(key_bytes):
        raise EncodingError("bytes follow the credential public key")
    return AttestationObjectParts(
        fmt=fmt,
        statement=statement,
        auth_data=auth_data,
        rp_id_hash=parsed.rp_id_hash,
        flags=int(parsed.flags),
        sign_count=parsed.counter,
        aaguid=uuid.UUID(bytes=bytes(credential.aaguid)),
        credential_id=credential.credential_id,
        credential_public_key=key_bytes,
    )


def encode_authenticator_data(
    *,
    rp_id_hash: bytes,
    flags: int,
    sign_count: int,
    aaguid: uuid.UUID,
    credential_id: bytes,
    credential_public_key: Mapping[int, Any],
) -> bytes:
    """Authenticator data with attested credential data (§6.1, §6.5.2), AT set in ``flags``."""
    return (
        rp_id_hash
        + struct.pack(">BI", flags | FLAG_AT, sign_count)
        + aaguid.bytes
        + struct.pack(">H", len(credential_id))
        + credential_id
        + cbor.encode(dict(credential_public_key))
    )


def encode_attestation_object(fmt: str, statement: Mapping[str, Any], auth_data: bytes) -> bytes:
    """The attestation object (§6.5.4), in CTAP2 canonical CBOR."""
    return cbor.encode({"fmt": fmt, "attStmt": dict(statement), "authData": auth_data})


def b64url_decode(text: str) -> bytes:
    """Base64url without padding (RFC 4648 §5, as WebAuthn's JSON forms use it), strictly: a
    character outside the alphabet is an ``EncodingError``, not skipped."""
    if not _BASE64URL.fullmatch(text):
        raise EncodingError("not base64url")
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (ValueError, binascii.Error) as exc:
        raise EncodingError("not base64url") from exc


def b64url_encode(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()
